import Foundation
import Logging
import ReelCore
import ReelOutput
import ReelStore
import Synchronization

/// Drives the core `Scheduler` with real I/O: the one actor that owns scheduling decisions.
///
/// Every provider exchange runs in a child task of `run()` and comes back as a `SchedulerEvent`; the actor applies
/// the event to the store (compare-and-set) and the scheduler, then performs the actions the scheduler returns.
/// Time-based work (retries due, polls due, rate buckets refilling) is driven by a tick loop that sleeps until
/// `scheduler.nextWakeup` and not at all while nothing is scheduled.
///
/// Work is owned by `run()`'s task groups: `essential` work (creates, polls, deliveries, the writes that follow
/// them) is finished at shutdown so no create is left in doubt needlessly; `background` work (reconciliation, the
/// tick, forecasts) is cancelled at shutdown.
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

    /// A piece of work run as a child task of `run()`.
    typealias Errand = @Sendable (Engine) async -> Void

    let store: any JobStore
    let api: any RenderAPI
    let tree: OutputTree
    let clock: any WallClock
    let logger: Logger
    private(set) var options: Options
    private var scheduler: Scheduler
    /// When the tick loop means to wake next; nil while nothing is scheduled.
    private var tickAt: Timestamp?
    private let alarm = WakeSignal()
    private let essential = AsyncStream<Errand>.makeStream()
    private let background = AsyncStream<Errand>.makeStream()
    /// Essential errands handed to `run()` and not finished yet.
    private var essentialUnderWay = 0
    /// Set by `stop()` (any thread): no new creates or polls from then on.
    private let stopRequested = Atomic<Bool>(false)
    private var lastTick: Timestamp = 0
    private let listeners = Listeners()
    /// Batches already finished and announced (batch.json written); reset when a batch gains jobs.
    var completedBatches: Set<String> = []
    var deadlineRisks: [JobKey: String] = [:]
    /// The control API's ETAs (see `forecast()`).
    private var etaForecast: ETAForecast?
    /// Counts the scheduler's state changes (every event handled), and the count the last forecast was made at: a
    /// forecast is not made again while nothing changed.
    private var schedulerChanges = 0
    private var forecastBasis = -1
    private var forecastRunning = false
    private var forecastWaiters: [CheckedContinuation<ETAForecast, Never>] = []
    /// Uploads of local references under way, by model and content hash, with the jobs waiting for each.
    var uploadsInFlight: [String: [CheckedContinuation<Result<String, any Error>, Never>]] = [:]
    /// Deliveries waiting for the output filesystem (full, read-only, failing, out of descriptors), with the
    /// latest refusal; kept by `deliver` (EngineDelivery.swift), read through `storageWaiting()`.
    var storageWaits: [JobKey: String] = [:]
    /// The state store refused a write and it has not succeeded since: the engine is degraded (see `durably`).
    private(set) var storeTrouble: StoreTrouble?
    /// Budget checks waiting for their batch's turn (a batch is present while a check of it runs).
    var budgetTurns: [String: [CheckedContinuation<Void, Never>]] = [:]
    let batchEnd: BatchEndHandler

    public init(store: any JobStore, api: any RenderAPI, tree: OutputTree, clock: any WallClock, options: Options,
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
        // The queue may hold 100,000 jobs: it is read a page at a time, so only one page of full rows is in memory
        // beside what the scheduler keeps.
        for state in [JobState.queued, .retrying] {
            var cursor: String?
            repeat {
                let page = try await store.listJobs(state: state, limit: 1000, after: cursor)
                for row in page.rows { actions += scheduler.handle(.enqueued(schedulerJob(row)), now: now) }
                cursor = page.nextCursor
            } while cursor != nil
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
            spawnEssential { await $0.deliver(row.key) }
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

    /// Runs the engine's work until `stop()` (graceful shutdown): from then on no new create or poll starts,
    /// background work (reconciliation, the tick) is cancelled, and the essential work under way — create calls,
    /// deliveries, the store writes that follow them — is finished, so no create is left in doubt needlessly.
    /// Remote renders keep running. Cancelling the calling task cancels everything at once instead.
    public func run() async {
        let essential = self.essential.stream
        await withDiscardingTaskGroup { group in
            group.addTask { await self.runBackground() }
            for await errand in essential {
                essentialUnderWay += 1
                group.addTask {
                    await errand(self)
                    await self.essentialFinished()
                }
            }
        }
    }

    /// Background errands and the tick loop, all cancelled when the background stream ends at `stop()`.
    private nonisolated func runBackground() async {
        let background = self.background.stream
        await withDiscardingTaskGroup { group in
            group.addTask { await self.tickLoop() }
            for await errand in background {
                group.addTask { await errand(self) }
            }
            group.cancelAll()
        }
    }

    /// Begins a graceful stop; callable from any thread (a shutdown handler). `run()` returns once the essential
    /// work under way has finished.
    public nonisolated func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        background.continuation.finish()
        // Counted like any errand, so the essential stream ends when it and everything before it are done.
        spawnEssential { _ in }
    }

    var isStopping: Bool { stopRequested.load(ordering: .sequentiallyConsistent) }

    private func essentialFinished() {
        essentialUnderWay -= 1
        if essentialUnderWay == 0, isStopping { essential.continuation.finish() }
    }

    /// The last time the scheduler loop completed a tick.
    public var heartbeat: Timestamp { lastTick }

    /// True while the scheduler loop keeps up: no tick that fell due more than `maxLag` seconds ago is still
    /// waiting to run. An idle engine (nothing scheduled) is live; answering at all proves the actor is not wedged.
    /// The systemd watchdog pings only while this holds.
    public func loopIsLive(maxLag: Double) -> Bool {
        guard let due = tickAt else { return true }
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
        schedulerChanges &+= 1
        for action in actions {
            switch action {
            case .submit(let key):
                if isStopping { continue }
                spawnEssential { await $0.submit(key) }
            case .poll(let key, let taskID):
                if isStopping { continue }
                spawnEssential { await $0.poll(key, taskID: taskID) }
            case .pollList(let tasks):
                if isStopping { continue }
                spawnEssential { await $0.pollList(tasks) }
            case .download(let key):
                spawnEssential { await $0.deliver(key) }
            case .retryLater(let key, let at, let reason):
                spawnEssential { await $0.markRetrying(key, at: at, reason: reason) }
            case .fail(let key, let reason):
                spawnEssential { await $0.tellLifecycle(key, .attemptsExhausted(reason)) }
            case .cancelRemote(let key, let taskID):
                spawnEssential { await $0.cancelRemote(key, taskID: taskID) }
            case .discardWhenDone(let key):
                logger.notice("job is rendering and cannot be cancelled remotely; its result will be discarded",
                              metadata: ["job_id": "\(key)"])
            case .expire(let key, let reason):
                spawnEssential { await $0.tellLifecycle(key, .resultWindowPassed(reason)) }
            case .vanished(let key, let taskID, let reason):
                spawnEssential { await $0.taskVanished(key, taskID: taskID, reason: reason) }
            case .deadlineAtRisk(let key, let p90, let deadline):
                deadlineRisks[key] = "\(key): p90 finish \(RFC3339.format(p90)) is after its deadline \(RFC3339.format(deadline))"
                logger.warning("deadline at risk: p90 finish is after the deadline",
                               metadata: ["job_id": "\(key)", "p90": "\(p90)", "deadline": "\(deadline)"])
            }
        }
        scheduleTick()
    }

    /// Hands essential work to `run()`: it runs even after `stop()` while other essential work is still under way
    /// (a create's answer leads to its store writes), and is dropped once everything has finished.
    nonisolated func spawnEssential(_ body: @escaping Errand) {
        essential.continuation.yield(body)
    }

    /// Hands cancellable work to `run()`: cancelled at `stop()`, dropped after it.
    nonisolated func spawnBackground(_ body: @escaping Errand) {
        background.continuation.yield(body)
    }

    /// Reconciles an in-doubt job in the background until it is settled (cancelled at shutdown).
    func spawnReconcile(_ key: JobKey) {
        spawnBackground { await $0.reconcile(key) }
    }

    /// Recomputes when the tick loop should wake; rings it when that is earlier than it planned.
    private func scheduleTick() {
        let now = clock.now()
        guard let next = scheduler.nextWakeup(after: now) else {
            lastTick = now
            return
        }
        if let at = tickAt, at <= next { return }
        tickAt = next
        alarm.ring()
    }

    /// Sleeps until the scheduler's next wake-up (not at all while nothing is scheduled, until something is), then
    /// ticks; a `scheduleTick` with an earlier time rings it awake to plan again.
    private func tickLoop() async {
        while !Task.isCancelled {
            let now = clock.now()
            let next = scheduler.nextWakeup(after: now)
            tickAt = next
            if next == nil { lastTick = now }
            await alarm.wait(seconds: next.map { max(0, $0 - now) })
            if Task.isCancelled { return }
            await TestHooks.holdTickIfAsked()
            if let due = tickAt, clock.now() >= due { tick() }
        }
    }

    private func tick() {
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

    /// Runs a durable write until it succeeds. A write the store refuses (disk full, read-only, I/O error, busy
    /// timeout) is not dropped: the engine turns degraded — no new creates, `degraded: state store …` in status,
    /// metrics and the STATUS line — and tries the write again with backoff (0.5 s doubling to 30 s); the first
    /// write that succeeds ends the degraded state. The job whose write waits goes no further meanwhile; the rest of
    /// the engine keeps what it knows in memory and goes on. nil only when the engine stops meanwhile: the database
    /// then holds the state from before the write, which the next start recovers from as from a crash (a create
    /// whose task id was not recorded is reconciled, never sent again blindly).
    func durably<T: Sendable>(_ what: String, job key: JobKey?, _ body: () async throws -> T) async -> T? {
        var failures = 0
        while true {
            do {
                let value = try await body()
                storeWrite(what, failed: nil)
                return value
            } catch {
                failures += 1
                storeWrite(what, failed: error, job: key)
                guard !isStopping else { return nil }
                let pause = min(30, 0.5 * pow(2, Double(min(failures - 1, 6))))
                if !(await sleepUnlessStopping(seconds: pause)) { return nil }
            }
        }
    }

    /// Notes the outcome of a durable write (the engine's own, or intake's): a refusal starts or continues the
    /// degraded state, a success ends it.
    func storeWrite(_ what: String, failed error: (any Error)?, job key: JobKey? = nil) {
        guard let error else {
            guard let trouble = storeTrouble else { return }
            storeTrouble = nil
            logger.notice("the state store accepts writes again; leaving the degraded state",
                          metadata: ["refused_for_s": "\(Int(clock.now() - trouble.since))",
                                     "refusals": "\(trouble.refusals)"])
            perform(scheduler.handle(.stateStore(refusing: nil), now: clock.now()))
            return
        }
        let detail = StoreTrouble.summary(error)
        logger.error("the state store refused a write; degraded until it accepts writes again",
                     metadata: ["what": "\(what)", "job_id": "\(key.map(\.description) ?? "-")", "error": "\(error)"])
        if var trouble = storeTrouble {
            trouble.refusals += 1
            trouble.detail = detail
            storeTrouble = trouble
        } else {
            storeTrouble = StoreTrouble(since: clock.now(), detail: detail, refusals: 1)
        }
        if scheduler.snapshot.storeTrouble != detail {
            perform(scheduler.handle(.stateStore(refusing: detail), now: clock.now()))
        }
    }

    /// Sleeps `seconds` in short slices; false as soon as the engine stops or the task is cancelled.
    private func sleepUnlessStopping(seconds: Double) async -> Bool {
        var left = seconds
        while left > 0 {
            if isStopping || Task.isCancelled { return false }
            let slice = min(left, 0.25)
            try? await Task.sleep(for: .seconds(slice))
            left -= slice
        }
        return !isStopping && !Task.isCancelled
    }

    /// Moves a job in the store by compare-and-set (durably: a refused write waits, see `durably`) and tells
    /// observers; false when it was not where `from` says, or when the engine stopped before the write succeeded.
    @discardableResult
    func record(_ key: JobKey, to state: JobState, from: Set<JobState>, cause: String,
                update: @escaping @Sendable (inout JobRow) -> Void = { _ in }) async -> Bool {
        let moved = await durably("move to \(state.rawValue)", job: key) {
            try await store.transition(key, from: from, to: state, cause: cause, now: clock.now(), update: update)
        }
        guard moved == true else { return false }
        logger.debug("job \(state.rawValue)", metadata: ["job_id": "\(key)", "cause": "\(cause)"])
        publish(.jobsChanged([key]))
        return true
    }

    /// Records that the scheduler will offer the job again at `at` (backoff, throttling), as its lifecycle says.
    func markRetrying(_ key: JobKey, at: Timestamp, reason: String) async {
        await tellLifecycle(key, .retryScheduled(at: at, reason: reason))
    }

    /// Feeds one event to the job's lifecycle, built from its stored row, and carries out what it says.
    func tellLifecycle(_ key: JobKey, _ event: LifecycleEvent) async {
        guard let row = await readStore("job \(key)", { try await store.job(key) }) else { return }
        var life = lifecycle(row)
        await execute(life.handle(event, now: clock.now()), for: key)
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
        listeners.add()
    }

    func publish(_ event: EngineEvent) {
        listeners.yield(event)
    }

    public var schedulerSnapshot: SchedulerSnapshot { scheduler.snapshot }

    /// Deadline warnings raised by the scheduler, for `reelctl status` (the newest 20).
    private var deadlineWarnings: [String] { Array(deadlineRisks.values.sorted().suffix(20)) }

    /// What `GET /v1/status` needs from the engine, in one hop onto the actor.
    public func statusFacts() -> (snapshot: SchedulerSnapshot, limits: SchedulerLimits, deadlineWarnings: [String]) {
        (scheduler.snapshot, options.limits, deadlineWarnings)
    }

    /// ETAs of every job and batch, at most a second old, for the control API. The replay costs time in the
    /// queue's length (tens of milliseconds at 100,000 queued jobs), so it runs on a copy of the scheduler as
    /// background work, at most once at a time: a forecast younger than 30 s is answered at once (and refreshed
    /// when older than 1 s if the scheduler changed since it was made); none, or an older one, is awaited.
    public func forecast() async -> ETAForecast {
        let now = clock.now()
        if let f = etaForecast, now - f.at < 30 {
            if now - f.at >= 1, forecastBasis != schedulerChanges { refreshForecast(now: now) }
            return f
        }
        guard refreshForecast(now: now) else {
            // Shutting down: no background work runs any more.
            return scheduler.forecastAll(now: now)
        }
        return await withCheckedContinuation { forecastWaiters.append($0) }
    }

    /// What a job listing needs from the engine, in one hop: the price table, and the forecast when asked.
    public func listingContext(forecast wanted: Bool) async -> (pricing: PricingTable, forecast: ETAForecast?) {
        (options.pricing, wanted ? await forecast() : nil)
    }

    /// One job's ETA, exact and now (`GET /v1/jobs/{batch}/{id}` for a job the last forecast did not know yet).
    public func eta(of key: JobKey) -> ETA? { scheduler.eta(of: key, now: clock.now()) }

    /// Starts a forecast unless one is running; false when background work no longer runs (shutdown).
    @discardableResult
    private func refreshForecast(now: Timestamp) -> Bool {
        if forecastRunning { return true }
        let copy = scheduler
        let basis = schedulerChanges
        let result = background.continuation.yield { engine in
            await engine.forecastDone(copy.forecastAll(now: now), basis: basis)
        }
        if case .terminated = result { return false }
        forecastRunning = true
        return true
    }

    private func forecastDone(_ f: ETAForecast, basis: Int) {
        etaForecast = f
        forecastBasis = basis
        forecastRunning = false
        let waiters = forecastWaiters
        forecastWaiters.removeAll()
        for w in waiters { w.resume(returning: f) }
    }
}

/// The observers of an engine (`GET /v1/events`), each an event stream that leaves the set when its reader stops.
final class Listeners: Sendable {
    private let streams = Mutex<[UUID: AsyncStream<EngineEvent>.Continuation]>([:])

    func add() -> AsyncStream<EngineEvent> {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        streams.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.streams.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    func yield(_ event: EngineEvent) {
        for c in streams.withLock({ Array($0.values) }) { c.yield(event) }
    }
}

/// The state store's refusal of writes, while it lasts.
struct StoreTrouble: Sendable {
    var since: Timestamp
    /// The latest refusal, short (the first line of the error, at most 160 characters).
    var detail: String
    var refusals: Int

    static func summary(_ error: any Error) -> String {
        let text = "\(error)".split(separator: "\n", maxSplits: 1).first.map(String.init) ?? "\(error)"
        return text.count > 160 ? String(text.prefix(157)) + "…" : text
    }
}

/// What the engine tells observers (`GET /v1/events`).
public enum EngineEvent: Sendable {
    case jobsChanged([JobKey])
    case batchCompleted(String)
}
