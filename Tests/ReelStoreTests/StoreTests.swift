import Foundation
import ReelCore
import ReelStore
import Testing

@Suite struct SchemaTests {
    @Test func migratesAnEmptyFileIntoWALWithThePragmasSet() async throws {
        try await withDatabase { path in
            let info = try await Store(path: path).storageInfo()
            #expect(info.journalMode == "wal")
            #expect(info.synchronous == 1)
            #expect(info.autoVacuum == 2)
            #expect(info.foreignKeys)
            #expect(info.busyTimeoutMilliseconds == 5000)
            #expect(info.migrations == ["v1-schema", "v2-billed-counts", "v3-listing-index"])
            // Reopening an up-to-date file applies nothing new and keeps its data.
            let first = try Store(path: path)
            try await ingest(first, "b", ["j1"])
            let again = try Store(path: path)
            #expect(try await again.storageInfo().migrations == ["v1-schema", "v2-billed-counts", "v3-listing-index"])
            #expect(try await again.job(key("b/j1"))?.state == .queued)
        }
    }

    @Test func specDigestIsStableAndContentSensitive() throws {
        let a = try Store.specDigest(spec("b", "j"))
        #expect(a == (try Store.specDigest(spec("b", "j"))))
        #expect(a.count == 64)
        #expect(a != (try Store.specDigest(spec("b", "j", prompt: "character1 runs"))))
    }
}

@Suite struct IntakeTests {
    @Test func newJobsAreQueuedWithAnIntakeTransition() async throws {
        try await withStore { store, _ in
            let outcome = try await ingest(store, "spring", ["a", "b"])
            #expect(outcome == .accepted(added: [key("spring/a"), key("spring/b")], unchanged: []))
            let row = try #require(try await store.job(key("spring/a")))
            #expect(row.state == .queued)
            #expect(row.spec == spec("spring", "a"))
            #expect(row.attempt == 0)
            let history = try await store.transitions(of: key("spring/a"))
            #expect(history.count == 1)
            #expect(history.first?.from == nil && history.first?.to == .queued)
            #expect(history.first?.cause == "intake spring.json" && history.first?.at == t0)
            #expect(try await store.batch("spring")?.manifestCount == 1)
        }
    }

