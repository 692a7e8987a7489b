import Foundation
import Testing
@testable import ReelCore

@Suite("Scheduler simulation")
struct SchedulerSimulationTests {
    /// Limits and utilisation only: the CPU time is a benchmark (`bench/scheduler/simulation.sh`), not a test.
    @Test func tenThousandJobsOverAVirtualDayStayInsideEveryLimit() {
        var sim = SchedulerSimulation(jobCount: 10_000)
        let r = sim.run()
        Self.print(r, "10,000 jobs, default polling (task list)")
        #expect(r.completed == 10_000)
        #expect(r.maxProviderActiveByModel.values.allSatisfy { $0 <= 5 }, "\(r.maxProviderActiveByModel)")
        #expect(r.maxProviderActive > 5, "both pools are used at once")
        #expect(r.maxHolders <= 10)
        #expect(r.maxCreatesPerSecondByModel.values.allSatisfy { $0 <= 5 }, "\(r.maxCreatesPerSecondByModel)")
        #expect(r.maxQueriesPerSecond <= 20)
        #expect(r.wakeupsInThePast == 0)
        #expect(r.unexpectedActions == 0)
        #expect(r.slotUtilisation >= 0.99)
        #expect(r.listQueries > 0)
        #expect(r.queries < r.sdkPolls)
    }

    /// The same work polled per task, and with the tighter cap while work is queued: prints the trade-offs.
    @Test func listPollingAgainstPerTaskPolling() {
        func run(_ configure: (inout PollPolicy) -> Void) -> SchedulerSimulation.Report {
            var limits = SchedulerLimits()
            configure(&limits.polling)
            var sim = SchedulerSimulation(jobCount: 2_000, limits: limits)
            return sim.run()
        }
        let list = run { _ in }
        let perTask = run { $0.useTaskList = false }
        let pressure = run { $0.latencyCapWhileQueued = 1 }
        let perTaskPressure = run { $0.useTaskList = false; $0.latencyCapWhileQueued = 1 }
        for (name, r) in [("task list", list), ("per task", perTask), ("task list, 1 s cap while queued", pressure),
                          ("per task, 1 s cap while queued", perTaskPressure)] {
            Self.print(r, "2,000 jobs, \(name)")
        }
        #expect(list.queries < perTask.queries)
        #expect(pressure.queries < perTaskPressure.queries)
        #expect(pressure.renderingUtilisation > list.renderingUtilisation)
        for r in [list, perTask, pressure, perTaskPressure] {
            #expect(r.completed == 2_000 && r.maxQueriesPerSecond <= 20)
            #expect(r.maxProviderActiveByModel.values.allSatisfy { $0 <= 5 })
            #expect(r.unexpectedActions == 0)
        }
    }

    static func print(_ r: SchedulerSimulation.Report, _ name: String) {
        let n = Double(max(1, r.completed))
        Swift.print(String(format: "simulation, %@: %d events, makespan %.0f s (%.2f days)", name, r.events, r.makespan,
                           r.makespan / 86400))
        Swift.print(String(format: "  slots held while queued %.4f, rendering at the provider while queued %.4f",
                           r.slotUtilisation, r.renderingUtilisation))
        Swift.print(String(format: "  queries/job %.2f (lists %.2f; SDK %.2f, ratio %.2f); detection latency p95 %.2f s mean %.2f s (SDK p95 %.2f s mean %.2f s)",
                           Double(r.queries) / n, Double(r.listQueries) / n, Double(r.sdkPolls) / n,
                           Double(r.queries) / Double(max(1, r.sdkPolls)),
                           SchedulerSimulation.Report.p95(r.detectionLatencies),
                           SchedulerSimulation.Report.mean(r.detectionLatencies),
                           SchedulerSimulation.Report.p95(r.sdkLatencies), SchedulerSimulation.Report.mean(r.sdkLatencies)))
        Swift.print("  max creates/s \(r.maxCreatesPerSecond), max queries/s \(r.maxQueriesPerSecond), max provider active \(r.maxProviderActive) \(r.maxProviderActiveByModel.map { "\($0.key.rawValue) \($0.value)" }.sorted())")
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

@Suite("Scheduler tail-aware order")
struct SchedulerTailTests {
    /// A mixed batch whose true run times follow a shape unlike Reel's prior guess (standard 1080P renders much
    /// slower, reference video costly), drawn once with a fixed seed.
    static func mixedBatch(_ n: Int) -> [(job: SchedulerJob, runTime: Double)] {
        var rng = SplitMix64(seed: 11)
        return (0..<n).map { i in
            let model: RenderModel = rng.unit() < 0.5 ? .r2v : .r2vFlash
            let resolution: Resolution = rng.unit() < 0.5 ? .p720 : .p1080
            let duration = 2 + Int(rng.unit() * 9)
            let video = rng.unit() < 0.3 ? 5 : 0
            let job = SchedulerJob(key: JobKey(batch: "mix", id: "j\(i)"), enqueuedAt: 0, model: model,
                                   resolution: resolution, durationSeconds: duration, referenceVideoSeconds: video)
            let truth = (30 + 12 * Double(duration) + 8 * Double(video)) * (resolution == .p1080 ? 1.6 : 1)
                * (model == .r2vFlash ? 0.45 : 1)
            return (job, truth * (0.9 + 0.2 * rng.unit()))
        }
    }

    /// The greedy list-scheduling makespan of `order` on the provider's pools (5 slots per model), with no
    /// latency at all: what a client that starts jobs in this order could reach at best.
    static func greedyMakespan(_ order: [(job: SchedulerJob, runTime: Double)]) -> Double {
        var free: [RenderModel: [Double]] = [.r2v: Array(repeating: 0, count: 5), .r2vFlash: Array(repeating: 0, count: 5)]
        var end = 0.0
        for (job, t) in order {
            var slots = free[job.model]!
            let i = slots.indices.min { slots[$0] < slots[$1] }!
            slots[i] += t
            end = max(end, slots[i])
            free[job.model] = slots
        }
        return end
    }

    @Test func longestFirstBeatsFIFOOnAMixedBatch() {
        let batch = Self.mixedBatch(100)
        var fifoLimits = SchedulerLimits()
        fifoLimits.tailAwareOrder = false
        var lptSim = SchedulerSimulation(batch: batch)
        var fifoSim = SchedulerSimulation(batch: batch, limits: fifoLimits)
        let lpt = lptSim.run(), fifo = fifoSim.run()
        let fifoBound = Self.greedyMakespan(batch.sorted { $0.job.key < $1.job.key })
        Swift.print(String(format: "100-job mixed batch: makespan longest-first %.0f s, FIFO %.0f s, greedy FIFO bound %.0f s",
                           lpt.makespan, fifo.makespan, fifoBound))
        #expect(lpt.completed == 100 && fifo.completed == 100)
        #expect(lpt.maxProviderActiveByModel.values.allSatisfy { $0 <= 5 })
        #expect(lpt.makespan < fifo.makespan)
        #expect(lpt.makespan < fifoBound, "below even the zero-latency greedy FIFO schedule")
    }
}
