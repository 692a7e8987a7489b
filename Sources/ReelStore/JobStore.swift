import Foundation
import ReelCore

/// Reel's durable job state, as the daemon uses it: jobs and their transitions, provider exchanges, batches,
/// settings, the uploads cache and learned run times.
///
/// Implementations: `Store` (one SQLite file through GRDB, the default) and `MemoryStore` (in process, for tests
/// of the engine). `StoreContractTests` holds every implementation to the same behaviour.
///
/// Rules every implementation keeps:
/// - **Compare-and-set.** A state change names the states it expects the job in; when the job is elsewhere (or
///   absent) nothing is written and the call returns false/nil. A change the transition table forbids
///   (`JobState.canMove`) throws `StoreError.illegalTransition` before anything is read or written.
/// - **One change, one record.** Every state change writes its `TransitionRow` with it, atomically; the automatic
///   effects of entering a state are those of `JobRow.enter(_:now:)`; a batch's `completedAt` follows its jobs.
/// - **Task ownership.** A task id, once a job's, is never given to another job (`taskOwnedByAnotherJob`).
/// - **Listing order.** Listings are ordered by `(batch, id)` compared as UTF-8 bytes, with the cursors of
///   `JobQuery`; jobs, transitions and attempts otherwise come back in the order they were written.
public protocol JobStore: Sendable {
    // MARK: state changes