    /// Several manifests of one batch in one transaction (intake's chunks) leave the batch exactly as ingesting
    /// them one by one would: the first upserts, the rest are folded into one UPDATE.
    @Test func manifestsOfOneBatchInOneTransactionFoldLikeOneByOne() async throws {
        let d1 = t0 + 86_400, d2 = t0 + 2 * 86_400
        func manifests(_ round: Int) -> [ManifestIngest] {
            [("rush", nil, 50.0), ("bulk", d1, nil), ("normal", nil, nil), ("bulk", d2, 80.0), ("rush", nil, nil)]
                .enumerated().map { i, s in
                    ManifestIngest(manifestSHA256: "m\(round)-\(i)", fileName: "m\(i).json", batch: "fold",
                                   settings: BatchSettings(priority: Priority(rawValue: s.0)!, deadline: s.1, budgetUSD: s.2),
                                   jobs: i == 2 ? [] : [spec("fold", "r\(round)-j\(i)")])
                }
        }
        func row(_ store: Store) async throws -> BatchSummary { try #require(try await store.batch("fold")) }
        var oneByOne: BatchSummary?
        try await withStore { store, _ in
            try await ingest(store, "fold", ["first"])
            #expect(try await store.transition(key("fold/first"), from: .queued, to: .cancelled, cause: "t", now: t0 + 1))
            #expect(try await row(store).completedAt != nil)
            for m in manifests(1) { _ = try await store.ingest([m], now: t0 + 2) }
            oneByOne = try await row(store)
        }
        try await withStore { store, _ in
            try await ingest(store, "fold", ["first"])
            #expect(try await store.transition(key("fold/first"), from: .queued, to: .cancelled, cause: "t", now: t0 + 1))
            let outcomes = try await store.ingest(manifests(1), now: t0 + 2)
            #expect(outcomes.allSatisfy { (try? $0.get()) != nil })
            let together = try await row(store)
            #expect(together == oneByOne)
            #expect(together.settings == BatchSettings(priority: .rush, deadline: d2, budgetUSD: 80))
            #expect(together.manifestCount == 6)
            #expect(together.completedAt == nil, "new jobs reopen the batch")
        }
    }

    @Test func theSameManifestTwiceIsANoOp() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"], sha: "abc")
            let again = try await ingest(store, "b", ["a", "new"], sha: "abc", now: t0 + 5)
            #expect(again == .alreadyIngested(fileName: "b.json", at: t0))
            #expect(try await store.job(key("b/new")) == nil)
        }
    }

    @Test func identicalJobsInAnotherManifestAreUnchanged() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"], sha: "one")
            let outcome = try await ingest(store, "b", ["a", "c"], sha: "two")
            #expect(outcome == .accepted(added: [key("b/c")], unchanged: [key("b/a")]))
            #expect(try await store.transitions(of: key("b/a")).count == 1)
            #expect(try await store.batch("b")?.manifestCount == 2)
        }
    }

    @Test func aConflictRejectsTheWholeManifestWithAHint() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"], sha: "one")
            let changed = [spec("b", "a", prompt: "character1 jumps"), spec("b", "fresh")]
            let outcome = try await store.ingest(manifestSHA256: "two", fileName: "b2.json", batch: "b",
                                                 settings: BatchSettings(), jobs: changed, now: t0)
            guard case .rejected(let conflicts) = outcome else { Issue.record("expected rejection"); return }
            #expect(conflicts.map(\.key) == [key("b/a")])
            #expect(conflicts[0].message.contains("reelctl cancel b/a"))
            #expect(conflicts[0].message.contains("new id"))
            #expect(try await store.job(key("b/fresh")) == nil)
            #expect(try await store.batch("b")?.manifestCount == 1)
            // The rejected manifest was not remembered: fixed and dropped again, it is taken.
            let fixed = try await store.ingest(manifestSHA256: "two", fileName: "b2.json", batch: "b",
                                               settings: BatchSettings(), jobs: [spec("b", "fresh")], now: t0)
            #expect(fixed == .accepted(added: [key("b/fresh")], unchanged: []))
        }
    }

    @Test func inconsistentIntakeIsAnError() async throws {
        try await withStore { store, _ in
            await #expect(throws: StoreError.self) {
                try await store.ingest(manifestSHA256: "x", fileName: "x.json", batch: "b", settings: BatchSettings(),
                                       jobs: [spec("other", "a")], now: t0)
            }
            await #expect(throws: StoreError.self) {
                try await store.ingest(manifestSHA256: "x", fileName: "x.json", batch: "b", settings: BatchSettings(),
                                       jobs: [spec("b", "a"), spec("b", "a")], now: t0)
            }
        }
    }
}

