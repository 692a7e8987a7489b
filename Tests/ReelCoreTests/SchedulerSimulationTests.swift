import Foundation
import Testing
@testable import ReelCore

/// A discrete-event simulation: manifests arrive over a virtual day, a simulated provider with 5 slots renders them
/// with realistic (log-normal, per model/resolution/duration) run times, and the scheduler drives everything.
struct SchedulerSimulation {
    struct Event: Comparable {
        enum Kind { case arrive(Int), tick, createArrives(JobKey), createAnswer(JobKey), queryAnswer(JobKey, TaskStatus),
                    finish(JobKey), released(JobKey) }
        var at: Double
        var seq: Int
        var kind: Kind
        static func < (a: Event, b: Event) -> Bool { a.at != b.at ? a.at < b.at : a.seq < b.seq }
        static func == (a: Event, b: Event) -> Bool { a.at == b.at && a.seq == b.seq }
    }

    struct Report {
        var completed = 0
        var makespan = 0.0
        var maxProviderActive = 0
        var maxHolders = 0
        var maxCreatesPerSecond = 0
        var maxQueriesPerSecond = 0
        var creates = 0
        var queries = 0
        var queuedTime = 0.0
        var heldSlotTime = 0.0
        var renderingSlotTime = 0.0
        var detectionLatencies: [Double] = []
        var sdkPolls = 0
        var sdkLatencies: [Double] = []
        var events = 0
        var wakeupsInThePast = 0
        var slotUtilisation: Double { heldSlotTime / max(1e-9, 5 * queuedTime) }
        var renderingUtilisation: Double { renderingSlotTime / max(1e-9, 5 * queuedTime) }
    }

    var scheduler: Scheduler
    var rng = SplitMix64(seed: 42)
    var events = Heap<Event>()
    var seq = 0
    var batches: [[SchedulerJob]] = []
    var runTime: [JobKey: Double] = [:]
    var jobs: [JobKey: SchedulerJob] = [:]
    var taskEnd: [JobKey: Double] = [:]
    var providerActive = 0
    var createLog: [Double] = []
    var queryLog: [Double] = []
    var scheduledTick: Double?
    var report = Report()

    init(jobCount: Int, limits: SchedulerLimits = SchedulerLimits()) {
        scheduler = Scheduler(limits: limits, seed: 7)
        let sizes = [1200, 600, 400, 200, 100, 50, 25, 10, 5]
        var made = 0, b = 0
        while made < jobCount {
            let n = min(sizes[b % sizes.count], jobCount - made)
            let arrival = Double(b) * 1800   // a manifest every half hour
            let priority: Priority = b % 7 == 3 ? .rush : (b % 3 == 0 ? .bulk : .normal)
            let deadline: Double? = priority == .rush ? arrival + 4 * 3600 : nil
            var batch: [SchedulerJob] = []
            for i in 0..<n {
                let model: RenderModel = rng.unit() < 0.7 ? .r2v : .r2vFlash
                let res: Resolution = rng.unit() < 0.5 ? .p720 : .p1080
                let duration = 2 + Int(rng.unit() * 9)
                let job = SchedulerJob(key: JobKey(batch: "m\(b)", id: "j\(i)"), priority: priority, deadline: deadline,
                                       enqueuedAt: arrival, model: model, resolution: res, durationSeconds: duration)
                let median = (20 + 18 * Double(duration)) * (res == .p1080 ? 1 : 0.7) * (model == .r2v ? 1 : 0.6)
                runTime[job.key] = median * exp(0.12 * normal())
                jobs[job.key] = job
                batch.append(job)
            }
            batches.append(batch)
            push(arrival, .arrive(b))
            made += n
            b += 1
        }
    }

