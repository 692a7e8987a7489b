import Foundation
import ReelMedia
import ReelTestKit
import Testing

extension DaemonIntakeTests {
    /// `reelctl validate` and `reelctl submit` as binaries, without a daemon; then a daemon started on that spool
    /// takes exactly what was submitted.
    @Test func reelctlValidateAndSubmitWorkOffline() async throws {
        let dir = try IntakeKit.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ name: String, _ text: String) throws -> String {
            let path = dir.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            return path
        }
        let small = dir.appendingPathComponent("small.png").path
        let ffmpeg = try await runProcess("/usr/bin/env", ["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                                                           "color=c=red:s=100x100", "-frames:v", "1", small])
        #expect(ffmpeg.status == 0, "ffmpeg: \(ffmpeg.stderrText)")
        let good = try file("good.json", IntakeKit.manifest(batch: "cli", ids: ["a", "b"]))
        let other = try file("other.json", IntakeKit.manifest(batch: "cli", ids: ["c"]))
        let bad = try file("bad.json", """
            {"manifest_version": 1, "batch": "cli-bad", "jobs": [
              {"id": "x", "prompt": "character1 waves", "duration_s": 11, "colour": "red",
               "references": [{"path": "\(small)"}]},
              {"id": "bad id!", "prompt": "character2 waves", "references": [{"url": "ftp://example.com/a.png"}]}]}
            """)

        // validate: exit 0 when every file is fine, 1 when one has an error; --json names every problem.
        let ok = try BinaryRun.run("reelctl", ["validate", good, other])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("good.json") && ok.stdout.contains("ok"))
        let text = try BinaryRun.run("reelctl", ["validate", good, bad])
        #expect(text.status == 1)
        #expect(text.stdout.contains("/jobs/0/duration_s") && text.stdout.contains("hint:"), "\(text.stdout)")
        let json = try BinaryRun.run("reelctl", ["validate", "--json", good, bad])
        #expect(json.status == 1)
        let reports = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(reports.count == 2)
        #expect(reports.first?["ok"] as? Bool == true && reports.first?["jobs"] as? Int == 2)
        let badReport = reports.last ?? [:]
        #expect(badReport["ok"] as? Bool == false && badReport["file"] as? String == bad)
        let pointers = Set((badReport["issues"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String })
        for expected in ["/jobs/0/duration_s", "/jobs/0/colour", "/jobs/0/references/0/path", "/jobs/1/id",
                         "/jobs/1/references/0/url"] {
            #expect(pointers.contains(expected), "\(expected) in \(pointers.sorted())")
        }
        #expect(pointers.contains("/jobs/1/prompt"), "character2 names a reference the job lacks: \(pointers.sorted())")

        // submit into a spool no daemon watches (yet): refused entirely when any file has errors...
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        defer { reeld.stop() }
        let spool = reeld.spool
        for sub in ["tmp", "incoming", "rejected"] {
            try FileManager.default.createDirectory(atPath: spool + "/" + sub, withIntermediateDirectories: true)
        }
        let refused = try BinaryRun.run("reelctl", ["submit", "--spool", spool, good, bad])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("nothing submitted"), "\(refused.stderr)")
        #expect(IntakeKit.names(spool + "/incoming").isEmpty && IntakeKit.names(spool + "/tmp").isEmpty)

        // ...and copied whole otherwise, under the file's name; a taken name gets a suffix, nothing is replaced.
        let submitted = try BinaryRun.run("reelctl", ["submit", "--spool", spool, good, other])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(submitted.stdout.contains("incoming/good.json"), "\(submitted.stdout)")
        #expect(IntakeKit.names(spool + "/incoming") == ["good.json", "other.json"])
        #expect(try String(contentsOfFile: spool + "/incoming/good.json", encoding: .utf8)
                == String(contentsOfFile: good, encoding: .utf8))
        let again = try BinaryRun.run("reelctl", ["submit", "--spool", spool, good])
        #expect(again.status == 0, "\(again.stderr)")
        let incoming = IntakeKit.names(spool + "/incoming")
        #expect(incoming.count == 3 && incoming.contains { $0.hasPrefix("good-") }, "\(incoming)")
        #expect(IntakeKit.names(spool + "/tmp").isEmpty, "no temporary file left behind")

        // A daemon started later on that spool takes them: 3 jobs (the second copy of good.json adds none).
        try await reeld.start()
        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: 3)
        #expect(IntakeKit.total(counts) == 3, "\(counts)")
        #expect(IntakeKit.names(spool + "/rejected").isEmpty)
    }
}
