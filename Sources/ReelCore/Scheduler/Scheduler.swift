/// Constants of the scheduler's feedback loops (documented in docs/scheduler.md).
enum SchedulerTuning {
    /// After a `Throttling` answer no create of that pool goes out for 1 s, doubling per throttling episode in a row
    /// up to 60 s (or `Retry-After`, if longer).
    static let throttleHoldBase = 1.0
    static let throttleHoldMax = 60.0
    /// The create window is the provider's (1 s for 5 creates) plus this margin, counted from each request's send:
    /// requests reach the provider with varying delays, and a window that ends exactly at the provider's edge lets
    /// the next burst arrive a few milliseconds early.
    static let createMargin = 0.2
    /// After a pool's cap shrank, it stays down this long (throttling "usually clears within about a minute")…
    static let adaptiveCoolDown = 60.0
    /// …then grows by one per window without a throttling answer.
    static let adaptiveWindow = 30.0
    /// A provider-blamed create failure opens the breaker for 5 s, doubling per failed probe up to 5 min (and never
    /// longer than `[retry] max_delay`).
    static let breakerBase = 5.0
    static let breakerMax = 300.0
    /// A failed query is retried after 2 s, doubling up to 60 s (or `Retry-After`, if longer).
    static let pollRetryBase = 2.0
    static let pollRetryMax = 60.0
    /// After this many task-list failures in a row (or one refusal of the query itself) list polling is off and
    /// every task is queried on its own; a list is tried again after 5 min, doubling per failed re-probe up to 1 h.
    static let listFailuresBeforeOff = 3
    static let listOffBase = 300.0
    static let listOffMax = 3600.0
    /// An in-doubt create holds a render slot of its model: its task may be at the provider, counted against the
    /// account. After an hour any such task has long ended (renders take minutes), so the slot is let go even while
    /// the job still waits for an operator.
    static let inDoubtSlotHold = 3600.0
    /// A task that answers UNKNOWN this long before its 24-hour lifetime ends is not expired: the provider lost it
    /// for now (a restart). It is queried again with backoff for `SchedulerLimits.unknownGrace`, then it goes in
    /// doubt (never silently resubmitted).
    static let expiryMargin = 600.0
    /// Deadlines are checked against the forecast at most this often…
    static let deadlineCheckInterval = 60.0
    /// …and at least this often.
    static let deadlineCheckMaxInterval = 3600.0
    /// p90 = p50 + z·σ for a normal approximation.
    static let z90 = 1.2816
    /// Jobs that arrived within the same window of this many seconds are ordered longest predicted run time first
    /// (a manifest is ingested in seconds); an older window always goes first.
    static let arrivalWindow = 600.0
}

/// The render scheduler: a value type driven by one actor in the daemon, `handle(event, now) -> [action]`, no I/O.
///
/// Rules (docs/scheduler.md): fill at most min(concurrency, adaptive cap) render slots; creates and queries each
/// stay inside a sliding one-second window; tiers rush > normal > bulk, then earliest deadline, then fair share
/// between batches, then age; due retries alternate with fresh work; backoff with full jitter; a breaker for
/// provider-blamed failures; polls placed by the learned run-time distribution.
public struct Scheduler: Sendable {
    enum Phase: Equatable, Sendable {
        case queued(retry: Bool)
        /// Waiting for `at`; `fresh` re-enters the fresh lane (throttled or blocked, not a failed attempt).
        case waiting(at: Timestamp, fresh: Bool)
        case submitting
        case inDoubt
        /// In doubt past `inDoubtSlotHold`: still waiting to be settled, no longer holding a slot.
        case inDoubtIdle
        case remote(taskID: String, status: TaskStatus)
        /// A task list showed the task ended: the provider freed its slot; its own query brings the result.
        case ended(taskID: String)
        case downloading

        var holdsSlot: Bool {
            switch self {
            case .submitting, .inDoubt, .remote: true
            default: false
            }
        }

        /// The provider task to query, for `remote` and `ended`.
        var taskID: String? {
            switch self {
            case .remote(let id, _), .ended(let id): id
            default: nil
            }
        }
    }

    struct Record: Sendable {
        var job: SchedulerJob
        var phase: Phase
        var generation: UInt64 = 0
        var submittedAt: Timestamp = 0
        var pollOutstanding = false
        var pollFailures = 0
        var refusedPolls = 0
        var cancelRequested = false
        /// The next poll must query the task itself (missing from a list answer, ended, or the list failed).
        var direct = false
        /// Reconciliation could not settle the in-doubt job by itself: it waits for an operator.
        var needsOperator = false
        /// When the task first answered UNKNOWN while young (nil: it has not).
        var unknownSince: Timestamp?
        /// When the scheduler chose its latest create.
        var chosenAt: Timestamp = -Double.infinity
    }

