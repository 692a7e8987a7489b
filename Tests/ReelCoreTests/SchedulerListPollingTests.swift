import Testing
@testable import ReelCore

extension Array where Element == SchedulerAction {
    var lists: [[JobKey]] {
        compactMap { if case .pollList(let tasks) = $0 { tasks.map(\.key) } else { nil } }
    }
}

/// List polling: one `GET /api/v1/tasks` covers every running task (docs/scheduler.md, "Polling").
@Suite("Scheduler list polling")
struct SchedulerListPollingTests {
    static let keys = (0..<5).map { jk("a/\($0)") }

    /// Five tasks created at t = 1, a sixth job queued; returns the scheduler and the time of the first list.
    static func fiveRunning(limits: (inout SchedulerLimits) -> Void = { _ in }) -> (Scheduler, Double) {
        var l = makeScheduler().limits
        limits(&l)
        var s = Scheduler(limits: l, seed: 1)
        for i in 0..<6 { _ = s.handle(.enqueued(sjob("a/\(i)")), now: 0) }
        for k in keys { _ = s.handle(.submitted(k, taskID: "t-\(k.id)"), now: 1) }
        return (s, s.nextWakeup(after: 1)!)
    }

    @Test func oneListQueryCoversEveryRunningTask() {
        var (s, at) = Self.fiveRunning()
        let out = s.handle(.tick, now: at)
        #expect(out.lists == [Self.keys])
        #expect(out.polls.isEmpty)
        #expect(s.snapshot.pollsIssued == 1)
        // While it is outstanding nothing else is polled, however long it takes.
        #expect(s.handle(.tick, now: at + 30).lists.isEmpty)
    }

    @Test func aTaskTheListShowsEndedFreesItsSlotAtOnceAndIsQueriedForItsResult() {
        var (s, at) = Self.fiveRunning()
        _ = s.handle(.tick, now: at)
        let out = s.handle(.listed([jk("a/0"): .succeeded, jk("a/1"): .running, jk("a/2"): .running,
                                    jk("a/3"): .pending, jk("a/4"): .running]), now: at + 0.1)
        #expect(out.submits == [jk("a/5")], "the slot is free the moment the list shows the end")
        #expect(out.polls == [jk("a/0")], "the list carries no video_url: the task's own query brings it")
        #expect(s.snapshot.slotsHeld == 5)
        #expect(s.handle(.polled(jk("a/0"), .succeeded), now: at + 0.2) == [.download(jk("a/0"))])
        // The next round is one list again, covering the new task too.
        _ = s.handle(.submitted(jk("a/5"), taskID: "t-5"), now: at + 0.3)
        let next = s.nextWakeup(after: at + 0.3)!
        #expect(next - (at + 0.1) >= s.limits.polling.minInterval - 1e-9)
        #expect(s.handle(.tick, now: next).lists == [[jk("a/1"), jk("a/2"), jk("a/3"), jk("a/4"), jk("a/5")]])
    }

    @Test func aTaskMissingFromTheAnswerIsQueriedOnItsOwnThenListedAgain() {
        var (s, at) = Self.fiveRunning()
        _ = s.handle(.tick, now: at)
        let out = s.handle(.listed([jk("a/1"): .running, jk("a/2"): .running, jk("a/3"): .running,
                                    jk("a/4"): .running]), now: at + 0.1)
        #expect(out.polls == [jk("a/0")])
        #expect(out.submits.isEmpty, "a missing task still holds its slot")
        _ = s.handle(.polled(jk("a/0"), .running), now: at + 0.2)
        var t = at + 0.2
        var lists: [[JobKey]] = []
        while lists.isEmpty, let w = s.nextWakeup(after: t) {
            t = w
            let o = s.handle(.tick, now: t)
            lists = o.lists
            #expect(o.polls.isEmpty)
        }
        #expect(lists == [Self.keys])
    }

    @Test func aSingleRunningTaskIsQueriedOnItsOwn() {
        var s = makeScheduler()
        _ = s.handle(.enqueued(sjob("a/0")), now: 0)
        _ = s.handle(.submitted(jk("a/0"), taskID: "t-0"), now: 1)
        let out = s.handle(.tick, now: s.nextWakeup(after: 1)!)
        #expect(out.polls == [jk("a/0")])
        #expect(out.lists.isEmpty)
    }

    @Test func perTaskPollingWhenTheListIsOff() {
        var (s, at) = Self.fiveRunning { $0.polling.useTaskList = false }
        let out = s.handle(.tick, now: at)
        #expect(out.lists.isEmpty)
        #expect(out.polls == Self.keys)
    }

