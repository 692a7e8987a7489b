import Testing
@testable import ReelCore

@Suite("Scheduler order")
struct SchedulerOrderTests {
    @Test func tiersGoRushThenNormalThenBulk() {
        let order = Scheduler.submitOrder([
            sjob("b/bulk1", .bulk, at: 0), sjob("b/normal1", .normal, at: 1), sjob("b/rush1", .rush, at: 2),
            sjob("b/bulk2", .bulk, at: 3), sjob("b/rush2", .rush, at: 4), sjob("b/normal2", .normal, at: 5),
        ])
        #expect(order.map(\.id) == ["rush1", "rush2", "normal1", "normal2", "bulk1", "bulk2"])
    }

    @Test func earliestDeadlineFirstInsideATierAndNoDeadlineLast() {
        let order = Scheduler.submitOrder([
            sjob("a/none", at: 0), sjob("a/late", deadline: 9_000, at: 1), sjob("b/early", deadline: 5_000, at: 2),
            sjob("a/mid", deadline: 7_000, at: 3), sjob("r/rushNone", .rush, at: 4),
        ])
        #expect(order.map(\.id) == ["rushNone", "early", "mid", "late", "none"])
    }

    /// A job of a given render length: `seconds` of output, optionally flash, 720P or with reference video.
    static func shaped(_ text: String, _ priority: Priority = .normal, deadline: Double? = nil, at: Double = 0,
                       seconds: Int, model: RenderModel = .r2v, resolution: Resolution = .p1080,
                       video: Int = 0) -> SchedulerJob {
        SchedulerJob(key: jk(text), priority: priority, deadline: deadline, enqueuedAt: at, model: model,
                     resolution: resolution, durationSeconds: seconds, referenceVideoSeconds: video)
    }

    /// Inside a tier and arrival window the longest predicted render goes first, whatever the age.
    @Test func longestPredictedFirstInsideATier() {
        let order = Scheduler.submitOrder([
            Self.shaped("a/short", at: 0, seconds: 2), Self.shaped("a/flash10", at: 1, seconds: 10, model: .r2vFlash),
            Self.shaped("a/long", at: 2, seconds: 10), Self.shaped("a/mid720", at: 3, seconds: 10, resolution: .p720),
            Self.shaped("a/video", at: 4, seconds: 10, video: 8),
        ])
        #expect(order.map(\.id) == ["video", "long", "mid720", "flash10", "short"])
    }

    /// Tiers and deadlines win over run time: a short rush job before a long normal one, a short job with a
    /// deadline before a long one without; and a job that arrived in a later window never overtakes.
    @Test func prioritiesDeadlinesAndArrivalWinOverRunTime() {
        let order = Scheduler.submitOrder([
            Self.shaped("a/longBulk", .bulk, at: 0, seconds: 10), Self.shaped("a/longNormal", at: 0, seconds: 10),
            Self.shaped("a/shortRush", .rush, at: 0, seconds: 2),
            Self.shaped("a/shortDeadline", deadline: 50_000, at: 0, seconds: 2),
            Self.shaped("a/longLater", at: SchedulerTuning.arrivalWindow + 1, seconds: 10),
            Self.shaped("a/shortEarly", at: 5, seconds: 2),
        ])
        #expect(order.map(\.id) == ["shortRush", "shortDeadline", "longNormal", "shortEarly", "longLater", "longBulk"])
    }

    /// Off, the order is plain age (the greedy FIFO a client follows).
    @Test func withoutTailAwareOrderAgeDecides() {
        var s = makeScheduler(concurrency: 1)
        var limits = s.limits
        limits.tailAwareOrder = false
        _ = s.handle(.setLimits(limits), now: 0)
        _ = s.handle(.pause(batch: nil), now: 0)
        for j in [Self.shaped("a/short", at: 0, seconds: 2), Self.shaped("a/long", at: 1, seconds: 10)] {
            _ = s.handle(.enqueued(j), now: 0)
        }
        #expect(s.handle(.resume(batch: nil), now: 1).submits == [jk("a/short")])
    }