    struct Timer: Comparable, Sendable {
        var at: Timestamp
        var key: JobKey
        var generation: UInt64

        static func < (a: Timer, b: Timer) -> Bool { a.at != b.at ? a.at < b.at : a.key < b.key }
    }

    /// A due poll; the most likely finished goes first when the query budget is short.
    struct DuePoll: Comparable, Sendable {
        var likelihood: Double
        var key: JobKey
        var generation: UInt64

        static func < (a: DuePoll, b: DuePoll) -> Bool {
            a.likelihood != b.likelihood ? a.likelihood > b.likelihood : a.key < b.key
        }
    }

    public private(set) var limits: SchedulerLimits
    var records: [JobKey: Record] = [:]
    var queue = ReadyQueue()
    var retryTimers = Heap<Timer>()
    var pollTimers = Heap<Timer>()
    var duePolls = Heap<DuePoll>()
    /// Per pool: slots, create window, throttling feedback.
    var pools: [PoolKey: PoolState] = [:]
    /// The optional overall create cap across pools (`SchedulerLimits.submitPerSecond`).
    var overallCreates: CreateWindow?
    var queries: RateWindow
    var rng: SplitMix64
    var runTimes = RunTimeModel()
    var generationCounter: UInt64 = 0

    var holderKeys: Set<JobKey> = []
    var runningByBatch: [String: Int] = [:]
    var queuedCount = 0
    var waitingCount = 0
    var downloadingCount = 0

    var paused = false
    var pausedBatches: Set<String> = []
    var draining = false
    var storeTrouble: String?
    /// Jobs waiting for an operator or whose task answers UNKNOWN (`needsOperator`, `unknownSince`): a handful.
    var flagged: Set<JobKey> = []
    var accountBlock: String?
    var throttleCount = 0
    var breaker = BreakerState.closed
    var breakerTrips = 0
    var probe: JobKey?
    var pollsIssued = 0
    var submitsIssued = 0
    var unwarnedDeadlines: Set<JobKey> = []
    var nextDeadlineCheck = -Double.infinity
    var lastDeadlineCheck = -Double.infinity
    var pollBlockedByRate = false
    /// The tasks the outstanding `.pollList` covers (nil: none outstanding).
    var listCovering: Set<JobKey>?
    /// Task-list failures in a row.
    var listFailures = 0
    /// List polling is off until then (per-task queries meanwhile); nil: on.
    var listOffUntil: Timestamp?
    var listOffReason: String?
    /// Times list polling went off since it last worked (the re-probe delay doubles).
    var listOffCount = 0
    /// Failed single-task queries in a row, account-wide.
    var queryFailuresInRow = 0

    /// `seed` drives the full-jitter backoff, so a test replays the same delays.
    public init(limits: SchedulerLimits, seed: UInt64) {
        self.limits = limits
        for key in PoolKey.all { pools[key] = PoolState(limits: limits.pool(key)) }
        overallCreates = limits.submitPerSecond.map { CreateWindow(perSecond: $0, margin: SchedulerTuning.createMargin) }
        queries = RateWindow(perSecond: limits.queryPerSecond)
        rng = SplitMix64(seed: seed)
    }

    /// The slots the scheduler fills now: each pool's cap, inside the overall cap.
    var concurrencyCap: Int {
        max(0, min(limits.concurrency ?? .max, pools.values.reduce(0) { $0 + $1.cap }))
    }

    /// The pool of a job the scheduler holds.
    func poolKey(_ key: JobKey) -> PoolKey? { records[key]?.job.pool }

    /// Applies one event at `now` and returns what the daemon must do, in order.
    public mutating func handle(_ event: SchedulerEvent, now: Timestamp) -> [SchedulerAction] {
        var out: [SchedulerAction] = []
        apply(event, now: now, &out)
        process(now: now, &out)
        return out
    }

    /// When the daemon must send `.tick` (nil: only events can make progress).
    /// What a failed status query (one task's or the task list's) means for the account: a throttle spends the
    /// query budget, an account error stops submission. Returns true when the provider refused this query itself
    /// (`jobPermanent`), which the caller counts against the task or the list.
    private mutating func queryFailed(_ blame: Blame, now: Timestamp) -> Bool {
        switch blame {
        case .throttled:
            throttleCount += 1
            queries.exhaust(now)
        case .account:
            accountBlock = accountBlock ?? "status queries refused by the account (InvalidApiKey or Arrearage)"
        case .jobPermanent:
            return true
        case .provider, .ambiguous:
            break
        }
        return false
    }

    /// Whether the scheduler holds `key` (queued, waiting, holding a slot or downloading). A job in doubt that
    /// waits for an operator has been let go (`.released`).
    public func holds(_ key: JobKey) -> Bool { records[key] != nil }

