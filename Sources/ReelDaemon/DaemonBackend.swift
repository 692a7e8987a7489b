import Foundation
import ReelControl
import ReelCore
import ReelOutput
import ReelProtocol
import ReelStore
import Synchronization

/// The control API's view of the daemon: reads from the store, decisions through the engine.
struct DaemonBackend: ControlBackend {
    let store: any JobStore
    let engine: Engine
    let clock: any WallClock
    let startedAt: Timestamp
    let reload: @Sendable () async -> ActionResult
    let listings = ListingCache()

    func status() async throws -> StatusResponse {
        let counts = try await store.counts()
        let (snapshot, limits, deadlineWarnings) = await engine.statusFacts()
        let now = clock.now()
        var warnings: [String] = []
        let byState = counts.byState
        let health = SchedulerHealth(snapshot, limits: limits, now: now)
        warnings += health.warnings
        if let n = byState[.inDoubt], n > snapshot.awaitingOperator {
            warnings.append("\(n - snapshot.awaitingOperator) job(s) in doubt: their create call's outcome is unknown; "
                            + "Reel is reconciling them with the provider (`reelctl jobs --state in_doubt` shows what it saw)")
        }
        if let n = byState[.expired], n > 0 {
            warnings.append("\(n) job(s) expired: rendered and billed, but the result's 24-hour window passed before download")
        }
        warnings += deadlineWarnings
        let storage = await storageStatus()
        warnings += storage.warnings
        return StatusResponse(
            version: ReelVersion.current, pid: getpid(), started_at: Wire.time(startedAt), uptime_s: now - startedAt,
            mode: snapshot.draining ? "draining" : (snapshot.paused ? "paused" : "running"),
            jobs: Dictionary(uniqueKeysWithValues: byState.map { ($0.key.rawValue, $0.value) }),
            total_jobs: counts.total, batches: Set(counts.groups.map(\.batch)).count,
            provider: .init(health: health.health, detail: snapshot.submissionBlocked,
                            concurrency_limit: limits.slotLimit, concurrency_cap: snapshot.concurrencyCap,
                            slots_in_use: snapshot.slotsHeld, throttles: snapshot.throttleCount,
                            creates: snapshot.submitsIssued, polls: snapshot.pollsIssued,
                            query_per_second: limits.queryPerSecond,
                            pools: snapshot.pools.map { pool in
                                .init(model: pool.key.model.rawValue, concurrency_limit: pool.limits.concurrency,
                                      concurrency_cap: pool.concurrencyCap, slots_in_use: pool.slotsHeld,
                                      queued: pool.queued, submit_per_second: pool.limits.submitPerSecond,
                                      throttles: pool.throttles,
                                      throttled_until: pool.throttleHoldUntil > now ? Wire.time(pool.throttleHoldUntil) : nil)
                            }),
            spend_usd: Cost.rounded(counts.costUSD),
            billed_not_delivered_usd: Cost.rounded(counts.billedNotDelivered.usd),
            billed_not_delivered_jobs: counts.billedNotDelivered.jobs, storage: storage.view, warnings: warnings)
    }

    /// The output filesystem as deliveries see it, and the warning while any waits for it.
    private func storageStatus() async -> (view: StatusResponse.Storage, warnings: [String]) {
        let waiting = await engine.storageWaiting()
        guard waiting.jobs > 0 else { return (StatusResponse.Storage(), []) }
        let view = StatusResponse.Storage(health: "waiting", waiting_jobs: waiting.jobs, detail: waiting.detail)
        let warning = "\(waiting.jobs) delivery(s) waiting for the output filesystem: \(waiting.detail ?? "writes refused"); "
            + "free space, make it writable or raise the file-descriptor limit; delivery resumes by itself"
        return (view, [warning])
    }

