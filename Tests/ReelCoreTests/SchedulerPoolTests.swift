import Testing
@testable import ReelCore

/// A scripted provider around the scheduler on a manual clock: each create goes out after `sendDelay` (reported
/// as `.createSent`), arrives after a further `transit`, is answered 50 ms after it went out, and renders for
/// `runTime`. The provider itself refuses a create that arrives while 5 of the same model arrived in the last
/// second (`enforceRate`), as DashScope's per-model limit does. Every task's life at the provider is recorded.
struct PoolDriver {
    var s: Scheduler
    var now = 0.0
    var sendDelay: (JobKey) -> Double = { _ in 0.01 }
    var transit: (JobKey) -> Double = { _ in 0 }
    var runTime: (JobKey) -> Double = { _ in 30 }
    var enforceRate = true
    var models: [JobKey: RenderModel] = [:]
    /// Per model: when creates went out and arrived, and which were refused.
    var sends: [RenderModel: [Double]] = [:]
    var arrivals: [RenderModel: [Double]] = [:]
    var refused: [RenderModel: Int] = [:]
    /// Each accepted task's stay at the provider.
    var tasks: [(model: RenderModel, start: Double, end: Double)] = []
    var finished = 0
    private var end: [JobKey: Double] = [:]
    private var events: [(at: Double, seq: Int, event: SchedulerEvent)] = []
    private var seq = 0

    init(_ limits: SchedulerLimits) {
        var limits = limits
        limits.polling.useTaskList = false
        s = Scheduler(limits: limits, seed: 3)
    }

    mutating func enqueue(_ jobs: [SchedulerJob]) {
        for j in jobs {
            models[j.key] = j.model
            perform(s.handle(.enqueued(j), now: now))
        }
    }

    mutating func push(_ at: Double, _ event: SchedulerEvent) {
        seq += 1
        events.append((at, seq, event))
    }

    mutating func perform(_ actions: [SchedulerAction]) {
        for action in actions {
            switch action {
            case .submit(let k):
                let model = models[k]!
                let sent = now + sendDelay(k)
                let arrived = sent + transit(k)
                sends[model, default: []].append(sent)
                push(sent, .createSent(k, at: sent))
                let recent = arrivals[model, default: []].filter { $0 > arrived - 1 && $0 <= arrived }
                arrivals[model, default: []].append(arrived)
                if enforceRate && recent.count >= 5 {
                    refused[model, default: 0] += 1
                    push(sent + 0.05, .submitFailed(k, .throttled, retryAfter: nil, message: "Throttling.RateQuota"))
                } else {
                    end[k] = arrived + runTime(k)
                    tasks.append((model, arrived, end[k]!))
                    push(sent + 0.05, .submitted(k, taskID: "t-\(k)"))
                }
            case .poll(let k, _):
                push(now + 0.05, .polled(k, now >= end[k]! ? .succeeded : .running))
            case .download(let k):
                push(now + 0.1, .released(k))
            default:
                break
            }
        }
    }

    /// Runs events and the scheduler's wake-ups until nothing is left or `until`.
    mutating func run(until: Double = 10_000) {
        while now < until {
            let wake = s.nextWakeup(after: now)
            let next = events.min { ($0.at, $0.seq) < ($1.at, $1.seq) }
            if let next, wake.map({ next.at <= $0 }) ?? true {
                events.removeAll { $0.seq == next.seq }
                now = max(now, next.at)
                if case .released = next.event { finished += 1 }
                perform(s.handle(next.event, now: now))
            } else if let wake {
                now = max(now, wake)
                perform(s.handle(.tick, now: now))
            } else {
                break
            }
        }
    }

    /// The most tasks at the provider at once, of one model (nil: all).
    func peak(_ model: RenderModel? = nil) -> Int {
        var edges: [(Double, Int)] = []
        for t in tasks where model == nil || t.model == model {
            edges.append((t.start, 1))
            edges.append((t.end, -1))
        }
        var best = 0, n = 0
        for (_, d) in edges.sorted(by: { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }) {
            n += d
            best = max(best, n)
        }
        return best
    }
}

func mixedJobs(_ perModel: Int) -> [SchedulerJob] {
    (0..<perModel).flatMap { i in
        [sjob("m/r\(i)", at: Double(2 * i), model: .r2v), sjob("m/f\(i)", at: Double(2 * i + 1), model: .r2vFlash)]
    }
}

/// The most events in any window of `span` seconds.
func maxInSpan(_ times: [Double], _ span: Double) -> Int {
    let ts = times.sorted()
    var best = 0, lo = 0
    for hi in ts.indices {
        while ts[hi] - ts[lo] >= span - 1e-9 { lo += 1 }
        best = max(best, hi - lo + 1)
    }
    return best
}

@Suite("Scheduler limit pools")
struct SchedulerPoolTests {
    @Test func twoModelsRunFivePlusFiveNeverMore() {
        var d = PoolDriver(SchedulerLimits(queryPerSecond: 1000))
        d.enqueue(mixedJobs(20))
        d.run()
        #expect(d.finished == 40)
        #expect(d.peak(.r2v) == 5)
        #expect(d.peak(.r2vFlash) == 5)
        #expect(d.peak() == 10, "both pools fill at once")
        #expect(d.refused.isEmpty)
    }

