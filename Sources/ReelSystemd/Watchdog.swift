import Synchronization

/// The work loop's proof of life: the scheduler calls ``beat()`` after each successful tick, and the watchdog
/// pings systemd only while the last beat is recent.
public final class Heartbeat: Sendable {
    private let now: @Sendable () -> UInt64
    private let stamp = Mutex<UInt64?>(nil)

    /// - Parameter now: a monotonic clock in microseconds; tests inject a manual one.
    public init(now: @escaping @Sendable () -> UInt64 = Monotonic.microseconds) { self.now = now }

    /// Records a successful tick of the work loop.
    public func beat() {
        let t = now()
        stamp.withLock { $0 = t }
    }

    /// When the loop last beat (monotonic µs), or nil if it never has.
    public var last: UInt64? { stamp.withLock { $0 } }

    /// True if the loop beat within the last `usec` microseconds.
    public func isFresh(within usec: UInt64) -> Bool {
        guard let last else { return false }
        let t = now()
        return t < last || t - last <= usec
    }
}

/// Runs the watchdog until the task is cancelled: every half ``Notifier/watchdogInterval`` it sends `WATCHDOG=1`
/// when a ping is due and `heartbeat` is fresh (``Notifier/watchdogIfDue(heartbeat:)``), and releases a throttled
/// `STATUS=` line (``Notifier/flushStatus()``). Without `$NOTIFY_SOCKET` or without a watchdog it just waits for
/// cancellation (no timer wakes the process), so it can run as a `Service` in every mode; wrap it with
/// `cancelOnGracefulShutdown()`. Whoever sends status lines without a watchdog offers the latest again once the
/// throttle's window has passed.
///
/// - Important: the work loop must beat at least once per ``Notifier/watchdogInterval`` even when idle, or systemd
///   will kill the daemon (`WatchdogSec=`).
public func runWatchdog<C: Clock>(notifier: Notifier, heartbeat: Heartbeat, clock: C = ContinuousClock())
    async where C.Duration == Duration
{
    guard notifier.isEnabled, let interval = notifier.watchdogInterval else {
        while !Task.isCancelled { try? await clock.sleep(for: .seconds(3600)) }
        return
    }
    // A ping falls due every `interval`; waking at half of it keeps each ping within 1.5 intervals of the last,
    // well inside WATCHDOG_USEC (2 intervals).
    let periodUSec = max(1, interval / 2)
    while !Task.isCancelled {
        notifier.watchdogIfDue(heartbeat: heartbeat)
        notifier.flushStatus()
        do { try await clock.sleep(for: .microseconds(periodUSec)) } catch { return }
    }
}