    mutating func normal() -> Double {
        let u1 = max(rng.unit(), 1e-12), u2 = rng.unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    mutating func push(_ at: Double, _ kind: Event.Kind) {
        seq += 1
        events.push(Event(at: at, seq: seq, kind: kind))
    }

    mutating func run() -> Report {
        var now = 0.0
        while let e = events.pop() {
            report.events += 1
            // Slot accounting over [now, e.at).
            let dt = e.at - now
            if dt > 0, scheduler.queuedCount > 0 {
                report.queuedTime += dt
                report.heldSlotTime += dt * Double(scheduler.holderKeys.count)
                report.renderingSlotTime += dt * Double(providerActive)
            }
            now = e.at
            var actions: [SchedulerAction] = []
            switch e.kind {
            case .arrive(let b):
                for j in batches[b] { actions += scheduler.handle(.enqueued(j), now: now) }
            case .tick:
                guard scheduledTick == now else { continue }
                scheduledTick = nil
                actions = scheduler.handle(.tick, now: now)
            case .createArrives(let k):
                createLog.append(now)
                providerActive += 1
                report.maxProviderActive = max(report.maxProviderActive, providerActive)
                taskEnd[k] = now + runTime[k]!
                push(taskEnd[k]!, .finish(k))
                let sdk = PollingStudy.sdkPolls(runTime: runTime[k]!)
                report.sdkPolls += sdk.polls
                report.sdkLatencies.append(sdk.latency)
            case .finish:
                providerActive -= 1
            case .createAnswer(let k):
                actions = scheduler.handle(.submitted(k, taskID: "task-\(k)"), now: now)
            case .queryAnswer(let k, let status):
                if status == .succeeded {
                    let j = jobs[k]!
                    report.detectionLatencies.append(now - taskEnd[k]!)
                    actions = scheduler.handle(.observedRunTime(model: j.model, resolution: j.resolution,
                                                                durationSeconds: j.durationSeconds,
                                                                seconds: runTime[k]!), now: now)
                }
                actions += scheduler.handle(.polled(k, status), now: now)
            case .released(let k):
                report.completed += 1
                report.makespan = now
                actions = scheduler.handle(.released(k), now: now)
            }
            for a in actions {
                switch a {
                case .submit(let k):
                    push(now + 0.15, .createArrives(k))
                    push(now + 0.3, .createAnswer(k))
                case .poll(let k, _):
                    queryLog.append(now + 0.05)
                    let status: TaskStatus = now + 0.05 >= taskEnd[k]! ? .succeeded : .running
                    push(now + 0.1, .queryAnswer(k, status))
                case .download(let k):
                    push(now + 3, .released(k))
                default:
                    Issue.record("unexpected action \(a)")
                }
            }
            report.maxHolders = max(report.maxHolders, scheduler.holderKeys.count)
            if let w = scheduler.nextWakeup(after: now) {
                if w <= now { report.wakeupsInThePast += 1 }
                if w > now, scheduledTick.map({ w < $0 }) ?? true {
                    scheduledTick = w
                    push(w, .tick)
                }
            }
        }
        report.creates = createLog.count
        report.queries = queryLog.count
        report.maxCreatesPerSecond = Self.maxInWindow(createLog.sorted())
        report.maxQueriesPerSecond = Self.maxInWindow(queryLog.sorted())
        return report
    }

    static func maxInWindow(_ ts: [Double]) -> Int {
        var best = 0, lo = 0
        for hi in ts.indices {
            while ts[hi] - ts[lo] >= 1 - 1e-9 { lo += 1 }
            best = max(best, hi - lo + 1)
        }
        return best
    }

    static func p95(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * 0.95))]
    }
}

