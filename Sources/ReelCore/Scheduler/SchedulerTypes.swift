/// The provider account's limits as the scheduler applies them (`[limits]` and `[retry]` in reel.toml).
///
/// Render slots and creates are limited per pool (per model, as DashScope counts them, reference §1.8); queries per
/// account. `concurrency` and `submitPerSecond` are optional caps across all pools of the account.
public struct SchedulerLimits: Sendable, Equatable {
    /// Pools with their own limits; a model not listed gets `defaultPool`.
    public var pools: [RenderModel: PoolLimits]
    public var defaultPool: PoolLimits
    /// Optional overall cap on render slots across pools (nil: the sum of the pools).
    public var concurrency: Int?
    /// Optional overall cap on creates in any one-second window across pools (nil: only the pools' own).
    public var submitPerSecond: Double?
    /// Status queries, task lists and cancels together, in any one-second window (per account).
    public var queryPerSecond: Double
    /// Failed attempts after which a job fails for good.
    public var maxAttempts: Int
    /// Backoff before retry n is uniform in [0, min(maxDelay, baseDelay · 2^(n-1))] seconds.
    public var baseDelay: Double
    public var maxDelay: Double
    /// When to poll running tasks.
    public var polling: PollPolicy
    /// How long a task that answers UNKNOWN well inside its 24-hour lifetime is queried again (with backoff)
    /// before its job goes in doubt (`[in_doubt] unknown_grace`).
    public var unknownGrace: Double
    /// Inside a tier, deadline and fair share, start the longest predicted render first (per arrival window);
    /// false: by age only (the greedy FIFO order).
    public var tailAwareOrder = true

    public init(pools: [RenderModel: PoolLimits] = [:], defaultPool: PoolLimits = .provider,
                concurrency: Int? = nil, submitPerSecond: Double? = nil, queryPerSecond: Double = 20.0,
                maxAttempts: Int = 5, baseDelay: Double = 15.0, maxDelay: Double = 900.0,
                polling: PollPolicy = PollPolicy(), unknownGrace: Double = 600) {
        self.pools = pools
        self.defaultPool = defaultPool
        self.unknownGrace = unknownGrace
        self.concurrency = concurrency
        self.submitPerSecond = submitPerSecond
        self.queryPerSecond = queryPerSecond
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.polling = polling
    }

    /// The limits of one pool.
    public func pool(_ key: PoolKey) -> PoolLimits { pools[key.model] ?? defaultPool }

    /// Render slots the account may fill at most: the pools' sum, inside the overall cap.
    public var slotLimit: Int {
        let sum = PoolKey.all.reduce(0) { $0 + max(0, pool($1).concurrency) }
        return min(sum, concurrency ?? .max)
    }
}

/// What the scheduler needs to know of a job.
public struct SchedulerJob: Sendable, Equatable {
    public var key: JobKey
    public var priority: Priority
    public var deadline: Timestamp?
    /// Orders jobs of equal standing (older first); a retried job keeps its original time.
    public var enqueuedAt: Timestamp
    public var model: RenderModel
    public var resolution: Resolution
    public var durationSeconds: Int
    /// Failed attempts so far (as recorded in the store); an operator retry passes 0.
    public var attempts: Int
    /// Seconds of reference video the render reads (whole seconds; part of what its run time depends on).
    public var referenceVideoSeconds: Int

    public init(key: JobKey, priority: Priority = .normal, deadline: Timestamp? = nil, enqueuedAt: Timestamp,
                model: RenderModel = .r2v, resolution: Resolution = .p1080, durationSeconds: Int = 5,
                attempts: Int = 0, referenceVideoSeconds: Int = 0) {
        self.key = key
        self.priority = priority
        self.deadline = deadline
        self.enqueuedAt = enqueuedAt
        self.model = model
        self.resolution = resolution
        self.durationSeconds = durationSeconds
        self.attempts = attempts
        self.referenceVideoSeconds = referenceVideoSeconds
    }

    /// The scheduler's view of a job's spec.
    public init(_ spec: JobSpec, enqueuedAt: Timestamp, attempts: Int) {
        self.init(key: spec.key, priority: spec.priority, deadline: spec.deadline, enqueuedAt: enqueuedAt,
                  model: spec.model, resolution: spec.resolution, durationSeconds: spec.durationSeconds,
                  attempts: attempts, referenceVideoSeconds: spec.referenceVideoSeconds)
    }

    var runTimeKey: RunTimeKey {
        RunTimeKey(model: model, resolution: resolution, durationSeconds: durationSeconds,
                   referenceVideoSeconds: referenceVideoSeconds)
    }