    /// Short renders free slots fast, so the create window is what binds. The first creates of each second leave
    /// late (a slow write-ahead) and the requests take up to 60 ms to arrive: a window counted from the decision
    /// would let the next five arrive inside the provider's second. Counted from the send with the margin, no
    /// window of 1 s + margin ever holds more than 5 sends of one model, and the provider refuses nothing.
    @Test func createsPerModelStayInsideTheWindowCountedFromTheSend() {
        var d = PoolDriver(SchedulerLimits(queryPerSecond: 1000))
        var order: [JobKey: Int] = [:]
        d.sendDelay = { k in
            let n = order[k, default: 0]
            return n % 2 == 0 ? 0.03 : 0.0
        }
        for (i, j) in mixedJobs(30).enumerated() { order[j.key] = i / 2 }
        d.transit = { k in order[k, default: 0] % 3 == 0 ? 0.0 : 0.06 }
        d.runTime = { _ in 0.5 }
        d.enqueue(mixedJobs(30))
        d.run()
        #expect(d.finished == 60)
        let span = 1 + SchedulerTuning.createMargin
        for model in RenderModel.allCases {
            #expect(maxInSpan(d.sends[model]!, span) == 5, "\(model): at most 5 sends in any \(span) s")
            #expect(maxInSpan(d.arrivals[model]!, 1) <= 5, "\(model): at most 5 arrivals in any 1 s")
        }
        #expect(d.refused.isEmpty, "the provider refused \(d.refused)")
    }

    /// Without the send reports the answers still close the window (an answer is never earlier than the send).
    @Test func anUnreportedSendCountsFromItsAnswer() {
        var s = makeScheduler(concurrency: 10, submitPerSecond: 5)
        for i in 0..<12 { _ = s.handle(.enqueued(sjob("a/\(i)", at: Double(i))), now: 0) }
        #expect(s.snapshot.submitting == 5)
        for i in 0..<5 { _ = s.handle(.submitted(jk("a/\(i)"), taskID: "t\(i)"), now: 0.5) }
        #expect(abs(s.nextWakeup(after: 0.5)! - (0.5 + 1 + SchedulerTuning.createMargin)) < 1e-9)
        #expect(s.handle(.tick, now: 1.6).submits.isEmpty)
        #expect(s.handle(.tick, now: 1.71).submits.count == 5)
        // While chosen creates have not gone out, they fill the window whatever the clock says.
        #expect(s.handle(.tick, now: 100).submits.isEmpty)
        _ = s.handle(.createSent(jk("a/5"), at: 100), now: 100)
        #expect(s.handle(.tick, now: 100).submits.isEmpty, "4 unsent + 1 just sent")
    }

    /// A throttled flash create shrinks and holds the flash pool only; r2v keeps its 5 slots and creates.
    @Test func aThrottledFlashCreateLeavesTheR2VPoolAlone() {
        var s = makeScheduler(concurrency: 10, perModel: [.r2v: 5, .r2vFlash: 5])
        var first: [JobKey] = []
        for j in mixedJobs(8) { first += s.handle(.enqueued(j), now: 0).submits }
        #expect(first.count == 10)
        for i in 0..<5 { _ = s.handle(.submitted(jk("m/r\(i)"), taskID: "r\(i)"), now: 0.1) }
        for i in 0..<2 { _ = s.handle(.submitted(jk("m/f\(i)"), taskID: "f\(i)"), now: 0.1) }
        for i in 2..<5 { _ = s.handle(.submitFailed(jk("m/f\(i)"), .throttled, retryAfter: nil, message: "429"), now: 0.2) }
        // After the short hold the flash creates go again and are throttled again: flash is busy elsewhere.
        let again = s.handle(.tick, now: 1.2).submits
        #expect(Set(again) == [jk("m/f2"), jk("m/f3"), jk("m/f4")])
        for k in again { _ = s.handle(.submitFailed(k, .throttled, retryAfter: nil, message: "429"), now: 1.3) }
        let flash = s.snapshot.pool(.r2vFlash), r2v = s.snapshot.pool(.r2v)
        #expect(flash.concurrencyCap == 2 && flash.throttleHoldUntil > 1.3)
        #expect(r2v.concurrencyCap == 5 && r2v.adaptiveCap == 5 && r2v.throttles == 0)
        #expect(r2v.throttleHoldUntil < 0, "r2v was never held")
        // An r2v render ends while flash is held: its slot refills at once.
        let refill = s.handle(.polled(jk("m/r0"), .succeeded), now: 1.4).submits
        #expect(refill == [jk("m/r5")])
    }

    @Test func theOptionalOverallCapsHold() {
        var d = PoolDriver(SchedulerLimits(concurrency: 7, submitPerSecond: 6, queryPerSecond: 1000))
        d.runTime = { k in k.id.hasPrefix("r") ? 20 : 10 }
        d.enqueue(mixedJobs(20))
        d.run()
        #expect(d.finished == 40)
        #expect(d.peak() == 7)
        #expect(d.peak(.r2v) <= 5 && d.peak(.r2vFlash) <= 5)
        #expect(d.peak(.r2v) > 0 && d.peak(.r2vFlash) > 0)
        let all = d.sends.values.flatMap { $0 }
        #expect(maxInSpan(all, 1 + SchedulerTuning.createMargin) == 6)
    }

    /// A cancel of a PENDING task is a call against the account's query budget.
    @Test func cancelsSpendTheQueryBudget() {
        var s = makeScheduler(queryPerSecond: 1, taskList: false)
        _ = s.handle(.enqueued(sjob("a/1")), now: 0)
        _ = s.handle(.enqueued(sjob("a/2")), now: 0)
        _ = s.handle(.submitted(jk("a/1"), taskID: "t1"), now: 0)
        _ = s.handle(.submitted(jk("a/2"), taskID: "t2"), now: 0)
        let due = s.nextWakeup(after: 0)!
        let out = s.handle(.cancel(jk("a/1")), now: due)
        #expect(out == [.cancelRemote(jk("a/1"), taskID: "t1")], "the due polls wait for the next second")
        #expect(s.handle(.tick, now: due + 1).polls.count == 1)
    }
}
