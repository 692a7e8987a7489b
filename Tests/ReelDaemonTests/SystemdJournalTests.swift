import Foundation
import Glibc
import ReelTestKit
import Testing

/// reeld's log records as journald receives them, at daemon level.
@Suite(.serialized) struct SystemdJournalTests {
    static let canUnshare = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")

    /// journald's side of the native protocol: binds the journal socket and writes one JSON object per datagram.
    static let listener = #"""
        import ctypes, json, signal, socket, sys, time
        ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG: go when reeld goes
        path, out = sys.argv[1], sys.argv[2]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(path); s.settimeout(0.2)
        end = time.monotonic() + 120
        with open(out, "a") as f:
            while time.monotonic() < end:
                try: d = s.recv(1 << 20)
                except socket.timeout: continue
                fields, i = {}, 0
                while i < len(d):
                    nl = d.index(b"\n", i); eq = d.find(b"=", i, nl)
                    if eq >= 0:
                        fields[d[i:eq].decode()] = d[eq + 1:nl].decode(); i = nl + 1
                    else:
                        n = int.from_bytes(d[nl + 1:nl + 9], "little")
                        fields[d[i:nl].decode()] = d[nl + 9:nl + 9 + n].decode(); i = nl + 10 + n
                f.write(json.dumps(fields) + "\n"); f.flush()
        """#

    /// reeld started the way systemd starts it (stderr is the journal stream named by `$JOURNAL_STREAM`), in a
    /// private mount namespace whose /run holds a journal socket of our own: every record arrives as native fields
    /// (`SYSLOG_IDENTIFIER`, `PRIORITY`, `JOB_ID`, `TASK_ID`, `ATTEMPT`), nothing goes to stderr as text, and no
    /// field carries the API key.
    @Test(.enabled(if: canUnshare)) func recordsReachJournaldWithStructuredFields() async throws {
        let marker = "SECRET-\(UUID().uuidString)"
        let key = "sk-reel-\(marker)"
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..3", "--api-key", key])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)  // config, folders and helpers; launched below
        let binary = try #require(SandboxProcess.binaryPath(named: "reeld"))
        let script = reeld.root.appendingPathComponent("journald.py").path
        let records = reeld.root.appendingPathComponent("journal.jsonl").path
        try Self.listener.write(toFile: script, atomically: true, encoding: .utf8)
        // $JOURNAL_STREAM names stderr's device and inode: the log file given to reeld as stderr.
        _ = FileManager.default.createFile(atPath: reeld.logPath, contents: nil)
        var st = stat()
        try #require(stat(reeld.logPath, &st) == 0)
        let shell = """
            mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal || exit 1
            python3 "$1" /run/systemd/journal/socket "$2" &
            while [ ! -S /run/systemd/journal/socket ]; do sleep 0.02; done
            exec "$3" --config "$4"
            """
        let launched = try LaunchedProcess("/usr/bin/unshare",
                                           ["--mount", "--propagation", "private", "/bin/sh", "-c", shell, "sh",
                                            script, records, binary, reeld.configPath],
                                           environment: ["DASHSCOPE_API_KEY": key, "JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"],
                                           logPath: reeld.logPath)
        defer { launched.child.stopBlocking(signal: SIGTERM, grace: 5) }
        try await eventually("reeld to answer", timeout: 30) { try await reeld.get("/v1/status").status == 200 }
        try reeld.drop(systemdManifest(batch: "journal-check", count: 2), as: "journal-check.json")
        let counts = try await reeld.waitForTerminal(total: 2, timeout: 60)
        #expect(counts["succeeded"] == 2, "\(counts)")
        #expect(await launched.stop(SIGTERM).status == 0)

        let lines = try String(contentsOfFile: records, encoding: .utf8).split(separator: "\n")
        let entries = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
        #expect(entries.count == lines.count && entries.count > 10, "\(lines.prefix(5))")
        #expect(entries.allSatisfy { $0["SYSLOG_IDENTIFIER"] == "reeld" && $0["PRIORITY"] != nil && $0["MESSAGE"] != nil })
        let submitted = entries.filter { $0["JOB_ID"] == "journal-check/clip-1" && $0["TASK_ID"] != nil }
        #expect(!submitted.isEmpty, "a record with JOB_ID and TASK_ID: \(entries.filter { $0["JOB_ID"] != nil }.prefix(3))")
        #expect(submitted.contains { $0["ATTEMPT"] == "1" }, "\(submitted)")
        #expect(entries.contains { $0["MESSAGE"] == "reeld ready" && $0["PRIORITY"] == "6" })
        #expect(!lines.contains { $0.contains(marker) }, "the key reached the journal")
        #expect(launched.log.isEmpty, "in journal mode nothing is written to stderr as text: \(launched.log.prefix(500))")
    }
}
