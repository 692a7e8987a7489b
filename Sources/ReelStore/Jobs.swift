import Foundation
import GRDB
import ReelCore

// MARK: - State changes

extension Store {
    /// Compare-and-set: moves `key` to `to` if it is currently in one of `from`, applies `update` to the row,
    /// and records a `transitions` row with `cause` — all in one transaction.
    ///
    /// Returns false (writing nothing) when the job does not exist or is not in an expected state.
    /// Throws `StoreError.illegalTransition` if any state of `from` may not move to `to` (`JobState.canMove`).
    /// Automatic effects are those of `JobRow.enter`; the batch's `completedAt` follows its jobs. `update` runs
    /// after these, so it can override them.
    public func transition(_ key: JobKey, from: Set<JobState>, to: JobState, cause: String, now: Timestamp,
                           update: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool {
        try JobStoreRules.checkLegal(from: from, to: to)
        return try await write { db in
            try Self.move(db, key, from: from, to: to, now: now, cause: { _ in cause }, update: update) != nil
        }
    }

    /// Changes fields of a job without changing its state (no `transitions` row): e.g. a refreshed video URL,
    /// recorded cost, operator priority. When `states` is given it is a compare-and-set on the current state.
    /// Returns false when the job does not exist or is in none of `states`.
    public func update(_ key: JobKey, ifIn states: Set<JobState>?, now: Timestamp,
                       _ body: @escaping @Sendable (inout JobRow) -> Void) async throws -> Bool {
        try await write { db in
            guard var row = try Self.fetchJob(db, key), states?.contains(row.state) ?? true else { return false }
            body(&row)
            row.updatedAt = now
            try Self.save(db, row, now: now)
            return true
        }
    }

    /// Write-ahead submission, step 1 — **opens the in-doubt window.** Durably commits the intent to create a
    /// task: state `submitting`, `attempt + 1`, the request fingerprint, `createStartedAt = now`, the previous
    /// task/URL cleared. Call it *before* the create call; returns the attempt number, or nil when the job was not
    /// in `expectedFrom` (then do not call the provider). Cancellable: a cancelled caller gets `CancellationError`
    /// and nothing is written.
    public func beginSubmission(_ key: JobKey, expectedFrom: Set<JobState>,
                                fingerprint: String, now: Timestamp) async throws -> Int? {
        try JobStoreRules.checkLegal(from: expectedFrom, to: .submitting)
        return try await durableWrite { db in
            try Self.move(db, key, from: expectedFrom, to: .submitting, now: now,
                          cause: JobStoreRules.submissionCause) { row in
                JobStoreRules.beginSubmission(&row, fingerprint: fingerprint, now: now)
            }?.attempt
        }
    }

    /// Write-ahead submission, step 2 — **closes the in-doubt window.** Durably commits the task id the create
    /// call returned (or the one reconciliation adopted for an `in_doubt` job) and moves the job to `running` when
    /// `status` is RUNNING, else `pending`. Sets `submittedAt` and the batch's `startedAt`. Returns false when the
    /// job is no longer `submitting`/`in_doubt`. Throws `taskOwnedByAnotherJob` if the task is another job's.
    ///
    /// Not cancellable: a paid task id is committed even when the calling task was cancelled meanwhile (e.g. by a
    /// graceful shutdown), since GRDB would otherwise roll the commit back and leave the job in doubt.
    public func commitTaskID(_ key: JobKey, taskID: String, status: TaskStatus, now: Timestamp,
                             how: String?) async throws -> Bool {
        let to = JobStoreRules.committedState(status)
        return try await Task { try await commit(key, taskID: taskID, to: to, now: now, how: how) }.value
    }

    private func commit(_ key: JobKey, taskID: String, to: JobState, now: Timestamp, how: String?) async throws -> Bool {
        try await durableWrite { db in
            let row = try Self.move(db, key, from: [.submitting, .inDoubt], to: to, now: now,
                                    cause: { JobStoreRules.commitCause($0, taskID: taskID, how: how) }) {
                JobStoreRules.commitTaskID(&$0, taskID: taskID, now: now)
            }
            guard row != nil else { return false }
            try db.run("UPDATE batches SET started_at = ? WHERE name = ? AND started_at IS NULL",
                           [now, key.batch])
            return true
        }
    }

    /// A create call the provider answered with a refusal (no task exists): `submitting` → `retrying`, where the
    /// scheduler's verdict (backoff, throttle hold, failure) finds it. A refusal that says nothing about the job
    /// (throttling, an account problem) is not an attempt: the attempt number `beginSubmission` took is given back.
    public func refuseSubmission(_ key: JobKey, countsAsAttempt: Bool, reason: String, now: Timestamp) async throws
        -> Bool {
        try await durableWrite { db in
            try Self.move(db, key, from: [.submitting], to: .retrying, now: now,
                          cause: { _ in JobStoreRules.refusalCause(reason) }) { row in
                JobStoreRules.refuseSubmission(&row, countsAsAttempt: countsAsAttempt, reason: reason)
            } != nil
        }
    }

    /// At daemon start, before anything is scheduled: every job still `submitting` was interrupted mid-create by a
    /// crash, so its outcome is unknown. Moves them all to `in_doubt` (cause `cause`) in one transaction and
    /// returns them.
    public func markInterruptedSubmissionsInDoubt(now: Timestamp, cause: String) async throws -> [JobRow] {
        try await write { db in
            try Self.fetchJobs(db, where: "state = ?", [JobState.submitting.rawValue]).compactMap { row in
                try Self.move(db, row.key, from: [.submitting], to: .inDoubt, now: now, cause: { _ in cause })
            }
        }
    }

    /// Records one provider exchange (`key` nil for account-wide calls such as list).
    public func recordAttempt(_ key: JobKey?, _ exchange: Exchange, now: Timestamp) async throws {
        try await write(touchesJobs: false) { db in
            try db.run("""
                INSERT INTO attempts (job_seq, kind, http_status, provider_code, request_id, duration_ms,
                  transport_error, at)
                VALUES ((SELECT seq FROM jobs WHERE batch = ? AND id = ?), ?, ?, ?, ?, ?, ?, ?)
                """, [key?.batch, key?.id, exchange.kind.rawValue, exchange.httpStatus,
                                 exchange.providerCode, exchange.requestID, exchange.durationMilliseconds,
                                 exchange.transportError, now])
        }
    }

    // MARK: internals

    /// The compare-and-set itself; returns the row as written, or nil when the job is not in `from`. Every caller
    /// goes through here, so no move the table (`JobTransitions`) forbids is ever written.
    static func move(_ db: Database, _ key: JobKey, from: Set<JobState>, to: JobState, now: Timestamp,
                     cause: (JobRow) -> String, update: (inout JobRow) -> Void = { _ in }) throws -> JobRow? {
        try JobStoreRules.checkLegal(from: from, to: to)
        guard var row = try fetchJob(db, key), from.contains(row.state) else { return nil }
        let prior = row.state
        let why = cause(row)
        row.enter(to, now: now)
        update(&row)
        try save(db, row, now: now)
        try db.run("INSERT INTO transitions (job_seq, from_state, to_state, cause, at) VALUES (?, ?, ?, ?, ?)",
                       [row.seq, prior.rawValue, to.rawValue, why, now])
        if to.isTerminal != prior.isTerminal { try refreshCompletion(db, batch: key.batch, now: now) }
        return row
    }

    /// Keeps `batches.completed_at` equal to "the moment the last job became terminal".
    static func refreshCompletion(_ db: Database, batch: String, now: Timestamp) throws {
        let terminal = JobState.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(separator: ",")
        let open = try Int.fetchOne(db, sql: """
            SELECT ifnull(sum(jobs), 0) FROM job_counts WHERE batch = ? AND state NOT IN (\(terminal))
            """, arguments: [batch]) ?? 0
        if open == 0 {
            try db.run("UPDATE batches SET completed_at = ? WHERE name = ? AND completed_at IS NULL",
                           [now, batch])
        } else {
            try db.run("UPDATE batches SET completed_at = NULL WHERE name = ?", [batch])
        }
    }

    /// Writes every mutable column of `row`; a new `taskID` is appended to the history and claimed for the job.
    static func save(_ db: Database, _ row: JobRow, now: Timestamp) throws {
        var row = row
        if let task = row.taskID, !row.taskIDs.contains(task) {
            if let owner = try Row.fetchOne(db, sql: """
                SELECT j.batch, j.id FROM task_owners t JOIN jobs j ON j.seq = t.job_seq
                WHERE t.task_id = ? AND t.job_seq != ?
                """, arguments: [task, row.seq]) {
                throw StoreError.taskOwnedByAnotherJob(taskID: task, owner: JobKey(batch: owner[0], id: owner[1]))
            }
            try db.run("INSERT OR IGNORE INTO task_owners (task_id, job_seq, at) VALUES (?, ?, ?)",
                           [task, row.seq, now])
            row.taskIDs.append(task)
        }
        try db.run("""
            UPDATE jobs SET state = ?, priority = ?, deadline = ?, hold_reason = ?, attempt = ?,
              request_fingerprint = ?, task_id = ?, task_ids = ?, video_url = ?, url_expires_at = ?,
              result_bytes = ?, output_path = ?, output_sha256 = ?, usage = ?, cost_usd = ?, reason = ?,
              next_attempt_at = ?, updated_at = ?, state_changed_at = ?, create_started_at = ?, submitted_at = ?,
              finished_at = ?
            WHERE seq = ?
            """, [
                row.state.rawValue, row.priority.rawValue, row.deadline, row.holdReason, row.attempt,
                row.requestFingerprint, row.taskID, try Codec.text(row.taskIDs), row.videoURL, row.urlExpiresAt,
                row.resultBytes, row.outputPath, row.outputSHA256, try row.usage.map(Codec.text), row.costUSD,
                row.reason, row.nextAttemptAt, row.updatedAt, row.stateChangedAt, row.createStartedAt,
                row.submittedAt, row.finishedAt, row.seq,
            ])
    }

    static let jobColumns = """
        seq, batch, id, spec, spec_digest, state, priority, deadline, hold_reason, attempt, request_fingerprint,
        task_id, task_ids, video_url, url_expires_at, result_bytes, output_path, output_sha256, usage, cost_usd,
        reason, next_attempt_at, created_at, updated_at, state_changed_at, create_started_at, submitted_at,
        finished_at
        """

    static func fetchJob(_ db: Database, _ key: JobKey) throws -> JobRow? {
        try fetchJobs(db, where: "batch = ? AND id = ?", [key.batch, key.id]).first
    }

    static func fetchJobs(_ db: Database, where condition: String, _ arguments: StatementArguments,
                          suffix: String = "ORDER BY seq") throws -> [JobRow] {
        let decoder = JSONDecoder()
        return try Row.fetchAll(db.cachedStatement(sql: "SELECT \(jobColumns) FROM jobs WHERE \(condition) \(suffix)"),
                                arguments: arguments).map { try decodeJob($0, decoder) }
    }

    static func decodeJob(_ r: Row, _ d: JSONDecoder) throws -> JobRow {
        let key = JobKey(batch: r["batch"], id: r["id"])
        let usage: String? = r["usage"]
        return JobRow(
            seq: r["seq"], key: key, spec: try Codec.decode(JobSpec.self, r["spec"], "\(key) spec", with: d),
            specDigest: r["spec_digest"], state: try decodeEnum(JobState.self, r["state"], "state"),
            priority: try decodeEnum(Priority.self, r["priority"], "priority"), deadline: r["deadline"],
            holdReason: r["hold_reason"], attempt: r["attempt"], requestFingerprint: r["request_fingerprint"],
            taskID: r["task_id"], taskIDs: try Codec.decode([String].self, r["task_ids"], "\(key) task_ids", with: d),
            videoURL: r["video_url"], urlExpiresAt: r["url_expires_at"], resultBytes: r["result_bytes"],
            outputPath: r["output_path"], outputSHA256: r["output_sha256"],
            usage: try usage.map { try Codec.decode(TaskUsage.self, $0, "\(key) usage", with: d) },
            costUSD: r["cost_usd"],
            reason: r["reason"], nextAttemptAt: r["next_attempt_at"], createdAt: r["created_at"],
            updatedAt: r["updated_at"], stateChangedAt: r["state_changed_at"],
            createStartedAt: r["create_started_at"], submittedAt: r["submitted_at"], finishedAt: r["finished_at"])
    }
}

// MARK: - Reads

extension Store {
    /// The job at `key`, or nil.
    public func job(_ key: JobKey) async throws -> JobRow? {
        try await read { db in try Self.fetchJob(db, key) }
    }

