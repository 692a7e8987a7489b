import Foundation
import Logging
import ReelCore
import ReelOutput
import ReelStore

/// Drives the core `Scheduler` with real I/O: the one actor that owns scheduling decisions.
///
/// Every provider exchange runs in a child task and comes back as a `SchedulerEvent`; the actor applies the event
/// to the store (compare-and-set) and the scheduler, then performs the actions the scheduler returns. Time-based
/// work (retries due, polls due, rate buckets refilling) is driven by a tick at `scheduler.nextWakeup`.
public actor Engine {
    public struct Options: Sendable {
        public var limits: SchedulerLimits
        public var resubmitInDoubt: Bool
        /// How late the task list may show a new task (`[in_doubt] list_lag`).
        public var listLag: Double
        public var pricing: PricingTable
        public var downloadAttempts = 4
        public var seed: UInt64 = UInt64.random(in: 0...UInt64.max)

        public init(limits: SchedulerLimits, resubmitInDoubt: Bool, listLag: Double = 60, pricing: PricingTable) {
            self.limits = limits
            self.resubmitInDoubt = resubmitInDoubt
            self.listLag = listLag
            self.pricing = pricing
        }
    }

    let store: Store
    let api: any RenderAPI
    let tree: OutputTree
    let clock: any WallClock
    let logger: Logger
    private(set) var options: Options
    private var scheduler: Scheduler
    private var tickTask: Task<Void, Never>?
    private var tickAt: Timestamp?
    private var inflight: [UUID: Task<Void, Never>] = [:]
    /// Work that may wait indefinitely (reconciliation): cancelled at shutdown instead of awaited to its end.
    private var cancelOnStop: Set<UUID> = []
    private var stopping = false
    private var lastTick: Timestamp = 0
    private var listeners: [UUID: AsyncStream<EngineEvent>.Continuation] = [:]
    /// Batches already finished and announced (batch.json written); reset when a batch gains jobs.
    var completedBatches: Set<String> = []
    var deadlineRisks: [JobKey: String] = [:]
    /// The control API's ETAs (see `forecast()`).
    private var etaForecast: ETAForecast?
    private var etaRefresh: Task<ETAForecast, Never>?
    /// Uploads of local references under way, by model and content hash.
    var uploadsInFlight: [String: Task<String, any Error>] = [:]
    /// Deliveries waiting for the output filesystem (full, read-only, failing, out of descriptors), with the
    /// latest refusal; kept by `deliver` (EngineDelivery.swift), read through `storageWaiting()`.
    var storageWaits: [JobKey: String] = [:]
    /// Budget checks waiting for their batch's turn (a batch is present while a check of it runs).
    var budgetTurns: [String: [CheckedContinuation<Void, Never>]] = [:]
    let batchEnd: BatchEndHandler

    public init(store: Store, api: any RenderAPI, tree: OutputTree, clock: any WallClock, options: Options,
                batchEnd: BatchEndHandler, logger: Logger) {
        self.store = store
        self.api = api
        self.tree = tree
        self.clock = clock
        self.options = options
        self.scheduler = Scheduler(limits: options.limits, seed: options.seed)
        self.batchEnd = batchEnd
        self.logger = logger
    }

    // MARK: - Life cycle

    /// Re-attaches to everything the database says is under way: the crash-recovery half of exactly-once.
    public func restore() async throws {
        let now = clock.now()
        for (runClass, samples) in try await store.runTimeSamples() {
            for seconds in samples {
                _ = scheduler.handle(.observedRunTime(model: runClass.model, resolution: runClass.resolution,
                                                      durationSeconds: runClass.durationSeconds, seconds: seconds),
                                     now: now)
            }
        }
        // A job left in `submitting` crashed inside the in-doubt window: its create may or may not have arrived.
        let interrupted = try await store.markInterruptedSubmissionsInDoubt(now: now)
        if !interrupted.isEmpty {
            logger.warning("jobs were mid-create when reeld stopped; reconciling them",
                           metadata: ["jobs": "\(interrupted.map(\.key.description).joined(separator: " "))"])
        }
        var actions: [SchedulerAction] = []
        for row in try await store.jobs(in: [.queued, .retrying]) {
            actions += scheduler.handle(.enqueued(schedulerJob(row)), now: now)
        }
        for row in try await store.jobs(in: [.pending, .running]) {
            guard let task = row.taskID else { continue }
            actions += scheduler.handle(.restoredRemote(schedulerJob(row), taskID: task,
                                                        submittedAt: row.submittedAt ?? now), now: now)
        }
        for row in try await store.jobs(in: [.inDoubt]) {
            actions += scheduler.handle(.restoredInDoubt(schedulerJob(row)), now: now)
            spawnReconcile(row.key)
        }
        for row in try await store.jobs(in: [.downloading, .verifying]) {
            spawn { await $0.deliver(row.key) }
        }
        perform(actions)
        // A batch that ended just before a crash may lack its batch.json.
        for summary in try await store.batches() where summary.isComplete {
            if let dir = try? tree.batchDirectory(summary.name),
               !FileManager.default.fileExists(atPath: dir + "/batch.json") {
                await checkBatchEnd(summary.name)
            }
        }
        let counts = try await store.counts().byState
        // One field per state (`in_doubt=1 running=5`), readable in the journal and by `journalctl -o json`.
        var metadata: Logger.Metadata = [:]
        for (state, n) in counts where n > 0 { metadata[state.rawValue] = "\(n)" }
        logger.info("restored state", metadata: metadata)
    }

    /// Runs until the surrounding task is cancelled (graceful shutdown), then stops claiming new work and lets
    /// in-flight create calls finish so none is left in doubt needlessly. Remote renders keep running.
    public func run() async {
        scheduleTick(force: true)
        await withTaskCancellationHandler {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(3600))
            }
        } onCancel: {
            Task { await self.beginStop() }
        }
        await drainInflight()
    }

    private func beginStop() {
        stopping = true
        tickTask?.cancel()
        for id in cancelOnStop { inflight[id]?.cancel() }
    }

    private func drainInflight() async {
        stopping = true
        let tasks = Array(inflight.values)
        for t in tasks { await t.value }
    }

    /// The last time the scheduler loop completed a tick.
    public var heartbeat: Timestamp { lastTick }

    /// True while the scheduler loop keeps up: no tick that fell due more than `maxLag` seconds ago is still
    /// waiting to run. An idle engine (nothing scheduled) is live; answering at all proves the actor is not wedged.
    /// The systemd watchdog pings only while this holds.
    public func loopIsLive(maxLag: Double) -> Bool {
        guard let due = tickAt, tickTask != nil else { return true }
        return clock.now() - due <= maxLag
    }

    // MARK: - Inputs

    /// New jobs committed by intake, as committed (state `queued`, no attempt yet, `created_at` = `createdAt`):
    /// the scheduler learns of them without reading them back from the store.
    public func enqueue(_ jobs: [JobSpec], createdAt: Timestamp) {
        let now = clock.now()
        var actions: [SchedulerAction] = []
        for spec in jobs {
            completedBatches.remove(spec.key.batch)
            actions += scheduler.handle(.enqueued(SchedulerJob(spec, enqueuedAt: createdAt, attempts: 0)), now: now)
        }
        perform(actions)
        publish(.jobsChanged(jobs.map(\.key)))
    }

    public func apply(limits: SchedulerLimits, pricing: PricingTable, resubmitInDoubt: Bool, listLag: Double) {
        options.limits = limits
        options.pricing = pricing
        options.resubmitInDoubt = resubmitInDoubt
        options.listLag = listLag
        perform(scheduler.handle(.setLimits(limits), now: clock.now()))
    }

    func handle(_ event: SchedulerEvent) {
        perform(scheduler.handle(event, now: clock.now()))
    }

    // MARK: - Actions

    private func perform(_ actions: [SchedulerAction]) {
        for action in actions {
            switch action {
            case .submit(let key):
                if stopping { continue }
                spawn { await $0.submit(key) }
            case .poll(let key, let taskID):
                if stopping { continue }
                spawn { await $0.poll(key, taskID: taskID) }
            case .pollList(let tasks):
                if stopping { continue }
                spawn { await $0.pollList(tasks) }
            case .download(let key):
                spawn { await $0.deliver(key) }
            case .retryLater(let key, let at, let reason):
                spawn { await $0.markRetrying(key, at: at, reason: reason) }
            case .fail(let key, let reason):
                spawn { await $0.finish(key, .failed, reason: reason) }
            case .cancelRemote(let key, let taskID):
                spawn { await $0.cancelRemote(key, taskID: taskID) }
            case .discardWhenDone(let key):
                logger.notice("job is rendering and cannot be cancelled remotely; its result will be discarded",
                              metadata: ["job_id": "\(key)"])
            case .expire(let key, let reason):
                spawn { await $0.finish(key, .expired, reason: reason) }
            case .vanished(let key, let taskID, let reason):
                spawn { await $0.taskVanished(key, taskID: taskID, reason: reason) }
            case .deadlineAtRisk(let key, let p90, let deadline):
                deadlineRisks[key] = "\(key): p90 finish \(RFC3339.format(p90)) is after its deadline \(RFC3339.format(deadline))"
                logger.warning("deadline at risk: p90 finish is after the deadline",
                               metadata: ["job_id": "\(key)", "p90": "\(p90)", "deadline": "\(deadline)"])
            }
        }
        scheduleTick()
    }

    private func spawn(cancelOnStop cancellable: Bool = false, _ body: @escaping @Sendable (Engine) async -> Void) {
        let id = UUID()
        let task = Task { [self] in
            await body(self)
            self.removeInflight(id)
        }
        inflight[id] = task
        if cancellable {
            cancelOnStop.insert(id)
            if stopping { task.cancel() }
        }
    }

    /// Reconciles an in-doubt job in the background until it is settled (cancelled at shutdown).
    func spawnReconcile(_ key: JobKey) {
        spawn(cancelOnStop: true) { await $0.reconcile(key) }
    }

    private func removeInflight(_ id: UUID) {
        inflight[id] = nil
        cancelOnStop.remove(id)
    }

    private func scheduleTick(force: Bool = false) {
        let now = clock.now()
        guard let next = scheduler.nextWakeup(after: now) else {
            lastTick = now
            return
        }
        if !force, let at = tickAt, at <= next, tickTask != nil { return }
        tickTask?.cancel()
        tickAt = next
        let delay = max(0, next - now)
        tickTask = Task { [self] in
            try? await Task.sleep(for: .seconds(delay))
            await TestHooks.holdTickIfAsked()
            if Task.isCancelled { return }
            self.tick()
        }
    }

    private func tick() {
        tickTask = nil
        tickAt = nil
        let now = clock.now()
        lastTick = now
        perform(scheduler.handle(.tick, now: now))
    }

    /// A store read whose failure is logged at error; nil then, and the caller treats the thing as unknown for now
    /// (its work is retried by the next event, tick or restart).
    func readStore<T: Sendable>(_ what: String, _ body: () async throws -> T?) async -> T? {
        do {
            return try await body()
        } catch {
            logger.error("cannot read the state store", metadata: ["what": "\(what)", "error": "\(error)"])
            return nil
        }
    }

    /// Moves a job in the store by compare-and-set and tells observers; false when it was not where `from` says.
    /// A store that cannot write is logged at error (the move did not happen).
    @discardableResult
    func record(_ key: JobKey, to state: JobState, from: Set<JobState>, cause: String,
                update: @escaping @Sendable (inout JobRow) -> Void = { _ in }) async -> Bool {
        do {
            if try await store.transition(key, from: from, to: state, cause: cause, now: clock.now(), update: update) {
                logger.debug("job \(state.rawValue)", metadata: ["job_id": "\(key)", "cause": "\(cause)"])
                publish(.jobsChanged([key]))
                return true
            }
        } catch {
            logger.error("store transition failed", metadata: ["job_id": "\(key)", "to": "\(state.rawValue)",
                                                              "error": "\(error)"])
        }
        return false
    }

    /// Records that the scheduler will offer the job again at `at` (backoff, throttling).
    func markRetrying(_ key: JobKey, at: Timestamp, reason: String) async {
        let now = clock.now()
        do {
            if try await store.update(key, ifIn: [.retrying], now: now, { $0.nextAttemptAt = at; $0.reason = reason }) {
                return
            }
            if try await store.transition(key, from: [.queued, .submitting], to: .retrying, cause: reason, now: now,
                                          update: { $0.nextAttemptAt = at; $0.reason = reason }) {
                publish(.jobsChanged([key]))
            }
        } catch {
            logger.error("cannot record a retry", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
    }

    func finish(_ key: JobKey, _ state: JobState, reason: String) async {
        let from: Set<JobState> = Set(JobState.allCases.filter { !$0.isTerminal && $0.canMove(to: state) })
        await record(key, to: state, from: from, cause: reason) { $0.reason = reason }
        logger.notice("job \(state.rawValue): \(reason)", metadata: ["job_id": "\(key)"])
        await checkBatchEnd(key.batch)
    }

    /// Hands an adopted task to the scheduler: as the answer to the job's create while the scheduler still holds
    /// the job (in doubt: reconciled, or waiting for an operator within its slot hour), or as a re-attached remote
    /// job when it no longer holds it (an operator's `reelctl resolve --adopt` later than that); either way the
    /// task is polled from then on.
    func attachAdopted(_ row: JobRow, taskID: String) {
        if scheduler.holds(row.key) {
            handle(.submitted(row.key, taskID: taskID))
        } else {
            handle(.restoredRemote(schedulerJob(row), taskID: taskID, submittedAt: clock.now()))
        }
    }

    func schedulerJob(_ row: JobRow) -> SchedulerJob {
        var job = SchedulerJob(row.spec, enqueuedAt: row.createdAt, attempts: row.attempt)
        (job.priority, job.deadline) = (row.priority, row.deadline)
        return job
    }

    // MARK: - Observers (SSE, watch)

    public func events() -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        listeners[id] = continuation
        continuation.onTermination = { _ in Task { await self.dropListener(id) } }
        return stream
    }

    private func dropListener(_ id: UUID) { listeners[id] = nil }

    func publish(_ event: EngineEvent) {
        for c in listeners.values { c.yield(event) }
    }

    public var schedulerSnapshot: SchedulerSnapshot { scheduler.snapshot }

    /// Deadline warnings raised by the scheduler, for `reelctl status` (the newest 20).
    private var deadlineWarnings: [String] { Array(deadlineRisks.values.sorted().suffix(20)) }

    /// What `GET /v1/status` needs from the engine, in one hop onto the actor.
    public func statusFacts() -> (snapshot: SchedulerSnapshot, limits: SchedulerLimits, deadlineWarnings: [String]) {
        (scheduler.snapshot, options.limits, deadlineWarnings)
    }

    /// ETAs of every job and batch, at most a second old, for the control API. The replay costs time in the
    /// queue's length (tens of milliseconds at 100,000 queued jobs), so it runs on a copy of the scheduler off the
    /// actor, at most once at a time: a forecast younger than 30 s is answered at once (and refreshed in the
    /// background when older than 1 s); none, or an older one, is awaited.
    public func forecast() async -> ETAForecast {
        let now = clock.now()
        if let f = etaForecast, now - f.at < 30 {
            if now - f.at >= 1, etaRefresh == nil { etaRefresh = refreshForecast(now: now) }
            return f
        }
        let refresh = etaRefresh ?? refreshForecast(now: now)
        etaRefresh = refresh
        return await refresh.value
    }

    /// What a job listing needs from the engine, in one hop: the price table, and the forecast when asked.
    public func listingContext(forecast wanted: Bool) async -> (pricing: PricingTable, forecast: ETAForecast?) {
        (options.pricing, wanted ? await forecast() : nil)
    }

    /// One job's ETA, exact and now (`GET /v1/jobs/{batch}/{id}` for a job the last forecast did not know yet).
    public func eta(of key: JobKey) -> ETA? { scheduler.eta(of: key, now: clock.now()) }

    private func refreshForecast(now: Timestamp) -> Task<ETAForecast, Never> {
        let copy = scheduler
        return Task {
            let f = await Task.detached(priority: .utility) { copy.forecastAll(now: now) }.value
            self.etaForecast = f
            self.etaRefresh = nil
            return f
        }
    }
}

/// What the engine tells observers (`GET /v1/events`).
public enum EngineEvent: Sendable {
    case jobsChanged([JobKey])
    case batchCompleted(String)
}
