/// What a render's run time depends on: model, resolution tier, output seconds and reference-video seconds
/// (nil: not known, as for samples restored from the store, which records the first three only).
struct RunTimeKey: Hashable, Sendable {
    var model: RenderModel
    var resolution: Resolution
    var durationSeconds: Int
    var referenceVideoSeconds: Int?

    init(model: RenderModel, resolution: Resolution, durationSeconds: Int, referenceVideoSeconds: Int? = nil) {
        self.model = model
        self.resolution = resolution
        self.durationSeconds = durationSeconds
        self.referenceVideoSeconds = referenceVideoSeconds
    }

    /// The key without the reference-video seconds.
    var withoutReferences: RunTimeKey {
        RunTimeKey(model: model, resolution: resolution, durationSeconds: durationSeconds)
    }

    /// A guess at how run time varies between keys, used until samples say better: the provider documents only
    /// "about 1–5 min" for every render (reference §1.10), nothing per model, size or length. The shape
    /// (20 + 18·output s + 6·reference-video s) × 0.7 for 720P × 0.6 for flash is Reel's assumption, not a provider
    /// number; only ratios between keys matter, the scale is learned.
    var shape: Double {
        let seconds = 20 + 18 * Double(durationSeconds) + 6 * Double(referenceVideoSeconds ?? 0)
        return seconds * (resolution == .p720 ? 0.7 : 1) * (model == .r2vFlash ? 0.6 : 1)
    }

    /// The key whose shape the prior's midpoint is anchored to: a 5 s 1080P standard render without video.
    static let typical = RunTimeKey(model: .r2v, resolution: .p1080, durationSeconds: 5, referenceVideoSeconds: 0)
}

/// A run-time distribution (seconds from the create's answer to the task's end): the last samples, sorted, or the prior.
struct RunTimeDistribution: Sendable, Equatable {
    /// Sorted ascending; empty means the prior.
    var sorted: [Double]

    /// With no history: uniform over this range; by default 60–300 s, the provider's "1–5 minutes"
    /// (reference §1.10), else `PollPolicy.priorRunTime` (`[polling] expected_run_time`).
    var priorRange: ClosedRange<Double> = PollPolicy.defaultPriorRunTime
    static let prior = RunTimeDistribution(sorted: [])

    /// Inverse CDF, linear between order statistics; p in [0, 1].
    func quantile(_ p: Double) -> Double {
        let p = min(max(p, 0), 1)
        guard sorted.count > 1 else {
            if let only = sorted.first { return only }
            return priorRange.lowerBound + p * (priorRange.upperBound - priorRange.lowerBound)
        }
        let x = p * Double(sorted.count - 1)
        let i = Int(x)
        if i >= sorted.count - 1 { return sorted[sorted.count - 1] }
        return sorted[i] + (x - Double(i)) * (sorted[i + 1] - sorted[i])
    }

    /// P(run time ≤ t), the inverse of `quantile`.
    func cdf(_ t: Double) -> Double {
        guard sorted.count > 1 else {
            if let only = sorted.first { return t >= only ? 1 : 0 }
            let r = priorRange
            return min(max((t - r.lowerBound) / (r.upperBound - r.lowerBound), 0), 1)
        }
        if t <= sorted[0] { return 0 }
        if t >= sorted[sorted.count - 1] { return 1 }
        var lo = 0, hi = sorted.count - 1   // sorted[lo] < t ≤ sorted[hi]
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if sorted[mid] < t { lo = mid } else { hi = mid }
        }
        let frac = sorted[hi] > sorted[lo] ? (t - sorted[lo]) / (sorted[hi] - sorted[lo]) : 1
        return (Double(lo) + frac) / Double(sorted.count - 1)
    }

    /// Quantile p of the run time given it has already lasted `elapsed` seconds.
    func conditionalQuantile(_ p: Double, elapsed: Double) -> Double {
        let f = cdf(elapsed)
        return max(elapsed, quantile(f + p * (1 - f)))
    }
}

/// A bounded sample (the last `capacity` observations) kept sorted for quantiles.
struct RunTimeSamples: Sendable, Equatable {
    static let capacity = 200
    private var ring: [Double] = []
    private var next = 0
    private(set) var distribution = RunTimeDistribution(sorted: [])

    var count: Int { ring.count }

    mutating func add(_ seconds: Double) {
        if ring.count == Self.capacity {
            let old = ring[next]
            let i = Self.firstIndex(notBelow: old, in: distribution.sorted)
            if i < distribution.sorted.count { distribution.sorted.remove(at: i) }
            ring[next] = seconds
            next = (next + 1) % Self.capacity
        } else {
            ring.append(seconds)
        }
        distribution.sorted.insert(seconds, at: Self.firstIndex(notBelow: seconds, in: distribution.sorted))
    }

