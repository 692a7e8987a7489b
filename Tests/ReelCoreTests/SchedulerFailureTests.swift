import Testing
@testable import ReelCore

@Suite("Scheduler failures")
struct SchedulerFailureTests {
    private func retryTime(_ actions: [SchedulerAction]) -> Double? {
        for a in actions { if case .retryLater(_, let at, _) = a { return at } }
        return nil
    }

    /// Full jitter: retry n waits in [0, min(maxDelay, base·2^(n-1))], never less than Retry-After; attempt cap → fail.
    @Test func backoffStaysInsideItsBoundsAndGivesUpAtTheCap() {
        for seed in UInt64(1)...40 {
            var s = makeScheduler(concurrency: 1, maxAttempts: 5, seed: seed)
            let k = jk("a/1")
            var t = 0.0
            #expect(s.handle(.enqueued(sjob("a/1")), now: t).submits == [k])
            for attempt in 1...5 {
                let retryAfter: Double? = attempt == 2 ? 40 : nil
                let out = s.handle(.submitFailed(k, .provider, retryAfter: retryAfter, message: "HTTP 502"), now: t)
                if attempt == 5 {
                    #expect(out == [.fail(k, reason: "gave up after 5 attempts: HTTP 502")])
                    #expect(s.snapshot.queued + s.snapshot.retrying + s.snapshot.slotsHeld == 0)
                    break
                }
                let at = retryTime(out)!
                let cap = min(900, 15 * pow2(attempt - 1))
                #expect(at - t >= (retryAfter ?? 0) && at - t <= max(cap, retryAfter ?? 0))
                s.breaker = .closed   // isolate the job's backoff from the provider breaker
                if at - t > 0.001 { #expect(s.handle(.tick, now: at - 0.001).submits.isEmpty) }
                t = at
                #expect(s.handle(.tick, now: t).submits == [k])
            }
        }
    }

    @Test func jitterIsSpreadAndDeterministicPerSeed() {
        func delays(seed: UInt64) -> [Double] {
            var s = makeScheduler(concurrency: 200, seed: seed)
            var out: [Double] = []
            for i in 0..<200 {
                s.breaker = .closed   // measure jitter alone, not the breaker
                _ = s.handle(.enqueued(sjob("b/\(i)")), now: 0)
                out.append(retryTime(s.handle(.submitFailed(jk("b/\(i)"), .provider, retryAfter: nil, message: "x"),
                                              now: 0))!)
            }
            return out
        }
        let ds = delays(seed: 3)
        #expect(ds == delays(seed: 3))
        #expect(ds != delays(seed: 4))
        #expect(ds.allSatisfy { $0 >= 0 && $0 <= 15 })
        #expect(ds.min()! < 2 && ds.max()! > 13, "full jitter spreads over [0, 15]")
    }

    @Test func jobBlamedErrorFailsOnlyThatJob() {
        var s = makeScheduler(concurrency: 2)
        let first = s.handle(.enqueued(sjob("a/1")), now: 0).submits + s.handle(.enqueued(sjob("a/2")), now: 0).submits
        _ = s.handle(.enqueued(sjob("a/3")), now: 0)
        #expect(first.count == 2)
        let out = s.handle(.submitFailed(jk("a/1"), .jobPermanent, retryAfter: nil,
                                         message: "InvalidParameter: size"), now: 1)
        #expect(out == [.fail(jk("a/1"), reason: "InvalidParameter: size"), .submit(jk("a/3"))])
        #expect(s.snapshot.breaker == .closed)
    }

    @Test func providerErrorTripsTheBreakerWithExponentialHalfOpenProbes() {
        var s = makeScheduler(concurrency: 5)
        for i in 0..<10 { _ = s.handle(.enqueued(sjob("a/\(i)", at: Double(i))), now: 0) }
        #expect(s.snapshot.slotsHeld == 5)
        _ = s.handle(.submitFailed(jk("a/0"), .provider, retryAfter: nil, message: "HTTP 503"), now: 10)
        #expect(s.snapshot.breaker == .open(until: 15))
        #expect(s.nextWakeup(after: 10) ?? 99 <= 15)
        // A second failure of a create sent before the breaker opened does not extend it.
        _ = s.handle(.submitFailed(jk("a/1"), .provider, retryAfter: nil, message: "HTTP 503"), now: 11)
        #expect(s.snapshot.breaker == .open(until: 15))
        #expect(s.handle(.tick, now: 14.9).submits.isEmpty)
        let probe = s.handle(.tick, now: 15).submits
        #expect(probe.count == 1, "half-open: one probe although two slots are free")
        #expect(s.snapshot.breaker == .halfOpen)
        #expect(s.handle(.tick, now: 15.5).submits.isEmpty)
        _ = s.handle(.submitFailed(probe[0], .provider, retryAfter: nil, message: "HTTP 500"), now: 16)
        #expect(s.snapshot.breaker == .open(until: 26), "second trip doubles to 10 s")
        let probe2 = s.handle(.tick, now: 26).submits
        #expect(probe2.count == 1)
        let after = s.handle(.submitted(probe2[0], taskID: "t1"), now: 27)
        #expect(s.snapshot.breaker == .closed)
        #expect(after.submits.count == 1, "closed again: the free slot fills")
        #expect(s.snapshot.slotsHeld == 5)
    }

    @Test func accountBlameStopsAllSubmissionUntilResume() {
        var s = makeScheduler(concurrency: 2)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.enqueued(sjob("a/2")), now: 0)
        _ = s.handle(.enqueued(sjob("a/3")), now: 0)
        let out = s.handle(.submitFailed(jk("a/1"), .account, retryAfter: nil, message: "Arrearage: overdue"), now: 1)
        #expect(out.submits.isEmpty)
        #expect(s.snapshot.accountBlock == "Arrearage: overdue")
        #expect(s.snapshot.submissionBlocked?.contains("Arrearage") == true)
        #expect(s.handle(.tick, now: 500).submits.isEmpty)
        let resumed = s.handle(.resume(batch: nil), now: 501)
        #expect(resumed.submits == [jk("a/1")], "the blocked job keeps its place")
        #expect(s.snapshot.accountBlock == nil)
    }