    public func nextWakeup(after now: Timestamp) -> Timestamp? {
        var t = Double.infinity
        if let r = retryTimers.top { t = min(t, r.at) }
        if let p = pollTimers.top { t = min(t, p.at) }
        if pollBlockedByRate { t = min(t, queries.nextAllowed(now)) }
        if queuedCount > 0 {
            if case .open(let until) = breaker { t = min(t, until) }
            var anyRoom = false
            for pool in pools.values where pool.queued > 0 {
                if let g = pool.growAt { t = min(t, g) }
                guard pool.holders < pool.cap else { continue }
                anyRoom = true
                if pool.throttleHoldUntil > now { t = min(t, pool.throttleHoldUntil) }
                if let next = pool.creates.nextAllowed(now), next > now { t = min(t, next) }
            }
            if anyRoom, let next = overallCreates?.nextAllowed(now), next > now { t = min(t, next) }
        }
        if !unwarnedDeadlines.isEmpty { t = min(t, nextDeadlineCheck) }
        return t.isFinite ? max(t, now) : nil
    }

    // MARK: - Events

    private mutating func apply(_ event: SchedulerEvent, now: Timestamp, _ out: inout [SchedulerAction]) {
        switch event {
        case .enqueued(let job):
            admit(job, now: now)
            enqueue(job.key, retry: false)
            deadlinesMayHaveMoved(now: now)

        case .restoredRemote(let job, let taskID, let submittedAt):
            admit(job, now: now)
            records[job.key]!.submittedAt = submittedAt
            setPhase(job.key, .remote(taskID: taskID, status: .pending))
            schedulePoll(job.key, at: now)

        case .restoredInDoubt(let job):
            admit(job, now: now)
            goInDoubt(job.key, now: now)

        case .inDoubtNeedsOperator(let key):
            guard records[key]?.phase == .inDoubt || records[key]?.phase == .inDoubtIdle else { return }
            records[key]!.needsOperator = true
            noteFlags(key)

        case .submitted(let key, let taskID):
            guard let rec = records[key], rec.phase == .submitting || rec.phase == .inDoubt || rec.phase == .inDoubtIdle
            else { return }
            createAnswered(key)
            createEnded(key, now: now)
            pools[rec.job.pool]!.consecutiveThrottles = 0
            records[key]!.needsOperator = false
            noteFlags(key)
            setPhase(key, .remote(taskID: taskID, status: .pending))
            records[key]!.submittedAt = now
            if rec.cancelRequested {
                queries.record(now)
                out.append(.cancelRemote(key, taskID: taskID))
            }
            schedulePoll(key, at: now + limits.polling.nextPoll(elapsed: 0, distribution(key), queued: queuedCount > 0))

        case .createSent(let key, let at):
            guard let pool = poolKey(key) else { return }
            pools[pool]!.creates.sent(key, at: at, now: now)
            overallCreates?.sent(key, at: at, now: now)

        case .submitFailed(let key, let blame, let retryAfter, let message):
            guard let rec = records[key], rec.phase == .submitting || rec.phase == .inDoubt else { return }
            createEnded(key, now: now)
            if blame == .ambiguous {
                if probe == key { probe = nil }
                tripBreaker(now: now)
                goInDoubt(key, now: now)
                return
            }
            if blame == .provider { tripBreaker(now: now) } else { createAnswered(key) }
            if rec.cancelRequested {
                forget(key)
                return
            }
            switch blame {
            case .jobPermanent:
                forget(key)
                out.append(.fail(key, reason: message))
            case .throttled:
                let pool = rec.job.pool
                throttled(pool, chosenAt: rec.chosenAt, now: now, retryAfter: retryAfter)
                wait(key, until: pools[pool]!.throttleHoldUntil, fresh: true, reason: "throttled: \(message)", &out)
            case .account:
                accountBlock = message
                wait(key, until: now, fresh: true, reason: "account refused: \(message)", &out)
            case .provider, .ambiguous:
                retry(key, now: now, retryAfter: retryAfter, message: message, &out)
            }

        case .createNotSent(let key, let reason):
            guard let rec = records[key], rec.phase == .submitting else { return }
            if probe == key { probe = nil }
            if rec.cancelRequested {
                forget(key)
                return
            }
            wait(key, until: now + min(limits.baseDelay, 5), fresh: true, reason: reason, &out)

        case .polled(let key, let status):
            guard let rec = records[key], let taskID = rec.phase.taskID else { return }
            let last: TaskStatus = if case .remote(_, let s) = rec.phase { s } else { .running }
            records[key]!.pollOutstanding = false
            records[key]!.refusedPolls = 0
            records[key]!.direct = false
            queryFailuresInRow = 0
            if status != .unknown {
                records[key]!.pollFailures = 0
                records[key]!.unknownSince = nil
                noteFlags(key)
            }
            switch status {
            case .pending, .running:
                if status == .running, last != .running, rec.cancelRequested {
                    out.append(.discardWhenDone(key))
                }
                setPhase(key, .remote(taskID: taskID, status: status))
                let elapsed = now - rec.submittedAt
                schedulePoll(key, at: rec.submittedAt + limits.polling.nextPoll(elapsed: elapsed, distribution(key),
                                                                                  queued: queuedCount > 0))
            case .succeeded:
                if rec.cancelRequested {
                    forget(key)
                } else {
                    setPhase(key, .downloading)
                    out.append(.download(key))
                }
            case .failed:
                forget(key)
                out.append(.fail(key, reason: "the provider reported the task FAILED"))
            case .canceled:
                forget(key)
                if !rec.cancelRequested { out.append(.fail(key, reason: "the task was cancelled at the provider")) }
            case .unknown:
                let age = now - rec.submittedAt
                if age >= ProviderLimits.resultLifetimeSeconds - SchedulerTuning.expiryMargin {
                    forget(key)
                    out.append(.expire(key, reason: "the provider no longer knows task \(taskID) (UNKNOWN) and its "
                                       + "24-hour window has passed: billed but lost if it rendered"))
                    return
                }
                let since = rec.unknownSince ?? now
                records[key]!.unknownSince = since
                noteFlags(key)
                if now - since >= limits.unknownGrace {
                    goInDoubt(key, now: now)
                    out.append(.vanished(key, taskID: taskID, reason: "the provider answered UNKNOWN for task \(taskID), "
                                         + "created \(Int(age)) s ago, for \(Int(now - since)) s: it lost the task "
                                         + "(a restart?) well inside its 24-hour window"))
                    return
                }
                records[key]!.pollFailures += 1
                let backoff = min(SchedulerTuning.pollRetryMax,
                                  SchedulerTuning.pollRetryBase * pow2(records[key]!.pollFailures - 1))
                schedulePoll(key, at: now + min(backoff, max(1, limits.unknownGrace - (now - since))))
            }

        case .renderFailed(let key, let blame, let message):
            guard let rec = records[key], rec.phase.taskID != nil else { return }
            records[key]!.pollOutstanding = false
            if rec.cancelRequested || (blame != .provider && blame != .throttled) {
                forget(key)
                if !rec.cancelRequested { out.append(.fail(key, reason: message)) }
            } else {
                retry(key, now: now, retryAfter: nil, message: message, &out)
            }

        case .pollFailed(let key, let blame, let retryAfter):
            guard var rec = records[key], rec.phase.taskID != nil else { return }
            rec.pollOutstanding = false
            rec.pollFailures += 1
            queryFailuresInRow += 1
            if queryFailed(blame, now: now) { rec.refusedPolls += 1 }
            records[key] = rec
            if rec.refusedPolls >= max(1, limits.maxAttempts) {
                forget(key)
                out.append(.fail(key, reason: "gave up after \(rec.refusedPolls) refused status queries"))
                return
            }
            let backoff = min(SchedulerTuning.pollRetryMax,
                              SchedulerTuning.pollRetryBase * pow2(rec.pollFailures - 1))
            schedulePoll(key, at: now + max(backoff, retryAfter ?? 0))

        case .listed(let statuses):
            guard let covered = listCovering else { return }
            listCovering = nil
            listFailures = 0
            listOffCount = 0
            listOffReason = nil
            var running: [JobKey] = []
            for key in covered.sorted() {
                guard let rec = records[key], rec.pollOutstanding, case .remote(let taskID, let last) = rec.phase else {
                    continue
                }
                records[key]!.pollOutstanding = false
                records[key]!.pollFailures = 0
                switch statuses[key] {
                case .pending?, .running?:
                    let status = statuses[key]!
                    if status == .running, last != .running, rec.cancelRequested { out.append(.discardWhenDone(key)) }
                    setPhase(key, .remote(taskID: taskID, status: status))
                    running.append(key)
                case nil:
                    records[key]!.direct = true
                    schedulePoll(key, at: now)
                case .some:
                    // Ended: the provider no longer counts it, so its slot is free now; its query brings the result.
                    setPhase(key, .ended(taskID: taskID))
                    records[key]!.direct = true
                    schedulePoll(key, at: now)
                }
            }
            let tasks = running.map { (elapsed: now - records[$0]!.submittedAt, distribution: distribution($0)) }
            let delay = limits.polling.nextList(tasks, queued: queuedCount > 0)
            for key in running { schedulePoll(key, at: now + delay) }

        case .listFailed(let blame, let retryAfter, let message):
            guard let covered = listCovering else { return }
            listCovering = nil
            listFailures += 1
            let refused = queryFailed(blame, now: now)
            if refused || listFailures >= SchedulerTuning.listFailuresBeforeOff {
                listOffCount += 1
                let off = min(SchedulerTuning.listOffMax, SchedulerTuning.listOffBase * pow2(listOffCount - 1))
                listOffUntil = now + off
                listOffReason = "\(listFailures) task-list failure(s) in a row, last: \(message)"
                listFailures = 0
            }
            // The covered tasks are queried on their own next, so a list that keeps failing never leaves a task
            // unobserved: the single-task query is the guaranteed path.
            let delay = blame == .throttled ? max(SchedulerTuning.pollRetryBase, retryAfter ?? 0) : (retryAfter ?? 0)
            for key in covered.sorted() {
                guard let rec = records[key], rec.pollOutstanding, case .remote = rec.phase else { continue }
                records[key]!.pollOutstanding = false
                records[key]!.direct = true
                schedulePoll(key, at: now + delay)
            }

        case .released(let key), .removed(let key):
            forget(key)

        case .setLimits(let l):
            limits = l
            for key in PoolKey.all { pools[key]!.setLimits(l.pool(key)) }
            if let rate = l.submitPerSecond {
                if overallCreates == nil { overallCreates = CreateWindow(perSecond: rate, margin: SchedulerTuning.createMargin) }
                overallCreates!.resize(perSecond: rate, margin: SchedulerTuning.createMargin)
            } else {
                overallCreates = nil
            }
            queries.resize(perSecond: l.queryPerSecond)
            accountBlock = nil
            listOffUntil = nil
            listOffReason = nil
            listOffCount = 0
            deadlinesMayHaveMoved(now: now)

        case .pause(let batch):
            if let batch { pausedBatches.insert(batch) } else { paused = true }

        case .resume(let batch):
            deadlinesMayHaveMoved(now: now)
            if let batch {
                pausedBatches.remove(batch)
            } else {
                paused = false
                draining = false
                accountBlock = nil
            }

        case .drain:
            draining = true

        case .stateStore(let refusing):
            storeTrouble = refusing

        case .setPriority(let key, let priority):
            guard let rec = records[key] else { return }
            records[key]!.job.priority = priority
            if case .queued(let retry) = rec.phase { enqueue(key, retry: retry) }
            deadlinesMayHaveMoved(now: now)

        case .cancel(let key):
            guard let rec = records[key] else { return }
            switch rec.phase {
            case .queued, .waiting, .downloading:
                forget(key)
            case .submitting, .inDoubt, .inDoubtIdle:
                records[key]!.cancelRequested = true
            case .remote(let taskID, let status):
                guard !rec.cancelRequested else { return }
                records[key]!.cancelRequested = true
                if status == .running {
                    out.append(.discardWhenDone(key))
                } else {
                    queries.record(now)   // a cancel spends the account's query budget like a status query
                    out.append(.cancelRemote(key, taskID: taskID))
                }
            case .ended:
                guard !rec.cancelRequested else { return }
                records[key]!.cancelRequested = true
                out.append(.discardWhenDone(key))
            }

        case .observedRunTime(let model, let resolution, let duration, let references, let seconds):
            runTimes.observe(RunTimeKey(model: model, resolution: resolution, durationSeconds: duration,
                                        referenceVideoSeconds: references),
                             seconds: seconds, prior: limits.polling.priorRunTime)

        case .tick:
            break
        }
    }

