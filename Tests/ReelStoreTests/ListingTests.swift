import Foundation
import ReelCore
import ReelStore
import ReelTestKit
import Testing

@Suite struct ListingTests {
    /// 10,000 jobs in two batches, every 50th held: every listing visits each matching job exactly once, in order.
    @Test func cursorPaginationVisitsEveryJobOnceInOrder() async throws {
        try await withStore { store, _ in
            let ids = (0..<5000).map { String(format: "job-%05d", $0) }
            for batch in ["zeta", "alpha"] {
                for chunk in stride(from: 0, to: ids.count, by: 1000) {
                    try await ingest(store, batch, Array(ids[chunk..<chunk + 1000]))
                }
            }
            var held: [JobKey] = []
            for batch in ["alpha", "zeta"] {
                for (n, id) in ids.enumerated() where n % 50 == 0 {
                    let k = JobKey(batch: batch, id: id)
                    try await store.transition(k, from: .queued, to: .held, cause: "test", now: t0)
                    held.append(k)
                }
            }
            func walk(state: JobState? = nil, batch: String? = nil, limit: Int) async throws -> [JobKey] {
                var seen: [JobKey] = []
                var cursor: String?
                repeat {
                    let page = try await store.listJobs(state: state, batch: batch, limit: limit, after: cursor)
                    #expect(page.rows.count <= limit)
                    seen += page.rows.map(\.key)
                    cursor = page.nextCursor
                } while cursor != nil
                return seen
            }
            let all = ["alpha", "zeta"].flatMap { b in ids.map { JobKey(batch: b, id: $0) } }
            #expect(try await walk(limit: 997) == all)
            #expect(try await walk(state: .held, limit: 37) == held)
            #expect(try await walk(batch: "zeta", limit: 1000) == ids.map { JobKey(batch: "zeta", id: $0) })
            #expect(try await walk(state: .held, batch: "alpha", limit: 13) == held.filter { $0.batch == "alpha" })
            #expect(try await walk(state: .succeeded, limit: 10).isEmpty)
            let counts = try await store.counts()
            #expect(counts.total == 10_000)
            #expect(counts.byState == [.queued: 10_000 - held.count, .held: held.count])
        }
    }

