import Testing
@testable import ReelCore

@Suite("Scheduler controls, limits, polling and ETA")
struct SchedulerControlTests {
    @Test func cancelInEachState() {
        var s = makeScheduler(concurrency: 4)
        for i in 0..<6 { _ = s.handle(.enqueued(sjob("a/\(i)", at: Double(i))), now: 0) }
        // a/0..3 are submitting; a/4, a/5 queued.
        _ = s.handle(.submitted(jk("a/1"), taskID: "t1"), now: 1)
        _ = s.handle(.submitted(jk("a/2"), taskID: "t2"), now: 1)
        _ = s.handle(.polled(jk("a/2"), .running), now: 2)

        // Queued: gone, never submitted.
        #expect(s.handle(.cancel(jk("a/5")), now: 3).isEmpty)
        #expect(s.snapshot.queued == 1)
        // Pending at the provider: remote cancel.
        #expect(s.handle(.cancel(jk("a/1")), now: 3) == [.cancelRemote(jk("a/1"), taskID: "t1")])
        // Running: cannot be cancelled remotely; stated, and the result is discarded.
        #expect(s.handle(.cancel(jk("a/2")), now: 3) == [.discardWhenDone(jk("a/2"))])
        #expect(s.handle(.cancel(jk("a/2")), now: 3).isEmpty, "stated once")
        // Submitting: remembered; the task id that comes back is cancelled at once.
        #expect(s.handle(.cancel(jk("a/0")), now: 3).isEmpty)
        let late = s.handle(.submitted(jk("a/0"), taskID: "t0"), now: 4)
        #expect(late.contains(.cancelRemote(jk("a/0"), taskID: "t0")))

        // The remote cancel worked; the discarded render finished: neither downloads nor fails, both free slots.
        let c1 = s.handle(.polled(jk("a/1"), .canceled), now: 5)
        let c2 = s.handle(.polled(jk("a/2"), .succeeded), now: 6)
        #expect(!(c1 + c2).contains { if case .download = $0 { true } else if case .fail = $0 { true } else { false } })
        #expect((c1 + c2).submits == [jk("a/4")])
        // A pending task that started running before the cancel arrived: the next poll states the discard.
        #expect(s.handle(.polled(jk("a/0"), .running), now: 7) == [.discardWhenDone(jk("a/0"))])
        #expect(!s.handle(.tick, now: 1000).submits.contains(jk("a/5")))
    }

    @Test func pauseResumeAndDrain() {
        var s = makeScheduler(concurrency: 5)
        _ = s.handle(.pause(batch: "b"), now: 0)
        var out: [JobKey] = []
        for i in 0..<3 { out += s.handle(.enqueued(sjob("b/\(i)", at: Double(i))), now: 0).submits }
        out += s.handle(.enqueued(sjob("a/0")), now: 0).submits
        #expect(out == [jk("a/0")], "batch b is paused")
        #expect(s.batchETA("b", now: 0) == nil)
        _ = s.handle(.pause(batch: nil), now: 1)
        #expect(s.handle(.resume(batch: "b"), now: 2).submits.isEmpty, "still paused globally")
        #expect(s.snapshot.submissionBlocked == "paused by the operator")
        #expect(s.handle(.resume(batch: nil), now: 3).submits.count == 3)
        _ = s.handle(.drain, now: 4)
        _ = s.handle(.enqueued(sjob("c/0")), now: 4)
        #expect(s.handle(.tick, now: 100).submits.isEmpty)
        #expect(s.snapshot.draining)
        // Running jobs still get polled and finish while draining.
        _ = s.handle(.submitted(jk("a/0"), taskID: "ta"), now: 100)
        #expect(s.handle(.tick, now: 100 + 60).polls == [jk("a/0")])
        #expect(s.handle(.polled(jk("a/0"), .succeeded), now: 161) == [.download(jk("a/0"))])
        #expect(s.handle(.resume(batch: nil), now: 200).submits == [jk("c/0")])
    }

    /// Creates ≤ 5 and queries ≤ 20 in every one-second window, whatever the backlog.
    @Test func rateLimitsAreNeverExceeded() {
        var s = makeScheduler(concurrency: 400, submitPerSecond: 5, queryPerSecond: 20)
        var creates: [Double] = [], queries: [Double] = []
        var t = 0.0
        func drive(_ first: [SchedulerAction]) {
            var work = first
            while !work.isEmpty {
                switch work.removeFirst() {
                case .submit(let k):
                    creates.append(t)
                    work += s.handle(.submitted(k, taskID: "t-\(k.id)"), now: t)
                case .poll(let k, _):
                    queries.append(t)
                    work += s.handle(.polled(k, .running), now: t)
                default: break
                }
            }
        }
        // 200 tasks restored at start-up all want a poll at once: a thundering herd the budget must spread.
        for i in 0..<200 { drive(s.handle(.restoredRemote(sjob("r/\(i)"), taskID: "r\(i)", submittedAt: -30), now: 0)) }
        for i in 0..<200 { drive(s.handle(.enqueued(sjob("a/\(i)", at: Double(i))), now: 0)) }
        while t < 300, let w = s.nextWakeup(after: t) {
            #expect(w >= t)
            t = w
            drive(s.handle(.tick, now: t))
        }
        #expect(creates.count == 200)
        #expect(queries.count > 400)
        func maxInWindow(_ ts: [Double]) -> Int {
            var best = 0, lo = 0
            for hi in ts.indices {
                while ts[hi] - ts[lo] >= 1 - 1e-9 { lo += 1 }   // 61.2 + 1 is not exactly 62.2
                best = max(best, hi - lo + 1)
            }
            return best
        }
        #expect(maxInWindow(creates) == 5)
        #expect(maxInWindow(queries) == 20)
    }

