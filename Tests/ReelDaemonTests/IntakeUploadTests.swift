import Foundation
import ReelMedia
import ReelTestKit
import Testing

extension DaemonIntakeTests {
    /// One local reference shared by 50 jobs is uploaded once. The sandbox's journal shows
    /// one upload policy and one OSS upload; every create asks the provider to resolve `oss://` (the header) and
    /// succeeds, which it only does when its `oss://` URL names an upload the sandbox holds.
    @Test func oneLocalReferenceSharedByFiftyJobsIsUploadedOnce() async throws {
        let dir = try IntakeKit.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = dir.appendingPathComponent("shared.png").path
        let ffmpeg = try await runProcess("/usr/bin/env", ["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                                                           "color=c=0x3366cc:s=320x256", "-frames:v", "1",
                                                           "-pix_fmt", "rgb24", png])
        #expect(ffmpeg.status == 0, "ffmpeg: \(ffmpeg.stderrText)")

        let jobs = (0..<50).map { i in
            """
            {"id": "j\(i)", "prompt": "character1 turns slowly, take \(i)", "references": [{"path": "\(png)"}]}
            """
        }
        let manifest = """
            {"manifest_version": 1, "batch": "shared",
             "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "1:1", "duration_s": 2,
                          "audio": false},
             "jobs": [\(jobs.joined(separator: ",\n"))]}
            """
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        try reeld.drop(manifest, as: "shared.json")

        let counts = try await reeld.waitForTerminal(total: 50, timeout: 120)
        #expect(counts == ["succeeded": 50], "\(counts)\n\(reeld.logTail())")

        let journal = try await sandbox.journal()
        let policies = journal.filter { $0.method == "GET" && $0.path.hasPrefix("/api/v1/uploads") }
        let uploads = journal.filter { $0.method == "POST" && $0.path.hasPrefix("/oss/dashscope-instant") }
        let creates = journal.filter(\.isCreate)
        #expect(policies.count == 1, "getPolicy calls: \(policies.map(\.seq))")
        #expect(uploads.count == 1 && uploads.first?.status == 200, "uploads: \(uploads)")
        // Creates refused with 429 (the sandbox's 5 creates/s) are retried; exactly one per job was accepted.
        let accepted = creates.filter { $0.status == 200 }
        #expect(accepted.count == 50, "creates: \(creates.map(\.status))")
        #expect(Set(accepted.compactMap(\.taskID)).count == 50)
        #expect(creates.allSatisfy { $0.ossHeader == true && $0.referenceField == "reference_urls" })
        // The upload came before the first create that needed it.
        #expect((uploads.first?.seq ?? .max) < (creates.map(\.seq).min() ?? 0))
        // The store cached it once, as an oss:// URL.
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*), min(oss_url LIKE 'oss://%') FROM uploads") == "1|1")
    }
}
