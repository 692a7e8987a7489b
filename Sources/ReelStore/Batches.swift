import Foundation
import GRDB
import ReelCore

// MARK: - Intake

/// One manifest's jobs for `JobStore.ingest(_:now:)`: the arguments of `ingest(manifestSHA256:fileName:…)`.
public struct ManifestIngest: Sendable {
    public var manifestSHA256: String
    public var fileName: String
    public var batch: String
    public var settings: BatchSettings
    public var jobs: [JobSpec]

    public init(manifestSHA256: String, fileName: String, batch: String, settings: BatchSettings, jobs: [JobSpec]) {
        self.manifestSHA256 = manifestSHA256
        self.fileName = fileName
        self.batch = batch
        self.settings = settings
        self.jobs = jobs
    }
}

extension Store {
    /// `ingest` for several manifests in one transaction (one commit for a burst of spool files), fsynced before it
    /// returns (`synchronous = FULL`): the caller may delete the source files at once. Each manifest is
    /// decided on its own, exactly as if ingested alone in this order; a manifest that breaks the batch/unique-key
    /// rules gets its own `.failure(StoreError.invalidIngest)` and the others go on. A database error throws and
    /// commits nothing.
    public func ingest(_ manifests: [ManifestIngest], now: Timestamp) async throws -> [Result<IngestOutcome, any Error>] {
        let prepared = manifests.map { m in
            Result { () throws -> (ManifestIngest, [(JobSpec, String, String)]) in
                try JobStoreRules.validate(m)
                return (m, m.jobs.map { spec in
                    let data = Codec.spec(spec)
                    return (spec, Codec.digest(data), String(decoding: data, as: UTF8.self))
                })
            }
        }
        // Durable (synchronous = FULL): intake unlinks the files right after this returns, so after a power loss
        // the jobs must still be there (at NORMAL the WAL tail could be lost with the files already gone).
        return try await durableWrite { db in
            var batches: [String: BatchFold] = [:]
            var outcomes: [Result<IngestOutcome, any Error>] = []
            outcomes.reserveCapacity(prepared.count)
            for item in prepared {
                switch item {
                case .failure(let error): outcomes.append(.failure(error))
                case .success(let (m, rows)): outcomes.append(.success(try Self.ingest(db, m, rows, now: now, batches: &batches)))
                }
            }
            for (name, fold) in batches where fold.manifests > 0 {
                try db.run("""
                    UPDATE batches SET priority = ifnull(?, priority), deadline = ifnull(?, deadline),
                      budget_usd = ifnull(?, budget_usd), manifest_count = manifest_count + ?,
                      completed_at = CASE WHEN ? THEN NULL ELSE completed_at END
                    WHERE name = ?
                    """, [fold.priority?.rawValue, fold.deadline, fold.budgetUSD, fold.manifests, fold.addedJobs, name])
            }
            return outcomes
        }
    }

    /// What later manifests of one transaction did to a batch already upserted in it, applied with one UPDATE at
    /// the end: the same row as their upserts one by one (priority: the last; deadline and budget: the last given;
    /// one more manifest each; `completed_at` cleared if any added jobs). Nothing in between reads `batches`.
    struct BatchFold {
        var priority: Priority?
        var deadline: Timestamp?
        var budgetUSD: Double?
        var manifests = 0
        var addedJobs = false

        mutating func absorb(_ settings: BatchSettings, added: Bool) {
            priority = settings.priority
            deadline = settings.deadline ?? deadline
            budgetUSD = settings.budgetUSD ?? budgetUSD
            manifests += 1
            addedJobs = addedJobs || added
        }
    }

