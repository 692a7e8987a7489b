import Foundation
import ReelCore
import Synchronization

/// The in-memory implementation of `JobStore`: the same rules as `Store` (compare-and-set on the core's transition
/// table, one transition row per change, task ownership, listing order and cursors, counts summed as integer
/// micro-USD and centiseconds, in-doubt marking on restore, retention) held in one lock, for engine and lifecycle
/// tests that need no file. Nothing survives the process.
///
/// Every method either applies all of its change or none: the checks that may refuse or throw run before the first
/// mutation. Like GRDB's accesses, every call except `commitTaskID` throws `CancellationError` in a cancelled task
/// without touching anything.
public final class MemoryStore: JobStore {
    private let state = Mutex(State())
    private let writes = Atomic<Int>(0)

    public init() {}

    public var writeGeneration: Int { writes.load(ordering: .acquiring) }

    // MARK: access

    private func read<T: Sendable>(_ body: (borrowing State) throws -> T) throws -> T {
        try Task.checkCancellation()
        return try state.withLock { s throws -> T in try body(s) }
    }

    /// A write; `touchesJobs: false` promises no job, batch or setting changes (`writeGeneration` then stays).
    private func write<T: Sendable>(touchesJobs: Bool = true, cancellable: Bool = true,
                                    _ body: (inout State) throws -> T) throws -> T {
        if cancellable { try Task.checkCancellation() }
        defer { if touchesJobs { writes.add(1, ordering: .releasing) } }
        return try state.withLock { s throws -> T in try body(&s) }
    }

    // MARK: state changes

