/// A provider limit pool: DashScope counts render slots and creates per model, on each root account
/// (reference §1.8). The key is a struct so that the account can join the model as a second field.
public struct PoolKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var model: RenderModel

    public init(model: RenderModel) { self.model = model }

    public static func < (a: PoolKey, b: PoolKey) -> Bool { a.model.rawValue < b.model.rawValue }

    public var description: String { model.rawValue }

    /// Every pool of the one account, in a fixed order.
    public static let all: [PoolKey] = RenderModel.allCases.map { PoolKey(model: $0) }
}

/// One pool's limits: render slots (PENDING + RUNNING tasks) and creates per second.
public struct PoolLimits: Sendable, Equatable {
    public var concurrency: Int
    public var submitPerSecond: Double

    public init(concurrency: Int, submitPerSecond: Double) {
        self.concurrency = concurrency
        self.submitPerSecond = submitPerSecond
    }

    /// What DashScope gives each model on a root account: 5 concurrent tasks, 5 creates per second (§1.8).
    public static let provider = PoolLimits(concurrency: 5, submitPerSecond: 5)
}

/// Creates of one pool as the provider sees them: at most `limit` requests sent in any `span` seconds, where `span`
/// is the provider's window (k / rate for k = max(1, ⌊rate⌋) creates) plus a margin for the time a request takes to
/// arrive. Counted from when each request went out (`sent`), not from when the scheduler chose it: the write-ahead,
/// an upload or a wait for a connection lie in between. A create chosen but not yet reported sent counts as if it
/// went out now, since it may go at any moment.
struct CreateWindow: Sendable, Equatable {
    private(set) var limit: Int
    private(set) var span: Double
    /// Send times still inside the span (pruned on every change), unordered.
    private var sentTimes: [Double] = []
    private var unsent: Set<JobKey> = []

    init(perSecond r: Double, margin: Double) {
        let rate = r.isFinite && r > 0 ? r : 1
        limit = max(1, Int(rate.rounded(.down)))
        span = Double(limit) / rate + max(0, margin)
    }

    /// The earliest time at or after `now` when one more create may be chosen; nil while chosen creates that have
    /// not gone out yet fill the window (their send or answer comes first).
    func nextAllowed(_ now: Double) -> Double? {
        if unsent.count >= limit { return nil }
        let live = sentTimes.filter { $0 > now - span }.sorted()
        let excess = live.count + unsent.count - limit + 1   // sends that must leave the span first
        if excess <= 0 { return now }
        return live[excess - 1] + span
    }

    func allows(_ now: Double) -> Bool { nextAllowed(now).map { $0 <= now } ?? false }

    /// The scheduler chose `key`'s create.
    mutating func chose(_ key: JobKey, now: Double) {
        unsent.insert(key)
        prune(now)
    }

    /// `key`'s request went out at `at`.
    mutating func sent(_ key: JobKey, at: Double, now: Double) {
        if unsent.remove(key) != nil { sentTimes.append(min(at, now)) }
        prune(now)
    }

    /// `key`'s create ended (answered, refused, or given up) without a reported send: counted as sent now, which is
    /// never earlier than the real send.
    mutating func ended(_ key: JobKey, now: Double) {
        if unsent.remove(key) != nil { sentTimes.append(now) }
        prune(now)
    }

    /// New rate and margin, keeping what was sent and chosen so a reload never opens a burst.
    mutating func resize(perSecond r: Double, margin: Double) {
        let (times, keys) = (sentTimes, unsent)
        self = CreateWindow(perSecond: r, margin: margin)
        sentTimes = times
        unsent = keys
    }

    private mutating func prune(_ now: Double) {
        let span = self.span
        sentTimes.removeAll { $0 <= now - span }
    }
}

/// One pool's state in the scheduler: its holders, its create window and its own throttling feedback, so a
/// throttled create of one model never slows another.
struct PoolState: Sendable {
    var limits: PoolLimits
    var creates: CreateWindow
    /// Slot holders (submitting, in doubt, pending, running) and queued jobs of this pool.
    var holders = 0
    var queued = 0
    /// Shrinks when the account turns out busy elsewhere; grows back by one per quiet window.
    var adaptiveCap: Int
    var growAt: Timestamp?
    /// No create of this pool goes out before this after a throttling answer.
    var throttleHoldUntil = -Double.infinity
    /// Throttling episodes in a row (creates chosen before the previous throttling answer belong to its episode).
    var consecutiveThrottles = 0
    var lastThrottleAt = -Double.infinity
    var throttles = 0

    init(limits: PoolLimits) {
        self.limits = limits
        creates = CreateWindow(perSecond: limits.submitPerSecond, margin: SchedulerTuning.createMargin)
        adaptiveCap = max(1, limits.concurrency)
    }

    /// min(concurrency, adaptive cap): the slots this pool fills now.
    var cap: Int { max(0, min(limits.concurrency, adaptiveCap)) }

    mutating func setLimits(_ l: PoolLimits) {
        limits = l
        creates.resize(perSecond: l.submitPerSecond, margin: SchedulerTuning.createMargin)
        adaptiveCap = max(1, l.concurrency)
        growAt = nil
    }
}

/// One pool as status and metrics show it.
public struct PoolSnapshot: Sendable, Equatable {
    public var key: PoolKey
    public var limits: PoolLimits
    /// The slots this pool fills now (≤ its concurrency after throttling).
    public var concurrencyCap: Int
    public var adaptiveCap: Int
    public var slotsHeld: Int
    public var queued: Int
    public var throttles: Int
    public var throttleHoldUntil: Timestamp
}
