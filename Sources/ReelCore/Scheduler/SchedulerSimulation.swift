/// A discrete-event simulation of a day of work (docs/scheduler.md, "Simulation"): manifests arrive over a virtual
/// day, a simulated provider with a pool of 5 slots per model renders them with realistic run times (log-normal per model, resolution
/// and duration), and the scheduler drives everything through its events and `nextWakeup` ticks. Pure and
/// deterministic; `SchedulerSimulationTests` asserts its limits and `bench/scheduler/simulation.sh` times it.
public struct SchedulerSimulation: Sendable {
    struct Event: Comparable, Sendable {
        enum Kind: Sendable {
            case arrive(Int), tick, createSent(JobKey), createArrives(JobKey), createAnswer(JobKey)
            case queryAnswer(JobKey, TaskStatus)
            case listAnswer([JobKey: TaskStatus]), finish(JobKey), released(JobKey)
        }
        var at: Double
        var seq: Int
        var kind: Kind
        static func < (a: Event, b: Event) -> Bool { a.at != b.at ? a.at < b.at : a.seq < b.seq }
        static func == (a: Event, b: Event) -> Bool { a.at == b.at && a.seq == b.seq }
    }

    /// What a run measured.
    public struct Report: Sendable {
        public var completed = 0
        public var makespan = 0.0
        /// Most tasks active at the simulated provider at once, over all models and per model.
        public var maxProviderActive = 0
        public var maxProviderActiveByModel: [RenderModel: Int] = [:]
        public var maxHolders = 0
        /// Most creates reaching the provider in any one-second window, over all models and per model.
        public var maxCreatesPerSecond = 0
        public var maxCreatesPerSecondByModel: [RenderModel: Int] = [:]
        public var maxQueriesPerSecond = 0
        public var creates = 0
        /// Every query: task queries plus list queries.
        public var queries = 0
        public var listQueries = 0
        public var queuedTime = 0.0
        /// Slot-seconds of the pools that had work queued (their caps), and how many of those were held, and
        /// rendering at the provider.
        public var slotCapacityTime = 0.0
        public var heldSlotTime = 0.0
        public var renderingSlotTime = 0.0
        /// Seconds from a task's end to the query (or list) that saw it.
        public var detectionLatencies: [Double] = []
        public var sdkPolls = 0
        public var sdkLatencies: [Double] = []
        public var events = 0
        public var wakeupsInThePast = 0
        /// Actions the simulated provider does not expect in this workload (none should appear).
        public var unexpectedActions = 0
        /// Slots held while work of their pool is queued, as a fraction of those pools' slots.
        public var slotUtilisation: Double { heldSlotTime / max(1e-9, slotCapacityTime) }
        /// Slots rendering at the provider while work of their pool is queued.
        public var renderingUtilisation: Double { renderingSlotTime / max(1e-9, slotCapacityTime) }

