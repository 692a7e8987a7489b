import Foundation
import ReelTestKit
import Testing

/// The built `reelctl` binary against a real reeld.
@Suite(.serialized) struct ReelctlTests {
    /// Runs `reelctl ARGS` in a pseudo-terminal 100 columns wide (via `script`), so it prints tables; returns the
    /// output with CRLF turned into LF.
    static func inTerminal(_ args: String, socket: String, columns: Int = 100) async throws -> RunResult {
        let inner = "stty cols \(columns) rows 40; exec \(q(binDir + "/reelctl")) \(args)"
        let r = try await sh("script -qec \(q(inner)) /dev/null", environment: ["REEL_SOCKET": socket, "NO_COLOR": "1"])
        return RunResult(status: r.status, stdout: r.stdout.replacingOccurrences(of: "\r\n", with: "\n"), stderr: r.stderr)
    }

    static func reelctl(_ args: [String], socket: String, stdin: String? = nil) async throws -> BinaryRun {
        try await BinaryRun.launch("reelctl", args, environment: ["REEL_SOCKET": socket], stdin: stdin)
    }

    static let jobsSnapshot = """
        JOB          STATE   MODEL      FORMAT        TRY  AGE  DETAIL
        cli/j-00000  queued  r2v-flash  720p 16:9 2s  0    Ns   
        cli/j-00001  held    r2v-flash  720p 16:9 2s  0    Ns   operator
        cli/j-00002  held    r2v-flash  720p 16:9 2s  0    Ns   operator
        cli/j-00003  held    r2v-flash  720p 16:9 2s  0    Ns   operator

        """

    @Test func tablesJSONBulkWatchAndExitCodes() async throws {
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let reeld = try await pausedDaemon(providerURL: sandbox.url)
        try reeld.drop(manifest(batch: "cli", count: 4), as: "cli.json")
        _ = try await reeld.waitFor(timeout: 30, "4 queued jobs") { $0["queued"] == 4 }
        let socket = reeld.socket

        // Bulk verbs read BATCH/ID lines from stdin with `-` (comments and blank lines skipped).
        let hold = try await Self.reelctl(["hold", "-"], socket: socket, stdin: "cli/j-00001\n\n# skip me\ncli/j-00002 trailing words\n")
        #expect(hold.status == 0, "\(hold.stderr)")
        #expect(hold.stdout.split(separator: "\n").count == 2, "one JSON answer per job when piped: \(hold.stdout)")
        #expect(try await reeld.counts()["held"] == 2)
        let again = try await Self.reelctl(["hold", "-"], socket: socket, stdin: "cli/j-00001\ncli/j-00003\n")
        #expect(again.status == 1, "one of two refused (already held) → exit 1")
        #expect(again.stderr.contains("cli/j-00001") && again.stderr.contains("1 of 2 failed"), "\(again.stderr)")

        // Table snapshot: stable columns at 100 columns (ages normalised).
        let table = try await Self.inTerminal("jobs --batch cli", socket: socket)
        #expect(table.status == 0)
        // The AGE column (the cell before DETAIL) depends on timing (and, on a loaded machine, may take two digits):
        // it becomes "Ns" padded to the cell's width; everything else is fixed.
        let normalised = table.stdout.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.replacing(/^(cli\S+ .* )(\d+s +)/, with: { m in
                "\(m.1)Ns" + String(repeating: " ", count: m.2.count - 2)
            })
        }.joined(separator: "\n")
        #expect(normalised == Self.jobsSnapshot, "\n\(table.stdout)")
        let status = try await Self.inTerminal("status", socket: socket)
        #expect(status.stdout.contains("mode paused") && status.stdout.contains("STATE"), "\(status.stdout)")