    // MARK: - Time-driven work

    private mutating func process(now: Timestamp, _ out: inout [SchedulerAction]) {
        for key in PoolKey.all {
            guard var pool = pools[key], let g = pool.growAt, now >= g else { continue }
            var next = g
            while now >= next && pool.adaptiveCap < pool.limits.concurrency {
                pool.adaptiveCap += 1
                next += SchedulerTuning.adaptiveWindow
            }
            pool.growAt = pool.adaptiveCap < pool.limits.concurrency ? next : nil
            pools[key] = pool
        }
        if case .open(let until) = breaker, now >= until { breaker = .halfOpen }

        while let t = retryTimers.top, t.at <= now {
            retryTimers.pop()
            guard let rec = records[t.key], rec.generation == t.generation else { continue }
            if rec.phase == .inDoubt {
                setPhase(t.key, .inDoubtIdle)
                continue
            }
            guard case .waiting(_, let fresh) = rec.phase else { continue }
            enqueue(t.key, retry: !fresh)
        }
        while let t = pollTimers.top, t.at <= now {
            pollTimers.pop()
            guard let rec = records[t.key], rec.generation == t.generation, !rec.pollOutstanding else { continue }
            // An ended task's slot is already free, but its result waits for this query: it goes first.
            let likelihood = rec.phase.taskID != nil && rec.direct ? 2 : distribution(t.key).cdf(now - rec.submittedAt)
            duePolls.push(DuePoll(likelihood: likelihood, key: t.key, generation: t.generation))
        }

        pollBlockedByRate = false
        while let p = duePolls.top {
            guard let rec = records[p.key], rec.generation == p.generation, !rec.pollOutstanding,
                  let taskID = rec.phase.taskID else {
                duePolls.pop()
                continue
            }
            guard queries.allows(now) else {
                pollBlockedByRate = true
                break
            }
            duePolls.pop()
            queries.record(now)
            pollsIssued += 1
            // One list query answers for every running task: worth it as soon as it covers two.
            if listPollingOn(now: now), listCovering == nil, !rec.direct, case .remote = rec.phase {
                let covered = listableTasks()
                if covered.count >= 2 {
                    listCovering = Set(covered.map(\.key))
                    for t in covered { records[t.key]!.pollOutstanding = true }
                    out.append(.pollList(covered))
                    continue
                }
            }
            records[p.key]!.pollOutstanding = true
            out.append(.poll(p.key, taskID: taskID))
        }

        if submissionBlocked(now: now) == nil, queuedCount > 0 {
            while holderKeys.count < limits.concurrency ?? .max, breaker != .halfOpen || probe == nil,
                  overallCreates?.allows(now) ?? true {
                let picked: (key: JobKey, retry: Bool)?
                do {   // the copies must be gone before `records` is mutated again, or it is copied whole
                    let (records, pools) = (self.records, self.pools)
                    picked = queue.pick(running: runningByBatch, paused: pausedBatches, isValid: { e in
                        guard let r = records[e.key], r.generation == e.generation, case .queued = r.phase else {
                            return false
                        }
                        return true
                    }, modelHasRoom: { m in
                        guard let p = pools[PoolKey(model: m)] else { return false }
                        return p.holders < p.cap && now >= p.throttleHoldUntil && p.creates.allows(now)
                    })
                }
                guard let (key, _) = picked else { break }
                setPhase(key, .submitting)
                records[key]!.chosenAt = now
                pools[records[key]!.job.pool]!.creates.chose(key, now: now)
                overallCreates?.chose(key, now: now)
                submitsIssued += 1
                if breaker == .halfOpen { probe = key }
                out.append(.submit(key))
            }
        }

        if !unwarnedDeadlines.isEmpty && now >= nextDeadlineCheck { checkDeadlines(now: now, &out) }

        let records = self.records
        retryTimers.dropStale { t in records[t.key].map { $0.generation != t.generation } ?? true }
        pollTimers.dropStale { t in records[t.key].map { $0.generation != t.generation || $0.pollOutstanding } ?? true }
    }

