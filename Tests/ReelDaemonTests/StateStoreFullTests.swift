import Foundation
import ReelTestKit
import Testing

/// The state filesystem fills up mid-batch (a tmpfs under `[paths] state`, filled to the last byte): reeld
/// turns degraded instead of losing or failing anything — no new creates, `degraded: state store …` in status,
/// metrics and `reelctl status` — keeps what it knows, and resumes by itself once space returns. Every job then
/// succeeds with exactly one task at the provider.
@Suite(.serialized) struct StateStoreFullTests {
    @Test func fullStateFilesystemDegradesAndResumes() async throws {
        // Renders of 1–2 s; the two `held-` jobs stay PENDING (slow_queue: 14 h of sandbox time, over an hour of
        // real time) until the test moves the sandbox's clock, so the batch is under way when the disk fills however
        // late a loaded machine lets this test look.
        let sandbox = try await SandboxProcess.start(["--time-scale", "10", "--run-time", "10..20"])
        defer { sandbox.stop() }
        try await sandbox.setFaults("""
            [{"fault": "slow_queue", "marker": "held-", "seconds": 50000}]
            """)
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        // Roomier than SQLite's WAL grows between checkpoints (up to 1,000 pages, 4 MB), so freeing the filler
        // really frees the disk.
        guard try await DeliveryKit.mountTmpfs(reeld.state, size: "32m", label: "reel-test-state",
                                               for: "fullStateFilesystemDegradesAndResumes") else { return }
        defer { DeliveryTests.unmount(reeld.state) }
        try await reeld.start()
        defer { reeld.stop() }

        let ids = (1...12).map { String(format: "full-%02d", $0) }
        let jobs = ids.map { id in (id, id >= "full-11" ? "character1 keeps held-\(id) safe" : "character1 keeps \(id) safe") }
        try reeld.drop(Durability.manifest(batch: "statefull", jobs: jobs), as: "statefull.json")
        // Some renders under way, most of the batch still to do.
        _ = try await reeld.waitFor(timeout: 120, "renders under way") { c in
            (c["pending"] ?? 0) + (c["running"] ?? 0) >= 2
        }

        // Fill the state filesystem: write until ENOSPC.
        let filler = reeld.state + "/.filler"
        #expect(DeliveryKit.fill(filler))
        // More work arrives meanwhile: its manifest waits in incoming/ until the store takes its commit (SQLite may
        // fit that commit into its existing WAL, so when is not asserted; that it is taken, once, is).
        let later = ["late-1", "late-2"]
        try reeld.drop(Durability.manifest(batch: "statefull-late", jobs: later.map { ($0, "character1 arrives \($0)") }),
                       as: "statefull-late.json")

        // The engine meets the full disk and says so where an operator looks. (SQLite may still fit a write into
        // its existing WAL now and then, which ends the degraded state until the next refusal; so each view is
        // polled until it shows it.)
        func refused() -> Bool { reeld.logTail(2_000_000).contains("the state store refused a write") }
        try await Self.eventually("a refused write in the log") { refused() }
        try await Self.eventually("degraded health in /v1/status") {
            let status = try await reeld.status()
            let provider = status["provider"] as? [String: Any] ?? [:]
            let warnings = status["warnings"] as? [String] ?? []
            return provider["health"] as? String == "degraded"
                && warnings.contains { $0.hasPrefix("degraded: state store refuses writes") }
        }
        try await Self.eventually("the metric") {
            try await reeld.get("/v1/metrics").text.contains("reel_state_store_refusing_writes 1.0\n")
        }
        try await Self.eventually("reelctl status") {
            try BinaryRun.run("reelctl", ["status"], environment: ["REEL_SOCKET": reeld.socket]).stdout
                .contains("degraded: state store")
        }

        // Space returns: everything resumes by itself; then the held renders are let go.
        try FileManager.default.removeItem(atPath: filler)
        _ = try await reeld.waitFor(timeout: 120, "all but the held jobs done") { c in (c["succeeded"] ?? 0) >= 12 }
        try await sandbox.advanceClock(50_000)
        let counts = try await reeld.waitForTerminal(total: ids.count + later.count, timeout: 120)
        #expect(counts["succeeded"] == ids.count + later.count, "\(counts)\n\(reeld.logTail())")
        let after = try await reeld.status()
        #expect((after["provider"] as? [String: Any])?["health"] as? String == "ok", "\(after)")
        #expect(!(after["warnings"] as? [String] ?? []).contains { $0.contains("state store") }, "\(after)")
        #expect(reeld.logTail(2_000_000).contains("the state store accepts writes again"))

        // Exactly one task per job at the provider: nothing was submitted twice, nothing lost.
        let tasks = try await Durability.sandboxTasks(sandbox)
        var perPrompt: [String: Int] = [:]
        for prompt in tasks.values { perPrompt[prompt, default: 0] += 1 }
        for (id, prompt) in jobs + later.map({ ($0, "character1 arrives \($0)") }) {
            #expect(perPrompt[prompt] == 1, "\(id): \(perPrompt[prompt] ?? 0) tasks")
        }
        for id in ids {
            #expect(FileManager.default.fileExists(atPath: reeld.output + "/statefull/\(id).mp4"), "\(id) delivered")
        }
        #expect(await reeld.terminate() == 0)
    }

    /// Polls `check` every 50 ms for up to 60 s.
    static func eventually(_ what: String, _ check: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if try await check() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("never saw \(what)")
    }
}
