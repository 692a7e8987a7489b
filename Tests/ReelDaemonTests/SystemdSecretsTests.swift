import Foundation
import Glibc
import ReelTestKit
import Testing

/// The API key stays where systemd put it.
@Suite(.serialized) struct SystemdSecretsTests {
    /// A batch rendered with a distinctive key read from `$CREDENTIALS_DIRECTORY` (LoadCredential): the key is in
    /// no log line, no database byte or `.dump` row, no sidecar, batch.json, SHA256SUMS or rejection report, and
    /// not in reeld's argv or environment.
    @Test func apiKeyAppearsInNoLogRowFileOrArgv() async throws {
        let marker = "SECRET-\(UUID().uuidString)"
        let key = "sk-reel-\(marker)"
        // The sandbox accepts only this key: every success proves reeld really sent it.
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..3", "--api-key", key])
        defer { sandbox.stop() }
        let credentials = FileManager.default.temporaryDirectory.appendingPathComponent("reel-creds-\(UUID())").path
        try FileManager.default.createDirectory(atPath: credentials, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: credentials) }
        _ = FileManager.default.createFile(atPath: credentials + "/dashscope-api-key", contents: Data((key + "\n").utf8),
                                       attributes: [.posixPermissions: 0o400])
        let reeld = try ReeldProcess(providerURL: sandbox.url, environment: ["CREDENTIALS_DIRECTORY": credentials])
        defer { reeld.stop() }
        try await reeld.start()
        let pid = try #require(reeld.pid)
        let argv = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
        #expect(!containsBytes(Array(argv), Array(marker.utf8)), "the key is in reeld's argv")
        #expect(!containsBytes(Array(environ), Array(marker.utf8)), "the key is in reeld's environment")

        try reeld.drop(systemdManifest(batch: "secret-check", count: 3), as: "secret-check.json")
        try reeld.drop(#"{"manifest_version": 1, "batch": "bad", "jobs": [{"id": "x"}]}"#, as: "bad.json")
        let counts = try await reeld.waitForTerminal(total: 3, timeout: 60)
        #expect(counts["succeeded"] == 3, "\(counts)\n\(reeld.logTail())")
        try await eventually("the rejection report") {
            FileManager.default.fileExists(atPath: reeld.spool + "/rejected/bad.error.json")
        }
        // batch.json and SHA256SUMS come from the batch-end step, just after the last job turns terminal.
        try await eventually("the batch-end files") {
            FileManager.default.fileExists(atPath: reeld.output + "/secret-check/batch.json")
                && FileManager.default.fileExists(atPath: reeld.output + "/secret-check/SHA256SUMS")
        }
        #expect(try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }.count == 3)
        #expect(await reeld.terminate() == 0)

        // Everything reeld wrote: log, state (database, WAL, SHM), output tree, spool (rejected/ included).
        for file in ["/state/reel.sqlite3", "/output/secret-check/batch.json", "/output/secret-check/clip-1.json",
                     "/output/secret-check/SHA256SUMS", "/spool/rejected/bad.error.json", "/reeld.log"] {
            #expect(FileManager.default.fileExists(atPath: reeld.root.path + file), "expected \(file) to be written")
        }
        let log = try String(contentsOfFile: reeld.logPath, encoding: .utf8)
        #expect(log.contains("API key loaded") && log.contains("systemd credential"),
                "the log says where the key came from, not what it is")
        #expect(log.split(separator: "\n").count > 20, "a debug-level log with real content")
        #expect(filesContaining(marker, under: reeld.root.path).isEmpty,
                "the key leaked into: \(filesContaining(marker, under: reeld.root.path))")
        let dump = try await Child.run("/usr/bin/sqlite3", [reeld.state + "/reel.sqlite3", ".dump"])
        #expect(dump.status == 0, "sqlite3 .dump: \(dump.stderrText)")
        let rows = dump.stdoutText
        #expect(rows.contains("INSERT INTO"), "the dump has rows: \(rows.prefix(500))")
        #expect(!rows.contains(marker), "the key is in a database row")
    }
}