@Suite struct TransitionTests {
    @Test func compareAndSetRefusesAWrongPriorState() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"])
            let moved = try await store.transition(key("b/a"), from: .running, to: .downloading, cause: "x", now: t0)
            #expect(!moved)
            #expect(try await store.job(key("b/a"))?.state == .queued)
            #expect(try await store.transitions(of: key("b/a")).count == 1)
            #expect(!(try await store.transition(key("b/none"), from: .queued, to: .held, cause: "x", now: t0)))
        }
    }

    @Test func illegalTransitionsThrowWithoutWriting() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"])
            await #expect(throws: StoreError.illegalTransition(from: .queued, to: .succeeded)) {
                try await store.transition(key("b/a"), from: .queued, to: .succeeded, cause: "x", now: t0)
            }
            await #expect(throws: StoreError.self) {
                try await store.transition(key("b/a"), from: [.queued, .downloading], to: .cancelled, cause: "x",
                                           now: t0)
            }
            #expect(try await store.job(key("b/a"))?.state == .queued)
        }
    }

    /// The store refuses exactly what the lifecycle's table refuses, for every pair of states.
    @Test func theStoreRefusesEveryMoveTheTableForbids() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"])
            for from in JobState.allCases {
                for to in JobState.allCases where !JobTransitions.allows(from, to) {
                    await #expect(throws: StoreError.illegalTransition(from: from, to: to)) {
                        try await store.transition(key("b/a"), from: from, to: to, cause: "x", now: t0)
                    }
                }
            }
            #expect(try await store.job(key("b/a"))?.state == .queued)
            #expect(try await store.transitions(of: key("b/a")).count == 1)
        }
    }

    @Test func transitionsAreRecordedWithTheirEffects() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a", "c"])
            #expect(try await store.transition(key("b/a"), from: .queued, to: .held, cause: "budget", now: t0 + 1) {
                $0.holdReason = "budget"
            })
            #expect(try await store.job(key("b/a"))?.holdReason == "budget")
            #expect(try await store.transition(key("b/a"), from: .held, to: .cancelled, cause: "operator",
                                               now: t0 + 2))
            let cancelled = try #require(try await store.job(key("b/a")))
            #expect(cancelled.holdReason == nil)
            #expect(cancelled.finishedAt == t0 + 2)
            #expect(cancelled.stateChangedAt == t0 + 2)
            #expect(try await store.batch("b")?.completedAt == nil)
            try await store.transition(key("b/c"), from: .queued, to: .failed, cause: "permanent", now: t0 + 3) {
                $0.reason = "InvalidParameter: bad size"
            }
            #expect(try await store.batch("b")?.completedAt == t0 + 3)
            // Retrying a failed job reopens the batch and clears the reason.
            try await store.transition(key("b/c"), from: .failed, to: .queued, cause: "operator retry", now: t0 + 4)
            let retried = try #require(try await store.job(key("b/c")))
            #expect(retried.reason == nil && retried.finishedAt == nil)
            #expect(try await store.batch("b")?.completedAt == nil)
            let history = try await store.transitions(of: key("b/a"))
                .map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue):\($0.cause)" }
            #expect(history == ["->queued:intake b.json", "queued>held:budget", "held>cancelled:operator"])
        }
    }

    @Test func updateChangesFieldsWithoutAStateChange() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"])
            #expect(!(try await store.update(key("b/a"), ifIn: [.running], now: t0) { $0.priority = .rush }))
            #expect(try await store.update(key("b/a"), ifIn: [.queued], now: t0 + 9) { $0.priority = .rush })
            let row = try #require(try await store.job(key("b/a")))
            #expect(row.priority == .rush && row.spec.priority == .normal && row.updatedAt == t0 + 9)
            #expect(try await store.transitions(of: key("b/a")).count == 1)
        }
    }
}