    public func transition(_ key: JobKey, from: Set<JobState>, to: JobState, cause: String, now: Timestamp,
                           update: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool {
        try JobStoreRules.checkLegal(from: from, to: to)
        return try write { s in
            try s.move(key, from: from, to: to, now: now, cause: { _ in cause }, update: update) != nil
        }
    }

    public func update(_ key: JobKey, ifIn states: Set<JobState>?, now: Timestamp,
                       _ body: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool {
        try write { s in
            guard var row = s.row(key), states?.contains(row.state) ?? true else { return false }
            body(&row)
            row.updatedAt = now
            try s.save(row)
            return true
        }
    }

    public func beginSubmission(_ key: JobKey, expectedFrom: Set<JobState>, fingerprint: String,
                                now: Timestamp) async throws -> Int? {
        try JobStoreRules.checkLegal(from: expectedFrom, to: .submitting)
        return try write { s in
            try s.move(key, from: expectedFrom, to: .submitting, now: now, cause: JobStoreRules.submissionCause) {
                JobStoreRules.beginSubmission(&$0, fingerprint: fingerprint, now: now)
            }?.attempt
        }
    }

    public func commitTaskID(_ key: JobKey, taskID: String, status: TaskStatus, now: Timestamp,
                             how: String?) async throws -> Bool {
        try write(cancellable: false) { s in
            let row = try s.move(key, from: [.submitting, .inDoubt], to: JobStoreRules.committedState(status),
                                 now: now, cause: { JobStoreRules.commitCause($0, taskID: taskID, how: how) }) {
                JobStoreRules.commitTaskID(&$0, taskID: taskID, now: now)
            }
            guard row != nil else { return false }
            if s.batches[key.batch]?.startedAt == nil { s.batches[key.batch]?.startedAt = now }
            return true
        }
    }

    public func refuseSubmission(_ key: JobKey, countsAsAttempt: Bool, reason: String,
                                 now: Timestamp) async throws -> Bool {
        try write { s in
            try s.move(key, from: [.submitting], to: .retrying, now: now,
                       cause: { _ in JobStoreRules.refusalCause(reason) }) {
                JobStoreRules.refuseSubmission(&$0, countsAsAttempt: countsAsAttempt, reason: reason)
            } != nil
        }
    }

    public func markInterruptedSubmissionsInDoubt(now: Timestamp, cause: String) async throws -> [JobRow] {
        try write { s in
            try s.rows(where: { $0.state == .submitting }).compactMap { row in
                try s.move(row.key, from: [.submitting], to: .inDoubt, now: now, cause: { _ in cause })
            }
        }
    }

    public func recordAttempt(_ key: JobKey?, _ exchange: Exchange, now: Timestamp) async throws {
        try write(touchesJobs: false) { s in
            s.attempts.append(Attempt(jobSeq: key.flatMap { s.seqs[$0] }, exchange: exchange, at: now))
        }
    }

    // MARK: intake

    public func ingest(_ manifests: [ManifestIngest], now: Timestamp) async throws
        -> [Result<IngestOutcome, any Error>] {
        let prepared = manifests.map { m in
            Result { () throws -> (ManifestIngest, [(spec: JobSpec, digest: String)]) in
                try JobStoreRules.validate(m)
                return (m, m.jobs.map { ($0, Codec.digest(Codec.spec($0))) })
            }
        }
        return try write { s in
            prepared.map { item in item.map { s.ingest($0.0, $0.1, now: now) } }
        }
    }

    // MARK: reads

    public func job(_ key: JobKey) async throws -> JobRow? {
        try read { $0.row(key) }
    }

    public func jobs(in states: Set<JobState>) async throws -> [JobRow] {
        try read { s in s.rows(where: { states.contains($0.state) }) }
    }

    public func listJobs(_ query: JobQuery) async throws -> JobPage {
        let (rows, next) = try read { s in query.page(s.listing(query), key: \.key) }
        return JobPage(rows: rows, nextCursor: next)
    }

    public func listJobSummaries(_ query: JobQuery) async throws -> JobSummaryPage {
        let (rows, next) = try read { s in query.page(s.listing(query), key: \.key) }
        return JobSummaryPage(rows: rows.map(\.summary), nextCursor: next)
    }

    public func counts() async throws -> JobCounts {
        try read { $0.counts(batch: nil) }
    }

    public func transitions(of key: JobKey) async throws -> [TransitionRow] {
        try read { s in s.seqs[key].flatMap { s.transitions[$0] } ?? [] }
    }

    public func attempts(of key: JobKey) async throws -> [AttemptRow] {
        try read { s in
            guard let seq = s.seqs[key] else { return [] }
            return s.attempts.filter { $0.jobSeq == seq }.map { AttemptRow(key: key, exchange: $0.exchange, at: $0.at) }
        }
    }

    public func attemptCounts(of key: JobKey?, since: Timestamp?) async throws -> [Exchange.Kind: Int] {
        try read { s in
            let seq = key.map { s.seqs[$0] }
            return s.attempts.filter { a in
                (seq.map { $0 != nil && a.jobSeq == $0 } ?? true) && (since.map { a.at >= $0 } ?? true)
            }.reduce(into: [:]) { $0[$1.exchange.kind, default: 0] += 1 }
        }
    }

    public func jobsOwningTasks(_ taskIDs: [String]) async throws -> [String: JobKey] {
        try read { s in
            taskIDs.reduce(into: [:]) { out, task in
                if let seq = s.taskOwners[task], let row = s.jobs[seq] { out[task] = row.key }
            }
        }
    }

    // MARK: batches

    public func batches() async throws -> [BatchSummary] {
        try read { s in
            s.batches.values.sorted {
                $0.createdAt != $1.createdAt ? $0.createdAt < $1.createdAt
                    : $0.name.utf8.lexicographicallyPrecedes($1.name.utf8)
            }.map { s.summary($0) }
        }
    }

    public func batch(_ name: String) async throws -> BatchSummary? {
        try read { s in s.batches[name].map { s.summary($0) } }
    }

    public func updateBatch(_ name: String,
                            _ body: @escaping @Sendable (inout BatchSettings) -> Void) async throws -> Bool {
        try write { s in
            guard s.batches[name] != nil else { return false }
            body(&s.batches[name]!.settings)
            return true
        }
    }

    // MARK: uploads, settings, run times, retention

    public func cachedUpload(sha256: String, model: RenderModel, validAt: Timestamp) async throws -> String? {
        try read { s in
            s.uploads[UploadKey(sha256: sha256, model: model)].flatMap { $0.expiresAt > validAt ? $0.ossURL : nil }
        }
    }

    public func saveUpload(sha256: String, model: RenderModel, ossURL: String, uploadedAt: Timestamp,
                           expiresAt: Timestamp) async throws {
        try write(touchesJobs: false) { s in
            s.uploads[UploadKey(sha256: sha256, model: model)] = Upload(ossURL: ossURL, expiresAt: expiresAt)
        }
    }

    public func setting(_ key: String) async throws -> String? {
        try read { $0.settings[key] }
    }

    public func setSetting(_ key: String, to value: String?) async throws {
        try write { $0.settings[key] = value }
    }

    public func recordRunTime(_ runClass: RunTimeClass, seconds: Double, now: Timestamp) async throws {
        try write(touchesJobs: false) { s in
            s.nextSampleSeq += 1
            s.runTimes.append(RunTimeSample(seq: s.nextSampleSeq, runClass: runClass, seconds: seconds, at: now))
        }
    }

    public func runTimeSamples(limitPerClass: Int) async throws -> [RunTimeClass: [Double]] {
        try read { s in s.newestRunTimes(limitPerClass: limitPerClass).mapValues { $0.map(\.seconds) } }
    }

    public func prune(finishedBefore cutoff: Timestamp) async throws -> PruneReport {
        try write { s in s.prune(finishedBefore: cutoff) }
    }
}

// MARK: - The state

private struct Attempt {
    var jobSeq: Int64?
    var exchange: Exchange
    var at: Timestamp
}

private struct BatchRecord {
    var name: String
    var settings: BatchSettings
    var createdAt: Timestamp
    var startedAt: Timestamp?
    var completedAt: Timestamp?
    var manifestCount: Int
}

private struct UploadKey: Hashable {
    var sha256: String
    var model: RenderModel
}

private struct Upload {
    var ossURL: String
    var expiresAt: Timestamp
}

private struct RunTimeSample {
    var seq: Int64
    var runClass: RunTimeClass
    var seconds: Double
    var at: Timestamp
}

private struct State {
    var jobs: [Int64: JobRow] = [:]
    var seqs: [JobKey: Int64] = [:]
    var nextJobSeq: Int64 = 0
    var transitions: [Int64: [TransitionRow]] = [:]
    var attempts: [Attempt] = []
    var taskOwners: [String: Int64] = [:]
    var batches: [String: BatchRecord] = [:]
    var manifests: [String: (fileName: String, batch: String, at: Timestamp)] = [:]
    var uploads: [UploadKey: Upload] = [:]
    var settings: [String: String] = [:]
    var runTimes: [RunTimeSample] = []
    var nextSampleSeq: Int64 = 0

    func row(_ key: JobKey) -> JobRow? { seqs[key].flatMap { jobs[$0] } }

    /// Rows matching `filter`, in intake order.
    func rows(where filter: (JobRow) -> Bool) -> [JobRow] {
        jobs.values.filter(filter).sorted { $0.seq < $1.seq }
    }

    /// The rows a listing page is cut from: the query's jobs in listing order, `limit + 1` of them.
    func listing(_ query: JobQuery) -> [JobRow] {
        Array(jobs.values.filter { query.admits($0.key, state: $0.state) }
            .sorted { JobQuery.precedes($0.key, $1.key) }.prefix(query.limit + 1))
    }

    /// The compare-and-set; the row as written, or nil when the job is not in `from`.
    mutating func move(_ key: JobKey, from: Set<JobState>, to: JobState, now: Timestamp, cause: (JobRow) -> String,
                       update: (inout JobRow) -> Void = { _ in }) throws -> JobRow? {
        guard var row = row(key), from.contains(row.state) else { return nil }
        let prior = row.state
        let why = cause(row)
        row.enter(to, now: now)
        update(&row)
        let saved = try save(row)
        transitions[row.seq, default: []].append(TransitionRow(from: prior, to: to, cause: why, at: now))
        if to.isTerminal != prior.isTerminal { refreshCompletion(batch: key.batch, now: now) }
        return saved
    }

    /// Stores `row`; a new `taskID` is appended to the history and claimed for the job (refused, before anything
    /// changes, when another job owns it).
    @discardableResult
    mutating func save(_ row: JobRow) throws -> JobRow {
        var row = row
        if let task = row.taskID, !row.taskIDs.contains(task) {
            if let owner = taskOwners[task], owner != row.seq, let other = jobs[owner] {
                throw StoreError.taskOwnedByAnotherJob(taskID: task, owner: other.key)
            }
            taskOwners[task] = row.seq
            row.taskIDs.append(task)
        }
        jobs[row.seq] = row
        return row
    }

    /// Keeps a batch's `completedAt` equal to "the moment the last job became terminal".
    mutating func refreshCompletion(batch: String, now: Timestamp) {
        let open = jobs.values.contains { $0.key.batch == batch && !$0.state.isTerminal }
        if open {
            batches[batch]?.completedAt = nil
        } else if batches[batch]?.completedAt == nil {
            batches[batch]?.completedAt = now
        }
    }

    mutating func ingest(_ m: ManifestIngest, _ specs: [(spec: JobSpec, digest: String)],
                         now: Timestamp) -> IngestOutcome {
        if let seen = manifests[m.manifestSHA256] { return .alreadyIngested(fileName: seen.fileName, at: seen.at) }
        var added: [(spec: JobSpec, digest: String)] = []
        var unchanged: [JobKey] = []
        var conflicts: [IngestConflict] = []
        for item in specs {
            guard let existing = row(item.spec.key) else {
                added.append(item)
                continue
            }
            if existing.specDigest == item.digest {
                unchanged.append(item.spec.key)
            } else {
                conflicts.append(IngestConflict(key: item.spec.key, existingState: existing.state,
                                                message: JobStoreRules.conflictMessage(item.spec.key, existing.state)))
            }
        }
        guard conflicts.isEmpty else { return .rejected(conflicts) }
        if var batch = batches[m.batch] {
            batch.settings.priority = m.settings.priority
            batch.settings.deadline = m.settings.deadline ?? batch.settings.deadline
            batch.settings.budgetUSD = m.settings.budgetUSD ?? batch.settings.budgetUSD
            batch.manifestCount += 1
            batches[m.batch] = batch
        } else {
            batches[m.batch] = BatchRecord(
                name: m.batch, settings: BatchSettings(priority: m.settings.priority, deadline: m.settings.deadline,
                                                       budgetUSD: m.settings.budgetUSD),
                createdAt: now, manifestCount: 1)
        }
        for (spec, digest) in added {
            nextJobSeq += 1
            let row = JobRow(
                seq: nextJobSeq, key: spec.key, spec: spec, specDigest: digest, state: .queued,
                priority: spec.priority, deadline: spec.deadline, holdReason: nil, attempt: 0, requestFingerprint: nil,
                taskID: nil, taskIDs: [], videoURL: nil, urlExpiresAt: nil, resultBytes: nil, outputPath: nil,
                outputSHA256: nil, usage: nil, costUSD: nil, reason: nil, nextAttemptAt: nil, createdAt: now,
                updatedAt: now, stateChangedAt: now, createStartedAt: nil, submittedAt: nil, finishedAt: nil)
            jobs[row.seq] = row
            seqs[spec.key] = row.seq
            transitions[row.seq] = [TransitionRow(from: nil, to: .queued, cause: "intake \(m.fileName)", at: now)]
        }
        if !added.isEmpty { batches[m.batch]?.completedAt = nil }
        manifests[m.manifestSHA256] = (m.fileName, m.batch, now)
        return .accepted(added: added.map(\.spec.key), unchanged: unchanged)
    }

    /// Counts grouped and ordered as `job_counts` keeps them (by batch, model, resolution, state).
    func counts(batch: String?) -> JobCounts {
        struct Group: Hashable { var batch: String, model: RenderModel, resolution: Resolution, state: JobState }
        var sums: [Group: (jobs: Int, micros: Int64, billed: Int, centis: Int64)] = [:]
        for row in jobs.values where batch == nil || row.key.batch == batch {
            let g = Group(batch: row.key.batch, model: row.spec.model, resolution: row.spec.resolution,
                          state: row.state)
            var sum = sums[g] ?? (0, 0, 0, 0)
            sum.jobs += 1
            sum.micros += JobStoreRules.micros(row.costUSD)
            sum.billed += row.costUSD == nil ? 0 : 1
            sum.centis += JobStoreRules.centis(row.spec.estimatedBilledSeconds)
            sums[g] = sum
        }
        func order(_ g: Group) -> [String] { [g.batch, g.model.rawValue, g.resolution.rawValue, g.state.rawValue] }
        return JobCounts(groups: sums.sorted {
            order($0.key).lexicographicallyPrecedes(order($1.key)) { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }.map { g, sum in
            CountGroup(batch: g.batch, model: g.model, resolution: g.resolution, state: g.state, jobs: sum.jobs,
                       costUSD: Double(sum.micros) / 1e6, billedJobs: sum.billed,
                       estimatedBilledSeconds: Double(sum.centis) / 100)
        })
    }

    func summary(_ b: BatchRecord) -> BatchSummary {
        BatchSummary(name: b.name, settings: b.settings, createdAt: b.createdAt, startedAt: b.startedAt,
                     completedAt: b.completedAt, manifestCount: b.manifestCount, counts: counts(batch: b.name))
    }

    /// Each class's samples, newest first (by time, then by order of recording), at most `limitPerClass`.
    func newestRunTimes(limitPerClass: Int) -> [RunTimeClass: [RunTimeSample]] {
        Dictionary(grouping: runTimes, by: \.runClass).mapValues { samples in
            Array(samples.sorted { ($0.at, $0.seq) > ($1.at, $1.seq) }.prefix(max(limitPerClass, 0)))
        }
    }

    mutating func prune(finishedBefore cutoff: Timestamp) -> PruneReport {
        let gone = Set(jobs.values.filter { $0.state.isTerminal && ($0.finishedAt.map { $0 < cutoff } ?? false) }
            .map(\.seq))
        for seq in gone {
            if let key = jobs.removeValue(forKey: seq)?.key { seqs[key] = nil }
            transitions[seq] = nil
        }
        taskOwners = taskOwners.filter { !gone.contains($0.value) }
        let attemptsBefore = attempts.count
        attempts.removeAll { $0.jobSeq.map(gone.contains) ?? false }
        let jobAttempts = attemptsBefore - attempts.count
        attempts.removeAll { $0.jobSeq == nil && $0.at < cutoff }
        let orphans = attemptsBefore - jobAttempts - attempts.count
        let uploadsBefore = uploads.count
        uploads = uploads.filter { $0.value.expiresAt >= cutoff }
        let live = Set(jobs.values.map(\.key.batch))
        let emptied = batches.keys.filter { !live.contains($0) }
        for name in emptied { batches[name] = nil }
        manifests = manifests.filter { batches[$0.value.batch] != nil }
        let kept = Set(newestRunTimes(limitPerClass: JobStoreRules.runTimeSamplesKept).values.joined().map(\.seq))
        runTimes.removeAll { !kept.contains($0.seq) }
        return PruneReport(jobs: gone.count, batches: emptied.count, orphanAttempts: orphans,
                           uploads: uploadsBefore - uploads.count, freedPages: 0)
    }
}