        // --json parses (and is the default when piped); listings are NDJSON.
        // REELCTL_FORMAT=table: the human view in a pipe (a script's log), --json still wins.
        let piped = try await BinaryRun.launch("reelctl", ["status"], environment: ["REEL_SOCKET": socket, "REELCTL_FORMAT": "table"])
        #expect(piped.status == 0 && piped.stdout.contains("mode paused") && piped.stdout.contains("STATE"), "\(piped.stdout)")
        let forcedJSON = try await BinaryRun.launch("reelctl", ["status", "--json"],
                                                    environment: ["REEL_SOCKET": socket, "REELCTL_FORMAT": "table"])
        #expect((try? JSONSerialization.jsonObject(with: Data(forcedJSON.stdout.utf8))) is [String: Any], "\(forcedJSON.stdout)")
        // Global options before the verb, as `git -C` and `docker -H` users type them.
        let before = try await BinaryRun.launch("reelctl", ["--socket", socket, "--json", "status"], environment: [:])
        #expect(before.status == 0, "\(before.stderr)")
        #expect((try? JSONSerialization.jsonObject(with: Data(before.stdout.utf8))) is [String: Any], "\(before.stdout)")
        let equals = try await BinaryRun.launch("reelctl", ["--socket=\(socket)", "jobs", "--batch", "cli"], environment: [:])
        #expect(equals.status == 0 && equals.stdout.split(separator: "\n").count == 4, "\(equals.stderr)")
        let json = try await Self.reelctl(["status", "--json"], socket: socket)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(parsed?["total_jobs"] as? Int == 4)
        let jobs = try await Self.reelctl(["jobs", "--batch", "cli"], socket: socket)
        let lines = jobs.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines.allSatisfy { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) != nil })
        let batches = try await Self.reelctl(["batches", "--json"], socket: socket)
        #expect(((try JSONSerialization.jsonObject(with: Data(batches.stdout.utf8)) as? [String: Any])?["batches"] as? [Any])?.count == 1)

        // Release and render everything; `watch` in a pseudo-terminal draws bars and ends with --until-done.
        #expect(try await Self.reelctl(["release", "cli/j-00001", "cli/j-00002", "cli/j-00003"], socket: socket).status == 0)
        #expect(try await Self.reelctl(["resume"], socket: socket).status == 0)
        _ = try await reeld.waitFor(timeout: 30, "4 succeeded") { $0["succeeded"] == 4 }
        let watch = try await Self.inTerminal("watch --until-done --interval 0.2", socket: socket)
        #expect(watch.status == 0, "\(watch.stdout) \(watch.stderr)")
        #expect(watch.stdout.contains("cli") && watch.stdout.contains("[" + String(repeating: "█", count: 10)),
                "a full bar: \(watch.stdout)")
        #expect(watch.stdout.contains("4/4 ok") && watch.stdout.contains("done"), "\(watch.stdout)")

        // Usage errors exit 2.
        for args in [["jobs", "--state", "bogus"], ["frobnicate"], ["resolve", "cli/j-00000"], ["cancel"],
                     ["show", "not-a-job-address"]] {
            let r = try await Self.reelctl(args, socket: socket)
            #expect(r.status == 2, "\(args): exit \(r.status) \(r.stderr)")
            #expect(!r.stderr.isEmpty, "\(args): says why")
        }

        // The daemon stopped: exit 69 with the socket path and a hint.
        #expect(reeld.stop() == 0)
        let down = try await Self.reelctl(["status"], socket: socket)
        #expect(down.status == 69, "\(down.status) \(down.stderr)")
        #expect(down.stderr.contains(socket) && down.stderr.contains("hint:"), "\(down.stderr)")
        let unreadable = try await Self.reelctl(["jobs"], socket: "/nonexistent/reel.sock")
        #expect(unreadable.status == 69 && unreadable.stderr.contains("is reeld running"), "\(unreadable.stderr)")
    }

    /// Shell completions and the man page come from the command definitions; the committed page is current.
    @Test func completionsAndManPage() async throws {
        for shell in ["bash", "zsh", "fish"] {
            let r = try await BinaryRun.launch("reelctl", ["--generate-completion-script", shell])
            #expect(r.status == 0, "\(shell): \(r.stderr)")
            for verb in ["status", "jobs", "watch", "resolve", "submit"] {
                #expect(r.stdout.contains(verb), "\(shell) completion lacks \(verb)")
            }
        }
        let man = try await BinaryRun.launch("reelctl", ["generate-manual"])
        #expect(man.status == 0)
        #expect(man.stdout.hasPrefix(".TH REELCTL 1"))
        for verb in ["status", "jobs", "show", "batches", "batch", "cancel", "retry", "hold", "release", "pause",
                     "resume", "drain", "reload", "watch", "shape", "resolve", "validate", "estimate", "submit"] {
            #expect(man.stdout.contains("\n.SS \(verb)\n"), "man page lacks \(verb)")
        }
        #expect(!man.stdout.contains("generate\\-manual"), "the generator itself stays out of the page")
        let committed = try String(contentsOf: repositoryRoot().appendingPathComponent("docs/man/reelctl.1"), encoding: .utf8)
        #expect(committed == man.stdout, "docs/man/reelctl.1 is stale: run `.build/debug/reelctl generate-manual > docs/man/reelctl.1`")
        // man(1) renders it without warnings, where man is installed.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/groff") {
            let render = try await sh("groff -k -man -Tutf8 -ww -z \(q(repositoryRoot().appendingPathComponent("docs/man/reelctl.1").path))")
            #expect(render.stderr.isEmpty, "groff warnings: \(render.stderr)")
        }
    }
}