        public static func p95(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * 0.95))]
        }

        public static func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(1, xs.count)) }
    }

    var scheduler: Scheduler
    var rng = SplitMix64(seed: 42)
    var events = Heap<Event>()
    var seq = 0
    var batches: [[SchedulerJob]] = []
    var runTime: [JobKey: Double] = [:]
    var jobs: [JobKey: SchedulerJob] = [:]
    var taskEnd: [JobKey: Double] = [:]
    var detected: Set<JobKey> = []
    var providerActive: [RenderModel: Int] = [:]
    var createLog: [RenderModel: [Double]] = [:]
    var queryLog: [Double] = []
    var scheduledTick: Double?
    var report = Report()

    /// `jobCount` jobs in manifests of 1200…5 jobs arriving every 30 min (every 7th rush with a 4 h deadline, every
    /// 3rd bulk); 70% `wan2.6-r2v`, half 1080p, 2–10 s; run time log-normal (σ 0.12) around (20 + 18·duration) s,
    /// × 0.7 for 720p, × 0.6 for flash.
    public init(jobCount: Int, limits: SchedulerLimits = SchedulerLimits()) {
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
                runTime[job.key] = median * Self.exp(0.12 * normal())
                jobs[job.key] = job
                batch.append(job)
            }
            batches.append(batch)
            push(arrival, .arrive(b))
            made += n
            b += 1
        }
    }

    /// One batch of `jobs` arriving at 0, each rendering for its given seconds at the simulated provider.
    public init(batch: [(job: SchedulerJob, runTime: Double)], limits: SchedulerLimits = SchedulerLimits()) {
        scheduler = Scheduler(limits: limits, seed: 7)
        batches = [batch.map(\.job)]
        for (job, seconds) in batch {
            runTime[job.key] = seconds
            jobs[job.key] = job
        }
        push(0, .arrive(0))
    }

    /// A standard normal draw (Irwin–Hall: the sum of 12 uniforms, minus 6; the core has no `log`/`cos`).
    mutating func normal() -> Double {
        var sum = 0.0
        for _ in 0..<12 { sum += rng.unit() }
        return sum - 6
    }

    /// e^x for the small exponents of the run-time draws (range reduction by ln 2, then a Taylor series).
    static func exp(_ x: Double) -> Double {
        let ln2 = 0.693_147_180_559_945_3
        let k = (x / ln2).rounded()
        let r = x - k * ln2
        var term = 1.0, sum = 1.0
        for i in 1...16 {
            term *= r / Double(i)
            sum += term
        }
        var scale = 1.0
        for _ in 0..<Int(abs(k)) { scale *= 2 }
        return k >= 0 ? sum * scale : sum / scale
    }

    mutating func push(_ at: Double, _ kind: Event.Kind) {
        seq += 1
        events.push(Event(at: at, seq: seq, kind: kind))
    }

    /// A query at `at` saw `key` SUCCEEDED: the first such sighting is its detection.
    mutating func sawSuccess(_ key: JobKey, at: Double) {
        guard detected.insert(key).inserted else { return }
        report.detectionLatencies.append(at - taskEnd[key]!)
    }

    /// Runs the simulation to the end (every job downloaded).
    public mutating func run() -> Report {
        var now = 0.0
        while let e = events.pop() {
            report.events += 1
            // Slot accounting over [now, e.at).
            let dt = e.at - now
            if dt > 0, scheduler.queuedCount > 0 {
                report.queuedTime += dt
                for (key, pool) in scheduler.pools where pool.queued > 0 {
                    report.slotCapacityTime += dt * Double(pool.limits.concurrency)
                    report.heldSlotTime += dt * Double(pool.holders)
                    report.renderingSlotTime += dt * Double(providerActive[key.model, default: 0])
                }
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
            case .createSent(let k):
                actions = scheduler.handle(.createSent(k, at: now), now: now)
            case .createArrives(let k):
                let model = jobs[k]!.model
                createLog[model, default: []].append(now)
                providerActive[model, default: 0] += 1
                report.maxProviderActive = max(report.maxProviderActive, providerActive.values.reduce(0, +))
                report.maxProviderActiveByModel[model] = max(report.maxProviderActiveByModel[model] ?? 0,
                                                             providerActive[model]!)
                taskEnd[k] = now + runTime[k]!
                push(taskEnd[k]!, .finish(k))
                let sdk = PollingStudy.sdkPolls(runTime: runTime[k]!)
                report.sdkPolls += sdk.polls
                report.sdkLatencies.append(sdk.latency)
            case .finish(let k):
                providerActive[jobs[k]!.model]! -= 1
            case .createAnswer(let k):
                actions = scheduler.handle(.submitted(k, taskID: "task-\(k)"), now: now)
            case .queryAnswer(let k, let status):
                if status == .succeeded {
                    let j = jobs[k]!
                    actions = scheduler.handle(.observedRunTime(model: j.model, resolution: j.resolution,
                                                                durationSeconds: j.durationSeconds,
                                                                seconds: runTime[k]!), now: now)
                }
                actions += scheduler.handle(.polled(k, status), now: now)
            case .listAnswer(let statuses):
                actions = scheduler.handle(.listed(statuses), now: now)
            case .released(let k):
                report.completed += 1
                report.makespan = now
                actions = scheduler.handle(.released(k), now: now)
            }
            for a in actions {
                switch a {
                case .submit(let k):
                    push(now + 0.1, .createSent(k))
                    push(now + 0.15, .createArrives(k))
                    push(now + 0.3, .createAnswer(k))
                case .poll(let k, _):
                    let at = now + 0.05
                    queryLog.append(at)
                    let status: TaskStatus = at >= taskEnd[k]! ? .succeeded : .running
                    if status == .succeeded { sawSuccess(k, at: at) }
                    push(now + 0.1, .queryAnswer(k, status))
                case .pollList(let tasks):
                    let at = now + 0.05
                    queryLog.append(at)
                    report.listQueries += 1
                    var statuses: [JobKey: TaskStatus] = [:]
                    for t in tasks {
                        let done = at >= taskEnd[t.key]!
                        statuses[t.key] = done ? .succeeded : .running
                        if done { sawSuccess(t.key, at: at) }
                    }
                    push(now + 0.1, .listAnswer(statuses))
                case .download(let k):
                    push(now + 3, .released(k))
                default:
                    report.unexpectedActions += 1
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
        report.creates = createLog.values.reduce(0) { $0 + $1.count }
        report.queries = queryLog.count
        report.maxCreatesPerSecond = Self.maxInWindow(createLog.values.flatMap { $0 }.sorted())
        for (model, log) in createLog { report.maxCreatesPerSecondByModel[model] = Self.maxInWindow(log.sorted()) }
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
}
