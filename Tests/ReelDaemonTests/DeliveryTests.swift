import Foundation
import ReelConfig
import ReelCore
import ReelMedia
import ReelTestKit
import Testing

/// Delivery through the real daemon: the sandbox's download faults, QC, batch end with its hook and
/// webhook, cost against the estimate, and a full output filesystem.
@Suite(.serialized) struct DeliveryTests {
    static func manifest(batch: String, jobs: [(id: String, prompt: String)], extra: String = "") -> String {
        let list = jobs.map { job in
            """
            {"id": "\(job.id)", "prompt": "\(job.prompt)", "references": [{"url": "https://cdn.example.com/\(job.id).png"}]}
            """
        }.joined(separator: ",\n")
        return """
            {"manifest_version": 1, "batch": "\(batch)", \(extra)
             "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
             "jobs": [\(list)]}
            """
    }

    /// Truncated, expired, wrong-size and wrong-duration results: each ends right, nothing half-written is ever
    /// visible, and the batch end writes checksums and schema-valid JSON, runs the hook and signs the webhook.
    @Test func faultyDownloadsDeliverCleanlyAndTheBatchEndIsAnnounced() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        try await sandbox.setFaults("""
            [{"fault": "truncated_download", "count": 1, "marker": "TRUNC"},
             {"fault": "expired_url", "count": 1, "marker": "EXPIRE-ONCE"}]
            """)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("delivery-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let receiver = try await WebhookReceiver(dir: scratch, secret: "hook-secret-42", failFirst: 1)
        defer { receiver.stop() }
        let hookOut = scratch.appendingPathComponent("hook.env").path
        let reeld = try ReeldProcess(providerURL: sandbox.url, extraConfig: ReeldProcess.fastConfig + """

            [hooks]
            on_batch_complete = ["/bin/sh", "-c", "env > \(hookOut)"]
            timeout = "10s"
            webhook_url = "\(receiver.url)"
            webhook_secret_file = "\(scratch.appendingPathComponent("webhook-secret").path)"
            """)
        try await reeld.start()
        defer { reeld.stop() }
        let watcher = PartialWatcher(root: reeld.output)

        try reeld.drop(Self.manifest(batch: "faults", jobs: [
            ("plain", "character1 waves"),
            ("truncated", "character1 runs TRUNC"),
            ("expired-once", "character1 sits EXPIRE-ONCE"),
            ("expired", "character1 sleeps __FAULT:expired_url__"),
            ("wrong-size", "character1 jumps __FAULT:wrong_size__"),
            ("wrong-duration", "character1 dances __FAULT:wrong_duration__"),
        ]), as: "faults.json")
        _ = try await reeld.waitForTerminal(total: 6, timeout: 60)
        let dir = reeld.output + "/faults"
        let deadline = Date().addingTimeInterval(30)
        while receiver.calls().count < 2 && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        try await Task.sleep(for: .milliseconds(100))
        let offending = watcher.stop()
        #expect(offending.isEmpty, "visible non-deliverable files appeared: \(offending)")

        var state: [String: String] = [:], reason: [String: String] = [:], tasks: [String: [String]] = [:]
        for id in ["plain", "truncated", "expired-once", "expired", "wrong-size", "wrong-duration"] {
            let d = try await DeliveryKit.detail(reeld, "faults", id)
            let job = d["job"] as? [String: Any] ?? [:]
            state[id] = job["state"] as? String
            reason[id] = job["reason"] as? String ?? ""
            tasks[id] = d["task_ids"] as? [String] ?? []
        }
        #expect(state["plain"] == "succeeded")
        #expect(state["truncated"] == "succeeded", "\(reason["truncated"] ?? "")")
        #expect(state["expired-once"] == "succeeded", "\(reason["expired-once"] ?? "")")
        #expect(state["expired"] == "expired")
        #expect(reason["expired"]?.contains("expired") == true)
        #expect(state["wrong-size"] == "failed")
        #expect(reason["wrong-size"]?.contains("640x360") == true, "\(reason["wrong-size"] ?? "")")
        #expect(state["wrong-duration"] == "failed")
        #expect(reason["wrong-duration"]?.contains("duration") == true && reason["wrong-duration"]?.contains("probe") == true,
                "\(reason["wrong-duration"] ?? "")")

