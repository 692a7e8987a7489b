import Glibc
import Synchronization

/// `CLOCK_MONOTONIC` in microseconds: the time base of `MONOTONIC_USEC=` and of ``Heartbeat``.
public enum Monotonic {
    /// The current `CLOCK_MONOTONIC` reading in microseconds.
    @Sendable public static func microseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }
}

/// Keeps `STATUS=` lines to at most one per window: the first goes out at once, later ones within the window
/// replace each other and the latest is released when the window opens. Pure: time is a parameter.
public struct StatusThrottle: Sendable, Equatable {
    /// The minimum spacing between two status lines, in microseconds.
    public let windowUSec: UInt64
    private var lastSent: UInt64?
    /// The latest line held back by the window, if any.
    public private(set) var pending: String?

    /// - Parameter windowUSec: minimum spacing between two lines (default 1 s).
    public init(windowUSec: UInt64 = 1_000_000) { self.windowUSec = windowUSec }

    private func isOpen(_ now: UInt64) -> Bool { lastSent.map { now &- $0 >= windowUSec } ?? true }

    /// Offers a line at `now`; returns the line to send now, or nil if it was held back (replacing any older one).
    public mutating func submit(_ line: String, now: UInt64) -> String? {
        guard isOpen(now) else { pending = line; return nil }
        pending = nil
        lastSent = now
        return line
    }

    /// Returns the held-back line if the window has opened by `now` (and marks it sent), else nil.
    public mutating func due(now: UInt64) -> String? {
        guard let line = pending, isOpen(now) else { return nil }
        pending = nil
        lastSent = now
        return line
    }

    /// Records a line sent outside the throttle (READY, STOPPING…): it supersedes anything held back.
    public mutating func sentUnthrottled(now: UInt64) {
        pending = nil
        lastSent = now
    }
}

/// Talks to the service manager over `$NOTIFY_SOCKET` (`sd_notify(3)`). Without `$NOTIFY_SOCKET` (a dev run, or
/// `Type=simple`) every call is a cheap no-op. `$NOTIFY_SOCKET` and `$WATCHDOG_USEC` are read once, at `init`.
///
/// Every method returns true when the datagram was delivered.
public final class Notifier: Sendable {
    /// Whether `$NOTIFY_SOCKET` was set when this notifier was made.
    public let isEnabled: Bool
    /// Half of `WATCHDOG_USEC` in microseconds: how often ``watchdog()`` must be sent; nil when the watchdog is off.
    public let watchdogInterval: UInt64?
    private let now: @Sendable () -> UInt64
    private let state: Mutex<State>

    private struct State {
        var throttle: StatusThrottle
        var lastPing: UInt64?
    }

    /// - Parameters:
    ///   - statusWindowUSec: minimum spacing of ``status(_:)`` lines (default 1 s).
    ///   - now: a monotonic clock in microseconds; tests inject a manual one.
    public init(statusWindowUSec: UInt64 = 1_000_000,
                now: @escaping @Sendable () -> UInt64 = Monotonic.microseconds) {
        isEnabled = getenv("NOTIFY_SOCKET") != nil
        watchdogInterval = isEnabled ? LibSystemd.watchdogUSec().map { $0 / 2 } : nil
        self.now = now
        state = Mutex(State(throttle: StatusThrottle(windowUSec: statusWindowUSec)))
    }

    /// `READY=1` with a `STATUS=` line: send once the store is migrated, the spool scanned, the control socket bound
    /// or adopted and the credential read; send again after a reload has been applied.
    @discardableResult public func ready(status: String) -> Bool {
        unthrottled("READY=1\nSTATUS=\(Self.line(status))")
    }

    /// `STATUS=<line>`, at most one per window: a line offered too soon is kept (only the latest) and sent by
    /// ``flushStatus()`` once the window opens. ``runWatchdog(notifier:heartbeat:clock:)`` flushes every second.
    @discardableResult public func status(_ line: String) -> Bool {
        guard isEnabled else { return false }
        let t = now()
        return state.withLock { s in
            guard let out = s.throttle.submit(Self.line(line), now: t) else { return false }
            return LibSystemd.notify("STATUS=\(out)") > 0
        }
    }

    /// Sends the held-back status line if its window has opened; true if one was sent.
    @discardableResult public func flushStatus() -> Bool {
        guard isEnabled else { return false }
        let t = now()
        return state.withLock { s in
            guard let out = s.throttle.due(now: t) else { return false }
            return LibSystemd.notify("STATUS=\(out)") > 0
        }
    }

    /// The latest status line still held back by the throttle (for tests and diagnostics).
    public var pendingStatus: String? { state.withLock { $0.throttle.pending } }

    /// `WATCHDOG=1`, unconditionally. Prefer ``watchdogIfDue(heartbeat:)``, which proves the work loop is alive.
    @discardableResult public func watchdog() -> Bool {
        guard isEnabled, watchdogInterval != nil else { return false }
        let t = now()
        state.withLock { $0.lastPing = t }
        return LibSystemd.notify("WATCHDOG=1") > 0
    }

    /// `WATCHDOG=1` if a ping is due (``watchdogInterval`` since the last one) and `heartbeat` is fresh (younger
    /// than ``watchdogInterval``). A stalled work loop therefore stops the pings and systemd restarts the service.
    @discardableResult public func watchdogIfDue(heartbeat: Heartbeat) -> Bool {
        guard isEnabled, let interval = watchdogInterval, heartbeat.isFresh(within: interval) else { return false }
        let t = now()
        let due = state.withLock { s in s.lastPing.map { t &- $0 >= interval } ?? true }
        return due && watchdog()
    }

    /// `RELOADING=1` + `MONOTONIC_USEC=<CLOCK_MONOTONIC µs>` (+ `STATUS=`): send on SIGHUP before re-reading the
    /// configuration, then ``ready(status:)`` when done. (`MONOTONIC_USEC` is ignored by systemd 252 and required
    /// by `Type=notify-reload` in 253+.)
    @discardableResult public func reloading(status: String = "Reloading configuration") -> Bool {
        unthrottled("RELOADING=1\nMONOTONIC_USEC=\(Monotonic.microseconds())\nSTATUS=\(Self.line(status))")
    }

    /// `STOPPING=1` + `STATUS=`: the first thing to send on SIGTERM (and on every exit path after READY).
    @discardableResult public func stopping(status: String = "Shutting down") -> Bool {
        unthrottled("STOPPING=1\nSTATUS=\(Self.line(status))")
    }

    /// `EXTEND_TIMEOUT_USEC=<usec>`: asks for more time while starting or draining; repeat before it runs out.
    @discardableResult public func extendTimeout(usec: UInt64) -> Bool {
        unthrottled("EXTEND_TIMEOUT_USEC=\(usec)")
    }

    /// `ERRNO=<code>` (+ `STATUS=<reason>`): reports why the daemon is about to fail.
    @discardableResult public func errno(_ code: Int32, status: String? = nil) -> Bool {
        unthrottled("ERRNO=\(code)" + (status.map { "\nSTATUS=\(Self.line($0))" } ?? ""))
    }

    private func unthrottled(_ message: String) -> Bool {
        guard isEnabled else { return false }
        let t = now()
        return state.withLock { s in
            if message.contains("STATUS=") { s.throttle.sentUnthrottled(now: t) }
            return LibSystemd.notify(message) > 0
        }
    }

    /// A status is one line: a newline would start a new `KEY=` assignment.
    static func line(_ text: String) -> String {
        text.contains(where: \.isNewline) ? String(text.map { $0.isNewline ? " " : $0 }) : text
    }
}
