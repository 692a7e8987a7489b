import ArgumentParser
import Foundation
import ReelCore

@main
struct Reelctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reelctl",
        abstract: "Operate reeld, the Wan 2.6 render-queue daemon, over its Unix socket.",
        discussion: """
        Exit codes: 0 ok, 1 the operation failed, 2 usage error, 69 reeld unreachable.
        Output is a table on a terminal and JSON (NDJSON for listings) with --json or when piped.
        """,
        version: ReelVersion.current,
        subcommands: [Status.self, Jobs.self, Show.self, Batches.self, BatchCommand.self,
                      Cancel.self, Retry.self, Hold.self, Release.self, Pause.self, Resume.self, Drain.self,
                      Reload.self, Watch.self, Shape.self, Resolve.self, Validate.self, Estimate.self, Submit.self,
                      GenerateManual.self])

    /// Maps errors onto the exit codes (ArgumentParser's own usage code is 64; ours is 2).
    static func main() async {
        do {
            var command = try parseAsRoot(globalOptionsAfterVerb(Array(CommandLine.arguments.dropFirst())))
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            writeStderr("reelctl: \(error.description)")
            Foundation.exit(error.code)
        } catch let error as DecodingError {
            writeStderr("reelctl: reeld sent an answer reelctl cannot read: \(error)")
            Foundation.exit(Exit.failed)
        } catch {
            let code = exitCode(for: error)
            if code == .success || code == .validationFailure || error is ValidationError {
                let message = fullMessage(for: error)
                if code == .success {
                    if !message.isEmpty { print(message) }
                    Foundation.exit(Exit.ok)
                }
                writeStderr(message)
                Foundation.exit(Exit.usage)
            }
            exit(withError: error)
        }
    }
}

extension Reelctl {
    /// The global options may come before the verb too (`reelctl --socket PATH status`, as with `git -C` or
    /// `docker -H`): those found before it are moved after it, where each verb declares them.
    static func globalOptionsAfterVerb(_ arguments: [String]) -> [String] {
        var moved: [String] = []
        var i = 0
        while i < arguments.count {
            let a = arguments[i]
            if a == "--json" || a.hasPrefix("--socket=") {
                moved.append(a)
                i += 1
            } else if a == "--socket", i + 1 < arguments.count {
                moved += [a, arguments[i + 1]]
                i += 2
            } else {
                break
            }
        }
        guard !moved.isEmpty, i < arguments.count else { return arguments }
        return [arguments[i]] + moved + arguments[(i + 1)...]
    }
}

struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The control socket (default $REEL_SOCKET, else /run/reel/reel.sock).",
                                            valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Machine-readable output: JSON, or NDJSON for listings.")
    var json = false

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["REEL_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
            ?? "/run/reel/reel.sock"
    }

    var client: ControlClient { ControlClient(socket: socketPath) }

    /// JSON when asked for, or when stdout is not a terminal (unless `REELCTL_FORMAT=table`).
    var wantsJSON: Bool { json || !Terminal().tablesWanted }
}