        // The journal: the truncated result was resumed with a Range (206); QC failures were downloaded exactly
        // twice; the one-off expired URL was queried again and then fetched.
        let journal = try await sandbox.journal()
        func downloads(_ id: String) -> [SandboxJournalEntry] {
            journal.filter { e in e.method == "GET" && e.path.contains("/oss/") && tasks[id]!.contains { e.path.contains($0) } }
        }
        #expect(downloads("truncated").contains { $0.status == 206 }, "\(downloads("truncated").map(\.status))")
        #expect(downloads("wrong-size").count == 2)
        #expect(downloads("wrong-duration").count == 2)
        let once = downloads("expired-once")
        #expect(once.map(\.status).first == 403 && once.last?.status == 200, "\(once.map(\.status))")
        if let refused = once.first, let task = tasks["expired-once"]?.first {
            #expect(journal.contains { $0.isQuery && $0.path.contains(task) && $0.seq > refused.seq },
                    "the result was queried again after the 403")
        }

        // The folder: exactly the deliverables, no hidden partials left, checksums and schemas pass.
        let delivered = ["plain", "truncated", "expired-once"]
        #expect(DeliveryKit.visible(dir) == (["SHA256SUMS", "batch.json"] + delivered.flatMap { ["\($0).json", "\($0).mp4"] }).sorted())
        #expect(DeliveryKit.hidden(dir).isEmpty, "left behind: \(DeliveryKit.hidden(dir))")
        let sums = try await Child.run("/bin/sh", ["-c", "cd '\(dir)' && sha256sum --strict -c SHA256SUMS"])
        #expect(sums.status == 0, "\(sums.stdoutText)")
        let examples = repositoryRoot().appendingPathComponent("examples").path
        let sidecarProblems = try await DeliveryKit.schemaProblems(examples + "/sidecar.schema.json",
                                                                   delivered.map { "\(dir)/\($0).json" })
        #expect(sidecarProblems == "")
        let batchProblems = try await DeliveryKit.schemaProblems(examples + "/batch.schema.json", [dir + "/batch.json"])
        #expect(batchProblems == "")

        // The hook ran with the batch in its environment and without secrets.
        let env = Dictionary((try String(contentsOfFile: hookOut, encoding: .utf8)).split(separator: "\n").compactMap { line in
            line.firstIndex(of: "=").map { (String(line[..<$0]), String(line[line.index(after: $0)...])) }
        }, uniquingKeysWith: { a, _ in a })
        #expect(env["REEL_BATCH"] == "faults")
        #expect(env["REEL_BATCH_DIR"].map { URL(fileURLWithPath: $0).standardizedFileURL.path }
                == URL(fileURLWithPath: dir).standardizedFileURL.path)
        #expect(env["REEL_BATCH_JSON"].map { FileManager.default.fileExists(atPath: $0) } == true)
        #expect(env["REEL_JOBS_TOTAL"] == "6")
        #expect(env["REEL_JOBS_SUCCEEDED"] == "3")
        #expect(env["REEL_JOBS_FAILED"] == "3")
        #expect(env["REEL_COST_USD"] != nil)
        #expect(env["DASHSCOPE_API_KEY"] == nil)

        // The webhook: refused once with 503, retried, delivered once, every call correctly signed, body = batch.json.
        let calls = receiver.calls()
        #expect(calls.map { $0["status"] as? Int } == [503, 200], "\(calls)")
        #expect(calls.allSatisfy { $0["ok"] as? Bool == true }, "\(calls)")
        let batchJSON = try Data(contentsOf: URL(fileURLWithPath: dir + "/batch.json"))
        let digest = try await Child.run("/usr/bin/sha256sum", [dir + "/batch.json"])
        #expect(calls.last?["sha256"] as? String == digest.stdoutText.split(separator: " ").first.map(String.init))
        #expect(!batchJSON.isEmpty)
    }

    /// The example batch: `reelctl estimate` with examples/reel.toml equals the actual cost from the sandbox's
    /// `usage` within 1% for every batch, and every sidecar and batch.json validates against its schema.
    @Test func exampleBatchCostsWhatWasEstimated() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        let root = repositoryRoot()
        let examples = root.appendingPathComponent("examples/manifests")
        let files = try FileManager.default.contentsOfDirectory(atPath: examples.path)
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix("invalid-") }.sorted()
            .map { examples.appendingPathComponent($0).path }
        let toml = root.appendingPathComponent("examples/reel.toml").path
        let estimate = try await BinaryRun.launch("reelctl", ["estimate", "--json", "--config", toml] + files)
        #expect(estimate.status == 0, "\(estimate.stderr)")
        let reports = try JSONSerialization.jsonObject(with: Data(estimate.stdout.utf8)) as? [[String: Any]] ?? []
        var estimated: [String: Double] = [:]
        var jobCount = 0
        for r in reports {
            estimated[r["batch"] as? String ?? "?"] = r["estimated_cost_usd"] as? Double
            jobCount += r["jobs"] as? Int ?? 0
        }
        #expect(estimated.count == 3 && estimated.values.allSatisfy { $0 > 0 }, "\(estimate.stdout)")

        let submit = try await BinaryRun.launch("reelctl", ["submit", "--spool", reeld.spool] + files,
                                       environment: ["REEL_SOCKET": reeld.socket])
        #expect(submit.status == 0, "\(submit.stderr)")
        let counts = try await reeld.waitForTerminal(total: jobCount, timeout: 90)
        #expect(counts["succeeded"] == jobCount, "\(counts)")

        let pricing = try ReelConfig.load(path: toml).pricing
        let sidecarSchema = root.appendingPathComponent("examples/sidecar.schema.json").path
        let batchSchema = root.appendingPathComponent("examples/batch.schema.json").path
        for (batch, estimate) in estimated {
            let dir = reeld.output + "/" + batch
            let deadline = Date().addingTimeInterval(20)
            while !FileManager.default.fileExists(atPath: dir + "/batch.json") && Date() < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            // The actual cost from the provider's usage, priced here independently of the daemon.
            let sidecars = DeliveryKit.visible(dir).filter { $0.hasSuffix(".json") && $0 != "batch.json" }.map { dir + "/" + $0 }
            var actual = 0.0
            for path in sidecars {
                let s = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
                let request = s["request"] as? [String: Any] ?? [:]
                let usage = s["usage"] as? [String: Any] ?? [:]
                guard let model = (request["model"] as? String).flatMap(RenderModel.init(rawValue:)),
                      let resolution = (request["resolution"] as? String).flatMap(Resolution.init(rawValue:)),
                      let billed = usage["duration"] as? Double,
                      let price = pricing.cost(model, resolution, billedSeconds: billed) else {
                    Issue.record("\(path): no usable request/usage: \(s)")
                    continue
                }
                actual += price
                #expect(abs((s["cost_usd"] as? Double ?? -1) - price) < 1e-6, "\(path): sidecar cost")
            }
            #expect(abs(actual - estimate) <= 0.01 * estimate, "\(batch): estimated \(estimate), actual \(actual)")
            let manifest = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: dir + "/batch.json"))) as? [String: Any] ?? [:]
            #expect(abs((manifest["total_cost_usd"] as? Double ?? -1) - actual) < 1e-6, "\(batch): batch.json total")
            let sidecarProblems = try await DeliveryKit.schemaProblems(sidecarSchema, sidecars)
            #expect(sidecarProblems == "")
            let batchProblems = try await DeliveryKit.schemaProblems(batchSchema, [dir + "/batch.json"])
            #expect(batchProblems == "")
        }
    }

    /// A render that SUCCEEDED is billed (reference §1.6) even when its result fails QC twice and the job fails:
    /// its cost is on the job, in the batch's and the daemon's spend, in batch.json's total, and shown apart as
    /// billed-not-delivered. Flash 720p at $0.05/s, 2 s with one image reference: $0.10 per job.
    @Test func billedRendersThatFailQCCountAsBilledNotDelivered() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        try reeld.drop(Self.manifest(batch: "spend", jobs: [("good", "character1 waves"),
                                                            ("bad", "character1 bows __FAULT:wrong_size__")]),
                       as: "spend.json")
        let counts = try await reeld.waitForTerminal(total: 2, timeout: 60)
        #expect(counts["succeeded"] == 1 && counts["failed"] == 1, "\(counts)\n\(reeld.logTail())")
        let bad = try await DeliveryKit.job(reeld, "spend", "bad")
        #expect((bad["reason"] as? String ?? "").contains("QC"), "\(bad)")
        #expect(bad["cost_usd"] as? Double == 0.1, "a SUCCEEDED task is billed: \(bad)")
        #expect(try await DeliveryKit.job(reeld, "spend", "good")["cost_usd"] as? Double == 0.1)

        let batch = try await reeld.get("/v1/batches/spend").json()
        #expect(batch["cost_usd"] as? Double == 0.2, "\(batch)")
        #expect(batch["billed_not_delivered_usd"] as? Double == 0.1, "\(batch)")
        #expect(batch["billed_not_delivered_jobs"] as? Int == 1, "\(batch)")
        let status = try await reeld.status()
        #expect(status["spend_usd"] as? Double == 0.2, "\(status)")
        #expect(status["billed_not_delivered_usd"] as? Double == 0.1, "\(status)")
        #expect(status["billed_not_delivered_jobs"] as? Int == 1, "\(status)")
        let metrics = try await reeld.get("/v1/metrics").text
        #expect(metrics.contains("reel_billed_not_delivered_usd 0.1\n") && metrics.contains("reel_spend_usd_total 0.2\n"),
                "\(metrics)")

        let dir = reeld.output + "/spend"
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: dir + "/batch.json") && Date() < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        let manifest = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: dir + "/batch.json"))) as? [String: Any] ?? [:]
        #expect(manifest["total_cost_usd"] as? Double == 0.2, "\(manifest)")
        #expect(manifest["billed_not_delivered_usd"] as? Double == 0.1, "\(manifest)")
        #expect(manifest["billed_not_delivered_jobs"] as? Int == 1, "\(manifest)")
        let batchSchema = repositoryRoot().appendingPathComponent("examples/batch.schema.json").path
        #expect(try await DeliveryKit.schemaProblems(batchSchema, [dir + "/batch.json"]) == "")

        let show = try await DeliveryKit.reelctlInTerminal(["batch", "spend"], reeld)
        #expect(show.contains("cost $0.20  (of which $0.10 billed, not delivered: 1 job(s))"), "\(show)")
        let overview = try await DeliveryKit.reelctlInTerminal(["status"], reeld)
        #expect(overview.contains("spend $0.20  (of which $0.10 billed, not delivered: 1 job(s))"), "\(overview)")
        #expect(await reeld.terminate() == 0)
    }

    /// A full output filesystem (a small tmpfs filled to the last byte): the job waits in delivery with nothing
    /// visible, says so in its reason, in `/v1/status` and `/v1/metrics`, and delivers once space is freed.
    @Test func fullOutputFilesystemDeliversOnceSpaceReturns() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        guard try await DeliveryKit.mountTmpfs(reeld.output, size: "8m", label: "reel-test-output",
                                               for: "fullOutputFilesystemDeliversOnceSpaceReturns") else { return }
        defer { Self.unmount(reeld.output) }
        let filler = reeld.output + "/.filler"
        #expect(DeliveryKit.fill(filler))

        try await reeld.start()
        defer { reeld.stop() }
        let watcher = PartialWatcher(root: reeld.output)
        try reeld.drop(Self.manifest(batch: "full", jobs: [("roomy", "character1 waits for space")]), as: "full.json")
        // Delivery hits the full disk, and keeps waiting in delivery rather than failing.
        let deadline = Date().addingTimeInterval(30)
        while !reeld.logTail(200_000).contains("will retry") && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(reeld.logTail(200_000).contains("will retry"), "delivery never met the full disk")
        try await Task.sleep(for: .milliseconds(1500))  // several retry pauses at [retry] max_delay = 500ms
        let waiting = try await DeliveryKit.job(reeld, "full", "roomy")
        #expect(["downloading", "verifying"].contains(waiting["state"] as? String ?? ""), "\(waiting)")
        #expect(DeliveryKit.visible(reeld.output + "/full").isEmpty)
        // The operator sees the wait: the job's reason, a status warning and storage health, a metric.
        let reason = waiting["reason"] as? String ?? ""
        #expect(reason.hasPrefix("waiting for the output filesystem: ") && reason.contains("No space left on device")
                && reason.contains(reeld.output)
                && reason.contains("next try in"), "\(waiting)")
        let status = try await reeld.status()
        let storage = status["storage"] as? [String: Any] ?? [:]
        #expect(storage["health"] as? String == "waiting" && storage["waiting_jobs"] as? Int == 1, "\(status)")
        #expect((storage["detail"] as? String ?? "").contains("No space left on device"), "\(status)")
        let warnings = status["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("waiting for the output filesystem") }, "\(warnings)")
        #expect(try await reeld.get("/v1/metrics").text.contains("reel_storage_waiting_jobs 1.0\n"))
        let shown = try await DeliveryKit.reelctlInTerminal(["status"], reeld)
        #expect(shown.contains("storage waiting  1 delivery(s) waiting"), "\(shown)")

        // Then reeld runs out of file descriptors (its RLIMIT_NOFILE lowered below its lowest free descriptor) while
        // space returns: opening the output tree fails with EMFILE, which is a wait too, never a failed job.
        let pid = try #require(reeld.pid)
        let softLimit = try #require(Self.softNofile(pid))
        let lowestFree = Self.lowestFreeDescriptor(pid)
        let limited = try await Child.run("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(lowestFree):"])
        #expect(limited.status == 0, "\(limited.stderrText)")
        #expect(!reeld.logTail(1_000_000).contains("Too many open files"))
        try FileManager.default.removeItem(atPath: filler)
        let emfileDeadline = Date().addingTimeInterval(20)
        func sawEMFILE() -> Bool { reeld.logTail(1_000_000).contains("Too many open files") }
        while !sawEMFILE() && Date() < emfileDeadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(sawEMFILE(), "delivery never met EMFILE: \(reeld.logTail())")
        try await Task.sleep(for: .milliseconds(1000))  // more retries while descriptors stay short
        let restored = try await Child.run("/usr/bin/prlimit", ["--pid", "\(pid)", "--nofile=\(softLimit):"])
        #expect(restored.status == 0, "\(restored.stderrText)")

        let counts = try await reeld.waitForTerminal(total: 1, timeout: 30)
        #expect(counts["succeeded"] == 1, "\(counts)\n\(reeld.logTail())")
        let delivered = try await DeliveryKit.job(reeld, "full", "roomy")
        #expect(delivered["reason"] == nil, "the wait's reason is cleared: \(delivered)")
        let after = try await reeld.status()
        #expect((after["storage"] as? [String: Any])?["health"] as? String == "ok", "\(after)")
        #expect(!(after["warnings"] as? [String] ?? []).contains { $0.contains("output filesystem") }, "\(after)")
        let probe = try await FFprobe.probe(reeld.output + "/full/roomy.mp4")
        #expect(probe.width == 1280 && probe.height == 720)
        let end = Date().addingTimeInterval(10)
        while !FileManager.default.fileExists(atPath: reeld.output + "/full/batch.json") && Date() < end {
            try await Task.sleep(for: .milliseconds(50))
        }
        let offending = watcher.stop()
        #expect(offending.isEmpty, "visible non-deliverable files appeared: \(offending)")
        #expect(DeliveryKit.hidden(reeld.output + "/full").isEmpty)
        await reeld.terminate()
    }

    /// The lowest descriptor number process `pid` has not open: with RLIMIT_NOFILE at this value its next open
    /// fails with EMFILE.
    static func lowestFreeDescriptor(_ pid: Int32) -> Int {
        let open = Set(((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap { Int($0) })
        return (0...).first { !open.contains($0) }!
    }

    /// The soft RLIMIT_NOFILE of process `pid`, from `/proc/<pid>/limits` ("Max open files  1024  524288  files").
    static func softNofile(_ pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max open files") }) else { return nil }
        return line.dropFirst("Max open files".count).split(separator: " ").first.map(String.init)
    }

    /// Lazy unmount, from a `defer`: blocks this thread for umount's few milliseconds, at most 10 s.
    static func unmount(_ path: String) {
        guard let umount = try? Child("/bin/umount", ["-l", path], stdout: .null, stderr: .null) else { return }
        if umount.waitBlocking(timeout: 10) == nil { umount.killAndReap() }
    }
}