    /// Moves `key` to `to` if it is currently in one of `from`, applies `update` to the row after the automatic
    /// effects (`JobRow.enter`), and records a transition with `cause`. False when the job does not exist or is
    /// elsewhere.
    @discardableResult
    func transition(_ key: JobKey, from: Set<JobState>, to: JobState, cause: String, now: Timestamp,
                    update: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool

    /// Changes fields of a job without changing its state (no transition recorded). When `states` is given it is
    /// a compare-and-set on the current state. False when the job does not exist or is in none of `states`.
    @discardableResult
    func update(_ key: JobKey, ifIn states: Set<JobState>?, now: Timestamp,
                _ body: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool

    /// Write-ahead submission, step 1 — opens the in-doubt window: durably `submitting`, `attempt + 1`, the
    /// request fingerprint, `createStartedAt = now`, the previous task and URL cleared. Returns the attempt
    /// number, or nil when the job was not in `expectedFrom` (then the provider must not be called).
    func beginSubmission(_ key: JobKey, expectedFrom: Set<JobState>, fingerprint: String,
                         now: Timestamp) async throws -> Int?

    /// Write-ahead submission, step 2 — closes the in-doubt window: durably commits the task id of a
    /// `submitting` or `in_doubt` job, moving it to `running` when `status` is RUNNING, else `pending`; sets
    /// `submittedAt` and the batch's `startedAt`. Not cancellable (a paid task id is always committed). False when
    /// the job is no longer `submitting`/`in_doubt`; throws `taskOwnedByAnotherJob` if the task is another job's.
    @discardableResult
    func commitTaskID(_ key: JobKey, taskID: String, status: TaskStatus, now: Timestamp,
                      how: String?) async throws -> Bool

    /// A create call the provider refused (no task exists): `submitting` → `retrying`. A refusal that says nothing
    /// about the job (throttling, the account) gives back the attempt number `beginSubmission` took.
    @discardableResult
    func refuseSubmission(_ key: JobKey, countsAsAttempt: Bool, reason: String, now: Timestamp) async throws -> Bool

    /// At start, before anything is scheduled: every job still `submitting` was interrupted mid-create, so it
    /// moves to `in_doubt` (cause `cause`), all in one write; returns the jobs moved, in intake order.
    func markInterruptedSubmissionsInDoubt(now: Timestamp, cause: String) async throws -> [JobRow]

    /// Records one provider exchange (`key` nil for account-wide calls such as list; a key with no job is
    /// recorded as account-wide too).
    func recordAttempt(_ key: JobKey?, _ exchange: Exchange, now: Timestamp) async throws

    // MARK: intake

    /// Commits manifests in one durable write (the caller may delete the source files at once), each decided as
    /// if ingested alone in this order:
    ///
    /// - If `manifestSHA256` (hex sha256 of the file's bytes) was ingested before → `.alreadyIngested`, nothing
    ///   written: re-reading a file after a crash between this commit and the spool's unlink is harmless.
    /// - A job whose key exists with a different `specDigest` is a conflict; any conflict → `.rejected`, nothing
    ///   written. A job whose key exists with the same digest is unchanged (a no-op).
    /// - Otherwise new jobs are inserted `queued` (transition cause `intake <fileName>`), the manifest is
    ///   remembered, and the batch is created or updated: `settings.priority` replaces the stored one, a non-nil
    ///   deadline or budget replaces the stored one, `paused` is ignored (operators pause batches); new jobs
    ///   reopen a completed batch.
    ///
    /// A manifest whose jobs are not all in its batch, or that names a job twice, gets its own
    /// `.failure(StoreError.invalidIngest)` and the others go on. A storage error throws and commits nothing.
    func ingest(_ manifests: [ManifestIngest], now: Timestamp) async throws -> [Result<IngestOutcome, any Error>]

    // MARK: reads

    func job(_ key: JobKey) async throws -> JobRow?
    /// Every job in one of `states`, in intake order.
    func jobs(in states: Set<JobState>) async throws -> [JobRow]
    /// A page of full rows in `(batch, id)` order.
    func listJobs(_ query: JobQuery) async throws -> JobPage
    /// `listJobs` with summaries instead of full rows: the same order, filters and cursors.
    func listJobSummaries(_ query: JobQuery) async throws -> JobSummaryPage
    /// Job counts by (batch, model, resolution, state), ordered by those four.
    func counts() async throws -> JobCounts
    /// The state changes of a job, oldest first.
    func transitions(of key: JobKey) async throws -> [TransitionRow]
    /// The provider exchanges of a job, oldest first.
    func attempts(of key: JobKey) async throws -> [AttemptRow]
    /// Provider exchanges by kind: of one job when `key` is given, else of all; only those at or after `since`.
    func attemptCounts(of key: JobKey?, since: Timestamp?) async throws -> [Exchange.Kind: Int]
    /// Which of `taskIDs` already belong to a job (current or past task).
    func jobsOwningTasks(_ taskIDs: [String]) async throws -> [String: JobKey]

    // MARK: batches

    /// Every batch with its counts, by creation time then name.
    func batches() async throws -> [BatchSummary]
    func batch(_ name: String) async throws -> BatchSummary?
    /// Changes a batch's priority, deadline, budget or paused flag. False when the batch is unknown.
    @discardableResult
    func updateBatch(_ name: String, _ body: @escaping @Sendable (inout BatchSettings) -> Void) async throws -> Bool

    // MARK: uploads, settings, run times, retention

    /// The `oss://` URL of an earlier upload of this content for `model` that still lives at `validAt`.
    func cachedUpload(sha256: String, model: RenderModel, validAt: Timestamp) async throws -> String?
    /// Remembers an upload, replacing an older one of the same content and model.
    func saveUpload(sha256: String, model: RenderModel, ossURL: String, uploadedAt: Timestamp,
                    expiresAt: Timestamp) async throws
    func setting(_ key: String) async throws -> String?
    /// Stores `value` under `key`; nil removes it.
    func setSetting(_ key: String, to value: String?) async throws
    func recordRunTime(_ runClass: RunTimeClass, seconds: Double, now: Timestamp) async throws
    /// The newest `limitPerClass` run times of every class, newest first.
    func runTimeSamples(limitPerClass: Int) async throws -> [RunTimeClass: [Double]]
    /// Deletes terminal jobs finished before `cutoff` with their history, batches left empty (and their
    /// manifests), account-wide attempts and uploads expired before `cutoff`, and run-time samples beyond the
    /// newest `JobStoreRules.runTimeSamplesKept` per class.
    func prune(finishedBefore cutoff: Timestamp) async throws -> PruneReport

    /// How many writes that may change jobs have returned so far. Equal values bracket a span in which no such
    /// write completed, so an answer read in it may be served again (the daemon's listing cache).
    var writeGeneration: Int { get }
}

// MARK: - Conveniences (the defaults a protocol requirement cannot carry)

extension JobStore {
    @discardableResult
    public func transition(_ key: JobKey, from: Set<JobState>, to: JobState, cause: String,
                           now: Timestamp) async throws -> Bool {
        try await transition(key, from: from, to: to, cause: cause, now: now, update: { _ in })
    }

    /// `transition` from a single expected state.
    @discardableResult
    public func transition(_ key: JobKey, from: JobState, to: JobState, cause: String, now: Timestamp,
                           update: @escaping @Sendable (inout JobRow) -> Void = { _ in }) async throws -> Bool {
        try await transition(key, from: [from], to: to, cause: cause, now: now, update: update)
    }

    @discardableResult
    public func update(_ key: JobKey, now: Timestamp,
                       _ body: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool {
        try await update(key, ifIn: nil, now: now, body)
    }

    /// `beginSubmission` from `queued` or `retrying`.
    public func beginSubmission(_ key: JobKey, fingerprint: String, now: Timestamp) async throws -> Int? {
        try await beginSubmission(key, expectedFrom: [.queued, .retrying], fingerprint: fingerprint, now: now)
    }

    @discardableResult
    public func commitTaskID(_ key: JobKey, taskID: String, status: TaskStatus, now: Timestamp) async throws -> Bool {
        try await commitTaskID(key, taskID: taskID, status: status, now: now, how: nil)
    }

    /// Moves a `submitting` job to `in_doubt`: the create call's outcome is unknown (timeout, 500, reset after
    /// sending, or a crash). The window stays open until `commitTaskID` (adopt) or an operator's resolve.
    @discardableResult
    public func markInDoubt(_ key: JobKey, cause: String, now: Timestamp) async throws -> Bool {
        try await transition(key, from: .submitting, to: .inDoubt, cause: cause, now: now)
    }

    @discardableResult
    public func markInterruptedSubmissionsInDoubt(now: Timestamp) async throws -> [JobRow] {
        try await markInterruptedSubmissionsInDoubt(now: now, cause: "daemon restarted during the create call")
    }

    /// One manifest's `ingest`.
    public func ingest(manifestSHA256: String, fileName: String, batch: String, settings: BatchSettings,
                       jobs: [JobSpec], now: Timestamp) async throws -> IngestOutcome {
        let manifest = ManifestIngest(manifestSHA256: manifestSHA256, fileName: fileName, batch: batch,
                                      settings: settings, jobs: jobs)
        return try await ingest([manifest], now: now)[0].get()
    }

    /// Jobs ordered by `BATCH/ID`, optionally filtered, `limit` (1…1000) at a time, after `cursor` (the previous
    /// page's `nextCursor`).
    public func listJobs(state: JobState? = nil, batch: String? = nil, limit: Int = 100,
                         after cursor: String? = nil) async throws -> JobPage {
        try await listJobs(JobQuery(state: state, batch: batch, limit: limit, after: cursor))
    }

    public func listJobSummaries(state: JobState? = nil, batch: String? = nil, limit: Int = 100,
                                 after cursor: String? = nil) async throws -> JobSummaryPage {
        try await listJobSummaries(JobQuery(state: state, batch: batch, limit: limit, after: cursor))
    }

    public func attemptCounts(of key: JobKey? = nil, since: Timestamp? = nil) async throws -> [Exchange.Kind: Int] {
        try await attemptCounts(of: key, since: since)
    }

    public func runTimeSamples() async throws -> [RunTimeClass: [Double]] {
        try await runTimeSamples(limitPerClass: 500)
    }
}

// MARK: - Listing

/// One listing request: filters, page size and position.
///
/// The cursor is the last key of the previous page, base64url without padding: opaque to clients, stable across
/// writes (keyset pagination: jobs added or removed meanwhile never make a page skip or repeat another job) and
/// the same for every implementation.
public struct JobQuery: Sendable, Hashable {
    public var state: JobState?
    public var batch: String?
    /// Clamped to 1…1000.
    public var limit: Int
    /// Jobs strictly after this key (decoded from the cursor).
    public var after: JobKey?

    /// Throws `StoreError.invalidCursor` for a cursor this API did not make.
    public init(state: JobState? = nil, batch: String? = nil, limit: Int = 100, after cursor: String? = nil) throws {
        self.state = state
        self.batch = batch
        self.limit = min(max(limit, 1), 1000)
        self.after = try cursor.map(Self.decodeCursor)
    }

    /// Whether `key` (in `state`) is on this query's pages after `after`: what the SQL filter of `Store` says.
    public func admits(_ key: JobKey, state: JobState) -> Bool {
        if let s = self.state, s != state { return false }
        if let batch, key.batch != batch { return false }
        guard let after else { return true }
        return Self.precedes(after, key)
    }

    /// The listing order: `(batch, id)` compared as UTF-8 bytes (SQLite's default collation).
    public static func precedes(_ a: JobKey, _ b: JobKey) -> Bool {
        if a.batch != b.batch { return a.batch.utf8.lexicographicallyPrecedes(b.batch.utf8) }
        return a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
    }

    /// The page made of `rows` read with `LIMIT limit + 1`: at most `limit` of them, and a cursor when more follow.
    func page<Row>(_ rows: [Row], key: (Row) -> JobKey) -> (rows: [Row], nextCursor: String?) {
        let page = Array(rows.prefix(limit))
        return (page, rows.count > limit ? page.last.map { Self.encodeCursor(key($0)) } : nil)
    }

    public static func encodeCursor(_ key: JobKey) -> String {
        Data(key.description.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeCursor(_ cursor: String) throws -> JobKey {
        var b64 = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        b64 += String(repeating: "=", count: (4 - b64.count % 4) % 4)
        guard let data = Data(base64Encoded: b64), let key = JobKey(parsing: String(decoding: data, as: UTF8.self))
        else { throw StoreError.invalidCursor(cursor) }
        return key
    }
}

// MARK: - Rules shared by the implementations

/// What every `JobStore` decides the same way, kept here once.
public enum JobStoreRules {
    /// Run-time samples kept per class by `prune`.
    public static let runTimeSamplesKept = 1000

    /// Throws `illegalTransition` if any state of `from` may not move to `to` (the core's transition table).
    static func checkLegal(from: Set<JobState>, to: JobState) throws {
        if let bad = from.first(where: { !$0.canMove(to: to) }) {
            throw StoreError.illegalTransition(from: bad, to: to)
        }
    }

    /// The transition cause of `beginSubmission` for a row before it.
    static func submissionCause(_ row: JobRow) -> String { "create call, attempt \(row.attempt + 1)" }

    /// `beginSubmission`'s changes to the row.
    static func beginSubmission(_ row: inout JobRow, fingerprint: String, now: Timestamp) {
        row.attempt += 1
        row.requestFingerprint = fingerprint
        row.createStartedAt = now
        row.taskID = nil
        row.videoURL = nil
        row.urlExpiresAt = nil
    }

    /// The state `commitTaskID` moves to.
    static func committedState(_ status: TaskStatus) -> JobState { status == .running ? .running : .pending }

    /// The transition cause of `commitTaskID` for a row before it.
    static func commitCause(_ row: JobRow, taskID: String, how: String?) -> String {
        (row.state == .inDoubt ? "adopted task " : "created task ") + taskID + (how.map { ": " + $0 } ?? "")
    }

    /// `commitTaskID`'s changes to the row.
    static func commitTaskID(_ row: inout JobRow, taskID: String, now: Timestamp) {
        row.taskID = taskID
        row.submittedAt = now
        row.reason = nil   // e.g. an in-doubt job's "resolve with reelctl resolve …": no longer true
    }

    /// `refuseSubmission`'s cause and changes to the row.
    static func refusalCause(_ reason: String) -> String { "create refused: \(reason)" }

    static func refuseSubmission(_ row: inout JobRow, countsAsAttempt: Bool, reason: String) {
        if !countsAsAttempt { row.attempt = max(0, row.attempt - 1) }
        row.reason = refusalCause(reason)
    }

    /// The rejection text of a manifest job that exists with other content.
    static func conflictMessage(_ key: JobKey, _ state: JobState) -> String {
        let base = "batch \(key.batch) job \(key.id) already exists with different content"
        return state.isTerminal
            ? "\(base) (it is \(state.rawValue)); job ids are never reused: submit the job under a new id"
            : "\(base); to replace it, cancel it (`reelctl cancel \(key)`) and submit the job under a new id"
    }

    /// The manifest rules checked before any write: every job in the manifest's batch, no id twice.
    static func validate(_ m: ManifestIngest) throws {
        if let stray = m.jobs.first(where: { $0.key.batch != m.batch }) {
            throw StoreError.invalidIngest("job \(stray.key) is not in batch \(m.batch)")
        }
        if Set(m.jobs.map(\.key)).count != m.jobs.count {
            throw StoreError.invalidIngest("manifest \(m.fileName) lists a job id twice")
        }
    }

    /// Money as `job_counts` sums it: integer micro-USD per job, so adding and removing a job leaves sums exact.
    static func micros(_ usd: Double?) -> Int64 { Int64(((usd ?? 0) * 1e6).rounded()) }

    /// Billed time as `job_counts` sums it: integer centiseconds per job.
    static func centis(_ seconds: Double) -> Int64 { Int64((seconds * 100).rounded()) }
}

extension JobRow {
    /// The automatic effects of entering `state`: `stateChangedAt`/`updatedAt` = now; `finishedAt` set on a
    /// terminal state, cleared otherwise; `holdReason` cleared unless `held`; `reason` and `nextAttemptAt`
    /// cleared on `queued`.
    mutating func enter(_ state: JobState, now: Timestamp) {
        self.state = state
        stateChangedAt = now
        updatedAt = now
        finishedAt = state.isTerminal ? now : nil
        if state != .held { holdReason = nil }
        if state == .queued {
            reason = nil
            nextAttemptAt = nil
        }
    }
}
