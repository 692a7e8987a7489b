import Foundation
import Glibc
import ReelTestKit
import Testing

/// `systemctl stop` in the middle of a batch.
@Suite(.serialized) struct SystemdStopTests {
    /// SIGTERM while renders are RUNNING at the provider: reeld exits 0 promptly, the renders go on, and the next
    /// reeld re-attaches to the same task ids (no second create, so nothing is paid twice) and finishes the batch.
    @Test func sigtermMidBatchLeavesRendersRunningAndRestartReattaches() async throws {
        // Renders of 10 000 sandbox seconds (100 s real at --time-scale 100): they cannot finish by themselves while
        // reeld is stopped and restarted, however loaded the machine; the test ends them by advancing the sandbox's
        // clock once the restarted reeld has re-attached. (Result URLs live 24 sandbox-hours: plenty of margin.)
        let renderSeconds = 10_000.0
        let sandbox = try await SandboxProcess.start(["--time-scale", "100", "--run-time", "\(Int(renderSeconds))"])
        defer { sandbox.stop() }
        let notify = try NotifyCapture()
        defer { notify.close() }
        let reeld = try ReeldProcess(providerURL: sandbox.url,
                                     environment: notify.environment.merging(["DASHSCOPE_API_KEY": "sk-reel-test"]) { $1 })
        defer { reeld.stop() }
        try await reeld.start()
        try reeld.drop(systemdManifest(batch: "stop-mid-batch", count: 4), as: "stop-mid-batch.json")
        _ = try await reeld.waitFor(timeout: 60, "4 jobs RUNNING at the provider") { ($0["running"] ?? 0) == 4 }

        let creates = try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }
        let taskIDs = Set(creates.compactMap(\.taskID))
        #expect(creates.count == 4 && taskIDs.count == 4, "\(creates)")

        let stoppedAt = Date()
        let status = await reeld.terminate(signal: SIGTERM)
        let stopSeconds = Date().timeIntervalSince(stoppedAt)
        // Exit 0 means it left by itself within the grace period (it is SIGKILLed, status 137, after that).
        #expect(status == 0, "reeld exits 0 on SIGTERM mid-batch\n\(reeld.logTail())")
        #expect(notify.messages.contains { $0.fields["STOPPING"] == "1" })

        // The renders keep going at the provider without reeld.
        for task in taskIDs {
            let reply = try await sandbox.send(TestHTTPRequest("GET", "/api/v1/tasks/\(task)",
                                                               headers: ["Authorization": "Bearer sk-reel-test"]))
            let output = try reply.json()["output"] as? [String: Any]
            let state = output?["task_status"] as? String
            #expect(state == "RUNNING" || state == "PENDING", "task \(task) after reeld stopped: \(reply.text)")
        }

        let seqAfterStop = try await sandbox.journal().map(\.seq).max() ?? 0  // after our own queries above

        // Restart: the same tasks are polled, none is created again, and the batch completes once they finish.
        try await reeld.start()
        try await eventually("the restarted reeld to poll the 4 original tasks", timeout: 30) {
            let polled = Set(try await sandbox.journal(since: seqAfterStop).filter(\.isQuery).compactMap(\.taskID))
            return taskIDs.isSubset(of: polled)
        }
        try await sandbox.advanceClock(renderSeconds)
        let counts = try await reeld.waitForTerminal(total: 4, timeout: 60)
        #expect(counts["succeeded"] == 4, "\(counts)\n\(reeld.logTail())")
        let later = try await sandbox.journal(since: seqAfterStop)
        #expect(!later.contains { $0.isCreate }, "no create after the restart: \(later.filter(\.isCreate))")
        let polled = Set(later.filter(\.isQuery).compactMap(\.taskID))
        #expect(taskIDs.isSubset(of: polled), "the restarted reeld polls the original tasks: \(polled)")
        #expect(try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }.count == 4)
        // batch.json is written by the batch-end step, just after the last job turns terminal.
        try await eventually("stop-mid-batch/batch.json") {
            FileManager.default.fileExists(atPath: reeld.output + "/stop-mid-batch/batch.json")
        }
        #expect(await reeld.terminate() == 0)
        print("systemd stop: SIGTERM mid-batch exited in \(String(format: "%.2f", stopSeconds)) s")
    }

    /// SIGTERM again and again while references are being hashed and uploaded, renders are running and finished
    /// ones are being downloaded, hashed and delivered: every stop exits 0 (a thread left in libcurl, OpenSSL or a
    /// hash while the process exits can crash it after "reeld stopped"), and the batch still completes in the end.
    @Test func sigtermWithRendersAndDeliveriesInFlightExitsZeroEveryTime() async throws {
        // Renders of 50–150 sandbox seconds at --time-scale 100: 0.5–1.5 s real, so every cycle has some running
        // and some downloading or being delivered. Half the jobs name a local reference of their own, so uploads
        // (multipart, over libcurl) are in flight too.
        let sandbox = try await SandboxProcess.start(["--time-scale", "100", "--run-time", "50..150"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        defer { reeld.stop() }
        let card = try Data(contentsOf: repositoryRoot().appendingPathComponent("examples/refs/product-card.png"))
        let total = 40
        let jobs = try (1...total).map { i -> String in
            var reference = #"{"url": "https://cdn.example.com/anna-\#(i).png"}"#
            if i % 2 == 0 {
                let path = reeld.root.appendingPathComponent("ref-\(i).png")
                try (card + Data("reel-stop-\(i)".utf8)).write(to: path)  // bytes after IEND: a distinct file
                reference = #"{"path": "\#(path.path)"}"#
            }
            return #"{"id": "clip-\#(i)", "prompt": "character1 waves at the camera, take \#(i)", "references": [\#(reference)]}"#
        }
        let manifest = """
            {"manifest_version": 1, "batch": "stop-cycles",
             "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
             "jobs": [\(jobs.joined(separator: ",\n"))]}
            """
        try await reeld.start()
        try reeld.drop(manifest, as: "stop-cycles.json")
        var succeededBefore: [Int] = []
        for cycle in 0..<10 {
            try await Task.sleep(for: .milliseconds(300 + 150 * (cycle % 5)))
            let status = await reeld.terminate(signal: SIGTERM)
            #expect(status == 0, "cycle \(cycle): reeld exited \(status)\n\(reeld.logTail())")
            try await reeld.start()
            succeededBefore.append(try await reeld.counts()["succeeded"] ?? 0)
        }
        let counts = try await reeld.waitForTerminal(total: total, timeout: 120)
        #expect(counts["succeeded"] == total, "\(counts)\n\(reeld.logTail())")
        // The stops really fell among deliveries: the count grew between them.
        #expect(Set(succeededBefore).count > 2, "\(succeededBefore)")
        #expect(await reeld.terminate() == 0)
    }
}
