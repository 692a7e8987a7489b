import Foundation
import Logging
import ReelConfig
import ReelControl
import ReelCore
import ReelCurl
import ReelHTTPServer
import ReelMedia
import ReelOutput
import ReelPosix
import ReelProvider
import ReelSpool
import ReelStore
import ReelSystemd
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The wall clock of a running daemon.
public struct SystemClock: WallClock {
    public init() {}
    public func now() -> Timestamp { Date().timeIntervalSince1970 }
}

/// reeld: configuration, state, adapters and Services, composed and run under one ServiceGroup.
public enum Daemon {
    /// Exit statuses of reeld (sysexits.h).
    public enum ExitStatus {
        public static let ok: Int32 = 0
        public static let software: Int32 = 70
        public static let config: Int32 = 78
        public static let unavailable: Int32 = 69
    }

    /// Maps the configured limits onto the scheduler's.
    public static func limits(_ config: ReelConfig) -> SchedulerLimits {
        let provider = PoolLimits.provider
        let pools = config.limits.models.mapValues {
            PoolLimits(concurrency: $0.concurrency ?? provider.concurrency,
                       submitPerSecond: $0.submitPerSecond ?? provider.submitPerSecond)
        }
        var limits = SchedulerLimits(pools: pools, concurrency: config.limits.concurrency,
                                     submitPerSecond: config.limits.submitPerSecond,
                                     queryPerSecond: config.limits.queryPerSecond,
                                     maxAttempts: config.retry.maxAttempts, baseDelay: config.retry.baseDelay,
                                     maxDelay: config.retry.maxDelay, unknownGrace: config.unknownGrace)
        config.polling.apply(to: &limits.polling)
        return limits
    }

    static func hooks(_ config: ReelConfig) throws -> BatchEndHandler.HookSettings {
        var secret: [UInt8] = []
        if let file = config.hooks.webhookSecretFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ConfigError(problems: ["hooks.webhook_secret_file: cannot read \(file)"])
            }
            secret = Array(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        }
        return .init(command: config.hooks.onBatchComplete, timeout: config.hooks.timeout,
                     webhookURL: config.hooks.webhookURL, webhookSecret: secret)
    }

    /// Runs reeld until SIGTERM/SIGINT. Throws on start-up failures (the caller maps them to exit codes).
    public static func run(configPath: String, config initial: ReelConfig, logLevel: LogLevelSetting,
                           logger: Logger) async throws {
        let environment = ProcessInfo.processInfo.environment
        let files = try OpenFileLimit.raiseSoftToHard()
        logger.info("open file limit", metadata: ["soft": "\(files.soft)", "hard": "\(files.hard)"])
        let clock = SystemClock()
        let startedAt = clock.now()
        let (apiKey, keySource) = try Credentials.apiKey(apiKeyFile: initial.provider.apiKeyFile, environment: environment)
        LogRedactor.shared.add(secret: apiKey)
        logger.info("API key loaded", metadata: ["source": "\(keySource)"])

        try FileManager.default.createDirectory(atPath: initial.paths.state, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: initial.paths.output, withIntermediateDirectories: true)
        let layout = SpoolLayout(root: initial.paths.spool)
        try layout.prepare()
        try layout.checkFilesystems()
        let spool = try SpoolDirectory(layout: layout, maxBytes: initial.intake.maxManifestBytes)
        // Temporary files a crash left between create and rename; nothing of this process is being written yet.
        do {
            let stale = try StaleTemporaries.clean(layout, now: clock.now())
                + StaleTemporaries.remove(inSubdirectoriesOf: initial.paths.output, isTemporary: Delivery.isTemporaryName)
            if let first = stale.first {
                logger.notice("removed temporary files left by an earlier crash",
                              metadata: ["files": "\(stale.count)", "first": "\(first)"])
            }
        } catch {
            logger.error("cannot remove stale temporary files", metadata: ["error": "\(error)"])
        }
        let store = try Store(path: initial.paths.state + "/reel.sqlite3")

        let curl = CurlClient(threads: 8, userAgent: "reeld/\(ReelVersion.current)")
        let api = DashScopeClient(baseURL: initial.provider.baseURL, apiKey: apiKey, curl: curl,
                                  timeouts: .init(api: initial.provider.requestTimeout,
                                                  download: initial.provider.downloadTimeout),
                                  logger: logger)
        let tree = OutputTree(root: initial.paths.output)
        let batchEnd = BatchEndHandler(hooks: try hooks(initial), curl: curl, logger: logger)
        let engine = Engine(store: store, api: api, tree: tree, clock: clock,
                            options: .init(limits: limits(initial), resubmitInDoubt: initial.resubmitInDoubt,
                                           listLag: initial.inDoubtListLag, pricing: initial.pricing),
                            batchEnd: batchEnd, logger: logger)
        // Pauses first: restore() hands queued jobs to the scheduler, which would submit them at once.
        if try await store.setting("paused") == "1" { await engine.handle(.pause(batch: nil)) }
        for summary in try await store.batches() where summary.settings.paused {
            await engine.handle(.pause(batch: summary.name))
        }
        try await engine.restore()

        let intake = Intake(spool: spool, store: store, engine: engine, clock: clock, logger: logger)
        let readiness = Readiness()
        let notifier = Notifier()
        let reloader = Reloader(configPath: configPath, current: initial, engine: engine, batchEnd: batchEnd,
                                logLevel: logLevel, notifier: notifier, logger: logger)
        let backend = DaemonBackend(store: store, engine: engine, clock: clock, startedAt: startedAt,
                                    reload: { await reloader.reload(trigger: "control API") })
        let control = ControlAPI(backend: backend,
                                 authorizer: Authorizer(daemonUID: getuid(), adminGroup: initial.control.adminGroup),
                                 logger: logger, limits: ControlAPI.limits(maxConnections: initial.control.maxConnections))

        let services: [any Service] = [
            EngineService(engine: engine),
            IntakeService(intake: intake, layout: layout, rescanInterval: initial.intake.rescanInterval,
                          readiness: readiness, logger: logger),
            ControlService(api: control, socketPath: initial.paths.socket, mode: mode_t(initial.control.socketMode),
                           readiness: readiness, logger: logger),
            RetentionService(store: store, retention: { await reloader.current.retention }, clock: clock, logger: logger),
            SignalService(reloader: reloader),
            SystemdService(notifier: notifier, engine: engine, store: store, readiness: readiness, logger: logger),
        ]
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) },
                                                      gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        do {
            defer { joinWorkerThreads(curl) }
            try await group.run()
        }
        logger.info("reeld stopped")
    }
}