    private static func ingest(_ db: Database, _ m: ManifestIngest, _ rows: [(JobSpec, String, String)],
                               now: Timestamp, batches: inout [String: BatchFold]) throws -> IngestOutcome {
        let known = try db.cachedStatement(sql: "SELECT file_name, ingested_at FROM manifests WHERE sha256 = ?")
        if let seen = try Row.fetchOne(known, arguments: [m.manifestSHA256]) {
            return .alreadyIngested(fileName: seen[0], at: seen[1])
        }
        var added: [(JobSpec, String, String)] = []
        var unchanged: [JobKey] = []
        var conflicts: [IngestConflict] = []
        for (spec, digest, text) in rows {
            let lookup = try db.cachedStatement(
                sql: "SELECT spec_digest, state FROM jobs WHERE batch = ? AND id = ?")
            guard let existing = try Row.fetchOne(lookup, arguments: [m.batch, spec.key.id]) else {
                added.append((spec, digest, text))
                continue
            }
            if existing[0] as String == digest {
                unchanged.append(spec.key)
            } else {
                let state = try decodeEnum(JobState.self, existing[1], "state")
                conflicts.append(IngestConflict(key: spec.key, existingState: state,
                                                message: JobStoreRules.conflictMessage(spec.key, state)))
            }
        }
        guard conflicts.isEmpty else { return .rejected(conflicts) }
        // The first manifest of a batch in this transaction upserts it; later ones fold into one UPDATE.
        let upserted = batches[m.batch] != nil
        if upserted {
            batches[m.batch]!.absorb(m.settings, added: !added.isEmpty)
        } else {
            try db.run("""
                INSERT INTO batches (name, priority, deadline, budget_usd, created_at, manifest_count)
                VALUES (?, ?, ?, ?, ?, 1)
                ON CONFLICT (name) DO UPDATE SET priority = excluded.priority,
                  deadline = ifnull(excluded.deadline, deadline), budget_usd = ifnull(excluded.budget_usd, budget_usd),
                  manifest_count = manifest_count + 1
                """, [m.batch, m.settings.priority.rawValue, m.settings.deadline, m.settings.budgetUSD, now])
            batches[m.batch] = BatchFold()
        }
        for (spec, digest, text) in added {
            try db.run("""
                INSERT INTO jobs (batch, id, spec, spec_digest, model, resolution, aspect_ratio, duration_s,
                  est_billed_seconds, priority, deadline, state, created_at, updated_at, state_changed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)
                """, [m.batch, spec.key.id, text, digest, spec.model.rawValue, spec.resolution.rawValue,
                                 spec.aspectRatio.rawValue, spec.durationSeconds, spec.estimatedBilledSeconds,
                                 spec.priority.rawValue, spec.deadline, now, now, now])
            try db.run("""
                INSERT INTO transitions (job_seq, from_state, to_state, cause, at) VALUES (?, NULL, 'queued', ?, ?)
                """, [db.lastInsertedRowID, "intake \(m.fileName)", now])
        }
        if !added.isEmpty, !upserted {
            try db.run("UPDATE batches SET completed_at = NULL WHERE name = ?", [m.batch])
        }
        try db.run("""
            INSERT INTO manifests (sha256, file_name, batch, job_count, added_count, ingested_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """, [m.manifestSHA256, m.fileName, m.batch, m.jobs.count, added.count, now])
        return .accepted(added: added.map(\.0.key), unchanged: unchanged)
    }
}

// MARK: - Batches

extension Store {
    /// Every batch with its counts, oldest first.
    public func batches() async throws -> [BatchSummary] {
        try await read { db in
            let counts = Dictionary(grouping: try Self.fetchCounts(db, batch: nil).groups) { $0.batch }
            return try Row.fetchAll(db, sql: "SELECT * FROM batches ORDER BY created_at, name").map { r in
                try Self.decodeBatch(r, JobCounts(groups: counts[r["name"] as String] ?? []))
            }
        }
    }

    /// One batch with its counts, cost so far and times; nil when unknown.
    public func batch(_ name: String) async throws -> BatchSummary? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE name = ?", arguments: [name]).map { r in
                try Self.decodeBatch(r, try Self.fetchCounts(db, batch: name))
            }
        }
    }

    /// Changes a batch's priority, deadline, budget or paused flag. Returns false when the batch is unknown.
    public func updateBatch(_ name: String, _ body: @escaping @Sendable (inout BatchSettings) -> Void)
        async throws -> Bool {
        try await write { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT * FROM batches WHERE name = ?", arguments: [name]) else {
                return false
            }
            var s = try Self.decodeBatch(r, JobCounts(groups: [])).settings
            body(&s)
            try db.run("UPDATE batches SET priority = ?, deadline = ?, budget_usd = ?, paused = ? WHERE name = ?",
                           [s.priority.rawValue, s.deadline, s.budgetUSD, s.paused, name])
            return true
        }
    }

    static func decodeBatch(_ r: Row, _ counts: JobCounts) throws -> BatchSummary {
        BatchSummary(
            name: r["name"],
            settings: BatchSettings(priority: try decodeEnum(Priority.self, r["priority"], "batch priority"),
                                    deadline: r["deadline"], budgetUSD: r["budget_usd"], paused: r["paused"]),
            createdAt: r["created_at"], startedAt: r["started_at"], completedAt: r["completed_at"],
            manifestCount: r["manifest_count"], counts: counts)
    }
}

// MARK: - Uploads, settings, run times

extension Store {
    /// The `oss://` URL of a previous upload of this file content for `model`, if it is still valid at `validAt`
    /// (pass `now` plus the time the URL must still live, e.g. until the create call is made).
    public func cachedUpload(sha256: String, model: RenderModel, validAt: Timestamp) async throws -> String? {
        try await read { db in
            try String.fetchOne(db, sql: """
                SELECT oss_url FROM uploads WHERE sha256 = ? AND model = ? AND expires_at > ?
                """,
                                arguments: [sha256, model.rawValue, validAt])
        }
    }

