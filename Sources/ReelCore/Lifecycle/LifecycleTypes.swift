/// Field changes that go with a move (or a field-only update) of a job's row. nil leaves a field as it is;
/// `.some(nil)` clears it.
public struct JobChanges: Sendable, Equatable {
    public var reason: String??
    public var holdReason: String??
    public var nextAttemptAt: Timestamp??
    public var videoURL: String?
    public var urlExpiresAt: Timestamp?
    public var usage: TaskUsage??
    /// Added to the cost already recorded (an earlier billed attempt stays counted), rounded as money.
    public var addedCostUSD: Double?
    /// Replaces the recorded cost.
    public var costUSD: Double??
    public var outputPath: String?
    public var outputSHA256: String?
    public var resultBytes: Int64?

    public init(reason: String?? = nil, holdReason: String?? = nil, nextAttemptAt: Timestamp?? = nil) {
        self.reason = reason
        self.holdReason = holdReason
        self.nextAttemptAt = nextAttemptAt
    }

    public static let none = JobChanges()
}

/// One compare-and-set move: from any of `from` to `to`, recorded with `cause`.
public struct JobMove: Sendable, Equatable {
    public var from: Set<JobState>
    public var to: JobState
    public var cause: String
    public var changes: JobChanges
    /// When true, the effects after this one are only carried out if the move happened (the job was in `from`).
    public var guarding: Bool

    public init(from: Set<JobState>, to: JobState, cause: String, changes: JobChanges = .none, guarding: Bool = false) {
        self.from = from
        self.to = to
        self.cause = cause
        self.changes = changes
        self.guarding = guarding
    }
}

public enum LifecycleLogLevel: String, Sendable, Equatable {
    case debug, info, notice, warning, error
}

/// What the executor (the daemon's engine) is asked to do for one job.
public enum LifecycleEffect: Sendable, Equatable {
    /// Persist a move (compare-and-set on `from`).
    case move(JobMove)
    /// Persist field changes without a move, if the job is in one of `ifIn`.
    case update(ifIn: Set<JobState>, JobChanges)
    /// Close the in-doubt window: commit the task id the create call returned (`running` when RUNNING, else
    /// `pending`).
    case commitTask(taskID: String, status: TaskStatus)
    /// Take `taskID` as the in-doubt job's task (`how` goes into its history) and poll it from then on.
    case adopt(taskID: String, how: String)
    /// A refused create: `submitting` → `retrying`, giving the attempt number back when it did not count.
    case refuseSubmission(countsAsAttempt: Bool, reason: String)
    /// Tell the scheduler.
    case scheduler(SchedulerEvent)
    /// Read the job again and offer it to the scheduler as queued (`freshAttempts`: an operator retry starts the
    /// attempt count over).
    case enqueue(freshAttempts: Bool)
    /// Reconcile the in-doubt job through the task list, in the background.
    case reconcile
    /// Query these candidate tasks, then decide again (reconciliation).
    case queryCandidates([String])
    /// Look again (reconciliation) at `until`.
    case waitUntil(Timestamp)
    /// Check that `taskID` may be adopted (no other job owns it; the provider knows it), then report back.
    case checkAdoptable(taskID: String)
    /// Keep a finished render's run time for the scheduler's model.
    case recordRunTime(model: RenderModel, resolution: Resolution, durationSeconds: Int, seconds: Double)
    /// Fetch the result (resumable) into the hidden partial file.
    case fetch
    /// Verify the downloaded file and publish it with its sidecar.
    case verify
    /// Query the task for a fresh result URL.
    case queryResult
    /// Wait `seconds` before the next step.
    case pause(seconds: Double)
    /// The output filesystem refused a write: say so (job reason, status, log) and pause `seconds`.
    case waitForStorage(what: String, error: String, seconds: Double)
    /// The output filesystem took a whole download after refusing writes: the storage wait is over.
    case storageRecovered
    /// Remove the hidden partial download.
    case discardPartial
    /// Hold every queued or retrying job of the batch, for `verdict`.
    case holdBatch(verdict: String)
    /// Open the create call's write-ahead (`submitting`): the budget admits it.
    case beginSubmission
    /// Write batch.json, SHA256SUMS, the hook and the webhook if every job of the batch is terminal.
    case checkBatchEnd
    case log(LifecycleLogLevel, String, [String: String])
    /// The operator's answer.
    case answer(OperatorOutcome)
    /// The event does not apply to the job in its state: nothing happens.
    case ignored(String)
}