    /// Binary search: the first index whose value is ≥ x.
    private static func firstIndex(notBelow x: Double, in a: [Double]) -> Int {
        var lo = 0, hi = a.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if a[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// Learned run times with fallback: the exact key (with reference-video seconds), then (model, resolution,
/// duration), then (model, resolution), then model, then everything, then the prior. A level is used once it holds
/// `minimumSamples`.
///
/// Predictions (`predict`) for ordering: the shape guess (`RunTimeKey.shape`) times a scale learned from every
/// sample (Σ seconds ÷ Σ shape; before any sample, the prior's midpoint ÷ the typical key's shape), blended with the
/// median of the key's own samples (exact key first, else without reference seconds) as they accumulate. Each
/// sample is first compared with what was predicted for it: the relative error is tracked.
struct RunTimeModel: Sendable, Equatable {
    static let minimumSamples = 5
    /// Weight of the shape-based estimate, in samples, against a key's own median.
    static let priorWeight = 3.0
    private struct Tier: Hashable, Sendable {
        var model: RenderModel
        var resolution: Resolution
    }

    private var exact: [RunTimeKey: RunTimeSamples] = [:]
    private var byClass: [RunTimeKey: RunTimeSamples] = [:]
    private var byTier: [Tier: RunTimeSamples] = [:]
    private var byModel: [RenderModel: RunTimeSamples] = [:]
    private var all = RunTimeSamples()
    private var secondsTotal = 0.0
    private var shapeTotal = 0.0
    /// |predicted − observed| ÷ observed of the latest samples.
    private(set) var errors = RunTimeSamples()

    mutating func observe(_ key: RunTimeKey, seconds: Double, prior: ClosedRange<Double> = PollPolicy.defaultPriorRunTime) {
        guard seconds.isFinite, seconds > 0 else { return }
        errors.add(abs(predict(key, prior: prior) - seconds) / seconds)
        if key.referenceVideoSeconds != nil { exact[key, default: RunTimeSamples()].add(seconds) }
        byClass[key.withoutReferences, default: RunTimeSamples()].add(seconds)
        byTier[Tier(model: key.model, resolution: key.resolution), default: RunTimeSamples()].add(seconds)
        byModel[key.model, default: RunTimeSamples()].add(seconds)
        all.add(seconds)
        secondsTotal += seconds
        shapeTotal += key.shape
    }

    func distribution(_ key: RunTimeKey) -> RunTimeDistribution {
        let n = Self.minimumSamples
        if let s = exact[key], s.count >= n { return s.distribution }
        if let s = byClass[key.withoutReferences], s.count >= n { return s.distribution }
        if let s = byTier[Tier(model: key.model, resolution: key.resolution)], s.count >= n { return s.distribution }
        if let s = byModel[key.model], s.count >= n { return s.distribution }
        return all.count >= n ? all.distribution : .prior
    }

    /// The expected run time of `key` in seconds; `prior` is the run-time range assumed before any sample.
    func predict(_ key: RunTimeKey, prior: ClosedRange<Double> = PollPolicy.defaultPriorRunTime) -> Double {
        let scale = shapeTotal > 0
            ? secondsTotal / shapeTotal
            : (prior.lowerBound + prior.upperBound) / 2 / RunTimeKey.typical.shape
        let base = scale * key.shape
        let own = exact[key].flatMap { $0.count > 0 ? $0 : nil } ?? byClass[key.withoutReferences]
        guard let own, own.count > 0 else { return base }
        let n = Double(own.count)
        return (n * own.distribution.quantile(0.5) + Self.priorWeight * base) / (n + Self.priorWeight)
    }

    /// How far predictions were off: the median and p90 of |predicted − observed| ÷ observed over the latest
    /// samples, and how many samples that covers (nil before the first).
    var predictionError: (p50: Double, p90: Double, samples: Int)? {
        guard errors.count > 0 else { return nil }
        return (errors.distribution.quantile(0.5), errors.distribution.quantile(0.9), errors.count)
    }
}

/// When to poll a task, from its run-time distribution: rarely early, densely around the likely finish.
public struct PollPolicy: Sendable, Equatable {
    /// The first poll comes when this fraction of tasks like it have finished (and no later than `maxInterval`).
    public var firstPollQuantile = 0.05
    /// Between polls, this much probability mass of finish times passes: intervals shrink where finishes are
    /// dense (around p50–p90) and widen in the tails.
    public var massStep = 0.15
    /// While fewer than `latencyCapQuantile` of tasks like it would have finished, polls are at most this far
    /// apart, which bounds the detection latency of ~97% of tasks (the SDK's p95 is ~4.75 s).
    public var latencyCap = 4.0
    public var latencyCapQuantile = 0.975
    /// Optional tighter cap (and floor) while work waits for a slot, when a late detection is idle paid capacity.
    /// nil = off. Trades polls for slot utilisation; see docs/scheduler.md.
    public var latencyCapWhileQueued: Double?
    /// No two polls of one task closer than this…
    public var minInterval = 2.0
    /// …nor further apart than this (catches early failures and PENDING → RUNNING).
    public var maxInterval = 60.0
    /// Past this quantile the task is overdue and is polled every `overdueInterval` seconds.
    public var overdueQuantile = 0.99
    public var overdueInterval = 4.0
    /// Poll running tasks with one task-list query covering all of them (`GET /api/v1/tasks`) instead of one query
    /// per task; a task the list shows finished is then queried once on its own for its result. Off: per-task polls.
    public var useTaskList = true
    /// With the task list: the next list goes out once the probability that at least one covered task has finished
    /// since the last list reaches this, or earlier when a task's own caps (`latencyCap`, `overdueInterval`,
    /// `latencyCapWhileQueued`, first poll, `maxInterval`) say so; never sooner than the floor (`minInterval`, or
    /// `latencyCapWhileQueued` while work is queued).
    public var listMassStep = 0.85
    /// The run time assumed (uniform over this range) until real ones have been observed.
    public var priorRunTime: ClosedRange<Double> = PollPolicy.defaultPriorRunTime
    public static let defaultPriorRunTime = 60.0...300.0

    public init() {}

    /// Seconds after submission of the next poll, given `elapsed` seconds since submission; `queued` says whether
    /// work is waiting for a slot.
    func nextPoll(elapsed: Double, _ d: RunTimeDistribution, queued: Bool = false) -> Double {
        let pressure = queued ? latencyCapWhileQueued : nil
        let floor = min(minInterval, pressure ?? minInterval)
        let first = d.quantile(firstPollQuantile)
        if elapsed + floor <= first { return min(first, elapsed + maxInterval) }
        let f = d.cdf(elapsed)
        if f >= overdueQuantile || elapsed >= d.quantile(overdueQuantile) {
            return elapsed + min(overdueInterval, pressure ?? overdueInterval)
        }
        var interval = d.quantile(min(f + massStep, overdueQuantile)) - elapsed
        if f < latencyCapQuantile { interval = min(interval, latencyCap, pressure ?? latencyCap) }
        return elapsed + min(max(interval, floor), maxInterval)
    }

    /// Seconds from now to the next task-list query covering `tasks` (each task's seconds since submission and its
    /// run-time distribution); `queued` says whether work is waiting for a slot.
    func nextList(_ tasks: [(elapsed: Double, distribution: RunTimeDistribution)], queued: Bool) -> Double {
        let pressure = queued ? latencyCapWhileQueued : nil
        let floor = min(minInterval, pressure ?? minInterval)
        // The tightest of the tasks' own caps: what per-task polling would never exceed.
        var cap = maxInterval
        for (elapsed, d) in tasks {
            let first = d.quantile(firstPollQuantile)
            let f = d.cdf(elapsed)
            let own: Double
            if elapsed + floor <= first {
                own = first - elapsed
            } else if f >= overdueQuantile || elapsed >= d.quantile(overdueQuantile) {
                own = min(overdueInterval, pressure ?? overdueInterval)
            } else if f < latencyCapQuantile {
                own = min(latencyCap, pressure ?? latencyCap)
            } else {
                own = d.quantile(min(f + massStep, overdueQuantile)) - elapsed
            }
            cap = min(cap, own)
        }
        cap = max(cap, floor)
        // P(at least one finishes within Δ | none had at its elapsed time) = 1 − Π S(e + Δ) / S(e); monotone in Δ.
        func mass(_ delta: Double) -> Double {
            var survive = 1.0
            for (elapsed, d) in tasks {
                let s0 = 1 - d.cdf(elapsed)
                guard s0 > 1e-9 else { continue }   // overdue: its cap decides
                survive *= max(0, 1 - d.cdf(elapsed + delta)) / s0
            }
            return 1 - survive
        }
        guard mass(cap) >= listMassStep else { return cap }
        var lo = floor, hi = cap
        if mass(lo) >= listMassStep { return lo }
        for _ in 0..<12 {
            let mid = (lo + hi) / 2
            if mass(mid) >= listMassStep { hi = mid } else { lo = mid }
        }
        return hi
    }
}