    /// One throttling episode (a burst that met the provider's window edge) costs a 1 s hold and nothing else; a
    /// throttle again after that hold, below our own cap, means the account is busy elsewhere: shrink to what we
    /// hold, cool down, grow back.
    @Test func throttlingBelowOurCapShrinksThenGrowsBack() {
        var s = makeScheduler(concurrency: 5)
        for i in 0..<20 { _ = s.handle(.enqueued(sjob("a/\(i)", at: Double(i))), now: 0) }
        for i in 0..<2 { _ = s.handle(.submitted(jk("a/\(i)"), taskID: "t\(i)"), now: 0) }
        let out = s.handle(.submitFailed(jk("a/2"), .throttled, retryAfter: nil, message: "Throttling"), now: 1)
        #expect(out.contains(.retryLater(jk("a/2"), at: 2, reason: "throttled: Throttling")))
        _ = s.handle(.submitFailed(jk("a/3"), .throttled, retryAfter: nil, message: "Throttling"), now: 1)
        _ = s.handle(.submitFailed(jk("a/4"), .throttled, retryAfter: nil, message: "Throttling"), now: 1)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 5, "one episode at a window edge does not shrink the pool")
        #expect(s.snapshot.throttleCount == 3)
        #expect(s.handle(.tick, now: 1.5).submits.isEmpty, "held for 1 s")
        #expect(s.handle(.tick, now: 2).submits == [jk("a/2"), jk("a/3"), jk("a/4")])
        // Throttled again after the hold: the account is busy elsewhere. The cap follows what we actually hold.
        _ = s.handle(.submitFailed(jk("a/2"), .throttled, retryAfter: nil, message: "Throttling"), now: 3)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 4, "two others were still submitting: 2 + 2 = 4 held")
        _ = s.handle(.submitFailed(jk("a/3"), .throttled, retryAfter: nil, message: "Throttling"), now: 3)
        _ = s.handle(.submitFailed(jk("a/4"), .throttled, retryAfter: 30, message: "Throttling"), now: 3)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 2)
        #expect(s.snapshot.pool(.r2v).concurrencyCap == 2)
        #expect(s.snapshot.pool(.r2vFlash).concurrencyCap == 5, "the flash pool is untouched")
        #expect(s.handle(.tick, now: 20).submits.isEmpty, "Retry-After 30 s holds creates")
        // A render finishes: one slot frees and refills, never above the shrunken cap.
        let refill = s.handle(.polled(jk("a/0"), .succeeded), now: 40).submits
            + s.handle(.released(jk("a/0")), now: 41).submits
        #expect(refill.count == 1)
        #expect(s.snapshot.slotsHeld == 2)
        _ = s.handle(.submitted(refill[0], taskID: "tr"), now: 41)
        // Cool-down 60 s from the last throttle (t = 3), then +1 per quiet 30 s window.
        #expect(s.handle(.tick, now: 62).submits.isEmpty)
        #expect(s.handle(.tick, now: 63).submits.count == 1)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 3)
        #expect(s.handle(.tick, now: 93).submits.count == 1)
        #expect(s.handle(.tick, now: 123).submits.count == 1)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 5)
        #expect(s.handle(.tick, now: 500).submits.isEmpty)
        #expect(s.snapshot.slotsHeld == 5)
    }

    @Test func throttlingAtOurOwnCapDoesNotShrinkIt() {
        var s = makeScheduler(concurrency: 2)
        for i in 0..<3 { _ = s.handle(.enqueued(sjob("a/\(i)", at: Double(i))), now: 0) }
        _ = s.handle(.submitFailed(jk("a/1"), .throttled, retryAfter: nil, message: "Throttling"), now: 1)
        #expect(s.handle(.tick, now: 2).submits == [jk("a/1")])
        // A task restored at start-up puts us above our own cap: the throttle is ours, not someone else's.
        _ = s.handle(.restoredRemote(sjob("b/0"), taskID: "tb", submittedAt: -10), now: 2.5)
        _ = s.handle(.submitFailed(jk("a/1"), .throttled, retryAfter: nil, message: "Throttling"), now: 3)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 2)
        #expect(s.snapshot.throttleCount == 2)
        // Below the cap it does shrink.
        _ = s.handle(.released(jk("b/0")), now: 4)
        #expect(s.handle(.tick, now: 5).submits == [jk("a/1")])
        _ = s.handle(.submitFailed(jk("a/1"), .throttled, retryAfter: nil, message: "Throttling"), now: 6)
        #expect(s.snapshot.pool(.r2v).adaptiveCap == 1)
    }

    @Test func ambiguousCreateHoldsTheSlotInDoubtUntilResolved() {
        var s = makeScheduler(concurrency: 1)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.enqueued(sjob("a/2")), now: 0)
        let out = s.handle(.submitFailed(jk("a/1"), .ambiguous, retryAfter: nil, message: "timeout"), now: 1)
        #expect(out.isEmpty)
        #expect(s.snapshot.inDoubt == 1 && s.snapshot.slotsHeld == 1)
        #expect(s.handle(.tick, now: 100).submits.isEmpty, "in doubt keeps its slot")
        #expect(s.handle(.released(jk("a/1")), now: 101).submits == [jk("a/2")])
    }

    @Test func pollFailuresBackOffAndTerminalStatesFail() {
        var s = makeScheduler(concurrency: 3, taskList: false)
        for i in 0..<3 { _ = s.handle(.enqueued(sjob("a/\(i)")), now: 0) }
        for i in 0..<3 { _ = s.handle(.submitted(jk("a/\(i)"), taskID: "t\(i)"), now: 0) }
        let polls = s.handle(.restoredRemote(sjob("b/0"), taskID: "tb", submittedAt: -50), now: 1).polls
        #expect(polls == [jk("b/0")], "a restored task is polled at once")
        _ = s.handle(.pollFailed(jk("b/0"), .provider, retryAfter: nil), now: 2)
        #expect(s.handle(.tick, now: 3.9).polls.isEmpty)
        #expect(s.handle(.tick, now: 4).polls == [jk("b/0")])
        #expect(s.handle(.polled(jk("a/0"), .failed), now: 5) == [.fail(jk("a/0"), reason: "the provider reported the task FAILED")])
        #expect(s.snapshot.slotsHeld == 3)
    }

    @Test func aYoungUnknownTaskIsQueriedAgainThenGoesInDoubtNeverExpired() {
        var limits = SchedulerLimits(concurrency: 2)
        limits.polling.useTaskList = false
        limits.unknownGrace = 30
        var s = Scheduler(limits: limits, seed: 1)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.submitted(jk("a/1"), taskID: "t1"), now: 0)
        // UNKNOWN 5 s after the create: the provider lost the task for now (a restart), it did not expire.
        #expect(s.handle(.polled(jk("a/1"), .unknown), now: 5).isEmpty)
        #expect(s.snapshot.unknownTasks == 1 && s.snapshot.slotsHeld == 1)
        #expect(s.nextWakeup(after: 5) == 7, "queried again after 2 s")
        #expect(s.handle(.tick, now: 7).polls == [jk("a/1")])
        // It comes back: nothing is lost.
        _ = s.handle(.polled(jk("a/1"), .running), now: 8)
        #expect(s.snapshot.unknownTasks == 0)
        // UNKNOWN again, for longer than the grace: in doubt (reconciled), holding its slot.
        var now = 20.0
        var out = s.handle(.polled(jk("a/1"), .unknown), now: now)
        while out.isEmpty {
            now = s.nextWakeup(after: now)!
            #expect(s.handle(.tick, now: now).polls == [jk("a/1")])
            out = s.handle(.polled(jk("a/1"), .unknown), now: now)
        }
        #expect(now >= 50 && now <= 52, "re-queried for the 30 s grace, with backoff")
        guard case .vanished(let key, let task, let reason)? = out.first else {
            Issue.record("expected .vanished, got \(out)")
            return
        }
        #expect(key == jk("a/1") && task == "t1" && reason.contains("UNKNOWN") && !reason.contains("24-hour window passed"))
        #expect(s.snapshot.inDoubt == 1 && s.snapshot.slotsHeld == 1)
    }

    @Test func anUnknownTaskPastItsLifetimeExpires() {
        var s = makeScheduler(concurrency: 1, taskList: false)
        let day = ProviderLimits.resultLifetimeSeconds
        _ = s.handle(.restoredRemote(sjob("a/old"), taskID: "t", submittedAt: 0), now: day)
        let out = s.handle(.polled(jk("a/old"), .unknown), now: day + 1)
        guard case .expire(let key, let reason)? = out.first, out.count == 1 else {
            Issue.record("expected .expire, got \(out)")
            return
        }
        #expect(key == jk("a/old") && reason.contains("24-hour window has passed"))
        #expect(s.snapshot.slotsHeld == 0)
    }

    @Test func anInDoubtJobLetsItsSlotGoAfterAnHourButStaysSettleable() {
        var s = makeScheduler(concurrency: 1)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.enqueued(sjob("a/2")), now: 0)
        _ = s.handle(.submitFailed(jk("a/1"), .ambiguous, retryAfter: nil, message: "500"), now: 1)
        _ = s.handle(.inDoubtNeedsOperator(jk("a/1")), now: 2)
        #expect(s.snapshot.awaitingOperator == 1)
        #expect(s.handle(.tick, now: 1800).submits.isEmpty, "waiting for an operator still holds the slot")
        #expect(s.handle(.tick, now: 3601).submits == [jk("a/2")], "an hour later any task of it has ended")
        #expect(s.holds(jk("a/1")))
        // An operator adopts a task for it later: it is polled like any other.
        _ = s.handle(.released(jk("a/2")), now: 3700)
        _ = s.handle(.submitted(jk("a/1"), taskID: "t1"), now: 3701)
        #expect(s.snapshot.pending == 1)
        #expect(s.snapshot.awaitingOperator == 0)
    }

    @Test func theBreakerStaysInsideTheConfiguredMaxDelay() {
        var s = Scheduler(limits: SchedulerLimits(concurrency: 1, maxDelay: 1), seed: 1)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.enqueued(sjob("a/2")), now: 0)
        _ = s.handle(.submitFailed(jk("a/1"), .ambiguous, retryAfter: nil, message: "500"), now: 10)
        #expect(s.snapshot.breaker == .open(until: 11), "5 s, capped at max_delay 1 s")
        _ = s.handle(.released(jk("a/1")), now: 10.5)
        #expect(s.handle(.tick, now: 11).submits == [jk("a/2")], "the probe goes out when it closes")
        _ = s.handle(.submitFailed(jk("a/2"), .ambiguous, retryAfter: nil, message: "500"), now: 11)
        #expect(s.snapshot.breaker == .open(until: 12), "the doubled trip is capped too")
    }

    @Test func throttleHoldsStayInsideTheConfiguredMaxDelay() {
        var limits = SchedulerLimits(concurrency: 5, maxDelay: 4)
        limits.polling.useTaskList = false
        var s = Scheduler(limits: limits, seed: 1)
        var submits: [JobKey] = []
        for i in 0..<10 { submits += s.handle(.enqueued(sjob("a/\(i)")), now: 0).submits }
        var now = 0.0
        for round in 0..<8 {
            let throttledAt = now
            for key in submits {
                _ = s.handle(.submitFailed(key, .throttled, retryAfter: nil, message: "429"), now: now)
            }
            submits = []
            while submits.isEmpty {
                let next = s.nextWakeup(after: now)!
                now = next
                submits = s.handle(.tick, now: now).submits
            }
            #expect(now - throttledAt <= 4.001,
                    "round \(round): the next probe goes out within [retry] max_delay of the throttle")
        }
    }
}