@Suite struct SubmissionTests {
    @Test func writeAheadSubmissionOpensAndClosesTheWindow() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"])
            let attempt = try await store.beginSubmission(key("b/a"), fingerprint: "fp1", now: t0 + 1)
            #expect(attempt == 1)
            let submitting = try #require(try await store.job(key("b/a")))
            #expect(submitting.state == .submitting && submitting.requestFingerprint == "fp1")
            #expect(submitting.createStartedAt == t0 + 1)
            // A second begin while the first is in flight is refused: no second create call.
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "fp1", now: t0 + 1) == nil)
            #expect(try await store.commitTaskID(key("b/a"), taskID: "task-1", status: .pending, now: t0 + 2))
            let pending = try #require(try await store.job(key("b/a")))
            #expect(pending.state == .pending && pending.taskID == "task-1" && pending.taskIDs == ["task-1"])
            #expect(pending.submittedAt == t0 + 2)
            #expect(try await store.batch("b")?.startedAt == t0 + 2)
            // A retry after a remote failure is attempt 2 and keeps the task history.
            try await store.transition(key("b/a"), from: .pending, to: .retrying, cause: "InternalError", now: t0 + 3)
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "fp2", now: t0 + 4) == 2)
            #expect(try await store.commitTaskID(key("b/a"), taskID: "task-2", status: .running, now: t0 + 5))
            let running = try #require(try await store.job(key("b/a")))
            #expect(running.state == .running && running.taskIDs == ["task-1", "task-2"] && running.attempt == 2)
        }
    }

    @Test func aCrashMidCreateIsFoundInDoubtAfterReopening() async throws {
        try await withDatabase { path in
            do {
                let before = try Store(path: path)
                try await ingest(before, "b", ["a", "c"])
                #expect(try await before.beginSubmission(key("b/a"), fingerprint: "fp", now: t0 + 1) == 1)
                // Crash: commitTaskID never happens; the Store is simply dropped.
            }
            let after = try Store(path: path)
            #expect(try await after.jobs(in: [.submitting]).map(\.key) == [key("b/a")])
            let doubted = try await after.markInterruptedSubmissionsInDoubt(now: t0 + 10)
            #expect(doubted.map(\.key) == [key("b/a")])
            #expect(doubted.first?.state == .inDoubt)
            #expect(try await after.jobs(in: [.submitting]).isEmpty)
            let last = try await after.transitions(of: key("b/a")).last
            #expect(last?.from == .submitting && last?.to == .inDoubt && last?.at == t0 + 10)
            // Reconciliation adopts a task not owned by anyone.
            #expect(try await after.jobsOwningTasks(["t-9"]).isEmpty)
            #expect(try await after.commitTaskID(key("b/a"), taskID: "t-9", status: .running, now: t0 + 11))
            #expect(try await after.jobsOwningTasks(["t-9", "t-x"]) == ["t-9": key("b/a")])
            #expect(try await after.transitions(of: key("b/a")).last?.cause == "adopted task t-9")
        }
    }

    @Test func aTaskIsNeverGivenToTwoJobs() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a", "c"])
            for id in ["a", "c"] { _ = try await store.beginSubmission(key("b/\(id)"), fingerprint: id, now: t0) }
            try await store.commitTaskID(key("b/a"), taskID: "t-1", status: .pending, now: t0)
            try await store.markInDoubt(key("b/c"), cause: "timeout on create", now: t0 + 1)
            await #expect(throws: StoreError.taskOwnedByAnotherJob(taskID: "t-1", owner: key("b/a"))) {
                try await store.commitTaskID(key("b/c"), taskID: "t-1", status: .pending, now: t0 + 2)
            }
            #expect(try await store.job(key("b/c"))?.state == .inDoubt)
        }
    }

    @Test func aSecondStoreOnTheFileSeesOnlyCommittedState() async throws {
        try await withDatabase { path in
            let daemon = try Store(path: path)
            let observer = try Store(path: path)
            try await ingest(daemon, "b", ["a"])
            _ = try await daemon.beginSubmission(key("b/a"), fingerprint: "fp", now: t0)
            #expect(try await observer.job(key("b/a"))?.state == .submitting)
            try await daemon.commitTaskID(key("b/a"), taskID: "t", status: .pending, now: t0)
            #expect(try await observer.job(key("b/a"))?.taskID == "t")
        }
    }

    @Test func attemptsAreRecordedPerJobAndAccountWide() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a"])
            let create = Exchange(kind: .create, httpStatus: 200, requestID: "r1", durationMilliseconds: 120)
            let query = Exchange(kind: .query, httpStatus: 0, durationMilliseconds: 30000,
                                 transportError: "Timeout was reached")
            try await store.recordAttempt(key("b/a"), create, now: t0)
            try await store.recordAttempt(key("b/a"), query, now: t0 + 1)
            try await store.recordAttempt(nil, Exchange(kind: .list, httpStatus: 200, durationMilliseconds: 5), now: t0)
            #expect(try await store.attempts(of: key("b/a")).map(\.exchange) == [create, query])
            #expect(try await store.attemptCounts(of: key("b/a")) == [.create: 1, .query: 1])
            #expect(try await store.attemptCounts() == [.create: 1, .query: 1, .list: 1])
            #expect(try await store.attemptCounts(since: t0 + 1) == [.query: 1])
        }
    }
}

@Suite struct CancellationTests {
    @Test func aCancelledCallerNeverBeginsButAlwaysCommitsATaskID() async throws {
        try await withStore { store, _ in
            try await ingest(store, "b", ["a", "c"])
            _ = try await store.beginSubmission(key("b/c"), fingerprint: "f", now: t0)
            let outcome = await Task {
                withUnsafeCurrentTask { $0?.cancel() }
                let begun = try? await store.beginSubmission(key("b/a"), fingerprint: "f", now: t0)
                let committed = try await store.commitTaskID(key("b/c"), taskID: "t", status: .pending, now: t0)
                return (begun, committed)
            }.result
            let (begun, committed) = try outcome.get()
            #expect(begun == nil)
            #expect(committed)
            #expect(try await store.job(key("b/a"))?.state == .queued)
            #expect(try await store.job(key("b/c"))?.taskID == "t")
        }
    }
}
