import Foundation
import Glibc
import ReelTestKit
import Testing

/// The real reeld under a real `$NOTIFY_SOCKET`: what systemd would see, datagram by
/// datagram, with arrival times.
@Suite(.serialized) struct SystemdNotifyTests {
    /// One reeld life: READY after readiness, STATUS lines, WATCHDOG cadence, the watchdog gate on a stalled
    /// scheduler loop, RELOADING/READY on SIGHUP (good and broken configs), STOPPING first on SIGTERM.
    @Test func readyStatusWatchdogStallReloadAndStop() async throws {
        // Renders take a minute of real time: the jobs stay RUNNING, so the scheduler keeps polling (ticking).
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "60000"])
        defer { sandbox.stop() }
        let notify = try NotifyCapture()
        defer { notify.close() }
        let stallFile = FileManager.default.temporaryDirectory.appendingPathComponent("reel-stall-\(UUID())").path
        defer { unlink(stallFile) }
        let reeld = try ReeldProcess(
            providerURL: sandbox.url, extraConfig: ReeldProcess.fastConfig + "\n[limits]\nconcurrency = 2\n",
            environment: notify.environment.merging(["DASHSCOPE_API_KEY": "sk-reel-test", "WATCHDOG_USEC": "2000000",
                                                     "REEL_TEST_STALL_ENGINE": stallFile]) { $1 })
        defer { reeld.stop() }

        // A manifest already waiting in incoming/ must be ingested before READY.
        try FileManager.default.createDirectory(atPath: reeld.spool + "/incoming", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: reeld.spool + "/tmp", withIntermediateDirectories: true)
        try reeld.drop(systemdManifest(batch: "ready-check", count: 3), as: "ready-check.json")
        // Left there a while ago (e.g. across a restart): older than intake's 2 s settle time, so the start scan
        // takes it rather than waiting for a writer that might still be writing it in place.
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-60)],
                                              ofItemAtPath: reeld.spool + "/incoming/ready-check.json")
        // At the instant READY=1 arrives: does the control socket accept, is incoming/ empty?
        let atReady = Observed<(accepts: Bool, incoming: [String])?>(nil)
        let socket = reeld.socket, incoming = reeld.spool + "/incoming"
        notify.onReceive { message in
            guard message.isReady else { return }
            let accepts = UnixSocket.accepts(path: socket)
            let left = (try? FileManager.default.contentsOfDirectory(atPath: incoming)) ?? ["<unreadable>"]
            atReady.update { if $0 == nil { $0 = (accepts, left) } }
        }
        try await reeld.start()

        // READY: after the socket answers and the spool was scanned; its STATUS line counts the 3 jobs.
        let (readyIndex, ready) = try await notify.waitFor("READY=1") { $0.isReady }
        let seen = try #require(atReady.current)
        #expect(seen.accepts, "the control socket must accept connections when READY=1 arrives")
        #expect(seen.incoming.isEmpty, "the manifest must have left incoming/ before READY=1: \(seen.incoming)")
        let readyStatus = try #require(ready.fields["STATUS"])
        let numbers = readyStatus.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        #expect(numbers.count >= 3 && numbers[0] + numbers[1] + numbers[2] == 3,
                "READY's STATUS must already count the 3 ingested jobs: \(readyStatus)")
        #expect(!notify.messages[..<readyIndex].contains { $0.isReady || $0.isWatchdog },
                "nothing but STATUS before READY: \(notify.messages)")
        _ = try await reeld.waitFor(timeout: 60, "2 jobs rendering") { ($0["running"] ?? 0) == 2 }

        // WATCHDOG=1 every ~1 s (half of WATCHDOG_USEC=2 s); STATUS lines at most one per second.
        let cadenceStart = NotifyCapture.monotonic()
        try await eventually("4 watchdog pings", timeout: 30) {
            notify.messages.filter { $0.isWatchdog && $0.time >= cadenceStart }.count >= 4
        }
        // Arrival times are wall-clock on a loaded machine, so only the loose shape is checked: pings are paced (not
        // a flood) and come well within WATCHDOG_USEC=2 s of each other.
        let pings = notify.messages.filter(\.isWatchdog).map(\.time)
        let gaps = zip(pings.dropFirst(), pings).map { $0 - $1 }
        // Counted over the span rather than gap by gap: a reader thread starved for a moment stamps two queued
        // datagrams at once, which would fake a tiny gap.
        #expect(Double(pings.count - 1) <= (pings.last! - pings.first!) / 0.9 + 1,
                "at most one ping per ~1 s (half of WATCHDOG_USEC), not a flood: \(gaps)")
        #expect(gaps.sorted()[gaps.count / 2] < 1.5, "pings come every ~1 s, not every ~2 s: \(gaps)")
        let statuses = notify.messages[(readyIndex + 1)...].filter { $0.fields.keys.sorted() == ["STATUS"] }
        try #require(statuses.count >= 2, "periodic STATUS lines: \(notify.messages)")
        #expect(statuses.contains { $0.text.contains("2 rendering, 1 queued") }, "\(statuses)")
        let statusGaps = zip(statuses.dropFirst(), statuses).map { $0.time - $1.time }
        #expect(Double(statuses.count - 1) <= (statuses.last!.time - statuses.first!.time) / 0.9 + 1,
                "STATUS throttled to about once per second: \(statusGaps)")

        // The gate: stall the scheduler loop (its due ticks wait; the actor and the control API stay up).
        _ = FileManager.default.createFile(atPath: stallFile, contents: nil)
        let stalledAt = NotifyCapture.monotonic()
        try await eventually("watchdog pings to stop for longer than WATCHDOG_USEC", timeout: 30) {
            let last = notify.messages.last(where: \.isWatchdog)?.time ?? 0
            return NotifyCapture.monotonic() - last > 2.5
        }
        let lastPing = notify.messages.last(where: \.isWatchdog)?.time ?? 0
        #expect(lastPing - stalledAt < 10, "pings must stop soon after the stall (the heartbeat goes stale)")
        #expect(notify.messages.contains { $0.fields.keys.sorted() == ["STATUS"] && $0.time > lastPing + 1 },
                "STATUS lines keep coming while stalled: the process is alive, only the loop is not")
        #expect(try await reeld.get("/v1/status").status == 200, "the control API still answers while stalled")
        unlink(stallFile)
        let resumedAt = NotifyCapture.monotonic()
        try await notify.waitFor("WATCHDOG=1 after the loop resumes", timeout: 30) { $0.isWatchdog && $0.time > resumedAt }

        // SIGHUP with a changed [limits] concurrency: RELOADING=1 + MONOTONIC_USEC, then READY=1; the limit applies.
        try reeld.editConfig { $0.replacingOccurrences(of: "concurrency = 2", with: "concurrency = 4") }
        var mark = notify.messages.count
        let beforeHUP = UInt64(NotifyCapture.monotonic() * 1_000_000)
        reeld.send(SIGHUP)
        let (reloadIndex, reloading) = try await notify.waitFor("RELOADING=1", from: mark) { $0.fields["RELOADING"] == "1" }
        let usec = try #require(reloading.fields["MONOTONIC_USEC"].flatMap(UInt64.init), "\(reloading)")
        #expect(usec >= beforeHUP && usec <= UInt64(reloading.time * 1_000_000), "MONOTONIC_USEC is CLOCK_MONOTONIC")
        let (_, reReady) = try await notify.waitFor("READY=1 after the reload", from: reloadIndex + 1) { $0.isReady }
        #expect(reReady.fields["STATUS"]?.contains("applied") == true, "\(reReady)")
        #expect(try await reeld.concurrencyLimit() == 4)
        _ = try await reeld.waitFor(timeout: 60, "3 jobs rendering under the new limit") { ($0["running"] ?? 0) == 3 }

        // A broken config on SIGHUP: RELOADING, READY again (the old config keeps running), nothing changed.
        try reeld.editConfig { $0.replacingOccurrences(of: "concurrency = 4", with: "concurrency = \"lots\"") }
        mark = notify.messages.count
        let pid = reeld.pid
        reeld.send(SIGHUP)
        let (badIndex, _) = try await notify.waitFor("RELOADING=1", from: mark) { $0.fields["RELOADING"] == "1" }
        let (_, refused) = try await notify.waitFor("READY=1 after the refused reload", from: badIndex + 1) { $0.isReady }
        #expect(refused.fields["STATUS"]?.contains("refused") == true, "\(refused)")
        #expect(try await reeld.concurrencyLimit() == 4, "a broken config changes nothing")
        #expect(pid != nil && reeld.pid == pid && pid.map { kill($0, 0) } == 0, "reeld keeps running")
        #expect(reeld.logTail(20_000).contains("limits.concurrency"), "the log names the bad key")

        // SIGTERM: STOPPING=1 first, then nothing but status; exit 0.
        mark = notify.messages.count
        let killedAt = NotifyCapture.monotonic()
        let status = await reeld.terminate(signal: SIGTERM)
        let exitSeconds = NotifyCapture.monotonic() - killedAt
        // Exit 0 means it left by itself within the grace period (it is SIGKILLed, status 137, after that).
        #expect(status == 0, "reeld exits 0 on SIGTERM\n\(reeld.logTail())")
        let after = Array(notify.messages[mark...])
        let stopping = try #require(after.firstIndex { $0.fields["STOPPING"] == "1" }, "no STOPPING=1: \(after)")
        #expect(after[..<stopping].allSatisfy { Set($0.fields.keys).isSubset(of: ["STATUS", "WATCHDOG"]) },
                "STOPPING=1 comes first (only an in-flight STATUS/WATCHDOG may precede it): \(after)")
        #expect(!after[(stopping + 1)...].contains { $0.isWatchdog || $0.isReady }, "\(after)")
        print("systemd notify: exit after SIGTERM in \(String(format: "%.2f", exitSeconds)) s; ping gaps \(gaps)")
    }
}