@Suite("Scheduler restart and wake-ups")
struct SchedulerRestartTests {
    @Test func restoredJobsHoldSlotsAndAnInDoubtJobCanBeAdopted() {
        var s = makeScheduler(concurrency: 2)
        #expect(s.nextWakeup(after: 0) == nil, "idle: nothing to wake up for")
        _ = s.handle(.restoredInDoubt(sjob("a/doubt")), now: 0)
        let first = s.handle(.restoredRemote(sjob("a/remote"), taskID: "tr", submittedAt: -100), now: 0)
        #expect(first == [.poll(jk("a/remote"), taskID: "tr")])
        #expect(s.handle(.enqueued(sjob("a/new")), now: 0).submits.isEmpty, "both slots are held")
        #expect(s.snapshot.slotsHeld == 2 && s.snapshot.inDoubt == 1 && s.snapshot.queued == 1)
        // The operator adopts the task found for the in-doubt job: it is polled like any other.
        _ = s.handle(.submitted(jk("a/doubt"), taskID: "td"), now: 1)
        #expect(s.snapshot.pending == 2)
        let wake = s.nextWakeup(after: 1)!
        #expect(wake > 1 && wake <= 61)
        #expect(s.handle(.tick, now: wake).polls == [jk("a/doubt")])
        // Re-enqueueing a key the scheduler holds replaces it (the daemon's state wins) and frees its slot.
        #expect(s.handle(.enqueued(sjob("a/remote", at: 5)), now: 2).submits == [jk("a/new")])
        #expect(s.snapshot.slotsHeld == 2)
    }
}