@Suite("Scheduler simulation")
struct SchedulerSimulationTests {
    @Test func tenThousandJobsOverAVirtualDayStayInsideEveryLimit() {
        // This thread's CPU time (other tests run in parallel in the same process); the body never suspends.
        func threadCPU() -> Double {
            var ts = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
            return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        }
        let cpu0 = threadCPU()
        var sim = SchedulerSimulation(jobCount: 10_000)
        let r = sim.run()
        let cpu = threadCPU() - cpu0
        let n = Double(max(1, r.completed))
        print(String(format: "simulation: %d jobs, %d events, makespan %.0f s (%.2f days), CPU %.2f s", r.completed,
                     r.events, r.makespan, r.makespan / 86400, cpu))
        print(String(format: "  slots held while queued %.4f, rendering at the provider while queued %.4f",
                     r.slotUtilisation, r.renderingUtilisation))
        print(String(format: "  polls/job %.2f (SDK %.2f, ratio %.2f); detection latency p95 %.2f s mean %.2f s (SDK p95 %.2f s mean %.2f s)",
                     Double(r.queries) / n, Double(r.sdkPolls) / n, Double(r.queries) / Double(max(1, r.sdkPolls)),
                     SchedulerSimulation.p95(r.detectionLatencies),
                     r.detectionLatencies.reduce(0, +) / n, SchedulerSimulation.p95(r.sdkLatencies),
                     r.sdkLatencies.reduce(0, +) / n))
        print("  max creates/s \(r.maxCreatesPerSecond), max queries/s \(r.maxQueriesPerSecond), max provider active \(r.maxProviderActive)")
        #expect(r.completed == 10_000)
        #expect(r.maxProviderActive <= 5)
        #expect(r.maxHolders <= 5)
        #expect(r.maxCreatesPerSecond <= 5)
        #expect(r.maxQueriesPerSecond <= 20)
        #expect(r.wakeupsInThePast == 0)
        #expect(r.slotUtilisation >= 0.99)
        #expect(r.queries < r.sdkPolls)
    }

    /// The same run with polls at most 1 s apart around the expected finish while work waits: prints the trade-off.
    @Test func pressurePollingTradesPollsForRenderingTime() {
        var limits = SchedulerLimits()
        limits.polling.latencyCapWhileQueued = 1.0
        var sim = SchedulerSimulation(jobCount: 2_000, limits: limits)
        let r = sim.run()
        var base = SchedulerSimulation(jobCount: 2_000)
        let b = base.run()
        for (name, x) in [("default", b), ("latencyCapWhileQueued 1 s", r)] {
            print(String(format: "pressure study (2000 jobs), %@: rendering while queued %.4f, polls/job %.2f (SDK %.2f), makespan %.0f s",
                         name, x.renderingUtilisation, Double(x.queries) / Double(x.completed),
                         Double(x.sdkPolls) / Double(x.completed), x.makespan))
        }
        #expect(r.renderingUtilisation > b.renderingUtilisation)
        #expect(r.maxQueriesPerSecond <= 20 && r.maxProviderActive <= 5)
    }
}

@Suite("Scheduler polling study")
struct SchedulerPollingStudyTests {
    /// Prints the comparison with the SDK for docs/scheduler.md; asserts only that Reel polls less.
    @Test func pollingAgainstTheSDK() {
        var rng = SplitMix64(seed: 9)
        func normal() -> Double {
            let u1 = max(rng.unit(), 1e-12), u2 = rng.unit()
            return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
        }
        func lognormal(_ median: Double, _ sigma: Double, _ n: Int) -> [Double] {
            (0..<n).map { _ in median * exp(sigma * normal()) }
        }
        func uniform(_ lo: Double, _ hi: Double, _ n: Int) -> [Double] { (0..<n).map { _ in lo + (hi - lo) * rng.unit() } }
        let cases: [(String, [Double], [Double])] = [
            ("uniform 20-60 s (benchmark)", uniform(20, 60, 200), uniform(20, 60, 5000)),
            ("log-normal median 180 s, sigma 0.05", lognormal(180, 0.05, 200), lognormal(180, 0.05, 5000)),
            ("log-normal median 180 s, sigma 0.10", lognormal(180, 0.10, 200), lognormal(180, 0.10, 5000)),
            ("log-normal median 150 s, sigma 0.25", lognormal(150, 0.25, 200), lognormal(150, 0.25, 5000)),
            ("no history (prior) vs uniform 60-300 s", [], uniform(60, 300, 5000)),
        ]
        for (name, history, runs) in cases {
            let r = PollingStudy.compare(runTimes: runs, history: history)
            print(String(format: "%@: polls/job %.1f vs SDK %.1f (ratio %.2f); latency p95 %.2f vs %.2f s, mean %.2f vs %.2f s",
                         name, r.reelPollsPerJob, r.sdkPollsPerJob, r.reelPollsPerJob / r.sdkPollsPerJob,
                         r.reelP95Latency, r.sdkP95Latency, r.reelMeanLatency, r.sdkMeanLatency))
            #expect(r.reelPollsPerJob < r.sdkPollsPerJob, "\(name)")
        }
    }
}
