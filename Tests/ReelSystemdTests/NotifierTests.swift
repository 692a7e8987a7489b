import Glibc
@testable import ReelSystemd
import ReelTestKit
import Testing

extension SystemdTests {
    /// sd_notify against a real datagram socket bound by the test.
    @Suite struct NotifierTests {
        @Test func withoutNotifySocketEveryCallIsANoOp() {
            unsetenv("NOTIFY_SOCKET")
            let notifier = Notifier()
            #expect(!notifier.isEnabled)
            #expect(notifier.watchdogInterval == nil)
            #expect(!notifier.ready(status: "Idle"))
            #expect(!notifier.status("x"))
            #expect(!notifier.stopping())
        }

        @Test func readyCarriesItsStatusLine() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            let notifier = Notifier()
            #expect(notifier.isEnabled)
            #expect(notifier.ready(status: "Idle; 0 queued"))
            #expect(listener.receive() == "READY=1\nSTATUS=Idle; 0 queued")
        }

        @Test func statusIsThrottledToOnePerSecondKeepingTheLatest() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            let clock = ManualClock()
            let notifier = Notifier(now: micros(clock))
            #expect(notifier.status("1 running, 3 queued"))
            clock.advance(by: 0.2)
            #expect(!notifier.status("2 running, 2 queued"))
            clock.advance(by: 0.3)
            #expect(!notifier.status("3 running, 1 queued"))
            #expect(notifier.pendingStatus == "3 running, 1 queued")
            clock.advance(by: 0.4)  // 0.9 s after the first line: still closed
            #expect(!notifier.flushStatus())
            clock.advance(by: 0.1)
            #expect(notifier.flushStatus())
            #expect(!notifier.flushStatus())
            #expect(listener.drain() == ["STATUS=1 running, 3 queued", "STATUS=3 running, 1 queued"])
        }

        @Test func statusLinesStayOneLine() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            Notifier().status("bad\nREADY=1")
            #expect(listener.receive() == "STATUS=bad READY=1")
        }

        @Test func watchdogPingsOnlyWhileTheHeartbeatIsFresh() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            setenv("WATCHDOG_USEC", "30000000", 1)
            unsetenv("WATCHDOG_PID")
            let clock = ManualClock()
            let notifier = Notifier(now: micros(clock))
            let heartbeat = Heartbeat(now: micros(clock))
            #expect(notifier.watchdogInterval == 15_000_000)

            #expect(!notifier.watchdogIfDue(heartbeat: heartbeat), "no tick yet: no ping")
            heartbeat.beat()
            #expect(notifier.watchdogIfDue(heartbeat: heartbeat))
            #expect(listener.receive() == "WATCHDOG=1")
            clock.advance(by: 5)
            #expect(!notifier.watchdogIfDue(heartbeat: heartbeat), "not due before half of WATCHDOG_USEC")
            clock.advance(by: 10)
            #expect(notifier.watchdogIfDue(heartbeat: heartbeat), "due, and the beat is exactly 15 s old")
            #expect(listener.receive() == "WATCHDOG=1")
            clock.advance(by: 15)  // the scheduler has not ticked for 30 s
            #expect(!notifier.watchdogIfDue(heartbeat: heartbeat), "stalled loop: no ping")
            clock.advance(by: 20)
            #expect(!notifier.watchdogIfDue(heartbeat: heartbeat))
            #expect(listener.drain().isEmpty)
            heartbeat.beat()
            #expect(notifier.watchdogIfDue(heartbeat: heartbeat), "the loop recovered")
            #expect(listener.receive() == "WATCHDOG=1")
        }

        @Test func watchdogIsOffWithoutWatchdogUSec() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            unsetenv("WATCHDOG_USEC")
            let notifier = Notifier()
            let heartbeat = Heartbeat()
            heartbeat.beat()
            #expect(notifier.watchdogInterval == nil)
            #expect(!notifier.watchdogIfDue(heartbeat: heartbeat))
            #expect(!notifier.watchdog())
            #expect(listener.drain().isEmpty)
        }

        @Test func reloadingCarriesMonotonicUSecThenReadyAgain() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            let notifier = Notifier()
            let before = Monotonic.microseconds()
            #expect(notifier.reloading())
            let after = Monotonic.microseconds()
            let lines = try #require(listener.receive()).split(separator: "\n").map(String.init)
            #expect(lines.first == "RELOADING=1")
            #expect(lines.last == "STATUS=Reloading configuration")
            let usec = try #require(lines.first { $0.hasPrefix("MONOTONIC_USEC=") }
                .flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) })
            #expect(before <= usec && usec <= after)
            notifier.ready(status: "Reloaded; 0 queued")
            #expect(listener.receive() == "READY=1\nSTATUS=Reloaded; 0 queued")
        }

        @Test func stoppingGoesOutAtOnceAndSupersedesAHeldStatus() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            let clock = ManualClock()
            let notifier = Notifier(now: micros(clock))
            notifier.status("3 running")
            notifier.status("4 running")  // held back
            #expect(notifier.stopping(status: "Draining 4 jobs"))
            clock.advance(by: 2)
            #expect(!notifier.flushStatus(), "the held line must not overwrite the stopping status")
            #expect(listener.drain() == ["STATUS=3 running", "STOPPING=1\nSTATUS=Draining 4 jobs"])
        }

        @Test func extendTimeoutAndErrno() throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            let notifier = Notifier()
            #expect(notifier.extendTimeout(usec: 20_000_000))
            #expect(notifier.errno(13, status: "cannot open /var/lib/reel/reel.sqlite3"))
            #expect(listener.drain() == ["EXTEND_TIMEOUT_USEC=20000000",
                                         "ERRNO=13\nSTATUS=cannot open /var/lib/reel/reel.sqlite3"])
        }

        @Test func watchdogLoopPingsFlushesAndStopsWhenTheLoopStalls() async throws {
            let listener = try NotifyListener()
            defer { listener.close() }
            setenv("WATCHDOG_USEC", "100000", 1)  // ping every 50 ms
            unsetenv("WATCHDOG_PID")
            let notifier = Notifier(statusWindowUSec: 100_000)
            let beats = ManualClock()
            let heartbeat = Heartbeat(now: micros(beats))
            heartbeat.beat()
            let loop = Task { await runWatchdog(notifier: notifier, heartbeat: heartbeat) }
            defer { loop.cancel() }

            #expect(await listener.next() == "WATCHDOG=1")
            #expect(await listener.next() == "WATCHDOG=1")
            notifier.status("first")
            notifier.status("latest")  // held back by the 100 ms window; the loop releases it
            var seen: [String] = []
            while !seen.contains("STATUS=latest"), let m = await listener.next() { seen.append(m) }
            #expect(seen.contains("STATUS=first") && seen.contains("STATUS=latest"))

            beats.advance(by: 10)  // the scheduler stops ticking
            _ = await listener.next(timeout: 0.1)  // a ping may already be in flight
            _ = listener.drain()
            #expect(await listener.next(timeout: 0.4) == nil, "no ping for 8 intervals while stalled")
            heartbeat.beat()
            #expect(await listener.next() == "WATCHDOG=1")

            loop.cancel()
            await loop.value
        }
    }
}
