import Foundation
import Logging
import ReelConfig
import ReelControl
import ReelProtocol
import ReelSystemd

/// SIGHUP / `reelctl reload`: re-reads reel.toml and applies what can change without a restart (limits, retry,
/// pricing, hooks, log level, in-doubt policy, retention). A bad file changes nothing and says why.
actor Reloader {
    let configPath: String
    private(set) var current: ReelConfig
    let engine: Engine
    let batchEnd: BatchEndHandler
    let logLevel: LogLevelSetting
    let notifier: Notifier
    let logger: Logger

    init(configPath: String, current: ReelConfig, engine: Engine, batchEnd: BatchEndHandler, logLevel: LogLevelSetting,
         notifier: Notifier, logger: Logger) {
        self.configPath = configPath
        self.current = current
        self.engine = engine
        self.batchEnd = batchEnd
        self.logLevel = logLevel
        self.notifier = notifier
        self.logger = logger
    }

    func reload(trigger: String) async -> ActionResult {
        notifier.reloading()
        var outcome = "Reload refused: the configuration has problems; nothing changed"
        defer { notifier.ready(status: outcome) }
        let next: ReelConfig
        let hooks: BatchEndHandler.HookSettings
        do {
            next = try ReelConfig.load(path: configPath)
            hooks = try Daemon.hooks(next)
        } catch {
            logger.error("reload refused: the configuration has problems; nothing changed",
                         metadata: ["trigger": "\(trigger)", "problems": "\(error)"])
            return ActionResult(ok: false, message: "configuration not reloaded, nothing changed:\n\(error)")
        }
        let diff = current.reloadableDifferences(to: next)
        await engine.apply(limits: Daemon.limits(next), pricing: next.pricing, resubmitInDoubt: next.resubmitInDoubt,
                           listLag: next.inDoubtListLag)
        await batchEnd.update(hooks)
        if let level = Logger.Level(rawValue: next.logLevel) { logLevel.level = level }
        var message = diff.reloadable.isEmpty ? "configuration reloaded: no reloadable change"
            : "configuration reloaded: \(diff.reloadable.joined(separator: ", ")) applied"
        if !diff.needRestart.isEmpty {
            message += "; changes to \(diff.needRestart.joined(separator: ", ")) need a restart (systemctl restart reeld)"
            logger.warning("some changes need a restart", metadata: ["sections": "\(diff.needRestart.joined(separator: ", "))"])
        }
        // Keep the running paths: they only change with a restart.
        var applied = next
        applied.paths = current.paths
        applied.provider = current.provider
        applied.intake = current.intake
        applied.control = current.control
        current = applied
        outcome = message
        logger.notice("\(message)", metadata: ["trigger": "\(trigger)"])
        return ActionResult(ok: true, message: message)
    }
}
