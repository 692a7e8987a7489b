/// Wall-clock time in seconds since 1970 (UTC). The core never reads a clock: callers pass `now`.
public typealias Timestamp = Double

/// A source of the current time, injected into everything that schedules; tests use `ManualClock`.
public protocol WallClock: Sendable {
    func now() -> Timestamp
}
