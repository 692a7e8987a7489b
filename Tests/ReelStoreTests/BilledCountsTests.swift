import Foundation
import ReelCore
@testable import ReelStore
import ReelTestKit
import Testing

/// Money billed but not delivered: `job_counts.billed` (migration v2) counts the jobs with a recorded cost, and
/// `JobCounts.billedNotDelivered` sums those that ended without a file.
@Suite struct BilledCountsTests {
    /// Drives `b/<id>` from queued to `downloading` with a recorded cost, as the engine does on SUCCEEDED.
    static func billed(_ store: Store, _ id: String, cost: Double) async throws {
        let k = key("b/\(id)")
        _ = try await store.beginSubmission(k, fingerprint: "f-\(id)", now: t0)
        try await store.commitTaskID(k, taskID: "t-\(id)", status: .running, now: t0)
        #expect(try await store.transition(k, from: .running, to: .downloading, cause: "provider: SUCCEEDED", now: t0) {
            $0.costUSD = cost
        })
    }

    /// Same count, and the same money to a millionth (the groups' sums are added as doubles).
    static func same(_ a: (jobs: Int, usd: Double), _ b: (Int, Double)) -> Bool { a.jobs == b.0 && same(a.usd, b.1) }
    static func same(_ a: Double, _ b: Double) -> Bool { abs(a - b) < 1e-9 }

    @Test func billedJobsThatEndWithoutAFileAreCountedApart() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["good", "qc", "lost", "never"])
            try await Self.billed(store, "good", cost: 0.1)
            try await Self.billed(store, "qc", cost: 0.25)
            try await Self.billed(store, "lost", cost: 0.5)
            #expect(try await Self.same(store.counts().costUSD, 0.85))
            #expect(try await Self.same(store.counts().billedNotDelivered, (0, 0)), "downloading is not an end")

            #expect(try await store.transition(key("b/good"), from: .downloading, to: .verifying, cause: "x", now: t0))
            #expect(try await store.transition(key("b/good"), from: .verifying, to: .succeeded, cause: "x", now: t0))
            #expect(try await store.transition(key("b/qc"), from: .downloading, to: .failed, cause: "QC", now: t0))
            #expect(try await store.transition(key("b/lost"), from: .downloading, to: .expired, cause: "URL", now: t0))
            // Failed at the provider: never billed, no cost.
            _ = try await store.beginSubmission(key("b/never"), fingerprint: "f", now: t0)
            try await store.commitTaskID(key("b/never"), taskID: "t-never", status: .running, now: t0)
            #expect(try await store.transition(key("b/never"), from: .running, to: .failed, cause: "FAILED", now: t0))

            let counts = try await store.counts()
            #expect(Self.same(counts.costUSD, 0.85))
            #expect(Self.same(counts.billedNotDelivered, (2, 0.75)))
            let batch = try #require(try await store.batch("b"))
            #expect(Self.same(batch.counts.billedNotDelivered, (2, 0.75)))
            #expect(batch.counts.byState == [.succeeded: 1, .failed: 2, .expired: 1])

            // An operator retry of the QC failure keeps its cost (it was billed) but it is no longer an end.
            #expect(try await store.transition(key("b/qc"), from: .failed, to: .queued, cause: "operator retry", now: t0))
            #expect(try await Self.same(store.counts().billedNotDelivered, (1, 0.5)))
            #expect(try await Self.same(store.counts().costUSD, 0.85))
        }
    }

    /// A database written before `billed` existed: the migration counts the jobs that already carry a cost.
    @Test func migrationCountsExistingBilledJobs() async throws {
        try await withDatabase { path in
            do {
                let store = try Store(path: path)
                try await ingest(store, "b", ["qc", "lost", "none"])
                try await Self.billed(store, "qc", cost: 0.25)
                try await Self.billed(store, "lost", cost: 0.5)
                #expect(try await store.transition(key("b/qc"), from: .downloading, to: .failed, cause: "QC", now: t0))
                #expect(try await store.transition(key("b/lost"), from: .downloading, to: .expired, cause: "URL", now: t0))
            }
            // Take the file back to v1: v1's triggers, no `billed` column, v2 not recorded.
            let v1Triggers = String(Schema.v1[Schema.v1.range(of: "CREATE TRIGGER jobs_count_insert")!.lowerBound...])
            let downgrade = """
                DROP TRIGGER jobs_count_insert; DROP TRIGGER jobs_count_delete; DROP TRIGGER jobs_count_update;
                ALTER TABLE job_counts DROP COLUMN billed;
                DELETE FROM grdb_migrations WHERE identifier = 'v2-billed-counts';
                \(v1Triggers)
                """
            let run = try await Child.run("/usr/bin/sqlite3", [path, downgrade])
            #expect(run.status == 0, "\(run)")
            let store = try Store(path: path)
            // v2 is recorded again after v3, which stayed applied.
            #expect(try await store.storageInfo().migrations.sorted() == ["v1-schema", "v2-billed-counts", "v3-listing-index"])
            #expect(try await Self.same(store.counts().billedNotDelivered, (2, 0.75)))
        }
    }
}