/// Ends the process's own worker threads before `main` returns: work the services left behind (a transfer, a
/// hash of a delivered file) must not still run in libcurl, OpenSSL or a file read while `exit` tears the
/// process down and runs the libraries' exit handlers. Transfers are aborted; file work already queued is
/// finished.
func joinWorkerThreads(_ curl: CurlClient) {
    curl.shutdown()
    BlockingThreads.shutdownAll()
}

/// READY=1 waits for these: the spool scanned once (its files committed, and removed within 10 s) and the control
/// socket bound. Marked from any thread (the socket's bind callback is synchronous).
final class Readiness: Sendable {
    private struct State {
        var spoolScanned = false
        var socketBound = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var ready: Bool { spoolScanned && socketBound }
    }
    private let state = Mutex(State())

    func markSpoolScanned() { mark { $0.spoolScanned = true } }
    func markSocketBound() { mark { $0.socketBound = true } }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.ready { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }

    private func mark(_ change: (inout State) -> Void) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            change(&s)
            guard s.ready else { return [] }
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}

struct EngineService: Service {
    let engine: Engine

    /// Graceful shutdown stops the engine (its in-flight creates and deliveries finish, reconciliation is
    /// cancelled); cancellation of this service cancels everything.
    func run() async throws {
        let engine = self.engine
        await withGracefulShutdownHandler {
            await engine.run()
        } onGracefulShutdown: {
            engine.stop()
        }
    }
}

/// inotify hints plus a rescan at start and every `rescanInterval` (inotify overflows and misses NFS writers).
struct IntakeService: Service {
    let intake: Intake
    let layout: SpoolLayout
    let rescanInterval: Double
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        let watcher = try SpoolWatcher(directory: layout.incoming, rescanInterval: .milliseconds(Int(rescanInterval * 1000)))
        // Files still settling (maybe being written in place) are looked at again once they may have settled.
        @Sendable func scan(_ reason: String) async {
            if await intake.scan(reason: reason).rescan {
                watcher.requestRescan(after: .milliseconds(Int(Intake.settleSeconds * 1000) + 100))
            }
        }
        await scan("start")
        // READY means what was in incoming/ at start has been taken: committed, and removed by the unlinker,
        // which trails at low priority. A huge backlog on a busy machine must not hold READY past systemd's
        // start timeout for cleanup alone, so the wait is bounded (the jobs are committed either way).
        let removalDeadline = ContinuousClock.now + .seconds(10)
        while !intake.removalsDone, ContinuousClock.now < removalDeadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        readiness.markSpoolScanned()
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // The passes intake asks for later (hint passes, settle rescans) run here, beside the hints.
                group.addTask { await intake.run() }
                for await hint in watcher.hints {
                    switch hint {
                    case .file(let name):
                        await intake.take([name])
                    case .writing(let name):
                        await intake.writing(name)
                    case .rescan(let reason):
                        if reason == .directoryGone {
                            logger.error("spool incoming/ disappeared; recreating it (restart reeld to watch it again)")
                            do {
                                try layout.prepare()
                            } catch {
                                logger.error("cannot recreate spool incoming/", metadata: ["error": "\(error)"])
                            }
                        }
                        await scan(reason.rawValue)
                    }
                }
                group.cancelAll()
            }
        }
        watcher.cancel()
    }
}