    /// Remembers an upload (replacing an older one of the same content and model).
    public func saveUpload(sha256: String, model: RenderModel, ossURL: String, uploadedAt: Timestamp,
                           expiresAt: Timestamp) async throws {
        try await write(touchesJobs: false) { db in
            try db.run("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?, ?)",
                           [sha256, model.rawValue, ossURL, uploadedAt, expiresAt])
        }
    }

    /// A stored setting (e.g. a runtime override), or nil.
    public func setting(_ key: String) async throws -> String? {
        try await read { db in
            try String.fetchOne(db, sql: "SELECT value FROM settings WHERE key = ?", arguments: [key])
        }
    }

    /// Stores `value` under `key`; nil removes it.
    public func setSetting(_ key: String, to value: String?) async throws {
        try await write { db in
            if let value {
                try db.run("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])
            } else {
                try db.run("DELETE FROM settings WHERE key = ?", [key])
            }
        }
    }

    /// Records how long the provider took to render one task (e.g. `end_time - scheduled_time`).
    public func recordRunTime(_ runClass: RunTimeClass, seconds: Double, now: Timestamp) async throws {
        try await write(touchesJobs: false) { db in
            try db.run("INSERT INTO runtime_samples (model, resolution, duration_s, seconds, at) VALUES (?,?,?,?,?)",
                           [runClass.model.rawValue, runClass.resolution.rawValue, runClass.durationSeconds,
                                       seconds, now])
        }
    }

    /// The newest `limitPerClass` run times of every class, newest first: what the scheduler learns from at start.
    public func runTimeSamples(limitPerClass: Int) async throws -> [RunTimeClass: [Double]] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT model, resolution, duration_s, seconds FROM (
                  SELECT *, row_number() OVER \(Self.newestFirstPerClass) AS n
                  FROM runtime_samples) WHERE n <= ? ORDER BY n
                """, arguments: [limitPerClass]).reduce(into: [:]) { out, r in
                let c = RunTimeClass(model: try decodeEnum(RenderModel.self, r[0], "model"),
                                     resolution: try decodeEnum(Resolution.self, r[1], "resolution"),
                                     durationSeconds: r[2])
                out[c, default: []].append(r[3])
            }
        }
    }
}

// MARK: - Retention

extension Store {
    static let newestFirstPerClass = "(PARTITION BY model, resolution, duration_s ORDER BY at DESC, seq DESC)"

    /// Deletes terminal jobs that finished before `cutoff` with their transitions, attempts and task ownership;
    /// batches left empty (and their manifest records, so the same file may be submitted again); account-wide
    /// attempts older than `cutoff`; uploads expired before `cutoff`; run-time samples beyond the newest
    /// `JobStoreRules.runTimeSamplesKept` per class. Then `PRAGMA incremental_vacuum` returns the freed pages to
    /// the file system (the file is created with `auto_vacuum = INCREMENTAL`; a full `VACUUM`, which blocks
    /// writers and needs twice the space, is never run automatically).
    public func prune(finishedBefore cutoff: Timestamp) async throws -> PruneReport {
        var report = try await write { db in
            let terminal = JobState.allCases.filter(\.isTerminal).map { "'\($0.rawValue)'" }.joined(separator: ",")
            try db.run("DELETE FROM jobs WHERE finished_at < ? AND +state IN (\(terminal))", [cutoff])
            let jobs = db.changesCount
            try db.run("DELETE FROM attempts WHERE job_seq IS NULL AND at < ?", [cutoff])
            let orphans = db.changesCount
            try db.run("DELETE FROM uploads WHERE expires_at < ?", [cutoff])
            let uploads = db.changesCount
            try db.run("DELETE FROM job_counts WHERE jobs = 0")
            try db.run("DELETE FROM batches WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch = batches.name)")
            let batches = db.changesCount
            try db.run("DELETE FROM manifests WHERE batch NOT IN (SELECT name FROM batches)")
            try db.run("""
                DELETE FROM runtime_samples WHERE seq IN (SELECT seq FROM (
                  SELECT seq, row_number() OVER \(Self.newestFirstPerClass) AS n
                  FROM runtime_samples) WHERE n > ?)
                """, [JobStoreRules.runTimeSamplesKept])
            return PruneReport(jobs: jobs, batches: batches, orphanAttempts: orphans, uploads: uploads, freedPages: 0)
        }
        report.freedPages = try await pool.writeWithoutTransaction { db in
            let before = try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
            try db.run("PRAGMA incremental_vacuum")
            return before - (try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0)
        }
        return report
    }
}