/// A create call's end, as the engine saw it.
public enum SubmitOutcome: Sendable, Equatable {
    /// The provider returned a task id.
    case created(taskID: String, status: TaskStatus, attempt: Int)
    /// The provider answered with a refusal: no task exists.
    case refused(Blame, retryAfter: Double?, message: String, detail: String)
    /// The outcome is unknown (timeout, 5xx, reset after sending): a task may exist.
    case ambiguous(retryAfter: Double?, message: String, detail: String)
    /// Something other than a classified provider failure went wrong after the request may have left (the task id
    /// could not be committed, say): treated as ambiguous, never resubmitted blindly.
    case unclassified(String)
    /// Nothing was sent: the job is where it was (store unreadable, intent not committed, cancelled while waiting
    /// for a transfer thread).
    case notSent(String)
    /// The job is no longer submittable (it moved meanwhile, or its budget held it).
    case notSubmittable
    /// A local reference could not be uploaded.
    case uploadFailed(Blame, retryAfter: Double?, message: String)
    /// A local reference is unusable for good.
    case uploadBroken(String)
}

/// What a download attempt ended with.
public enum FetchOutcome: Sendable, Equatable {
    /// The batch folder could not be made; `retryable` when the filesystem refused (full, read-only…).
    case folderRefused(retryable: Bool, error: String)
    /// The whole file is on disk.
    case complete
    /// The transfer stopped early; `storageTrouble` when the disk refused the bytes.
    case incomplete(storageTrouble: String?, bytes: Int64, expected: Int64?)
    /// The result URL was refused (HTTP 403/404).
    case urlRefused
    /// Any other failure; `storageTrouble` when the disk refused the bytes.
    case failed(storageTrouble: String?, error: String)
}

/// What verifying and publishing a downloaded file ended with.
public enum VerifyOutcome: Sendable, Equatable {
    /// Published with its sidecar.
    case delivered(path: String, sha256: String, bytes: Int64, costUSD: Double?)
    case qcFailed(String)
    case sizeMismatch(expected: Int64, actual: Int64)
    /// The output filesystem refused the write (nothing visible was left).
    case storageRefused(String)
    /// Anything else.
    case broken(String)
}

/// The answer to a re-query of a task whose result URL was refused.
public enum ResultQuery: Sendable, Equatable {
    case answered(TaskStatus, videoURL: String?)
    case failed(String)
}

/// An operator action on one job, in domain terms.
public enum OperatorAction: Sendable, Equatable {
    case cancel, retry, hold, release
    case resolveAdopt(taskID: String?)
    case resolveResubmit
    case resolveFail
}

/// What the checks of an operator adoption found.
public enum AdoptionCheck: Sendable, Equatable {
    case ownedBy(JobKey)
    case known(TaskStatus)
    case queryFailed(String)
}

/// What an operator action did, or why it did nothing. `DaemonBackend` words it for the control API.
public enum OperatorOutcome: Sendable, Equatable {
    case cancelled
    /// Cancelled; the PENDING task's remote cancel is requested.
    case cancelRequested(taskID: String?)
    /// Cancelled while RUNNING: the render finishes, is billed, and its result is discarded.
    case cancelledResultDiscarded
    case queuedAgain
    case held
    case released
    case adopted(taskID: String, status: TaskStatus)
    case resubmitted
    case failed
    case batchPaused(String), batchResumed(String)
    case batchCancelled(String, cancelled: Int, refused: [String])
    case paused, resumed, draining
    case refused(OperatorRefusal)

    public var ok: Bool {
        switch self {
        case .refused: false
        case .batchCancelled(_, _, let refused): refused.isEmpty
        default: true
        }
    }
}

public enum OperatorRefusal: Sendable, Equatable {
    case noSuchJob
    case createInFlight
    case beingDelivered
    case alreadyEnded(JobState)
    case notRetryable(JobState)
    case notHoldable(JobState)
    case notHeld(JobState)
    case notInDoubt(JobState)
    case adoptNeedsTaskID
    case taskOwnedBy(taskID: String, owner: JobKey)
    case taskUnknown(String)
    case cannotQuery(taskID: String, error: String)
    case changedMeanwhile
    case storeRefused(String)
    case reloadIsTheDaemons
}
