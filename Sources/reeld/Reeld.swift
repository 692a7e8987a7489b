import ArgumentParser
import Foundation
import Logging
import ReelConfig
import ReelCore
import ReelDaemon
import ReelSystemd

@main
struct Reeld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reeld",
        abstract: "The Reel render-queue daemon for Wan 2.6 reference-to-video batches.",
        discussion: """
        Runs until SIGTERM or SIGINT (remote renders keep running and are re-attached at the next start).
        SIGHUP reloads limits, retry, polling, pricing, hooks, log level, in-doubt policy and retention.
        Exit status: 0 clean stop, 78 configuration problem (every problem is listed), 70 internal error.
        """,
        version: ReelVersion.current)

    @Option(name: .long, help: ArgumentHelp("The configuration file.", valueName: "file"))
    var config = "/etc/reel/reel.toml"

    @Flag(name: .long, help: "Check the configuration (and that an API key can be read), print every problem, and exit 0 or 78.")
    var checkConfig = false

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let loaded: ReelConfig
        do {
            loaded = try ReelConfig.load(path: config)
            _ = try Credentials.apiKey(apiKeyFile: loaded.provider.apiKeyFile,
                                       environment: ProcessInfo.processInfo.environment)
        } catch let error as ConfigError {
            FileHandle.standardError.write(Data("reeld: configuration has \(error.problems.count) problem(s):\n\(error.description)\n".utf8))
            throw ExitCode(Daemon.ExitStatus.config)
        } catch let error as CredentialError {
            FileHandle.standardError.write(Data("reeld: \(config): no usable API key: \(error.description)\n".utf8))
            throw ExitCode(Daemon.ExitStatus.config)
        }
        if checkConfig {
            print("reeld: \(config) is valid")
            return
        }
        let level = LogLevelSetting(Logger.Level(rawValue: loaded.logLevel) ?? .info)
        let mode = JournalLogHandler.detectMode()
        LoggingSystem.bootstrap { label in JournalLogHandler(label: label, mode: mode, level: level) }
        let logger = Logger(label: "reeld")
        do {
            try await Daemon.run(configPath: config, config: loaded, logLevel: level, logger: logger)
        } catch let error as ConfigError {
            logger.critical("configuration problem: \(error.description)")
            throw ExitCode(Daemon.ExitStatus.config)
        } catch {
            logger.critical("reeld failed: \(error)")
            throw ExitCode(Daemon.ExitStatus.software)
        }
    }
}