    /// The limit pool the job's task counts against.
    public var pool: PoolKey { PoolKey(model: model) }
}

/// What the daemon tells the scheduler.
public enum SchedulerEvent: Sendable, Equatable {
    /// The job became queued: new, released from hold, or retried by the operator.
    case enqueued(SchedulerJob)
    /// At start-up: the job has a remote task; poll it (first poll at once).
    case restoredRemote(SchedulerJob, taskID: String, submittedAt: Timestamp)
    /// At start-up: the job is in doubt; it holds a slot until `.released` or `.submitted` (at most an hour).
    case restoredInDoubt(SchedulerJob)
    /// Reconciliation could not settle the in-doubt job: it waits for an operator (and keeps its slot while the
    /// hour lasts: its task may still be at the provider).
    case inDoubtNeedsOperator(JobKey)
    /// The create request went out at `at` (reported from the create's `beforeSend`): the create window counts
    /// from here.
    case createSent(JobKey, at: Timestamp)
    /// The create call returned a task id.
    case submitted(JobKey, taskID: String)
    /// The create call failed; `.ambiguous` means the daemon marked the job in doubt (it keeps its slot).
    case submitFailed(JobKey, Blame, retryAfter: Double?, message: String)
    /// A query's answer.
    case polled(JobKey, TaskStatus)
    case pollFailed(JobKey, Blame, retryAfter: Double?)
    /// The answer of the outstanding `.pollList`: the status of each covered task the list showed. A covered task
    /// missing from the answer is queried on its own next.
    case listed([JobKey: TaskStatus])
    /// The outstanding `.pollList` failed (the call, or its answer could not be read); its tasks are queried on
    /// their own at once. A refusal of the query itself (`.jobPermanent`, e.g. 404) or repeated failures turn list
    /// polling off for a while (re-probed later; `.setLimits` turns it back on).
    case listFailed(Blame, retryAfter: Double?, message: String)
    /// The task ended FAILED at the provider with a code the daemon classified: `.provider` (InternalError…)
    /// frees the slot and retries with backoff (failed renders are not billed); anything else fails the job.
    case renderFailed(JobKey, Blame, message: String)
    /// The job left its render slot or download (downloaded, failed, cancelled, resolved); the scheduler forgets it.
    case released(JobKey)
    /// The job is no longer schedulable (held, cancelled while queued); the scheduler forgets it.
    case removed(JobKey)
    /// New limits (config reload); also clears an account block.
    case setLimits(SchedulerLimits)
    /// Stop submitting, everywhere (nil) or for one batch.
    case pause(batch: String?)
    /// Undo `pause`; `resume(batch: nil)` also ends a drain and clears an account block.
    case resume(batch: String?)
    /// Submit nothing new; what runs finishes.
    case drain
    /// A create never left, for a local reason (its write-ahead could not be recorded, the request could not be
    /// built): the job is offered again a moment later; no attempt is counted and the breaker is untouched.
    case createNotSent(JobKey, reason: String)
    /// The state store refuses writes (`detail` says how) or, with nil, accepts them again: while it refuses, no
    /// create goes out (its write-ahead could not be recorded); everything already under way goes on.
    case stateStore(refusing: String?)
    case setPriority(JobKey, Priority)
    case cancel(JobKey)
    /// A finished render's run time: seconds from the create's answer to the provider's `end_time`.
    /// `referenceVideoSeconds` nil: not known (a sample restored from the store).
    case observedRunTime(model: RenderModel, resolution: Resolution, durationSeconds: Int,
                         referenceVideoSeconds: Int? = nil, seconds: Double)
    /// Time passed; sent at `nextWakeup`.
    case tick
}

