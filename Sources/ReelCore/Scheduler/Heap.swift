/// A binary min-heap. The core has no package dependencies, so the scheduler carries its own.
struct Heap<Element: Comparable & Sendable>: Sendable {
    private(set) var items: [Element] = []

    var isEmpty: Bool { items.isEmpty }
    var count: Int { items.count }
    var top: Element? { items.first }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i] < items[parent] else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    @discardableResult
    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let out = items.removeLast()
        var i = 0
        let n = items.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && items[l] < items[m] { m = l }
            if r < n && items[r] < items[m] { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return out
    }

    /// Pops entries from the top while `isStale` says so; lazy deletion keeps every update O(log n).
    mutating func dropStale(_ isStale: (Element) -> Bool) {
        while let t = items.first, isStale(t) { pop() }
    }
}

/// At most `limit` events in any window of `window` seconds (a sliding log of the last `limit` event times).
/// Stricter than a token bucket, which lets up to twice its burst through a sliding one-second window.
struct RateWindow: Sendable, Equatable {
    private(set) var limit: Int
    private(set) var window: Double
    private var times: [Double] = []
    private var head = 0

    /// `perSecond` r allows k = max(1, ⌊r⌋) events per k / r seconds: 5 → 5 per 1 s, 2.5 → 2 per 0.8 s, 0.5 → 1 per 2 s.
    init(perSecond r: Double) {
        let rate = r.isFinite && r > 0 ? r : 1
        limit = max(1, Int(rate.rounded(.down)))
        window = Double(limit) / rate
    }

    /// The earliest time at or after `now` when one more event is allowed.
    func nextAllowed(_ now: Double) -> Double {
        guard times.count == limit else { return now }
        return max(now, times[head] + window)
    }

    func allows(_ now: Double) -> Bool { nextAllowed(now) <= now }

    mutating func record(_ now: Double) {
        if times.count < limit {
            times.append(now)
        } else {
            times[head] = now
            head = (head + 1) % limit
        }
    }

    /// Forgets the budget (a `Throttling` answer on queries says someone else spends it): next event after `window`.
    mutating func exhaust(_ now: Double) {
        times = Array(repeating: now, count: limit)
        head = 0
    }

    /// New rate, keeping the recent history so a reload never opens a burst.
    mutating func resize(perSecond r: Double) {
        let recent = (0..<times.count).map { times[(head + $0) % times.count] }
        self = RateWindow(perSecond: r)
        for t in recent.suffix(limit) { record(t) }
    }
}