    /// Summaries (what `GET /v1/jobs` reads, from columns) agree field for field with the full rows' `summary`,
    /// page for page, cursor for cursor.
    @Test func summariesAgreeWithFullRows() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", (0..<250).map { String(format: "s-%03d", $0) })
            try await store.transition(key("b/s-007"), from: .queued, to: .held, cause: "test", now: t0)
            var cursor: String?
            var pages = 0
            repeat {
                let full = try await store.listJobs(limit: 100, after: cursor)
                let summaries = try await store.listJobSummaries(limit: 100, after: cursor)
                #expect(summaries.rows == full.rows.map(\.summary))
                #expect(summaries.nextCursor == full.nextCursor)
                cursor = full.nextCursor
                pages += 1
            } while cursor != nil
            #expect(pages == 3)
            #expect(try await store.listJobSummaries(state: .held).rows.map(\.key) == [key("b/s-007")])
        }
    }

    /// The listing's `aspect_ratio` column agrees with each spec, for jobs ingested now and for jobs of a database
    /// written before the column existed (the migration fills it from the spec).
    @Test func aspectRatioColumnMatchesTheSpecBeforeAndAfterItsMigration() async throws {
        try await withDatabase { path in
            let ratios = AspectRatio.allCases
            func check(_ store: Store, _ batch: String) async throws {
                let summaries = try await store.listJobSummaries(batch: batch, limit: 1000).rows
                #expect(summaries.map(\.aspectRatio) == ratios)
                #expect(summaries == (try await store.listJobs(batch: batch, limit: 1000)).rows.map(\.summary))
            }
            func ingestRatios(_ store: Store, _ batch: String) async throws {
                let specs = ratios.enumerated().map { n, ratio in
                    var s = spec(batch, "j\(n)")
                    s.aspectRatio = ratio
                    return s
                }
                _ = try await store.ingest(manifestSHA256: batch, fileName: "\(batch).json", batch: batch,
                                           settings: BatchSettings(), jobs: specs, now: t0)
            }
            do {
                let store = try Store(path: path)
                try await ingestRatios(store, "old")
                try await check(store, "old")
            }
            // Take the file back to v2: no listing index, no column, v3 not recorded.
            let downgrade = """
                DROP INDEX jobs_listing; ALTER TABLE jobs DROP COLUMN aspect_ratio;
                DELETE FROM grdb_migrations WHERE identifier = 'v3-listing-index';
                """
            let run = try await Child.run("/usr/bin/sqlite3", [path, downgrade])
            #expect(run.status == 0, "\(run)")
            let store = try Store(path: path)
            try await check(store, "old")
            try await ingestRatios(store, "new")
            try await check(store, "new")
        }
    }

    @Test func aCursorSurvivesChangesAndBadCursorsAreRefused() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a", "c", "e"])
            let first = try await store.listJobs(limit: 1)
            #expect(first.rows.map(\.key) == [key("b/a")])
            try await ingest(store, "b", ["b", "d"])
            let rest = try await store.listJobs(limit: 10, after: first.nextCursor)
            #expect(rest.rows.map(\.key.id) == ["b", "c", "d", "e"])
            #expect(rest.nextCursor == nil)
            await #expect(throws: StoreError.self) { try await store.listJobs(after: "not a cursor!") }
        }
    }

    /// `counts()` is answered from a cache while nothing is written; every write, of any kind, ends that.
    @Test func cachedCountsFollowEveryWrite() async throws {
        try await withStore { store, _ in
            #expect(try await store.counts().total == 0)
            let before = store.writeGeneration
            #expect(try await store.counts().total == 0)
            #expect(store.writeGeneration == before, "a read is not a write")
            try await ingest(store, "one", ["a", "b"])                          // durable write
            #expect(try await store.counts().byState == [.queued: 2])
            #expect(store.writeGeneration > before)
            _ = try await store.beginSubmission(key("one/a"), fingerprint: "f", now: t0)
            #expect(try await store.counts().byState == [.queued: 1, .submitting: 1])
            try await store.commitTaskID(key("one/a"), taskID: "t", status: .running, now: t0)
            #expect(try await store.counts().byState == [.queued: 1, .running: 1])
            try await store.update(key("one/a"), now: t0) { $0.costUSD = 0.5 }  // plain write
            #expect(try await store.counts().costUSD == 0.5)
            // Writes that touch no job leave the cached answers valid.
            let settled = store.writeGeneration
            try await store.recordAttempt(key("one/a"), Exchange(kind: .query, httpStatus: 200, providerCode: nil,
                                                                 requestID: "r", durationMilliseconds: 3,
                                                                 transportError: nil), now: t0)
            try await store.recordRunTime(RunTimeClass(model: .r2vFlash, resolution: .p720, durationSeconds: 5),
                                          seconds: 90, now: t0)
            #expect(store.writeGeneration == settled)
            #expect(try await store.counts().costUSD == 0.5)
        }
    }

    @Test func countsByStateBatchAndModelWithCost() async throws {
        try await withStore { store, _ in
            try await ingest(store, "one", ["a", "b"], model: .r2v)
            try await ingest(store, "two", ["a"])
            _ = try await store.beginSubmission(key("one/a"), fingerprint: "f", now: t0)
            try await store.commitTaskID(key("one/a"), taskID: "t", status: .running, now: t0)
            try await store.update(key("one/a"), now: t0) { $0.costUSD = 0.75 }
            let counts = try await store.counts()
            #expect(counts.byState == [.queued: 2, .running: 1])
            #expect(counts.byBatch == ["one": [.queued: 1, .running: 1], "two": [.queued: 1]])
            #expect(counts.byModel == [.r2v: [.queued: 1, .running: 1], .r2vFlash: [.queued: 1]])
            #expect(counts.costUSD == 0.75)
            let one = try #require(try await store.batch("one"))
            #expect(one.counts.byState == [.queued: 1, .running: 1])
            #expect(one.counts.costUSD == 0.75)
            var pricing = PricingTable()
            #expect(one.estimatedRemainingUSD(pricing) == nil)
            pricing.set(.r2v, .p720, 0.10)
            // Two unfinished 5 s jobs with one image reference: 10 billed seconds.
            #expect(abs((one.estimatedRemainingUSD(pricing) ?? 0) - 1.0) < 1e-9)
            #expect(try await store.batches().map(\.name) == ["one", "two"])
        }
    }

    @Test func batchSettingsComeFromManifestsAndOperators() async throws {
        try await withStore { store, _ in
            _ = try await store.ingest(manifestSHA256: "1", fileName: "1.json", batch: "b",
                                       settings: BatchSettings(priority: .bulk, deadline: t0 + 99, budgetUSD: 40),
                                       jobs: [spec("b", "a")], now: t0)
            _ = try await store.ingest(manifestSHA256: "2", fileName: "2.json", batch: "b",
                                       settings: BatchSettings(priority: .rush), jobs: [spec("b", "c")], now: t0)
            #expect(try await store.batch("b")?.settings == BatchSettings(priority: .rush, deadline: t0 + 99,
                                                                          budgetUSD: 40))
            #expect(try await store.updateBatch("b") { $0.paused = true })
            #expect(try await store.batch("b")?.settings.paused == true)
            #expect(!(try await store.updateBatch("nope") { $0.paused = true }))
        }
    }
}