    /// Polls every covered task once with `status`, then returns the next due tick's actions.
    private static func pollAll(_ s: inout Scheduler, _ status: TaskStatus, at: Timestamp) -> (Timestamp, [SchedulerAction]) {
        for k in keys { _ = s.handle(.polled(k, status), now: at) }
        let w = s.nextWakeup(after: at)!
        return (w, s.handle(.tick, now: w))
    }

    @Test func aFailedListSendsEveryCoveredTaskToItsOwnQueryAtOnce() {
        var (s, at) = Self.fiveRunning()
        #expect(s.handle(.tick, now: at).lists == [Self.keys])
        // The single-task query is the guaranteed path: no covered task waits for the list to come back.
        #expect(s.handle(.listFailed(.provider, retryAfter: nil, message: "HTTP 500"), now: at + 1).polls == Self.keys)
        // One failure does not switch the list off: the next round is a list again.
        var (w, out) = Self.pollAll(&s, .running, at: at + 2)
        #expect(out.lists == [Self.keys])
        // A throttled list: the covered tasks are queried after the Retry-After.
        #expect(s.handle(.listFailed(.throttled, retryAfter: 7, message: "429"), now: w + 1).isEmpty)
        #expect(s.nextWakeup(after: w + 1) == w + 1 + 7)
        #expect(s.handle(.tick, now: w + 8).polls == Self.keys)
        #expect(s.snapshot.listPollingOffUntil == nil)
        (w, out) = Self.pollAll(&s, .running, at: w + 9)
        #expect(out.lists == [Self.keys])
        // The third failure in a row switches list polling off, with a reason, for 5 minutes.
        #expect(s.handle(.listFailed(.provider, retryAfter: nil, message: "HTTP 500"), now: w + 1).polls == Self.keys)
        #expect(s.snapshot.listPollingOffUntil == w + 1 + 300)
        #expect(s.snapshot.listPollingOffReason?.contains("HTTP 500") == true)
        var now = w + 2
        while true {
            (now, out) = Self.pollAll(&s, .running, at: now)
            if now >= w + 1 + 300 {
                // Then it is probed again.
                #expect(out.lists == [Self.keys])
                break
            }
            #expect(out.lists.isEmpty, "no list while it is off")
            #expect(out.polls == Self.keys)
        }
        _ = s.handle(.listed(Dictionary(uniqueKeysWithValues: Self.keys.map { ($0, TaskStatus.running) })), now: now + 0.1)
        #expect(s.snapshot.listPollingOffUntil.map { $0 <= now } ?? true)
        #expect(s.snapshot.listPollingOffReason == nil)
    }

    @Test func aRefusedListIsOffAtOnceUntilReloadOrReprobe() {
        var (s, at) = Self.fiveRunning()
        _ = s.handle(.tick, now: at)
        #expect(s.handle(.listFailed(.jobPermanent, retryAfter: nil, message: "404"), now: at + 1).polls == Self.keys)
        #expect(s.snapshot.listPollingOffUntil == at + 301)
        let (w, out) = Self.pollAll(&s, .running, at: at + 2)
        #expect(out.lists.isEmpty && out.polls == Self.keys)
        _ = s.handle(.setLimits(s.limits), now: w + 1)
        #expect(s.snapshot.listPollingOffUntil == nil)
        let (_, again) = Self.pollAll(&s, .running, at: w + 2)
        #expect(again.lists == [Self.keys])
    }

    @Test func cancellingATaskTheListShowsEndedDiscardsItsResult() {
        var (s, at) = Self.fiveRunning()
        _ = s.handle(.tick, now: at)
        var statuses = Dictionary(uniqueKeysWithValues: Self.keys.map { ($0, TaskStatus.running) })
        statuses[jk("a/2")] = .succeeded
        _ = s.handle(.listed(statuses), now: at + 0.1)
        #expect(s.handle(.cancel(jk("a/2")), now: at + 0.15) == [.discardWhenDone(jk("a/2"))])
        #expect(s.handle(.polled(jk("a/2"), .succeeded), now: at + 0.2).isEmpty, "no download")
        #expect(s.snapshot.downloading == 0)
    }

    @Test func aListCountsAsOneQueryInTheRateWindow() {
        var (s, at) = Self.fiveRunning { $0.queryPerSecond = 1 }
        _ = s.handle(.tick, now: at)
        var statuses = Dictionary(uniqueKeysWithValues: Self.keys.map { ($0, TaskStatus.running) })
        statuses[jk("a/0")] = .succeeded
        let out = s.handle(.listed(statuses), now: at + 0.1)
        #expect(out.polls.isEmpty, "the list used this second's only query")
        #expect(s.nextWakeup(after: at + 0.1)! <= at + 1 + 1e-9)
        #expect(s.handle(.tick, now: at + 1).polls == [jk("a/0")])
    }