    /// Remote tasks a list query can cover now (no poll outstanding, not due for their own query), in key order.
    func listableTasks() -> [ListedTask] {
        var tasks: [ListedTask] = []
        for key in holderKeys {
            guard let rec = records[key], !rec.pollOutstanding, !rec.direct,
                  case .remote(let taskID, let status) = rec.phase else { continue }
            tasks.append(ListedTask(key: key, taskID: taskID, model: rec.job.model, submittedAt: rec.submittedAt,
                                    lastStatus: status))
        }
        return tasks.sorted { $0.key < $1.key }
    }

    /// Whether a poll may be a task-list query now (configured on, and not switched off by failures).
    func listPollingOn(now: Timestamp) -> Bool {
        guard limits.polling.useTaskList else { return false }
        if let until = listOffUntil, now < until { return false }
        return true
    }

    /// Why no create may go out (at `now`, when given), or nil.
    func submissionBlocked(now: Timestamp?) -> String? {
        if let storeTrouble { return "the state store refuses writes (\(storeTrouble)); creates resume once it accepts them" }
        if let accountBlock { return "account refused: \(accountBlock); fix the key or billing, then resume or reload" }
        if paused { return "paused by the operator" }
        if draining { return "draining: running jobs finish, nothing new starts" }
        if case .open(let until) = breaker { return "provider breaker open until \(until)" }
        return nil
    }