    /// The prediction follows the samples of the job's own key once they exist, and its error is tracked.
    @Test func predictionsLearnFromSamplesAndTrackTheirError() {
        var s = makeScheduler()
        let job = Self.shaped("a/x", seconds: 5, video: 3)
        let before = s.predictedRunTime(job)
        #expect(before > 60 && before < 300, "the prior sits inside the provider's 1–5 min")
        #expect(s.snapshot.runTimeErrorP50 == nil)
        func observe() {
            _ = s.handle(.observedRunTime(model: .r2v, resolution: .p1080, durationSeconds: 5, referenceVideoSeconds: 3,
                                          seconds: 400), now: 0)
        }
        observe()
        #expect(abs((s.snapshot.runTimeErrorP50 ?? 0) - abs(before - 400) / 400) < 1e-9, "the first was the guess")
        for _ in 1..<20 { observe() }
        #expect(abs(s.predictedRunTime(job) - 400) < 1, "20 samples of 400 s outweigh the guess")
        let other = Self.shaped("a/y", seconds: 10, model: .r2vFlash)
        #expect(s.predictedRunTime(other) > 400 * (other.runTimeKey.shape / job.runTimeKey.shape) * 0.99,
                "an unseen key scales with the learned scale")
        #expect(s.snapshot.runTimeErrorSamples == 20)
        #expect((s.snapshot.runTimeErrorP50 ?? 1) < 0.05, "later samples were predicted well")
    }

    @Test func ageThenKeyBreakTies() {
        let order = Scheduler.submitOrder([sjob("a/3", at: 5), sjob("a/2", at: 1), sjob("a/1", at: 1)])
        #expect(order.map(\.id) == ["1", "2", "3"])
    }

    /// Two batches of 100 and 5: the small one, enqueued after the big one, is done within the first few slots.
    @Test func fairShareLetsTheSmallBatchFinishEarly() {
        var s = makeScheduler(concurrency: 5)
        var order: [JobKey] = []
        var running: [JobKey] = []
        for i in 0..<100 { running += s.handle(.enqueued(sjob("big/\(i)", at: Double(i))), now: 0).submits }
        order += running
        for i in 0..<5 { running += s.handle(.enqueued(sjob("small/\(i)", at: 200 + Double(i))), now: 1).submits }
        #expect(running.count == 5)
        var t = 2.0
        while !running.isEmpty {
            let k = running.removeFirst()
            t += 1
            let next = s.complete(k, now: t).submits
            order += next
            running += next
            #expect(s.snapshot.slotsHeld <= 5)
        }
        #expect(order.count == 105)
        let lastSmall = order.lastIndex { $0.batch == "small" }!
        // FIFO by age would put the small batch last (index 104); fair share equalises running slots instead.
        // As slots free up, the small batch gets about every other one: all five start within the first 16.
        #expect(lastSmall <= 15, "small batch's last job started at submission #\(lastSmall)")
        // While both batches wait, neither holds more than one slot above the other's.
        #expect(order.prefix(5).allSatisfy { $0.batch == "big" })
    }

    /// Due retries alternate with fresh work of the same tier: never two retries in a row while fresh work waits.
    @Test func retryBacklogNeverStarvesFreshWork() {
        var s = makeScheduler(concurrency: 20, maxAttempts: 9)
        var started: [JobKey] = []
        for i in 0..<20 { started += s.handle(.enqueued(sjob("old/\(i)", at: Double(i))), now: 0).submits }
        #expect(started.count == 20)
        var retryAt = 0.0
        for k in started {
            for a in s.handle(.submitFailed(k, .provider, retryAfter: nil, message: "HTTP 503"), now: 1) {
                if case .retryLater(_, let at, _) = a { retryAt = max(retryAt, at) }
            }
        }
        _ = s.handle(.setLimits(SchedulerLimits(concurrency: 1, submitPerSecond: 1000, queryPerSecond: 1000,
                                                maxAttempts: 9)), now: 1)
        for i in 0..<10 { _ = s.handle(.enqueued(sjob("new/\(i)", at: 100 + Double(i))), now: 2) }
        // Every retry is due (and older than every fresh job) once the breaker has closed.
        var t = max(retryAt, 400) + 1
        var order = s.handle(.tick, now: t).submits
        #expect(order.count == 1)
        while order.count < 30 {
            t += 1
            let next = s.complete(order.last!, now: t).submits
            #expect(next.count == 1)
            order += next
        }
        let kinds = order.map { $0.batch == "old" ? "R" : "F" }.joined()
        #expect(!kinds.prefix(20).contains("RR"), "order \(kinds)")
        #expect(kinds.prefix(20).filter { $0 == "F" }.count == 10)
        #expect(order.filter { $0.batch == "old" }.count == 20)
    }

    @Test func setPriorityReordersAQueuedJob() {
        var s = makeScheduler(concurrency: 1)
        let first = s.handle(.enqueued(sjob("a/0", at: 0)), now: 0).submits
        #expect(first == [jk("a/0")])
        for i in 1...3 { _ = s.handle(.enqueued(sjob("a/\(i)", .bulk, at: Double(i))), now: 0) }
        _ = s.handle(.setPriority(jk("a/3"), .rush), now: 0)
        #expect(s.complete(jk("a/0"), now: 1).submits == [jk("a/3")])
        #expect(s.complete(jk("a/3"), now: 2).submits == [jk("a/1")])
    }

    @Test func perModelCapKeepsSlotsForTheOtherModel() {
        var s = makeScheduler(concurrency: 5, perModel: [.r2v: 2])
        var out: [JobKey] = []
        for i in 0..<4 { out += s.handle(.enqueued(sjob("a/r\(i)", at: Double(i))), now: 0).submits }
        for i in 0..<4 { out += s.handle(.enqueued(sjob("a/f\(i)", at: 10 + Double(i), model: .r2vFlash)), now: 0).submits }
        #expect(out.map(\.id) == ["r0", "r1", "f0", "f1", "f2"])
        #expect(s.snapshot.slotsHeld == 5)
    }
}
