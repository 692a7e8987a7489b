import Foundation
import ReelCore

/// One job as stored: its spec, where it stands, and everything learned while rendering it.
///
/// The fields an `update` closure may change are `var`; the state, the attempt counter, the task-id history and the
/// bookkeeping times are set by the store itself (through `transition`, `beginSubmission`, `commitTaskID`).
public struct JobRow: Sendable, Hashable {
    /// Internal row id (stable for the job's life; used for foreign keys).
    let seq: Int64
    public let key: JobKey
    /// The spec exactly as ingested.
    public let spec: JobSpec
    /// Hex sha256 of the canonical spec encoding (`Store.specDigest`).
    public let specDigest: String
    public internal(set) var state: JobState
    /// Effective priority; starts as `spec.priority` and may be changed by an operator.
    public var priority: Priority
    /// Effective deadline (seconds since 1970); starts as `spec.deadline`.
    public var deadline: Timestamp?
    /// Why the job is `held` (e.g. `budget`, `operator`); cleared when it leaves `held`.
    public var holdReason: String?
    /// Create calls begun so far (incremented by `beginSubmission`).
    public internal(set) var attempt: Int
    /// Fingerprint of the create request of the current attempt.
    public var requestFingerprint: String?
    /// The current provider task. Setting a new one appends it to `taskIDs` and claims it for this job.
    public var taskID: String?
    /// Every task id this job has ever owned, oldest first.
    public internal(set) var taskIDs: [String]
    public var videoURL: String?
    public var urlExpiresAt: Timestamp?
    /// Size of the result file in bytes, once known.
    public var resultBytes: Int64?
    public var outputPath: String?
    public var outputSHA256: String?
    public var usage: TaskUsage?
    public var costUSD: Double?
    /// Why the job failed, expired, was held or is retrying; cleared when it is queued again.
    public var reason: String?
    public var nextAttemptAt: Timestamp?
    public internal(set) var createdAt: Timestamp
    public internal(set) var updatedAt: Timestamp
    /// When the job entered its current state.
    public internal(set) var stateChangedAt: Timestamp
    /// When the current create attempt was made durable (start of the in-doubt window).
    public internal(set) var createStartedAt: Timestamp?
    /// When the provider's task id was committed (set by `commitTaskID`).
    public var submittedAt: Timestamp?
    /// When the job last entered a terminal state; nil while it is not terminal.
    public internal(set) var finishedAt: Timestamp?
}

/// One recorded state change.
public struct TransitionRow: Sendable, Hashable {
    /// nil for the intake row.
    public var from: JobState?
    public var to: JobState
    public var cause: String
    public var at: Timestamp
}

/// One recorded provider exchange.
public struct AttemptRow: Sendable, Hashable {
    public var key: JobKey?
    public var exchange: Exchange
    public var at: Timestamp
}

/// Batch attributes that come from manifests and operators.
public struct BatchSettings: Sendable, Hashable {
    public var priority: Priority
    public var deadline: Timestamp?
    public var budgetUSD: Double?
    public var paused: Bool

    public init(priority: Priority = .normal, deadline: Timestamp? = nil, budgetUSD: Double? = nil,
                paused: Bool = false) {
        self.priority = priority
        self.deadline = deadline
        self.budgetUSD = budgetUSD
        self.paused = paused
    }
}

/// Jobs of one (batch, model, resolution, state), with their recorded cost and estimated billed seconds.
public struct CountGroup: Sendable, Hashable {
    public var batch: String
    public var model: RenderModel
    public var resolution: Resolution
    public var state: JobState
    public var jobs: Int
    /// Sum of the jobs' recorded `costUSD`.
    public var costUSD: Double
    /// How many of the jobs have a recorded `costUSD` (their task SUCCEEDED, so the provider billed it).
    public var billedJobs: Int = 0
    /// Sum of the jobs' `spec.estimatedBilledSeconds`.
    public var estimatedBilledSeconds: Double
}

/// Job counts, read in one go and shaped on demand.
public struct JobCounts: Sendable, Hashable {
    public var groups: [CountGroup]

    public var total: Int { groups.reduce(0) { $0 + $1.jobs } }
    public var byState: [JobState: Int] { Self.sum(groups) { $0.state } }
    public var byBatch: [String: [JobState: Int]] { Dictionary(grouping: groups) { $0.batch }.mapValues(Self.states) }
    public var byModel: [RenderModel: [JobState: Int]] {
        Dictionary(grouping: groups) { $0.model }.mapValues(Self.states)
    }
    /// Recorded cost of every billed job, delivered or not (the money spent).
    public var costUSD: Double { groups.reduce(0) { $0 + $1.costUSD } }

    /// Terminal states whose jobs may have been billed without a delivered file: a SUCCEEDED task whose result
    /// failed QC, expired before download or was cancelled during delivery.
    public static let undeliveredStates: Set<JobState> = [.failed, .expired, .cancelled]

    /// Jobs billed but never delivered, and what they cost.
    public var billedNotDelivered: (jobs: Int, usd: Double) {
        groups.filter { Self.undeliveredStates.contains($0.state) }
            .reduce((0, 0.0)) { ($0.0 + $1.billedJobs, $0.1 + $1.costUSD) }
    }