    // MARK: - Bookkeeping

    func distribution(_ key: JobKey) -> RunTimeDistribution {
        var d = records[key].map { runTimes.distribution($0.job.runTimeKey) } ?? .prior
        d.priorRange = limits.polling.priorRunTime
        return d
    }

    private mutating func bumpGeneration(_ key: JobKey) -> UInt64 {
        generationCounter += 1
        records[key]!.generation = generationCounter
        return generationCounter
    }

    /// Moves a job to `phase`, keeping every counter in step.
    mutating func setPhase(_ key: JobKey, _ phase: Phase) {
        generationCounter += 1
        guard let (old, model) = records[key].map({ ($0.phase, $0.job.model) }) else { return }
        records[key]!.phase = phase
        records[key]!.generation = generationCounter
        count(old, key, model, -1)
        count(phase, key, model, +1)
    }

    private mutating func count(_ rec: Record, _ d: Int) { count(rec.phase, rec.job.key, rec.job.model, d) }

    private mutating func count(_ phase: Phase, _ key: JobKey, _ model: RenderModel, _ d: Int) {
        switch phase {
        case .queued:
            queuedCount += d
            pools[PoolKey(model: model)]!.queued += d
        case .waiting: waitingCount += d
        case .inDoubtIdle: break
        case .downloading, .ended: downloadingCount += d
        case .submitting, .inDoubt, .remote:
            if d > 0 { holderKeys.insert(key) } else { holderKeys.remove(key) }
            pools[PoolKey(model: model)]!.holders += d
            runningByBatch[key.batch, default: 0] += d
            if runningByBatch[key.batch] == 0 { runningByBatch[key.batch] = nil }
        }
    }