    @Test func listIntervalFollowsTheTasksCapsAndTheFinishMass() {
        var p = PollPolicy()
        let prior = RunTimeDistribution.prior   // uniform 60–300 s
        // Before any task's first poll (q(0.05) = 72 s): wait for the earliest, at most maxInterval.
        #expect(p.nextList([(0, prior), (10, prior)], queued: false) == 60)
        #expect(p.nextList([(30, prior), (50, prior)], queued: false) == 22)
        // In the dense band the latency cap binds (the chance of a finish in 4 s is small)…
        #expect(p.nextList([(150, prior), (200, prior)], queued: false) == 4)
        // …or the tighter cap while work is queued.
        p.latencyCapWhileQueued = 1
        #expect(p.nextList([(150, prior), (200, prior)], queued: true) == 1)
        #expect(p.nextList([(150, prior), (200, prior)], queued: false) == 4)
        // Overdue tasks: every overdueInterval.
        #expect(p.nextList([(400, prior)], queued: false) == 4)
        // Where finishes are dense the mass rule binds: three tasks at 108 s of a 100–110 s spread.
        p.listMassStep = 0.7
        let tight = RunTimeDistribution(sorted: (0..<200).map { 100 + Double($0) / 19.9 })
        p.minInterval = 0.1
        let d = p.nextList([(108, tight), (108, tight), (108, tight)], queued: false)
        // 1 − ((2 − Δ)/2)³ = 0.7  ⇒  Δ = 2 − 2·0.3^(1/3) ≈ 0.661
        #expect(abs(d - 0.661) < 0.01)
    }
}

@Suite("Scheduler health")
struct SchedulerHealthTests {
    @Test func healthIsOkOnlyWhileNothingIsWrong() {
        var (s, at) = SchedulerListPollingTests.fiveRunning()
        #expect(SchedulerHealth(s.snapshot, limits: s.limits, now: at).health == "ok")
        #expect(SchedulerHealth(s.snapshot, limits: s.limits, now: at).warnings.isEmpty)
        // A list that is refused: polling per task, and status says so.
        _ = s.handle(.tick, now: at)
        _ = s.handle(.listFailed(.jobPermanent, retryAfter: nil, message: "list: HTTP 404"), now: at + 1)
        let off = SchedulerHealth(s.snapshot, limits: s.limits, now: at + 2)
        #expect(off.health == "degraded")
        #expect(off.warnings.contains { $0.contains("task-list polling is off") && $0.contains("HTTP 404") })
        #expect(off.notes == ["task list off"])
        // Single-task queries failing again and again.
        for k in SchedulerListPollingTests.keys { _ = s.handle(.pollFailed(k, .provider, retryAfter: nil), now: at + 3) }
        #expect(SchedulerHealth(s.snapshot, limits: s.limits, now: at + 3).warnings.contains { $0.contains("5 in a row") })
    }

    @Test func anInDoubtJobWaitingForAnOperatorAndAThrottleCutAreReported() {
        var s = makeScheduler(concurrency: 2)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.enqueued(sjob("a/2")), now: 0)
        _ = s.handle(.submitFailed(jk("a/1"), .ambiguous, retryAfter: nil, message: "500"), now: 1)
        _ = s.handle(.inDoubtNeedsOperator(jk("a/1")), now: 1)
        _ = s.handle(.submitFailed(jk("a/2"), .throttled, retryAfter: nil, message: "429"), now: 1)
        let h = SchedulerHealth(s.snapshot, limits: s.limits, now: 1.5)
        #expect(h.health == "breaker_open", "the ambiguous create tripped the breaker")
        #expect(h.warnings.contains { $0.contains("provider breaker open for 5 s") })
        #expect(h.warnings.contains { $0.contains("1 in-doubt job(s) wait for an operator") })
        #expect(h.warnings.contains { $0.contains("wan2.6-r2v throttled by the provider: no creates of it for 1 s") })
        #expect(!h.warnings.contains { $0.contains("concurrency cut") }, "one throttle costs a short hold only")
        // The probe after the breaker is throttled again: the account is busy elsewhere, the pool shrinks.
        #expect(s.handle(.tick, now: 6).submits == [jk("a/2")])
        _ = s.handle(.submitFailed(jk("a/2"), .throttled, retryAfter: nil, message: "429"), now: 7)
        let cut = SchedulerHealth(s.snapshot, limits: s.limits, now: 7.5)
        #expect(cut.health == "throttled")
        #expect(cut.warnings.contains { $0.contains("wan2.6-r2v concurrency cut to 1 of 2") })
    }
}
