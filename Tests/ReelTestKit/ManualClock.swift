import ReelCore
import Synchronization

/// A clock that moves only when a test moves it.
public final class ManualClock: WallClock {
    private let current: Mutex<Timestamp>

    public init(_ start: Timestamp = 1_800_000_000) { current = Mutex(start) }

    public func now() -> Timestamp { current.withLock { $0 } }

    public func advance(by seconds: Double) { current.withLock { $0 += seconds } }

    public func set(_ t: Timestamp) { current.withLock { $0 = t } }
}