/// What the scheduler asks the daemon to do.
public enum SchedulerAction: Sendable, Equatable {
    /// Write the intent ahead, call create, then send `.submitted` or `.submitFailed`.
    case submit(JobKey)
    /// Query the task, then send `.polled` or `.pollFailed`.
    case poll(JobKey, taskID: String)
    /// One task-list query (`GET /api/v1/tasks`) covering all these running tasks, then send `.listed` (after
    /// recording PENDING → RUNNING) or `.listFailed`. At most one is outstanding; it counts as one query.
    case pollList([ListedTask])
    /// The task SUCCEEDED and its slot is free: download (outside the render slots), then send `.released`.
    case download(JobKey)
    /// Record state `retrying`; the scheduler itself offers the job again at `at` (as `.submit`).
    case retryLater(JobKey, at: Timestamp, reason: String)
    /// Permanent failure; the scheduler has forgotten the job.
    case fail(JobKey, reason: String)
    /// The task is PENDING at the provider: cancel it remotely.
    case cancelRemote(JobKey, taskID: String)
    /// The task is RUNNING and cannot be cancelled: it will finish (and be billed); discard the result.
    case discardWhenDone(JobKey)
    /// The task answered UNKNOWN at the end of its 24-hour lifetime: record `expired`; the scheduler forgot it.
    case expire(JobKey, reason: String)
    /// A young task kept answering UNKNOWN: record the job in doubt with `reason` and reconcile it (the scheduler
    /// holds it in doubt, with its slot).
    case vanished(JobKey, taskID: String, reason: String)
    /// The job's p90 finish is after its deadline (raised once per job).
    case deadlineAtRisk(JobKey, p90: Timestamp, deadline: Timestamp)
}

/// A task covered by a `.pollList`: enough for the daemon to build the list filter and match the answer.
public struct ListedTask: Sendable, Equatable, Hashable {
    public var key: JobKey
    public var taskID: String
    public var model: RenderModel
    /// When the create answered (our clock); the list's time window starts before the oldest of these.
    public var submittedAt: Timestamp
    /// The status the scheduler last saw (the daemon records PENDING → RUNNING when the list shows it).
    public var lastStatus: TaskStatus

    public init(key: JobKey, taskID: String, model: RenderModel, submittedAt: Timestamp, lastStatus: TaskStatus) {
        self.key = key
        self.taskID = taskID
        self.model = model
        self.submittedAt = submittedAt
        self.lastStatus = lastStatus
    }
}

/// A wall-clock finish range.
public struct ETA: Sendable, Equatable {
    public var p50: Timestamp
    public var p90: Timestamp

    public init(p50: Timestamp, p90: Timestamp) {
        self.p50 = p50
        self.p90 = p90
    }
}

/// The provider breaker: open after a provider-blamed failure (no creates), half-open lets one probe through.
public enum BreakerState: Sendable, Equatable {
    case closed
    case open(until: Timestamp)
    case halfOpen
}

/// The scheduler's state for status, metrics and logs.
public struct SchedulerSnapshot: Sendable, Equatable {
    /// Waiting for a slot (due retries included).
    public var queued: Int
    /// Waiting for their retry time.
    public var retrying: Int
    public var submitting: Int
    public var inDoubt: Int
    /// Slot holders whose task the provider last reported PENDING (or not yet polled).
    public var pending: Int
    public var running: Int
    public var downloading: Int
    /// Jobs holding a render slot: submitting + in doubt + pending + running.
    public var slotsHeld: Int
    /// The number of slots the scheduler fills now: the pools' caps, inside the overall cap.
    public var concurrencyCap: Int
    /// Each pool's limits, cap and holders, in `PoolKey.all` order.
    public var pools: [PoolSnapshot]
    public var breaker: BreakerState
    /// Why all submission stopped after an account-blamed answer (InvalidApiKey, Arrearage…), until resume or reload.
    public var accountBlock: String?
    /// Why the state store refuses writes, while it does (no creates meanwhile).
    public var storeTrouble: String?
    /// Throttling answers seen (creates and queries).
    public var throttleCount: Int
    public var pollsIssued: Int
    public var submitsIssued: Int
    public var paused: Bool
    public var pausedBatches: [String]
    public var draining: Bool
    /// Slot holders per batch.
    public var runningByBatch: [String: Int]
    /// Why nothing new is submitted, when something stops it (pause, drain, account, breaker, throttle hold).
    public var submissionBlocked: String?
    /// List polling is off (per-task queries) until then, and why.
    public var listPollingOffUntil: Timestamp?
    public var listPollingOffReason: String?
    /// Failures in a row of each call class (reset by the next success).
    public var listFailuresInRow: Int
    public var queryFailuresInRow: Int
    /// Breaker trips since the last definite create answer.
    public var breakerTrips: Int
    /// In-doubt jobs that reconciliation could not settle: they wait for `reelctl resolve`.
    public var awaitingOperator: Int
    /// Tasks answering UNKNOWN well inside their 24-hour lifetime, being queried again.
    public var unknownTasks: Int
    /// How far run-time predictions were off for the latest observed renders: median and p90 of
    /// |predicted − observed| ÷ observed (nil before the first observation), and how many renders that covers.
    public var runTimeErrorP50: Double?
    public var runTimeErrorP90: Double?
    public var runTimeErrorSamples: Int
}