    func jobs(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws -> ReelProtocol.JobPage {
        try await listing(state: state, batch: batch, limit: limit, cursor: cursor).page
    }

    /// `GET /v1/jobs` as bytes. A page asked for again while nothing was written to the store and the engine's
    /// forecast and prices are the ones it was built with is the same page, so it is served from `listings`
    /// (watchers and dashboards poll the same first page over and over).
    func jobsJSON(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws -> [UInt8] {
        let key = ListingCache.Key(state: state, batch: batch, limit: limit, cursor: cursor)
        let generation = store.writeGeneration   // before the read: a write during it makes the entry stale
        if let hit = listings[key], hit.generation == generation {
            let (pricing, forecast) = await engine.listingContext(forecast: hit.forecastAt != nil)
            if pricing == hit.pricing, forecast?.at == hit.forecastAt { return hit.bytes }
        }
        let built = try await listing(state: state, batch: batch, limit: limit, cursor: cursor)
        let bytes = built.page.wireJSON()
        if bytes.count <= ListingCache.largestPage {
            listings[key] = ListingCache.Entry(generation: generation, pricing: built.pricing,
                                               forecastAt: built.forecastAt, bytes: bytes)
        }
        return bytes
    }

    private func listing(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws
        -> (page: ReelProtocol.JobPage, pricing: PricingTable, forecastAt: Timestamp?) {
        let page: JobSummaryPage
        do {
            page = try await store.listJobSummaries(state: state, batch: batch, limit: limit, after: cursor)
        } catch StoreError.invalidCursor(let c) {
            throw ControlError(.badRequest, code: "bad_cursor", message: "\(c) is not a cursor from this API",
                               hint: "pass next_cursor from the previous page unchanged, or omit cursor to start over")
        }
        let (pricing, forecast) = await engine.listingContext(forecast: page.rows.contains { !$0.state.isTerminal })
        let views = page.rows.map { view($0, pricing: pricing, forecast: forecast) }
        return (ReelProtocol.JobPage(jobs: views, next_cursor: page.nextCursor), pricing, forecast?.at)
    }

    func job(_ key: JobKey) async throws -> JobDetail? {
        guard let row = try await store.job(key) else { return nil }
        let transitions = try await store.transitions(of: key).map {
            JobDetail.Transition(from: $0.from?.rawValue, to: $0.to.rawValue, cause: $0.cause, at: Wire.time($0.at))
        }
        let attempts = try await store.attempts(of: key).map {
            JobDetail.Attempt(kind: $0.exchange.kind.rawValue, http_status: $0.exchange.httpStatus,
                              code: $0.exchange.providerCode, request_id: $0.exchange.requestID,
                              duration_ms: $0.exchange.durationMilliseconds, error: $0.exchange.transportError,
                              at: Wire.time($0.at))
        }
        let references = row.spec.references.map { ref -> String in
            switch ref.source {
            case .url(let u): Redact.url(u)
            case .path(let p): p
            }
        }
        return JobDetail(job: await view(row), prompt: row.spec.prompt, references: references, task_ids: row.taskIDs,
                         transitions: transitions, attempts: attempts)
    }

    /// A job as the API shows it, with its ETA from the engine's forecast (see `Engine.forecast()`).
    func view(_ row: JobRow) async -> JobView {
        var v = view(row.summary, pricing: await engine.options.pricing,
                     forecast: row.state.isTerminal ? nil : await engine.forecast())
        if v.eta == nil, !row.state.isTerminal, let eta = await engine.eta(of: row.key) {
            v.eta = ETAView(p50: Wire.time(eta.p50), p90: Wire.time(eta.p90))   // newer than the forecast
        }
        return v
    }

    func view(_ row: JobSummary, pricing: PricingTable, forecast: ETAForecast?) -> JobView {
        let eta = row.state.isTerminal ? nil : forecast?.jobs[row.key]
        return JobView(job: row.key.description, batch: row.key.batch, id: row.key.id, state: row.state.rawValue,
                       priority: row.priority.rawValue, model: row.model.rawValue,
                       resolution: row.resolution.rawValue, aspect_ratio: row.aspectRatio.rawValue,
                       duration_s: row.durationSeconds, attempt: row.attempt, task_id: row.taskID,
                       reason: row.reason ?? row.holdReason, created_at: Wire.time(row.createdAt),
                       updated_at: Wire.time(row.updatedAt), output: row.outputPath, sha256: row.outputSHA256,
                       cost_usd: row.costUSD,
                       estimated_cost_usd: Cost.estimate(model: row.model, resolution: row.resolution,
                                                         billedSeconds: row.estimatedBilledSeconds, pricing: pricing),
                       deadline: row.deadline.map(Wire.time),
                       eta: eta.map { ETAView(p50: Wire.time($0.p50), p90: Wire.time($0.p90)) })
    }

    func perform(_ action: JobAction, on key: JobKey) async throws -> ActionResult {
        guard try await store.job(key) != nil else {
            throw ControlError(.notFound, code: "no_such_job", message: "no job \(key)",
                               hint: "list jobs with `reelctl jobs --batch \(key.batch)`")
        }
        let outcome = await engine.operate(Self.domainAction(action), on: key)
        var answer = ActionResult(outcome, job: key)
        if let row = try await store.job(key) { answer.job = await view(row) }
        return answer
    }

    func batches() async throws -> BatchList {
        var views: [BatchView] = []
        for summary in try await store.batches() { views.append(await view(summary)) }
        return BatchList(batches: views)
    }

    func batch(_ name: String) async throws -> BatchView? {
        guard let summary = try await store.batch(name) else { return nil }
        return await view(summary)
    }

    func view(_ b: ReelStore.BatchSummary) async -> BatchView {
        let pricing = await engine.options.pricing
        let byState = b.counts.byState
        let counts = Dictionary(uniqueKeysWithValues: byState.map { ($0.key.rawValue, $0.value) })
        let done = byState.filter { $0.key.isTerminal }.reduce(0) { $0 + $1.value }
        let total = b.counts.total
        let eta = done == total ? nil : await engine.forecast().batches[b.name]
        let atRisk = eta.flatMap { e in b.settings.deadline.map { e.p90 > $0 } } ?? false
        return BatchView(batch: b.name, priority: b.settings.priority.rawValue, paused: b.settings.paused, jobs: counts,
                         total: total, done: done, cost_usd: Cost.rounded(b.counts.costUSD),
                         billed_not_delivered_usd: Cost.rounded(b.counts.billedNotDelivered.usd),
                         billed_not_delivered_jobs: b.counts.billedNotDelivered.jobs,
                         estimated_cost_usd: b.estimatedRemainingUSD(pricing).map(Cost.rounded),
                         budget_usd: b.settings.budgetUSD,
                         deadline: b.settings.deadline.map(Wire.time), deadline_at_risk: atRisk,
                         eta: eta.map { ETAView(p50: Wire.time($0.p50), p90: Wire.time($0.p90)) },
                         created_at: Wire.time(b.createdAt), completed_at: b.completedAt.map(Wire.time))
    }

    func perform(_ action: BatchAction, onBatch name: String) async throws -> ActionResult {
        guard try await store.batch(name) != nil else {
            throw ControlError(.notFound, code: "no_such_batch", message: "no batch named \(name)",
                               hint: "list batches with `reelctl batches`")
        }
        return ActionResult(await engine.operate(action, onBatch: name), job: nil)
    }

    func perform(_ action: GlobalAction) async throws -> ActionResult {
        if action == .reload { return await reload() }
        return ActionResult(await engine.operate(action), job: nil)
    }

    /// The control API's job action as the lifecycle knows it.
    static func domainAction(_ action: JobAction) -> OperatorAction {
        switch action {
        case .cancel: .cancel
        case .retry: .retry
        case .hold: .hold
        case .release: .release
        case .resolve(let request):
            switch request.action {
            case "adopt": .resolveAdopt(taskID: request.task_id)
            case "resubmit": .resolveResubmit
            default: .resolveFail
            }
        }
    }

    func metrics() async throws -> String {
        try await Metrics.render(store: store, engine: engine, now: clock.now(), startedAt: startedAt)
    }

    func events(batch: String?) async -> any AsyncSequence<[ControlEvent], Never> & Sendable {
        let backend = self
        // Read by the connection's own task: the engine's stream ends for it when that task goes away.
        return await engine.events().map { event in await backend.controlEvents(event, batch: batch) }
    }

    /// What one engine event shows a watcher of `batch` (nil: every batch). A job or batch that cannot be read now
    /// is skipped: its next change is sent.
    private func controlEvents(_ event: EngineEvent, batch: String?) async -> [ControlEvent] {
        let encoder = Wire.encoder()
        var out: [ControlEvent] = []
        switch event {
        case .jobsChanged(let keys):
            for key in keys where batch == nil || key.batch == batch {
                do {
                    guard let row = try await store.job(key) else { continue }
                    out.append(ControlEvent(kind: "job", json: Array(try encoder.encode(await view(row)))))
                } catch {
                    // Skipped: the job's next change is sent.
                    continue
                }
            }
        case .batchCompleted(let name) where batch == nil || name == batch:
            do {
                if let summary = try await store.batch(name) {
                    out.append(ControlEvent(kind: "batch", json: Array(try encoder.encode(await view(summary)))))
                }
            } catch {
                // Skipped: `reelctl batch` still shows it.
            }
        default:
            break
        }
        return out
    }
}

/// The last few `GET /v1/jobs` pages as sent, with what they were built from (see `DaemonBackend.jobsJSON`).
final class ListingCache: Sendable {
    struct Key: Hashable, Sendable {
        var state: JobState?
        var batch: String?
        var limit: Int
        var cursor: String?
    }

    struct Entry: Sendable {
        /// `JobStore.writeGeneration` before the page was read.
        var generation: Int
        var pricing: PricingTable
        /// The forecast's time, nil when the page had no job to forecast.
        var forecastAt: Timestamp?
        var bytes: [UInt8]
    }

    /// Pages kept; a page of 100 jobs is ~60 KB.
    static let capacity = 32
    /// Larger pages (`limit` up to 1,000) are not kept, so the cache stays under ~8 MB.
    static let largestPage = 256 * 1024
    private let entries = Mutex<[Key: Entry]>([:])

    subscript(key: Key) -> Entry? {
        get { entries.withLock { $0[key] } }
        set {
            entries.withLock { entries in
                if entries[key] == nil, entries.count >= Self.capacity, let victim = entries.keys.first {
                    entries[victim] = nil
                }
                entries[key] = newValue
            }
        }
    }
}

extension ActionResult {
    /// The wire answer to an operator action.
    init(_ outcome: OperatorOutcome, job key: JobKey?) {
        self.init(ok: outcome.ok, message: outcome.text(job: key))
    }
}

extension OperatorOutcome {
    /// What an operator reads about the outcome (`key`: the job acted on, if any).
    func text(job key: JobKey?) -> String {
        let job = key.map(\.description) ?? "the job"
        switch self {
        case .cancelled: return "cancelled"
        case .cancelRequested(let taskID): return "cancelled; remote cancel of task \(taskID ?? "?") requested"
        case .cancelledResultDiscarded: return JobLifecycle.runningCancelReason
        case .queuedAgain: return "queued again"
        case .held: return "held until `reelctl release \(job)`"
        case .released: return "released"
        case .adopted(let taskID, let status): return "adopted task \(taskID) (\(status.rawValue))"
        case .resubmitted: return "queued for a new create call (if the first one arrived, both are billed)"
        case .failed: return "failed"
        case .batchPaused(let name): return "batch \(name) paused: nothing new is submitted; running renders finish"
        case .batchResumed(let name): return "batch \(name) resumed"
        case .batchCancelled(let name, let cancelled, let refused):
            let extra = refused.isEmpty ? "" : "; not cancelled: " + refused.prefix(5).joined(separator: "; ")
            return "cancelled \(cancelled) job(s) of \(name)\(extra)"
        case .paused: return "paused: nothing new is submitted; running renders finish and are delivered"
        case .resumed: return "resumed"
        case .draining:
            return "draining: running renders finish and are delivered; nothing new is submitted until `reelctl resume`"
        case .refused(let why):
            switch why {
            case .noSuchJob: return "no job \(job)"
            case .createInFlight: return "a create call for \(job) is in flight; cancel again in a moment"
            case .beingDelivered: return "\(job) is already rendered and paid for; it is being delivered"
            case .alreadyEnded(let state): return "\(job) is already \(state.rawValue)"
            case .notRetryable(let state):
                return "only failed, cancelled or expired jobs can be retried; \(job) is \(state.rawValue)"
            case .notHoldable(let state):
                return "only queued or retrying jobs can be held; \(job) is \(state.rawValue)"
            case .notHeld(let state): return "\(job) is not held (it is \(state.rawValue))"
            case .notInDoubt(let state): return "\(job) is not in doubt (it is \(state.rawValue)); nothing to resolve"
            case .adoptNeedsTaskID: return "adopt needs a task id"
            case .taskOwnedBy(let taskID, let owner): return "task \(taskID) already belongs to \(owner)"
            case .taskUnknown(let taskID): return "the provider does not know task \(taskID) (UNKNOWN)"
            case .cannotQuery(let taskID, let error): return "cannot query task \(taskID): \(error)"
            case .changedMeanwhile: return "\(job) changed state meanwhile; look again with `reelctl show \(job)`"
            case .storeRefused(let error): return "the state store could not record this, nothing changed: \(error)"
            case .reloadIsTheDaemons: return "reload is handled by the daemon"
            }
        }
    }
}