    /// Estimated cost of the jobs in `states` at `pricing`'s rates; nil when a needed rate is missing.
    public func estimatedUSD(in states: Set<JobState>, pricing: PricingTable) -> Double? {
        var total = 0.0
        for g in groups where states.contains(g.state) && g.jobs > 0 {
            guard let c = pricing.cost(g.model, g.resolution, billedSeconds: g.estimatedBilledSeconds) else {
                return nil
            }
            total += c
        }
        return total
    }

    static func states(_ groups: [CountGroup]) -> [JobState: Int] { sum(groups) { $0.state } }

    static func sum<K: Hashable>(_ groups: [CountGroup], by key: (CountGroup) -> K) -> [K: Int] {
        groups.reduce(into: [:]) { $0[key($1), default: 0] += $1.jobs }
    }
}

/// A batch and where it stands.
public struct BatchSummary: Sendable, Hashable {
    public var name: String
    public var settings: BatchSettings
    public var createdAt: Timestamp
    /// When the first of its tasks was accepted by the provider.
    public var startedAt: Timestamp?
    /// When its last job became terminal; nil while any job is not (a later manifest reopens it).
    public var completedAt: Timestamp?
    /// Manifest files ingested into this batch.
    public var manifestCount: Int
    public var counts: JobCounts

    public var isComplete: Bool { completedAt != nil }

    /// Estimated cost of the jobs not yet terminal; nil when `pricing` lacks a needed rate.
    public func estimatedRemainingUSD(_ pricing: PricingTable) -> Double? {
        counts.estimatedUSD(in: Set(JobState.allCases.filter { !$0.isTerminal }), pricing: pricing)
    }
}

/// What a manifest's intake did.
public enum IngestOutcome: Sendable, Hashable {
    /// This exact manifest content was ingested before (e.g. a crash came between commit and unlink): nothing done.
    case alreadyIngested(fileName: String, at: Timestamp)
    /// Committed: `added` jobs are `queued`; `unchanged` ones existed with identical content.
    case accepted(added: [JobKey], unchanged: [JobKey])
    /// Nothing was written: these jobs exist with different content.
    case rejected([IngestConflict])
}

/// A job of a manifest that clashes with a stored job of the same key.
public struct IngestConflict: Sendable, Hashable, CustomStringConvertible {
    public var key: JobKey
    public var existingState: JobState
    /// What happened and how to fix it, for the rejection report.
    public var message: String
    public var description: String { message }
}

/// A page of `listJobs`.
public struct JobPage: Sendable {
    public var rows: [JobRow]
    /// Pass to the next call; nil on the last page.
    public var nextCursor: String?
}

/// Render times are learned per (model, resolution, duration).
public struct RunTimeClass: Sendable, Hashable {
    public var model: RenderModel
    public var resolution: Resolution
    public var durationSeconds: Int

    public init(model: RenderModel, resolution: Resolution, durationSeconds: Int) {
        self.model = model
        self.resolution = resolution
        self.durationSeconds = durationSeconds
    }
}

/// What `prune` removed.
public struct PruneReport: Sendable, Hashable {
    public var jobs: Int
    public var batches: Int
    /// Provider exchanges not tied to a job (list calls) older than the cutoff.
    public var orphanAttempts: Int
    public var uploads: Int
    /// Pages returned to the file system by `PRAGMA incremental_vacuum`.
    public var freedPages: Int
}

/// Facts about the database file, for status and tests.
public struct StorageInfo: Sendable, Hashable {
    public var journalMode: String
    /// 0 off, 1 normal, 2 full (SQLite's numbering).
    public var synchronous: Int
    /// 0 none, 1 full, 2 incremental.
    public var autoVacuum: Int
    public var foreignKeys: Bool
    public var busyTimeoutMilliseconds: Int
    public var migrations: [String]
    public var pageCount: Int
    public var freePages: Int
    public var pageSize: Int
}

/// Errors of the store. Refused compare-and-sets are not errors (they return false); these are misuse or damage.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A transition the state machine forbids was asked for: a bug in the caller.
    case illegalTransition(from: JobState, to: JobState)
    case invalidCursor(String)
    /// The manifest handed to `ingest` is inconsistent (validation should have caught it).
    case invalidIngest(String)
    /// A task id was about to be given to a second job.
    case taskOwnedByAnotherJob(taskID: String, owner: JobKey)
    /// A stored value could not be decoded.
    case corrupt(String)

    public var description: String {
        switch self {
        case .illegalTransition(let from, let to):
            "illegal transition \(from.rawValue) -> \(to.rawValue); allowed from \(from.rawValue): "
                + from.successors.map(\.rawValue).sorted().joined(separator: ", ")
        case .invalidCursor(let c):
            "invalid cursor \"\(c)\": pass the next_cursor of the previous page unchanged, or none to start over"
        case .invalidIngest(let m): "invalid intake: \(m)"
        case .taskOwnedByAnotherJob(let t, let owner):
            "task \(t) already belongs to job \(owner); a task is never adopted by two jobs"
        case .corrupt(let m): "database value cannot be decoded: \(m)"
        }
    }
}