    /// Starts tracking `job`, replacing whatever the scheduler knew of it (the daemon is the source of truth).
    /// It starts as `waiting`; the caller moves it to its real phase.
    private mutating func admit(_ job: SchedulerJob, now: Timestamp) {
        forget(job.key)
        records[job.key] = Record(job: job, phase: .waiting(at: now, fresh: true))
        waitingCount += 1
        if job.deadline != nil { unwarnedDeadlines.insert(job.key) }
    }

    /// The create's outcome is unknown: the job holds a slot of its model for `inDoubtSlotHold`, then lets it go.
    private mutating func goInDoubt(_ key: JobKey, now: Timestamp) {
        setPhase(key, .inDoubt)
        retryTimers.push(Timer(at: now + SchedulerTuning.inDoubtSlotHold, key: key, generation: records[key]!.generation))
    }

    private mutating func enqueue(_ key: JobKey, retry: Bool) {
        setPhase(key, .queued(retry: retry))
        let rec = records[key]!
        queue.insert(rec.job, generation: rec.generation, retry: retry, predicted: orderKey(rec.job))
    }

    /// The run time a queued job is ordered by: its prediction with tail-aware order, else 0 (age order).
    func orderKey(_ job: SchedulerJob) -> Double {
        limits.tailAwareOrder ? runTimes.predict(job.runTimeKey, prior: limits.polling.priorRunTime) : 0
    }

    /// The predicted run time of a job of this shape, in seconds.
    public func predictedRunTime(_ job: SchedulerJob) -> Double {
        runTimes.predict(job.runTimeKey, prior: limits.polling.priorRunTime)
    }

    /// Drops everything the scheduler knows of `key` (its heap entries go stale).
    mutating func forget(_ key: JobKey) {
        guard let rec = records[key] else { return }
        if rec.phase == .submitting { createEnded(key, now: rec.chosenAt) }
        records[key] = nil
        flagged.remove(key)
        count(rec, -1)
        unwarnedDeadlines.remove(key)
        if probe == key { probe = nil }
    }

    private mutating func schedulePoll(_ key: JobKey, at: Timestamp) {
        let gen = bumpGeneration(key)
        pollTimers.push(Timer(at: at, key: key, generation: gen))
    }

    private mutating func wait(_ key: JobKey, until at: Timestamp, fresh: Bool, reason: String,
                               _ out: inout [SchedulerAction]) {
        setPhase(key, .waiting(at: at, fresh: fresh))
        retryTimers.push(Timer(at: at, key: key, generation: records[key]!.generation))
        out.append(.retryLater(key, at: at, reason: reason))
    }

    /// A failed attempt: backoff with full jitter (floored by `Retry-After`), or give up at the attempt cap.
    private mutating func retry(_ key: JobKey, now: Timestamp, retryAfter: Double?, message: String,
                                _ out: inout [SchedulerAction]) {
        records[key]!.job.attempts += 1
        let attempts = records[key]!.job.attempts
        if attempts >= limits.maxAttempts {
            forget(key)
            out.append(.fail(key, reason: "gave up after \(attempts) attempts: \(message)"))
            return
        }
        let cap = min(limits.maxDelay, limits.baseDelay * pow2(attempts - 1))
        let delay = max(rng.unit() * cap, retryAfter ?? 0)
        wait(key, until: now + delay, fresh: false, reason: message, &out)
    }

    /// A create got a definite answer from the provider: a half-open breaker closes.
    private mutating func createAnswered(_ key: JobKey) {
        if probe == key || breaker == .halfOpen {
            probe = nil
            breaker = .closed
            breakerTrips = 0
        }
    }

    private mutating func tripBreaker(now: Timestamp) {
        if case .open = breaker { return }   // failures of creates sent before it opened
        breakerTrips += 1
        // Inside the configured backoff bounds too: `[retry] max_delay` caps every wait Reel imposes on itself.
        let cap = min(SchedulerTuning.breakerMax, limits.maxDelay)
        breaker = .open(until: now + min(cap, SchedulerTuning.breakerBase * pow2(breakerTrips - 1)))
        probe = nil
    }