    /// The jobs at `keys` that exist, in the order given, in one read (one round trip for a burst of intake).
    public func jobs(_ keys: [JobKey]) async throws -> [JobRow] {
        try await read { db in try keys.compactMap { try Self.fetchJob(db, $0) } }
    }

    /// Every job in one of `states`, in intake order (e.g. `[.submitting]` at start, or all non-terminal jobs to
    /// rebuild the scheduler).
    public func jobs(in states: Set<JobState>) async throws -> [JobRow] {
        guard !states.isEmpty else { return [] }
        return try await read { db in
            try Self.fetchJobs(db, where: "state IN (\(databaseQuestionMarks(count: states.count)))",
                               StatementArguments(states.map(\.rawValue)))
        }
    }

    /// A listing page, ordered by `BATCH/ID`. Each page is an index range scan, fast at any depth.
    public func listJobs(_ query: JobQuery) async throws -> JobPage {
        let (condition, arguments) = Self.listFilter(query)
        return try await read { db in
            let rows = try Self.fetchJobs(db, where: condition, arguments + [query.limit + 1],
                                          suffix: "ORDER BY batch, id LIMIT ?")
            let (page, next) = query.page(rows, key: \.key)
            return JobPage(rows: page, nextCursor: next)
        }
    }

    /// The WHERE clause of a listing page. Each shape is one index range scan (`jobs_state_key` or the
    /// `(batch, id)` unique index): no scan from the start, no sort.
    static func listFilter(_ query: JobQuery) -> (String, StatementArguments) {
        var conditions = ["1"]
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let state = query.state { conditions.append("state = ?"); arguments.append(state.rawValue) }
        if let batch = query.batch {
            conditions.append("batch = ?")
            arguments.append(batch)
            if let after = query.after, !after.batch.utf8.lexicographicallyPrecedes(batch.utf8) {
                conditions.append(after.batch == batch ? "id > ?" : "0")
                if after.batch == batch { arguments.append(after.id) }
            }
        } else if let after = query.after {
            conditions.append("(batch, id) > (?, ?)")
            arguments += [after.batch, after.id]
        }
        return (conditions.joined(separator: " AND "), StatementArguments(arguments))
    }