@Suite struct MaintenanceTests {
    @Test func uploadsAreReusedUntilTheyExpire() async throws {
        try await withStore { store, _ in
            try await store.saveUpload(sha256: "abc", model: .r2v, ossURL: "oss://one", uploadedAt: t0,
                                       expiresAt: t0 + 172_800)
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2v, validAt: t0 + 100) == "oss://one")
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2vFlash, validAt: t0 + 100) == nil)
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2v, validAt: t0 + 172_800) == nil)
            try await store.saveUpload(sha256: "abc", model: .r2v, ossURL: "oss://two", uploadedAt: t0 + 172_800,
                                       expiresAt: t0 + 345_600)
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2v, validAt: t0 + 172_900) == "oss://two")
        }
    }

    @Test func settingsRoundTrip() async throws {
        try await withStore { store, _ in
            #expect(try await store.setting("limits.concurrency") == nil)
            try await store.setSetting("limits.concurrency", to: "3")
            #expect(try await store.setting("limits.concurrency") == "3")
            try await store.setSetting("limits.concurrency", to: nil)
            #expect(try await store.setting("limits.concurrency") == nil)
        }
    }

    @Test func runTimeSamplesNewestFirstPerClass() async throws {
        try await withStore { store, _ in
            let fast = RunTimeClass(model: .r2vFlash, resolution: .p720, durationSeconds: 5)
            let slow = RunTimeClass(model: .r2v, resolution: .p1080, durationSeconds: 10)
            for (n, s) in [30.0, 31, 32].enumerated() {
                try await store.recordRunTime(fast, seconds: s, now: t0 + Double(n))
            }
            try await store.recordRunTime(slow, seconds: 200, now: t0)
            #expect(try await store.runTimeSamples() == [fast: [32, 31, 30], slow: [200]])
            #expect(try await store.runTimeSamples(limitPerClass: 2)[fast] == [32, 31])
        }
    }

    @Test func pruneRemovesOldFinishedJobsAndEmptyBatches() async throws {
        try await withStore { store, _ in
            try await ingest(store, "old", ["a", "b"], sha: "old-manifest")
            try await ingest(store, "mixed", ["done", "live"])
            for k in ["old/a", "old/b", "mixed/done"] {
                try await store.transition(key(k), from: .queued, to: .cancelled, cause: "test", now: t0 + 10)
                try await store.recordAttempt(key(k), Exchange(kind: .cancel, httpStatus: 200, durationMilliseconds: 1),
                                              now: t0 + 10)
            }
            try await store.recordAttempt(nil, Exchange(kind: .list, httpStatus: 200, durationMilliseconds: 1),
                                          now: t0 + 10)
            try await store.saveUpload(sha256: "x", model: .r2v, ossURL: "oss://x", uploadedAt: t0, expiresAt: t0 + 10)
            #expect(try await store.prune(finishedBefore: t0 + 10).jobs == 0)
            let report = try await store.prune(finishedBefore: t0 + 11)
            #expect(report.jobs == 3)
            #expect(report.batches == 1)
            #expect(report.orphanAttempts == 1)
            #expect(report.uploads == 1)
            #expect(try await store.job(key("old/a")) == nil)
            #expect(try await store.transitions(of: key("old/a")).isEmpty)
            #expect(try await store.attemptCounts() == [:])
            #expect(try await store.batch("old") == nil)
            #expect(try await store.job(key("mixed/live"))?.state == .queued)
            #expect(try await store.counts().byState == [.queued: 1])
            // The pruned batch's manifest may be submitted again.
            #expect(try await ingest(store, "old", ["a", "b"], sha: "old-manifest")
                    == .accepted(added: [key("old/a"), key("old/b")], unchanged: []))
        }
    }

    @Test func pruneGivesTheSpaceBackToTheFileSystem() async throws {
        try await withStore { store, _ in
            let long = String(repeating: "character1 walks through a long sunlit corridor. ", count: 28)
            let specs = (0..<300).map { spec("big", "j\($0)", prompt: long) }
            _ = try await store.ingest(manifestSHA256: "big", fileName: "big.json", batch: "big",
                                       settings: BatchSettings(), jobs: specs, now: t0)
            for s in specs { try await store.transition(s.key, from: .queued, to: .cancelled, cause: "x", now: t0) }
            let before = try await store.storageInfo().pageCount
            let report = try await store.prune(finishedBefore: t0 + 1)
            let after = try await store.storageInfo()
            #expect(report.jobs == 300)
            #expect(report.freedPages > 100)
            #expect(after.freePages == 0)
            #expect(after.pageCount <= before - report.freedPages)
        }
    }

    @Test func concurrentWritersFromTwoStoresNeverLoseAnUpdate() async throws {
        try await withDatabase { path in
            let stores = [try Store(path: path), try Store(path: path)]
            try await ingest(stores[0], "b", ["counter"])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<4 {
                    group.addTask {
                        for _ in 0..<100 {
                            try await stores[writer % 2].update(key("b/counter"), now: t0) {
                                $0.resultBytes = ($0.resultBytes ?? 0) + 1
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await stores[1].job(key("b/counter"))?.resultBytes == 400)
        }
    }
}