    /// A create of `key` left the scheduler's hands (answered, refused or forgotten): a send it never reported
    /// counts from `now`.
    private mutating func createEnded(_ key: JobKey, now: Timestamp) {
        guard let pool = poolKey(key) else { return }
        pools[pool]!.creates.ended(key, now: now)
        overallCreates?.ended(key, now: now)
    }

    /// A create of `pool` was throttled. Creates chosen before the previous throttling answer belong to its episode.
    /// The first episode in a row costs a short hold only (a burst that met the provider's window edge); a throttle
    /// again after that hold, while the pool is below its own cap, means the account is busy elsewhere: the pool
    /// shrinks to what it holds and cools down. Other pools are not touched.
    private mutating func throttled(_ key: PoolKey, chosenAt: Timestamp, now: Timestamp, retryAfter: Double?) {
        throttleCount += 1
        var pool = pools[key]!
        pool.throttles += 1
        if chosenAt >= pool.lastThrottleAt { pool.consecutiveThrottles += 1 }
        pool.lastThrottleAt = now
        let others = pool.holders - 1
        if pool.consecutiveThrottles >= 2, others < pool.cap {
            pool.adaptiveCap = max(1, others)
            pool.growAt = now + SchedulerTuning.adaptiveCoolDown
            deadlinesMayHaveMoved(now: now)
        }
        let cap = max(SchedulerTuning.throttleHoldBase, min(SchedulerTuning.throttleHoldMax, limits.maxDelay))
        let hold = min(cap, SchedulerTuning.throttleHoldBase * pow2(pool.consecutiveThrottles - 1))
        pool.throttleHoldUntil = max(pool.throttleHoldUntil, now + max(hold, retryAfter ?? 0))
        pools[key] = pool
    }

    // MARK: - Snapshot

    /// Counts, caps and gates for status and metrics.
    /// Keeps `flagged` in step with the job's `needsOperator` and `unknownSince`.
    private mutating func noteFlags(_ key: JobKey) {
        if let r = records[key], r.needsOperator || r.unknownSince != nil { flagged.insert(key) } else { flagged.remove(key) }
    }

    public var snapshot: SchedulerSnapshot {
        var submitting = 0, inDoubt = 0, pending = 0, running = 0, awaitingOperator = 0, unknown = 0
        // The few flagged jobs, not every record: a snapshot is taken for every status request.
        for rec in flagged.compactMap({ records[$0] }) where rec.needsOperator || rec.unknownSince != nil {
            if rec.needsOperator { awaitingOperator += 1 }
            if rec.unknownSince != nil, case .remote = rec.phase { unknown += 1 }
        }
        for key in holderKeys {
            switch records[key]?.phase {
            case .submitting: submitting += 1
            case .inDoubt: inDoubt += 1
            case .remote(_, let s): if s == .running { running += 1 } else { pending += 1 }
            default: break
            }
        }
        let blocked = submissionBlocked(now: nil)
        return SchedulerSnapshot(
            queued: queuedCount, retrying: waitingCount, submitting: submitting, inDoubt: inDoubt, pending: pending,
            running: running, downloading: downloadingCount, slotsHeld: holderKeys.count,
            concurrencyCap: concurrencyCap, pools: poolSnapshots, breaker: breaker, accountBlock: accountBlock,
            storeTrouble: storeTrouble, throttleCount: throttleCount, pollsIssued: pollsIssued,
            submitsIssued: submitsIssued, paused: paused,
            pausedBatches: pausedBatches.sorted(), draining: draining, runningByBatch: runningByBatch,
            submissionBlocked: blocked, listPollingOffUntil: listOffUntil, listPollingOffReason: listOffReason,
            listFailuresInRow: listFailures, queryFailuresInRow: queryFailuresInRow, breakerTrips: breakerTrips,
            awaitingOperator: awaitingOperator, unknownTasks: unknown,
            runTimeErrorP50: runTimes.predictionError?.p50, runTimeErrorP90: runTimes.predictionError?.p90,
            runTimeErrorSamples: runTimes.predictionError?.samples ?? 0)
    }

    /// Each pool's limits, cap and holders, in `PoolKey.all` order.
    public var poolSnapshots: [PoolSnapshot] {
        PoolKey.all.compactMap { key in
            pools[key].map {
                PoolSnapshot(key: key, limits: $0.limits, concurrencyCap: $0.cap, adaptiveCap: $0.adaptiveCap,
                             slotsHeld: $0.holders, queued: $0.queued, throttles: $0.throttles,
                             throttleHoldUntil: $0.throttleHoldUntil)
            }
        }
    }
}

/// 2^n for small n ≥ 0, as a Double (no Foundation in the core).
func pow2(_ n: Int) -> Double {
    var r = 1.0
    for _ in 0..<max(0, min(n, 60)) { r *= 2 }
    return r
}