    /// SQLite's plan for a statement (for tests that pin down index use).
    func queryPlan(_ sql: String, _ arguments: StatementArguments) async throws -> [String] {
        try await read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + sql, arguments: arguments).map { $0["detail"] }
        }
    }

    /// Job counts by (batch, model, resolution, state) with cost and estimated billed seconds; read from a table
    /// kept by triggers, so it costs a few rows, not a scan of every job.
    public func counts() async throws -> JobCounts {
        try await cachedRead(countsCache) { db in try Self.fetchCounts(db, batch: nil) }
    }

    static func fetchCounts(_ db: Database, batch: String?) throws -> JobCounts {
        let rows = try Row.fetchAll(db, sql: """
            SELECT * FROM job_counts WHERE jobs > 0 \(batch == nil ? "" : "AND batch = ?")
            """, arguments: batch.map { [$0] } ?? [])
        return JobCounts(groups: try rows.map { r in
            CountGroup(batch: r["batch"], model: try decodeEnum(RenderModel.self, r["model"], "model"),
                       resolution: try decodeEnum(Resolution.self, r["resolution"], "resolution"),
                       state: try decodeEnum(JobState.self, r["state"], "state"), jobs: r["jobs"],
                       costUSD: Double(r["cost_micros"] as Int64) / 1e6,
                       billedJobs: r["billed"],
                       estimatedBilledSeconds: Double(r["est_centis"] as Int64) / 100)
        })
    }

    /// The state changes of a job, oldest first.
    public func transitions(of key: JobKey) async throws -> [TransitionRow] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT t.from_state, t.to_state, t.cause, t.at FROM transitions t JOIN jobs j ON j.seq = t.job_seq
                WHERE j.batch = ? AND j.id = ? ORDER BY t.seq
                """, arguments: [key.batch, key.id]).map { r in
                TransitionRow(from: try (r["from_state"] as String?).map { try decodeEnum(JobState.self, $0, "from") },
                              to: try decodeEnum(JobState.self, r["to_state"], "to_state"), cause: r["cause"],
                              at: r["at"])
            }
        }
    }

    /// The provider exchanges of a job, oldest first.
    public func attempts(of key: JobKey) async throws -> [AttemptRow] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT a.* FROM attempts a JOIN jobs j ON j.seq = a.job_seq
                WHERE j.batch = ? AND j.id = ? ORDER BY a.seq
                """, arguments: [key.batch, key.id]).map { r in
                AttemptRow(key: key, exchange: Exchange(
                    kind: try decodeEnum(Exchange.Kind.self, r["kind"], "kind"), httpStatus: r["http_status"],
                    providerCode: r["provider_code"], requestID: r["request_id"],
                    durationMilliseconds: r["duration_ms"], transportError: r["transport_error"]), at: r["at"])
            }
        }
    }

    /// Provider exchanges by kind: of one job when `key` is given, else of all; only those at or after `since`.
    public func attemptCounts(of key: JobKey?, since: Timestamp?) async throws -> [Exchange.Kind: Int] {
        try await read { db in
            var sql = "SELECT kind, count(*) FROM attempts"
            var arguments: [(any DatabaseValueConvertible)?] = []
            var conditions: [String] = []
            if let key {
                conditions.append("job_seq = (SELECT seq FROM jobs WHERE batch = ? AND id = ?)")
                arguments += [key.batch, key.id]
            }
            if let since { conditions.append("at >= ?"); arguments.append(since) }
            if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
            return try Row.fetchAll(db, sql: sql + " GROUP BY kind", arguments: StatementArguments(arguments))
                .reduce(into: [:]) { out, r in out[try decodeEnum(Exchange.Kind.self, r[0], "kind")] = r[1] }
        }
    }

    /// Which of `taskIDs` already belong to a job (current or past task). Reconciliation must not adopt these.
    public func jobsOwningTasks(_ taskIDs: [String]) async throws -> [String: JobKey] {
        guard !taskIDs.isEmpty else { return [:] }
        return try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT t.task_id, j.batch, j.id FROM task_owners t JOIN jobs j ON j.seq = t.job_seq
                WHERE t.task_id IN (\(databaseQuestionMarks(count: taskIDs.count)))
                """, arguments: StatementArguments(taskIDs))
                .reduce(into: [:]) { $0[$1[0]] = JobKey(batch: $1[1], id: $1[2]) }
        }
    }
}