    @Test func pollsFollowTheLearnedDistribution() {
        var s = makeScheduler(concurrency: 1)
        for i in 0..<200 {
            _ = s.handle(.observedRunTime(model: .r2v, resolution: .p1080, durationSeconds: 5,
                                          seconds: 100 + Double(i % 41)), now: 0)   // 100…140 s
        }
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.submitted(jk("a/1"), taskID: "t"), now: 0)
        var times: [Double] = []
        var t = 0.0
        while t < 170, let w = s.nextWakeup(after: t) {
            t = w
            if !s.handle(.tick, now: t).polls.isEmpty {
                times.append(t)
                _ = s.handle(.polled(jk("a/1"), .running), now: t)
            }
        }
        #expect(times.first! >= 60 && times.first! <= 102, "first poll near p05 (≈102 s), at most 60 s in: \(times)")
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
        #expect(gaps.allSatisfy { $0 >= 2 - 1e-9 && $0 <= 60 + 1e-9 })
        let inBand = times.filter { $0 > 100 && $0 <= 140 }.count
        #expect(inBand >= 8 && inBand <= 14, "dense around the finish: \(times)")
        let overdue = zip(times.dropFirst(), times).filter { $1 > 145 }.map { $0 - $1 }
        #expect(!overdue.isEmpty && overdue.allSatisfy { abs($0 - 4) < 1e-9 }, "overdue: every 4 s")
        #expect(times.count < 25)
    }

    /// With the query budget short, the polls most likely to find a finished task go first.
    @Test func scarceQueriesGoToTheLikeliestFinished() {
        var s = makeScheduler(concurrency: 10, queryPerSecond: 1, taskList: false)
        for i in 0..<10 { _ = s.handle(.enqueued(sjob("a/\(i)")), now: 0) }
        for i in 0..<10 { _ = s.handle(.submitted(jk("a/\(i)"), taskID: "t\(i)"), now: Double(i)) }
        // Prior U(60, 300): first polls 60 s after each create (the ceiling); all due by 69 s, a/0 the oldest.
        let out = s.handle(.tick, now: 170)
        #expect(out.polls == [jk("a/0")], "one query allowed; the oldest task is likeliest done")
        #expect(s.nextWakeup(after: 170) == 171)
        #expect(s.handle(.tick, now: 171).polls == [jk("a/1")])
    }

    @Test func etaAndDeadlineWarningOncePerJob() {
        var s = makeScheduler(concurrency: 1)
        for i in 0..<20 {
            _ = s.handle(.observedRunTime(model: .r2v, resolution: .p1080, durationSeconds: 5,
                                          seconds: 90 + Double(i)), now: 0)   // p50 ≈ 99.5
        }
        _ = s.handle(.enqueued(sjob("a/0", at: 0)), now: 0)
        _ = s.handle(.submitted(jk("a/0"), taskID: "t0"), now: 0)
        var warnings: [SchedulerAction] = []
        warnings += s.handle(.enqueued(sjob("a/1", at: 1)), now: 1)
        warnings += s.handle(.enqueued(sjob("a/2", at: 2)), now: 1)
        // Next in line behind a ~100 s render: p50 ≈ 199 s; a 190 s deadline is at risk, 900 s (bulk, last) is not.
        warnings += s.handle(.enqueued(sjob("b/late", .normal, deadline: 190, at: 3)), now: 61)
        warnings += s.handle(.enqueued(sjob("b/fine", .bulk, deadline: 900, at: 4)), now: 61)
        let e0 = s.eta(of: jk("a/0"), now: 61)!
        #expect(abs(e0.p50 - 99.5) < 1 && e0.p90 >= e0.p50)
        // b/late has the earliest deadline in its tier, so it goes right after the running a/0.
        let eLate = s.eta(of: jk("b/late"), now: 61)!
        #expect(abs(eLate.p50 - 199) < 2)
        let eFine = s.eta(of: jk("b/fine"), now: 61)!
        #expect(eFine.p50 > s.eta(of: jk("a/2"), now: 61)!.p50, "bulk goes last")
        for t in stride(from: 62.0, through: 400, by: 10) { warnings += s.handle(.tick, now: t) }
        let risks = warnings.compactMap { if case .deadlineAtRisk(let k, _, _) = $0 { k } else { nil } }
        #expect(risks == [jk("b/late")])
        let batch = s.batchETA("a", now: 61)!
        #expect(batch.p50 >= s.eta(of: jk("a/2"), now: 61)!.p50)
    }
}
