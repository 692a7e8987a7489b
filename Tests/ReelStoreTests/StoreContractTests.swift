import Foundation
import ReelCore
@testable import ReelStore
import Testing

/// The `JobStore` contract: every test runs against every implementation in `StoreFactory.all`, through the
/// protocol only. Behaviour particular to one implementation (SQLite's pragmas, query plans, reopening a file) is
/// tested beside it, not here.
@Suite struct StoreContractTests {
    // MARK: compare-and-set

    @Test(arguments: StoreFactory.all)
    func compareAndSetMovesOnlyFromTheExpectedStates(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a"])
            #expect(!(try await store.transition(key("b/a"), from: .running, to: .downloading, cause: "x", now: t0)))
            #expect(!(try await store.transition(key("b/a"), from: [.held, .retrying], to: .queued, cause: "x",
                                                 now: t0)))
            #expect(!(try await store.transition(key("b/none"), from: .queued, to: .held, cause: "x", now: t0)))
            #expect(try await store.job(key("b/a"))?.state == .queued)
            #expect(try await store.transitions(of: key("b/a")).count == 1)
            #expect(try await store.transition(key("b/a"), from: [.queued, .retrying], to: .held, cause: "op",
                                               now: t0 + 1) { $0.holdReason = "operator" })
            let held = try #require(try await store.job(key("b/a")))
            #expect(held.state == .held && held.holdReason == "operator" && held.stateChangedAt == t0 + 1)
            // The same move again finds the job elsewhere.
            #expect(!(try await store.transition(key("b/a"), from: .queued, to: .held, cause: "op", now: t0 + 2)))
            #expect(try await store.transitions(of: key("b/a")).count == 2)
        }
    }

    @Test(arguments: StoreFactory.all)
    func illegalTransitionsThrowBeforeAnythingIsWritten(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a"])
            let generation = store.writeGeneration
            await #expect(throws: StoreError.illegalTransition(from: .queued, to: .succeeded)) {
                try await store.transition(key("b/a"), from: .queued, to: .succeeded, cause: "x", now: t0)
            }
            await #expect(throws: StoreError.illegalTransition(from: .downloading, to: .cancelled)) {
                try await store.transition(key("b/a"), from: [.queued, .downloading], to: .cancelled, cause: "x",
                                           now: t0)
            }
            // The table is checked before the job is looked at: an absent job is no excuse.
            await #expect(throws: StoreError.illegalTransition(from: .succeeded, to: .queued)) {
                try await store.transition(key("b/none"), from: .succeeded, to: .queued, cause: "x", now: t0)
            }
            await #expect(throws: StoreError.illegalTransition(from: .running, to: .submitting)) {
                try await store.beginSubmission(key("b/a"), expectedFrom: [.queued, .running], fingerprint: "f",
                                                now: t0)
            }
            #expect(store.writeGeneration == generation, "nothing was attempted")
            let row = try #require(try await store.job(key("b/a")))
            #expect(row.state == .queued && row.attempt == 0)
            #expect(try await store.transitions(of: key("b/a")).count == 1)
        }
    }

    /// The effects of entering a state, the batch's completion following its jobs, and `update` overriding them.
    @Test(arguments: StoreFactory.all)
    func enteringAStateHasItsAutomaticEffects(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a", "c"])
            #expect(try await store.transition(key("b/a"), from: .queued, to: .held, cause: "budget", now: t0 + 1) {
                $0.holdReason = "budget"
            })
            #expect(try await store.transition(key("b/a"), from: .held, to: .cancelled, cause: "operator",
                                               now: t0 + 2))
            let cancelled = try #require(try await store.job(key("b/a")))
            #expect(cancelled.holdReason == nil && cancelled.finishedAt == t0 + 2)
            #expect(cancelled.stateChangedAt == t0 + 2 && cancelled.updatedAt == t0 + 2 && cancelled.createdAt == t0)
            #expect(try await store.batch("b")?.completedAt == nil, "b/c is still open")
            _ = try await store.beginSubmission(key("b/c"), fingerprint: "f", now: t0 + 3)
            _ = try await store.refuseSubmission(key("b/c"), countsAsAttempt: true, reason: "500", now: t0 + 3)
            #expect(try await store.update(key("b/c"), ifIn: [.retrying], now: t0 + 3) { $0.nextAttemptAt = t0 + 60 })
            #expect(try await store.transition(key("b/c"), from: .retrying, to: .failed, cause: "permanent",
                                               now: t0 + 4) { $0.reason = "InvalidParameter: bad size" })
            #expect(try await store.batch("b")?.completedAt == t0 + 4)
            #expect(try await store.job(key("b/c"))?.reason == "InvalidParameter: bad size")
            // Queued again: reason, next attempt and finish time cleared, the batch reopened.
            #expect(try await store.transition(key("b/c"), from: .failed, to: .queued, cause: "operator retry",
                                               now: t0 + 5))
            let retried = try #require(try await store.job(key("b/c")))
            #expect(retried.reason == nil && retried.nextAttemptAt == nil && retried.finishedAt == nil)
            #expect(retried.attempt == 1, "the attempt counter is history, not state")
            #expect(try await store.batch("b")?.completedAt == nil)
            // `update` runs after the automatic effects and wins.
            #expect(try await store.transition(key("b/c"), from: .queued, to: .cancelled, cause: "op", now: t0 + 6) {
                $0.reason = "operator"
            })
            #expect(try await store.job(key("b/c"))?.reason == "operator")
            #expect(try await store.batch("b")?.completedAt == t0 + 6)
            let history = try await store.transitions(of: key("b/a"))
                .map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue):\($0.cause)@\($0.at - t0)" }
            #expect(history == ["->queued:intake b.json@0.0", "queued>held:budget@1.0", "held>cancelled:operator@2.0"])
        }
    }

    @Test(arguments: StoreFactory.all)
    func updateChangesFieldsWithoutAStateChange(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a", "c"])
            #expect(!(try await store.update(key("b/a"), ifIn: [.running], now: t0) { $0.priority = .rush }))
            #expect(!(try await store.update(key("b/none"), now: t0) { $0.priority = .rush }))
            #expect(try await store.update(key("b/a"), ifIn: [.queued], now: t0 + 9) { $0.priority = .rush })
            #expect(try await store.update(key("b/a"), now: t0 + 10) { $0.costUSD = 0.25; $0.taskID = "t-1" })
            let row = try #require(try await store.job(key("b/a")))
            #expect(row.priority == .rush && row.spec.priority == .normal && row.updatedAt == t0 + 10)
            #expect(row.stateChangedAt == t0 && row.costUSD == 0.25)
            #expect(row.taskIDs == ["t-1"], "a new task id is claimed for the job")
            #expect(try await store.transitions(of: key("b/a")).count == 1)
            // Another job may not take that task: refused whole.
            await #expect(throws: StoreError.taskOwnedByAnotherJob(taskID: "t-1", owner: key("b/a"))) {
                try await store.update(key("b/c"), now: t0 + 11) { $0.priority = .rush; $0.taskID = "t-1" }
            }
            let other = try #require(try await store.job(key("b/c")))
            #expect(other.priority == .normal && other.taskID == nil && other.updatedAt == t0)
        }
    }

    // MARK: write-ahead submission

    @Test(arguments: StoreFactory.all)
    func writeAheadSubmissionOpensAndClosesTheWindow(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a"])
            try await store.update(key("b/a"), now: t0) { $0.videoURL = "https://old"; $0.urlExpiresAt = t0 + 5 }
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "fp1", now: t0 + 1) == 1)
            let submitting = try #require(try await store.job(key("b/a")))
            #expect(submitting.state == .submitting && submitting.requestFingerprint == "fp1")
            #expect(submitting.createStartedAt == t0 + 1 && submitting.taskID == nil && submitting.videoURL == nil)
            #expect(submitting.urlExpiresAt == nil)
            // A second begin while the first is in flight is refused: no second create call.
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "fp1", now: t0 + 1) == nil)
            #expect(try await store.batch("b")?.startedAt == nil)
            #expect(try await store.commitTaskID(key("b/a"), taskID: "task-1", status: .pending, now: t0 + 2))
            let pending = try #require(try await store.job(key("b/a")))
            #expect(pending.state == .pending && pending.taskID == "task-1" && pending.taskIDs == ["task-1"])
            #expect(pending.submittedAt == t0 + 2)
            #expect(try await store.batch("b")?.startedAt == t0 + 2)
            // Not submitting any more: a second commit changes nothing.
            #expect(!(try await store.commitTaskID(key("b/a"), taskID: "task-x", status: .running, now: t0 + 2)))
            // A retry after a remote failure is attempt 2, keeps the task history and the batch's start.
            try await store.transition(key("b/a"), from: .pending, to: .retrying, cause: "InternalError", now: t0 + 3)
            #expect(try await store.beginSubmission(key("b/a"), expectedFrom: [.retrying], fingerprint: "fp2",
                                                    now: t0 + 4) == 2)
            #expect(try await store.commitTaskID(key("b/a"), taskID: "task-2", status: .running, now: t0 + 5,
                                                 how: "sent once"))
            let running = try #require(try await store.job(key("b/a")))
            #expect(running.state == .running && running.taskIDs == ["task-1", "task-2"] && running.attempt == 2)
            #expect(try await store.batch("b")?.startedAt == t0 + 2)
            #expect(try await store.transitions(of: key("b/a")).map(\.cause) == [
                "intake b.json", "create call, attempt 1", "created task task-1", "InternalError",
                "create call, attempt 2", "created task task-2: sent once",
            ])
            #expect(try await store.jobsOwningTasks(["task-1", "task-2", "task-x"])
                    == ["task-1": key("b/a"), "task-2": key("b/a")])
        }
    }

    /// A refused create leaves no task: `retrying`, and only a refusal about the job itself costs an attempt.
    @Test(arguments: StoreFactory.all)
    func aRefusedCreateIsRetryingAndMayGiveItsAttemptBack(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a"])
            #expect(!(try await store.refuseSubmission(key("b/a"), countsAsAttempt: false, reason: "x", now: t0)))
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "f", now: t0 + 1) == 1)
            #expect(try await store.refuseSubmission(key("b/a"), countsAsAttempt: false, reason: "Throttling",
                                                     now: t0 + 2))
            let throttled = try #require(try await store.job(key("b/a")))
            #expect(throttled.state == .retrying && throttled.attempt == 0)
            #expect(throttled.reason == "create refused: Throttling")
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "f", now: t0 + 3) == 1)
            #expect(try await store.refuseSubmission(key("b/a"), countsAsAttempt: true, reason: "500", now: t0 + 4))
            #expect(try await store.job(key("b/a"))?.attempt == 1)
            #expect(try await store.transitions(of: key("b/a")).last
                    == TransitionRow(from: .submitting, to: .retrying, cause: "create refused: 500", at: t0 + 4))
        }
    }

    @Test(arguments: StoreFactory.all)
    func interruptedSubmissionsGoInDoubtAndAreAdopted(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["d", "a", "c"])
            for id in ["c", "d"] {
                #expect(try await store.beginSubmission(key("b/\(id)"), fingerprint: id, now: t0 + 1) == 1)
            }
            let doubted = try await store.markInterruptedSubmissionsInDoubt(now: t0 + 10)
            #expect(doubted.map(\.key) == [key("b/d"), key("b/c")], "intake order")
            #expect(doubted.allSatisfy { $0.state == .inDoubt && $0.stateChangedAt == t0 + 10 })
            #expect(try await store.jobs(in: [.submitting]).isEmpty)
            #expect(try await store.jobs(in: [.inDoubt, .queued]).map(\.key) == [key("b/d"), key("b/a"), key("b/c")])
            #expect(try await store.transitions(of: key("b/c")).last == TransitionRow(
                from: .submitting, to: .inDoubt, cause: "daemon restarted during the create call", at: t0 + 10))
            #expect(try await store.markInterruptedSubmissionsInDoubt(now: t0 + 11, cause: "again").isEmpty)
            // Reconciliation adopts a task nobody owns; the in-doubt reason goes with the doubt.
            #expect(try await store.update(key("b/c"), ifIn: [.inDoubt], now: t0 + 11) { $0.reason = "resolve" })
            #expect(try await store.jobsOwningTasks(["t-9"]).isEmpty)
            #expect(try await store.commitTaskID(key("b/c"), taskID: "t-9", status: .running, now: t0 + 12,
                                                 how: "found by request id"))
            let adopted = try #require(try await store.job(key("b/c")))
            #expect(adopted.state == .running && adopted.reason == nil && adopted.submittedAt == t0 + 12)
            #expect(try await store.transitions(of: key("b/c")).last?.cause == "adopted task t-9: found by request id")
            // markInDoubt: the same move one job at a time.
            #expect(try await store.beginSubmission(key("b/a"), fingerprint: "a", now: t0 + 13) == 1)
            #expect(try await store.markInDoubt(key("b/a"), cause: "timeout on create", now: t0 + 14))
            #expect(!(try await store.markInDoubt(key("b/a"), cause: "timeout on create", now: t0 + 14)))
            #expect(try await store.job(key("b/a"))?.state == .inDoubt)
        }
    }

    @Test(arguments: StoreFactory.all)
    func aTaskIsNeverGivenToTwoJobs(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a", "c"])
            for id in ["a", "c"] { _ = try await store.beginSubmission(key("b/\(id)"), fingerprint: id, now: t0) }
            try await store.commitTaskID(key("b/a"), taskID: "t-1", status: .pending, now: t0)
            try await store.markInDoubt(key("b/c"), cause: "timeout on create", now: t0 + 1)
            let generation = store.writeGeneration
            await #expect(throws: StoreError.taskOwnedByAnotherJob(taskID: "t-1", owner: key("b/a"))) {
                try await store.commitTaskID(key("b/c"), taskID: "t-1", status: .pending, now: t0 + 2)
            }
            let c = try #require(try await store.job(key("b/c")))
            #expect(c.state == .inDoubt && c.taskID == nil && c.taskIDs.isEmpty)
            #expect(try await store.transitions(of: key("b/c")).map(\.to) == [.queued, .submitting, .inDoubt])
            #expect(try await store.batch("b")?.startedAt == t0)
            // A past task stays owned: a job that moved on to another task still holds its first.
            try await store.transition(key("b/a"), from: .pending, to: .retrying, cause: "lost", now: t0 + 3)
            _ = try await store.beginSubmission(key("b/a"), fingerprint: "a", now: t0 + 4)
            try await store.commitTaskID(key("b/a"), taskID: "t-2", status: .pending, now: t0 + 5)
            await #expect(throws: StoreError.taskOwnedByAnotherJob(taskID: "t-1", owner: key("b/a"))) {
                try await store.commitTaskID(key("b/c"), taskID: "t-1", status: .pending, now: t0 + 6)
            }
            #expect(try await store.jobsOwningTasks(["t-1", "t-2"]) == ["t-1": key("b/a"), "t-2": key("b/a")])
            #expect(store.writeGeneration > generation)
        }
    }

    @Test(arguments: StoreFactory.all)
    func attemptsAreRecordedPerJobAndAccountWide(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a", "c"])
            let create = Exchange(kind: .create, httpStatus: 200, requestID: "r1", durationMilliseconds: 120)
            let query = Exchange(kind: .query, httpStatus: 0, durationMilliseconds: 30000,
                                 transportError: "Timeout was reached")
            let list = Exchange(kind: .list, httpStatus: 200, durationMilliseconds: 5)
            let stray = Exchange(kind: .cancel, httpStatus: 404, providerCode: "NotFound", durationMilliseconds: 7)
            try await store.recordAttempt(key("b/a"), create, now: t0)
            try await store.recordAttempt(key("b/c"), create, now: t0)
            try await store.recordAttempt(key("b/a"), query, now: t0 + 1)
            try await store.recordAttempt(nil, list, now: t0)
            // A key with no job is recorded, but as an account-wide exchange.
            try await store.recordAttempt(key("b/none"), stray, now: t0 + 2)
            #expect(try await store.attempts(of: key("b/a"))
                    == [AttemptRow(key: key("b/a"), exchange: create, at: t0),
                        AttemptRow(key: key("b/a"), exchange: query, at: t0 + 1)])
            #expect(try await store.attempts(of: key("b/none")).isEmpty)
            #expect(try await store.attemptCounts(of: key("b/a")) == [.create: 1, .query: 1])
            #expect(try await store.attemptCounts(of: key("b/none")) == [:])
            #expect(try await store.attemptCounts() == [.create: 2, .query: 1, .list: 1, .cancel: 1])
            #expect(try await store.attemptCounts(since: t0 + 1) == [.query: 1, .cancel: 1])
            #expect(try await store.attemptCounts(of: key("b/a"), since: t0 + 1) == [.query: 1])
        }
    }

    // MARK: intake

    @Test(arguments: StoreFactory.all)
    func intakeAcceptsRemembersAndRejectsWhole(_ f: StoreFactory) async throws {
        try await f.with { store in
            let outcome = try await ingest(store, "spring", ["b", "a"], sha: "m1")
            #expect(outcome == .accepted(added: [key("spring/b"), key("spring/a")], unchanged: []))
            let row = try #require(try await store.job(key("spring/a")))
            #expect(row.state == .queued && row.spec == spec("spring", "a") && row.attempt == 0)
            #expect(row.specDigest == (try Store.specDigest(spec("spring", "a"))))
            #expect(row.priority == .normal && row.createdAt == t0 && row.taskIDs.isEmpty && row.finishedAt == nil)
            #expect(try await store.transitions(of: key("spring/a"))
                    == [TransitionRow(from: nil, to: .queued, cause: "intake spring.json", at: t0)])
            // The same file again: nothing done, whatever its content.
            #expect(try await ingest(store, "spring", ["z"], sha: "m1", now: t0 + 5)
                    == .alreadyIngested(fileName: "spring.json", at: t0))
            #expect(try await store.job(key("spring/z")) == nil)
            // Identical jobs in another file are unchanged; new ones are added.
            #expect(try await ingest(store, "spring", ["a", "c"], sha: "m2", now: t0 + 6)
                    == .accepted(added: [key("spring/c")], unchanged: [key("spring/a")]))
            #expect(try await store.transitions(of: key("spring/a")).count == 1)
            // Different content under a known key rejects the whole manifest.
            try await store.transition(key("spring/b"), from: .queued, to: .cancelled, cause: "op", now: t0 + 7)
            let clash = try await store.ingest(manifestSHA256: "m3", fileName: "clash.json", batch: "spring",
                                               settings: BatchSettings(priority: .rush),
                                               jobs: [spec("spring", "d"), spec("spring", "a", prompt: "other"),
                                                      spec("spring", "b", prompt: "other")], now: t0 + 8)
            guard case .rejected(let conflicts) = clash else { Issue.record("\(clash)"); return }
            #expect(conflicts.map(\.key) == [key("spring/a"), key("spring/b")])
            #expect(conflicts.map(\.existingState) == [.queued, .cancelled])
            #expect(conflicts[0].message.contains("reelctl cancel spring/a"))
            #expect(conflicts[1].message.contains("job ids are never reused"))
            #expect(try await store.job(key("spring/d")) == nil)
            let batch = try #require(try await store.batch("spring"))
            #expect(batch.manifestCount == 2 && batch.settings.priority == .normal)
            // A rejected file is not remembered: fixed, it may come again under the same identity.
            #expect(try await ingest(store, "spring", ["d"], sha: "m3", now: t0 + 9)
                    == .accepted(added: [key("spring/d")], unchanged: []))
        }
    }

    @Test(arguments: StoreFactory.all)
    func eachManifestOfOneIngestIsDecidedOnItsOwn(_ f: StoreFactory) async throws {
        try await f.with { store in
            let d1 = t0 + 86_400
            let manifests = [
                ManifestIngest(manifestSHA256: "1", fileName: "1.json", batch: "b",
                               settings: BatchSettings(priority: .bulk, deadline: d1, budgetUSD: 40),
                               jobs: [spec("b", "a")]),
                ManifestIngest(manifestSHA256: "2", fileName: "2.json", batch: "b", settings: BatchSettings(),
                               jobs: [spec("other", "x")]),
                ManifestIngest(manifestSHA256: "3", fileName: "3.json", batch: "b", settings: BatchSettings(),
                               jobs: [spec("b", "y"), spec("b", "y")]),
                ManifestIngest(manifestSHA256: "4", fileName: "4.json", batch: "b",
                               settings: BatchSettings(priority: .rush, paused: true), jobs: [spec("b", "c")]),
                ManifestIngest(manifestSHA256: "1", fileName: "1-again.json", batch: "b", settings: BatchSettings(),
                               jobs: [spec("b", "z")]),
                ManifestIngest(manifestSHA256: "5", fileName: "5.json", batch: "empty", settings: BatchSettings(),
                               jobs: []),
            ]
            let outcomes = try await store.ingest(manifests, now: t0)
            #expect(try outcomes[0].get() == .accepted(added: [key("b/a")], unchanged: []))
            for bad in [1, 2] {
                guard case .failure(let error) = outcomes[bad], case .invalidIngest? = error as? StoreError else {
                    Issue.record("\(outcomes[bad])")
                    continue
                }
            }
            #expect(try outcomes[3].get() == .accepted(added: [key("b/c")], unchanged: []))
            #expect(try outcomes[4].get() == .alreadyIngested(fileName: "1.json", at: t0))
            #expect(try outcomes[5].get() == .accepted(added: [], unchanged: []))
            let b = try #require(try await store.batch("b"))
            // Priority from the last manifest; deadline and budget kept when not given; `paused` never from files.
            #expect(b.settings == BatchSettings(priority: .rush, deadline: d1, budgetUSD: 40, paused: false))
            #expect(b.manifestCount == 2 && b.createdAt == t0 && b.counts.total == 2)
            #expect(try await store.batch("empty")?.counts.total == 0)
            #expect(try await store.job(key("b/y")) == nil)
            #expect(try await store.job(key("b/z")) == nil)
        }
    }

    // MARK: batches

    @Test(arguments: StoreFactory.all)
    func batchesAreListedByCreationAndFollowTheirJobs(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "zulu", ["a"], now: t0)
            try await ingest(store, "beta", ["a", "b"], now: t0 + 1)
            try await ingest(store, "alpha", ["a"], now: t0 + 1)
            #expect(try await store.batches().map(\.name) == ["zulu", "alpha", "beta"])
            #expect(try await store.batch("nope") == nil)
            #expect(try await store.updateBatch("beta") { $0.paused = true; $0.budgetUSD = 12 })
            #expect(!(try await store.updateBatch("nope") { $0.paused = true }))
            #expect(try await store.batch("beta")?.settings == BatchSettings(priority: .normal, budgetUSD: 12,
                                                                             paused: true))
            for id in ["a", "b"] {
                try await store.transition(key("beta/\(id)"), from: .queued, to: .cancelled, cause: "op",
                                           now: t0 + 2 + Double(id == "b" ? 1 : 0))
            }
            let beta = try #require(try await store.batch("beta"))
            #expect(beta.completedAt == t0 + 3 && beta.isComplete && beta.startedAt == nil)
            #expect(beta.counts.byState == [.cancelled: 2])
            // New jobs reopen a finished batch; an unchanged job does not.
            try await ingest(store, "beta", ["a"], sha: "again", now: t0 + 4)
            #expect(try await store.batch("beta")?.completedAt == t0 + 3)
            try await ingest(store, "beta", ["c"], now: t0 + 5)
            #expect(try await store.batch("beta")?.completedAt == nil)
            #expect(try await store.batch("beta")?.manifestCount == 3)
        }
    }

    // MARK: listing

    /// Ids that sort differently under other collations: byte order puts `-` < `.` < digits < upper < `_` < lower.
    static let awkwardIDs = ["a_1", "B", "a1", "A1", "a-1", "b", "a.1", "0", "Z-9", "a", "aa"]

    static func listed(_ store: any JobStore, state: JobState? = nil, batch: String? = nil,
                       limit: Int) async throws -> (keys: [JobKey], cursors: [String]) {
        var keys: [JobKey] = []
        var cursors: [String] = []
        var cursor: String?
        repeat {
            let page = try await store.listJobs(state: state, batch: batch, limit: limit, after: cursor)
            let summaries = try await store.listJobSummaries(state: state, batch: batch, limit: limit, after: cursor)
            #expect(page.rows.count <= max(limit, 1))
            #expect(summaries.rows == page.rows.map(\.summary))
            #expect(summaries.nextCursor == page.nextCursor)
            keys += page.rows.map(\.key)
            cursor = page.nextCursor
            if let cursor { cursors.append(cursor) }
        } while cursor != nil
        return (keys, cursors)
    }

    @Test(arguments: StoreFactory.all)
    func listingVisitsEveryJobOnceInByteOrder(_ f: StoreFactory) async throws {
        try await f.with { store in
            for batch in ["b-2", "B", "b", "a"] { try await ingest(store, batch, Self.awkwardIDs) }
            for (n, id) in Self.awkwardIDs.enumerated() where n % 3 == 0 {
                try await store.transition(JobKey(batch: "b", id: id), from: .queued, to: .held, cause: "t", now: t0)
            }
            let ids = Self.awkwardIDs.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            #expect(ids == ["0", "A1", "B", "Z-9", "a", "a-1", "a.1", "a1", "a_1", "aa", "b"])
            let all = ["B", "a", "b", "b-2"].flatMap { b in ids.map { JobKey(batch: b, id: $0) } }
            let held = all.filter { $0.batch == "b" && Self.awkwardIDs.firstIndex(of: $0.id)! % 3 == 0 }
            for limit in [1, 3, 7, 1000] {
                #expect(try await Self.listed(store, limit: limit).keys == all)
                #expect(try await Self.listed(store, state: .held, limit: limit).keys == held)
                #expect(try await Self.listed(store, batch: "b", limit: limit).keys == all.filter { $0.batch == "b" })
                #expect(try await Self.listed(store, state: .held, batch: "b", limit: limit).keys == held)
                #expect(try await Self.listed(store, state: .queued, batch: "B", limit: limit).keys
                        == all.filter { $0.batch == "B" })
                #expect(try await Self.listed(store, state: .held, batch: "a", limit: limit).keys.isEmpty)
                #expect(try await Self.listed(store, batch: "nope", limit: limit).keys.isEmpty)
            }
            // The limit is clamped to 1…1000.
            #expect(try await store.listJobs(limit: 0).rows.map(\.key) == [all[0]])
            #expect(try await store.listJobs(limit: -5).rows.count == 1)
            #expect(try await store.listJobs(limit: 5000).rows.count == all.count)
            let page = try await store.listJobs(limit: all.count)
            #expect(page.nextCursor == nil, "an exactly full last page has no next cursor")
        }
    }

    @Test(arguments: StoreFactory.all)
    func aCursorSurvivesWritesAndBadCursorsAreRefused(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a", "c", "e"])
            let first = try await store.listJobs(limit: 1)
            #expect(first.rows.map(\.key) == [key("b/a")])
            #expect(first.nextCursor == JobQuery.encodeCursor(key("b/a")))
            try await ingest(store, "b", ["b", "d"])
            try await store.transition(key("b/a"), from: .queued, to: .held, cause: "t", now: t0)
            let rest = try await store.listJobs(limit: 10, after: first.nextCursor)
            #expect(rest.rows.map(\.key.id) == ["b", "c", "d", "e"])
            #expect(rest.nextCursor == nil)
            // A cursor names a position, not a row: it stays good when its job is gone.
            try await store.transition(key("b/c"), from: .queued, to: .cancelled, cause: "t", now: t0)
            let afterC = JobQuery.encodeCursor(key("b/c"))
            #expect(try await store.listJobs(state: .queued, after: afterC).rows.map(\.key.id) == ["d", "e"])
            // With a batch filter, a cursor from an earlier batch starts the batch, a later one ends it.
            try await ingest(store, "c", ["a"])
            #expect(try await store.listJobs(batch: "c", after: JobQuery.encodeCursor(key("b/z"))).rows.map(\.key)
                    == [key("c/a")])
            #expect(try await store.listJobs(batch: "b", after: JobQuery.encodeCursor(key("c/0"))).rows.isEmpty)
            for bad in ["not a cursor!", "", JobQuery.encodeCursor(JobKey(batch: "b", id: "/x"))] {
                await #expect(throws: StoreError.invalidCursor(bad)) { try await store.listJobs(after: bad) }
                await #expect(throws: StoreError.invalidCursor(bad)) { try await store.listJobSummaries(after: bad) }
            }
        }
    }

    /// The implementations agree page for page and cursor for cursor, and a cursor made by one is understood by
    /// every other (a client's cursor survives a change of store).
    @Test func everyImplementationListsAndCountsTheSame() async throws {
        var results: [String: [String]] = [:]
        var cursors: [String: [String]] = [:]
        for f in StoreFactory.all {
            try await f.with { store in
                for batch in ["b-2", "B", "b"] { try await ingest(store, batch, Self.awkwardIDs, model: .r2v) }
                for (n, id) in Self.awkwardIDs.enumerated() where n % 2 == 0 {
                    let k = JobKey(batch: "B", id: id)
                    _ = try await store.beginSubmission(k, fingerprint: id, now: t0 + Double(n))
                    try await store.commitTaskID(k, taskID: "t-\(n)", status: .running, now: t0 + Double(n))
                    try await store.update(k, now: t0) { $0.costUSD = 0.1 * Double(n) + 0.05 }
                }
                var out: [String] = []
                for limit in [2, 5] {
                    let walked = try await Self.listed(store, limit: limit)
                    out.append(walked.keys.map(\.description).joined(separator: " "))
                    cursors[f.name, default: []] += walked.cursors
                    out.append(try await Self.listed(store, state: .running, limit: limit).keys.description)
                }
                out.append("\(try await store.counts())")
                out.append("\(try await store.batches())")
                results[f.name] = out
            }
        }
        let reference = try #require(results[StoreFactory.all[0].name])
        for f in StoreFactory.all {
            #expect(results[f.name] == reference, "\(f.name)")
            #expect(cursors[f.name] == cursors[StoreFactory.all[0].name], "\(f.name)")
        }
        // Each implementation reads the others' cursors.
        let foreign = try #require(cursors[StoreFactory.all[0].name]?.first)
        for f in StoreFactory.all {
            try await f.with { store in
                try await ingest(store, "B", ["0", "A1", "B", "Z-9"])
                #expect(try await store.listJobs(after: foreign).rows.map(\.key.id) == ["B", "Z-9"])
            }
        }
    }

    // MARK: counts

    @Test(arguments: StoreFactory.all)
    func countsGroupSumAndOrderLikeTheTriggeredTable(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "one", ["a", "b", "c"], model: .r2v)
            try await ingest(store, "One", ["a"])
            #expect(try await store.counts().groups.map(\.batch) == ["One", "one"])
            for (id, cost) in [("a", 0.1), ("b", 0.2)] {
                _ = try await store.beginSubmission(key("one/\(id)"), fingerprint: "f", now: t0)
                try await store.commitTaskID(key("one/\(id)"), taskID: "t-\(id)", status: .running, now: t0)
                try await store.update(key("one/\(id)"), now: t0) { $0.costUSD = cost }
            }
            // Money is summed in whole micro-dollars: 0.1 + 0.2 in one group is 0.3, not 0.30000000000000004.
            #expect(try await store.counts().groups.map(\.costUSD) == [0, 0, 0.3])
            try await store.transition(key("one/b"), from: .running, to: .failed, cause: "QC", now: t0 + 1)
            let counts = try await store.counts()
            #expect(counts.groups.map { "\($0.batch) \($0.model.rawValue) \($0.state.rawValue) \($0.jobs)" } == [
                "One wan2.6-r2v-flash queued 1", "one wan2.6-r2v failed 1", "one wan2.6-r2v queued 1",
                "one wan2.6-r2v running 1",
            ])
            #expect(counts.groups.map(\.billedJobs) == [0, 1, 0, 1])
            #expect(counts.billedNotDelivered.jobs == 1 && counts.billedNotDelivered.usd == 0.2)
            #expect(counts.byState == [.queued: 2, .running: 1, .failed: 1])
            #expect(counts.byModel == [.r2v: [.queued: 1, .running: 1, .failed: 1], .r2vFlash: [.queued: 1]])
            let estimated = spec("one", "a", model: .r2v).estimatedBilledSeconds
            #expect(counts.groups.first { $0.state == .queued && $0.batch == "one" }?.estimatedBilledSeconds
                    == (estimated * 100).rounded() / 100)
            // Changing the cost moves the sums; leaving a state empties its group.
            try await store.update(key("one/a"), now: t0) { $0.costUSD = nil }
            try await store.transition(key("one/a"), from: .running, to: .cancelled, cause: "op", now: t0 + 2)
            let after = try await store.counts()
            #expect(after.costUSD == 0.2 && after.byState[.running] == nil && after.groups.allSatisfy { $0.jobs > 0 })
            #expect(try await store.batch("one")?.counts.total == 3)
            #expect(try await store.batch("One")?.counts.groups.map(\.batch) == ["One"])
        }
    }

    // MARK: uploads, settings, run times

    @Test(arguments: StoreFactory.all)
    func uploadsAreReusedUntilTheyExpire(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await store.saveUpload(sha256: "abc", model: .r2v, ossURL: "oss://one", uploadedAt: t0,
                                       expiresAt: t0 + 100)
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2v, validAt: t0 + 99) == "oss://one")
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2vFlash, validAt: t0) == nil)
            #expect(try await store.cachedUpload(sha256: "abd", model: .r2v, validAt: t0) == nil)
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2v, validAt: t0 + 100) == nil)
            try await store.saveUpload(sha256: "abc", model: .r2v, ossURL: "oss://two", uploadedAt: t0 + 100,
                                       expiresAt: t0 + 200)
            #expect(try await store.cachedUpload(sha256: "abc", model: .r2v, validAt: t0 + 150) == "oss://two")
        }
    }

    @Test(arguments: StoreFactory.all)
    func settingsRoundTrip(_ f: StoreFactory) async throws {
        try await f.with { store in
            #expect(try await store.setting("paused") == nil)
            try await store.setSetting("paused", to: "1")
            try await store.setSetting("other", to: "x")
            #expect(try await store.setting("paused") == "1")
            try await store.setSetting("paused", to: "0")
            #expect(try await store.setting("paused") == "0")
            try await store.setSetting("paused", to: nil)
            try await store.setSetting("never-set", to: nil)
            #expect(try await store.setting("paused") == nil)
            #expect(try await store.setting("other") == "x")
        }
    }

    @Test(arguments: StoreFactory.all)
    func runTimeSamplesNewestFirstPerClass(_ f: StoreFactory) async throws {
        try await f.with { store in
            let fast = RunTimeClass(model: .r2vFlash, resolution: .p720, durationSeconds: 5)
            let slow = RunTimeClass(model: .r2v, resolution: .p1080, durationSeconds: 10)
            #expect(try await store.runTimeSamples().isEmpty)
            for (n, s) in [30.0, 31, 32].enumerated() {
                try await store.recordRunTime(fast, seconds: s, now: t0 + Double(n))
            }
            try await store.recordRunTime(fast, seconds: 29, now: t0)   // older time, later record
            try await store.recordRunTime(slow, seconds: 200, now: t0)
            try await store.recordRunTime(slow, seconds: 201, now: t0)  // same time: the later record is newer
            #expect(try await store.runTimeSamples() == [fast: [32, 31, 29, 30], slow: [201, 200]])
            #expect(try await store.runTimeSamples(limitPerClass: 2) == [fast: [32, 31], slow: [201, 200]])
        }
    }

    // MARK: retention

    @Test(arguments: StoreFactory.all)
    func pruneRemovesOldFinishedJobsAndWhatHangsOnThem(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "old", ["a", "b"], sha: "old-manifest")
            try await ingest(store, "mixed", ["done", "live", "late"])
            for k in ["old/a", "old/b", "mixed/done"] {
                _ = try await store.beginSubmission(key(k), fingerprint: "f", now: t0)
                try await store.commitTaskID(key(k), taskID: "t-" + k, status: .pending, now: t0)
                try await store.transition(key(k), from: .pending, to: .cancelled, cause: "test", now: t0 + 10)
                try await store.recordAttempt(key(k), Exchange(kind: .cancel, httpStatus: 200, durationMilliseconds: 1),
                                              now: t0 + 10)
            }
            try await store.transition(key("mixed/late"), from: .queued, to: .cancelled, cause: "t", now: t0 + 20)
            try await store.recordAttempt(nil, Exchange(kind: .list, httpStatus: 200, durationMilliseconds: 1),
                                          now: t0 + 10)
            try await store.recordAttempt(nil, Exchange(kind: .list, httpStatus: 200, durationMilliseconds: 1),
                                          now: t0 + 30)
            try await store.saveUpload(sha256: "x", model: .r2v, ossURL: "oss://x", uploadedAt: t0, expiresAt: t0 + 10)
            try await store.saveUpload(sha256: "y", model: .r2v, ossURL: "oss://y", uploadedAt: t0, expiresAt: t0 + 99)
            let cls = RunTimeClass(model: .r2v, resolution: .p720, durationSeconds: 5)
            for n in 0..<(JobStoreRules.runTimeSamplesKept + 3) {
                try await store.recordRunTime(cls, seconds: Double(n), now: t0 + Double(n))
            }
            let nothing = try await store.prune(finishedBefore: t0 + 10)
            #expect(nothing.jobs == 0 && nothing.batches == 0 && nothing.orphanAttempts == 0 && nothing.uploads == 0)
            let report = try await store.prune(finishedBefore: t0 + 11)
            #expect(report.jobs == 3 && report.batches == 1 && report.orphanAttempts == 1 && report.uploads == 1)
            #expect(try await store.job(key("old/a")) == nil)
            #expect(try await store.transitions(of: key("old/a")).isEmpty)
            #expect(try await store.attempts(of: key("mixed/done")).isEmpty)
            #expect(try await store.attemptCounts() == [.list: 1])
            #expect(try await store.jobsOwningTasks(["t-old/a", "t-mixed/done"]).isEmpty)
            #expect(try await store.batch("old") == nil)
            #expect(try await store.batches().map(\.name) == ["mixed"])
            #expect(try await store.jobs(in: Set(JobState.allCases)).map(\.key)
                    == [key("mixed/live"), key("mixed/late")])
            #expect(try await store.counts().byState == [.queued: 1, .cancelled: 1])
            #expect(try await store.cachedUpload(sha256: "y", model: .r2v, validAt: t0 + 50) == "oss://y")
            let kept = try #require(try await store.runTimeSamples(limitPerClass: 5000)[cls])
            #expect(kept.count == JobStoreRules.runTimeSamplesKept && kept.first == Double(kept.count + 2))
            // The pruned batch's manifest may be submitted again; a freed task id is free again.
            #expect(try await ingest(store, "old", ["a", "b"], sha: "old-manifest")
                    == .accepted(added: [key("old/a"), key("old/b")], unchanged: []))
            _ = try await store.beginSubmission(key("old/a"), fingerprint: "f", now: t0 + 40)
            #expect(try await store.commitTaskID(key("old/a"), taskID: "t-old/a", status: .pending, now: t0 + 40))
        }
    }

    // MARK: generations and cancellation

    @Test(arguments: StoreFactory.all)
    func theWriteGenerationMovesWithEveryWriteThatMayChangeJobs(_ f: StoreFactory) async throws {
        try await f.with { store in
            func expectMoves(_ moves: Bool, _ what: String, _ body: () async throws -> Void) async throws {
                let before = store.writeGeneration
                try await body()
                #expect((store.writeGeneration > before) == moves, "\(what)")
            }
            try await expectMoves(true, "ingest") { try await ingest(store, "b", ["a", "c"]) }
            try await expectMoves(true, "begin") {
                _ = try await store.beginSubmission(key("b/a"), fingerprint: "f", now: t0)
            }
            try await expectMoves(true, "commit") {
                _ = try await store.commitTaskID(key("b/a"), taskID: "t", status: .running, now: t0)
            }
            try await expectMoves(true, "update") {
                _ = try await store.update(key("b/a"), now: t0) { $0.costUSD = 0.5 }
            }
            try await expectMoves(true, "transition") {
                _ = try await store.transition(key("b/c"), from: .queued, to: .held, cause: "x", now: t0)
            }
            try await expectMoves(true, "updateBatch") { _ = try await store.updateBatch("b") { $0.paused = true } }
            try await expectMoves(true, "setSetting") { try await store.setSetting("paused", to: "1") }
            try await expectMoves(true, "prune") { _ = try await store.prune(finishedBefore: t0) }
            // Reads and writes that touch no job leave it: answers cached on it stay true.
            try await expectMoves(false, "reads, attempts, run times, uploads") {
                _ = try await store.job(key("b/a"))
                _ = try await store.counts()
                _ = try await store.listJobSummaries()
                try await store.recordAttempt(key("b/a"), Exchange(kind: .query, httpStatus: 200,
                                                                   durationMilliseconds: 3), now: t0)
                try await store.recordRunTime(RunTimeClass(model: .r2vFlash, resolution: .p720, durationSeconds: 5),
                                              seconds: 90, now: t0)
                try await store.saveUpload(sha256: "s", model: .r2v, ossURL: "oss://s", uploadedAt: t0,
                                           expiresAt: t0 + 1)
            }
            #expect(try await store.counts().costUSD == 0.5)
        }
    }

    @Test(arguments: StoreFactory.all)
    func aCancelledCallerNeverBeginsButAlwaysCommitsATaskID(_ f: StoreFactory) async throws {
        try await f.with { store in
            try await ingest(store, "b", ["a", "c"])
            _ = try await store.beginSubmission(key("b/c"), fingerprint: "f", now: t0)
            let outcome = await Task {
                withUnsafeCurrentTask { $0?.cancel() }
                let begun: Result<Int?, any Error> = await Result {
                    try await store.beginSubmission(key("b/a"), fingerprint: "f", now: t0)
                }
                let committed = try await store.commitTaskID(key("b/c"), taskID: "t", status: .pending, now: t0)
                return (begun, committed)
            }.result
            let (begun, committed) = try outcome.get()
            #expect(throws: CancellationError.self) { try begun.get() }
            #expect(committed)
            #expect(try await store.job(key("b/a"))?.state == .queued)
            #expect(try await store.job(key("b/a"))?.attempt == 0)
            #expect(try await store.job(key("b/c"))?.taskID == "t")
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
