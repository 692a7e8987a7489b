import Foundation
import ReelCore
import ReelMedia
import ReelTestKit
import Testing

/// The whole path with real processes: reel-sandbox, reeld, reelctl, the spool, SQLite, libcurl, ffmpeg.
@Suite(.serialized) struct EndToEndTests {
    /// The example manifests, as the README demo submits them, end with every job succeeded and verified.
    @Test func exampleBatchRendersEndToEnd() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..3"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }

        let examples = repositoryRoot().appendingPathComponent("examples/manifests")
        let valid = try FileManager.default.contentsOfDirectory(atPath: examples.path)
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix("invalid-") }.sorted()
            .map { examples.appendingPathComponent($0).path }
        #expect(valid.count == 3)
        let submit = try BinaryRun.run("reelctl", ["submit", "--spool", reeld.spool] + valid,
                                       environment: ["REEL_SOCKET": reeld.socket])
        #expect(submit.status == 0, "reelctl submit: \(submit.stderr)")

        // Expected jobs: every job of every valid example.
        var expected: [(batch: String, id: String, size: FrameSize, seconds: Int, audio: Bool)] = []
        for file in valid {
            let bytes = ManifestValidator.resolvingRelativePaths(Array(try Data(contentsOf: URL(fileURLWithPath: file))),
                                                                 against: FileManager.default.currentDirectoryPath)
            let report = ManifestValidator.validate(bytes)
            #expect(report.isAccepted, "\(file): \(report.issues)")
            for job in report.jobs {
                expected.append((job.key.batch, job.key.id, job.frameSize, job.durationSeconds, job.expectsAudio))
            }
        }
        let counts = try await reeld.waitForTerminal(total: expected.count, timeout: 120)
        #expect(counts["succeeded"] == expected.count, "\(counts)\n\(reeld.logTail())")

        for job in expected {
            let mp4 = "\(reeld.output)/\(job.batch)/\(job.id).mp4"
            let probe = try await FFprobe.probe(mp4)
            #expect(probe.videoCodec == "h264")
            #expect(probe.width == job.size.width && probe.height == job.size.height, "\(job.id): \(probe)")
            #expect(abs((probe.durationSeconds ?? 0) - Double(job.seconds)) <= 0.1, "\(job.id): \(probe)")
            #expect(probe.hasAudio == job.audio)
            let sidecar = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: "\(reeld.output)/\(job.batch)/\(job.id).json"))) as? [String: Any]
            #expect(sidecar?["sidecar_version"] as? Int == 1)
        }
        // Every batch folder checks out with sha256sum and has its batch.json.
        for batch in Set(expected.map(\.batch)) {
            let dir = "\(reeld.output)/\(batch)"
            #expect(FileManager.default.fileExists(atPath: "\(dir)/batch.json"))
            let check = try await runProcess("/bin/sh", ["-c", "cd '\(dir)' && sha256sum --strict -c SHA256SUMS"])
            #expect(check.status == 0, "sha256sum -c in \(batch): \(String(decoding: check.stdout, as: UTF8.self))")
        }
        // Each job was created exactly once at the provider.
        let creates = try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }
        #expect(creates.count == expected.count)

        // The socket answers plain curl and reelctl status prints the counts.
        let curl = try await runProcess("/usr/bin/env", ["curl", "-sS", "--unix-socket", reeld.socket, "http://reel/v1/status"])
        let status = try JSONSerialization.jsonObject(with: Data(curl.stdout)) as? [String: Any]
        #expect((status?["jobs"] as? [String: Any])?["succeeded"] as? Int == expected.count)
        let table = try BinaryRun.run("reelctl", ["status"], environment: ["REEL_SOCKET": reeld.socket])
        #expect(table.status == 0)
        #expect(table.stdout.contains("\"succeeded\":\(expected.count)") || table.stdout.contains("succeeded"))

        #expect(reeld.stop() == 0, "reeld exits 0 on SIGTERM")
    }

    /// A manifest with errors dropped straight into the spool moves to rejected/ with every problem explained.
    @Test func invalidManifestIsRejectedWithAReport() async throws {
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        let bad = """
            {"manifest_version": 1, "batch": "bad", "jobs": [
              {"id": "a", "prompt": "character1 waves", "duration_s": 11, "referencez": [],
               "references": [{"url": "https://cdn.example.com/a.png"}]}]}
            """
        try reeld.drop(bad, as: "bad.json")
        let report = reeld.spool + "/rejected/bad.error.json"
        let deadline = Date().addingTimeInterval(20)
        while !FileManager.default.fileExists(atPath: report) && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any]
        let pointers = (json?["issues"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String }
        #expect(pointers.contains("/jobs/0/duration_s"))
        #expect(pointers.contains("/jobs/0/referencez"))
        #expect(FileManager.default.fileExists(atPath: reeld.spool + "/rejected/bad.json"))
        #expect(!FileManager.default.fileExists(atPath: reeld.spool + "/incoming/bad.json"))
        #expect(try await reeld.counts().values.reduce(0, +) == 0, "nothing was taken from a rejected file")
    }
}