/// The /v1 API on the Unix socket: the socket systemd passed (socket activation) or one bound here.
struct ControlService: Service {
    let api: ControlAPI
    let socketPath: String
    let mode: mode_t
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        let binding: HTTPServer.Binding
        if let fd = ListenFDs.controlSocket() {
            binding = .adoptedSocket(fd: fd)
            logger.info("control socket passed by systemd", metadata: ["fd": "\(fd)"])
        } else {
            try FileManager.default.createDirectory(atPath: (socketPath as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            binding = .unixSocket(path: socketPath, mode: mode)
        }
        let readiness = self.readiness
        let logger = self.logger
        try await cancelWhenGracefulShutdown {
            try await api.run(on: binding) { address in
                logger.info("control API listening", metadata: ["address": "\(address)"])
                readiness.markSocketBound()
            }
        }
    }
}

/// Prunes finished jobs and their history past the retention age, hourly.
struct RetentionService: Service {
    let store: any JobStore
    let retention: @Sendable () async -> Double
    let clock: any WallClock
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await pruneOnce()
                try? await Task.sleep(for: .seconds(3600))
            }
        }
    }

    private func pruneOnce() async {
        do {
            let age = await retention()
            guard age > 0 else { return }
            let report = try await store.prune(finishedBefore: clock.now() - age)
            if report.jobs > 0 { logger.info("pruned finished jobs", metadata: ["jobs": "\(report.jobs)"]) }
        } catch {
            logger.error("retention pruning failed", metadata: ["error": "\(error)"])
        }
    }
}

/// SIGHUP: reload the configuration.
struct SignalService: Service {
    let reloader: Reloader

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals { _ = await reloader.reload(trigger: "SIGHUP") }
        }
    }
}

/// sd_notify: READY once everything is up, STATUS lines, WATCHDOG only while the engine's loop is alive,
/// STOPPING first on shutdown. Started last, so it stops first.
struct SystemdService: Service {
    let notifier: Notifier
    let engine: Engine
    let store: any JobStore
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        await readiness.wait()
        notifier.ready(status: await statusLine().line)
        logger.info("reeld ready")
        defer { notifier.stopping(status: "Stopping: remote renders continue and are re-attached at the next start") }
        let heartbeat = Heartbeat()
        let changes = await engine.events()
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await runWatchdog(notifier: notifier, heartbeat: heartbeat) }
                if let interval = notifier.watchdogInterval {
                    // The heartbeat must be fed within the watchdog's freshness window (half of WATCHDOG_USEC), and
                    // a tick late by more than that window counts as a stalled loop.
                    let window = Double(interval) / 1_000_000
                    group.addTask {
                        while !Task.isCancelled {
                            // Reaching the engine proves its actor is not stuck; no overdue tick proves the loop runs.
                            if await engine.loopIsLive(maxLag: window) { heartbeat.beat() }
                            try? await Task.sleep(for: .seconds(window / 2))
                        }
                    }
                }
                if notifier.isEnabled {
                    group.addTask { await reportStatus(changes) }
                }
                // Each child runs until shutdown cancels it.
                await group.waitForAll()
            }
        }
    }

    /// Sends the `STATUS=` line every second while any job is queued or in flight (and releases a line the
    /// throttle held back a second later); while idle the line changes only when a job does, so it waits for the
    /// engine's next event instead of waking on a timer.
    private func reportStatus(_ changes: AsyncStream<EngineEvent>) async {
        var next = changes.makeAsyncIterator()
        var last: String?
        while !Task.isCancelled {
            let (line, busy) = await statusLine()
            // Idle, an event that changed nothing shown (or one buffered while busy) sends nothing.
            if busy || line != last {
                notifier.status(line)
                last = line
            }
            if busy || notifier.pendingStatus != nil {
                try? await Task.sleep(for: .seconds(1))
                notifier.flushStatus()
            } else if await next.next() == nil {
                return
            }
        }
    }

    /// The `STATUS=` line, and whether any job is queued or in flight.
    private func statusLine() async -> (line: String, busy: Bool) {
        let (s, limits, _) = await engine.statusFacts()
        let busy = s.queued + s.retrying + s.submitting + s.inDoubt + s.pending + s.running + s.downloading > 0
        var line = "\(s.slotsHeld) rendering, \(s.queued) queued, \(s.downloading) downloading"
        do {
            let counts = try await store.counts().byState
            let held = counts[.held] ?? 0, doubt = counts[.inDoubt] ?? 0
            if held > 0 { line += ", \(held) held" }
            if doubt > 0 { line += ", \(doubt) in doubt" }
        } catch {
            line += "; state store unreadable: \(error)"
        }
        let health = SchedulerHealth(s, limits: limits, now: engine.clock.now())
        line += health.notes.isEmpty ? "; provider ok" : "; " + health.notes.joined(separator: "; ")
        let storage = await engine.storageWaiting()
        if storage.jobs > 0 { line += "; output filesystem refusing writes, \(storage.jobs) delivery(s) waiting" }
        if s.paused { line += "; paused" }
        if s.draining { line += "; draining" }
        return (line, busy)
    }
}
