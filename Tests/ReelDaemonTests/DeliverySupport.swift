import Foundation
import ReelMedia
import ReelTestKit
import Testing

/// Helpers shared by the delivery and budget tests: job details over the socket, schema checks with python3
/// jsonschema, a watcher for visible partial files, and a real HTTP receiver for the webhook.
enum DeliveryKit {
    /// Mounts a tmpfs of `size` (e.g. "8m") at `path` (created first). False, with the reason printed for the test
    /// named `test`, where mounting is impossible (needs root and CAP_SYS_ADMIN): the caller skips.
    static func mountTmpfs(_ path: String, size: String, label: String, for test: String) async throws -> Bool {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let mounted = try await Child.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(size)", label, path])
        if mounted.status != 0 { print("skipped \(test): cannot mount a tmpfs here: \(mounted.stderrText)") }
        return mounted.status == 0
    }

    /// Fills the filesystem holding `file` to the last byte (writes until ENOSPC); returns whether it could be opened.
    static func fill(_ file: String) -> Bool {
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return false }
        let chunk = [UInt8](repeating: 7, count: 64 * 1024)
        while write(fd, chunk, chunk.count) > 0 {}
        while write(fd, chunk, 512) > 0 {}
        close(fd)
        return true
    }

    /// `GET /v1/jobs/{batch}/{id}` as JSON.
    static func detail(_ reeld: ReeldProcess, _ batch: String, _ id: String) async throws -> [String: Any] {
        try await reeld.get("/v1/jobs/\(batch)/\(id)").json()
    }

    static func job(_ reeld: ReeldProcess, _ batch: String, _ id: String) async throws -> [String: Any] {
        try await detail(reeld, batch, id)["job"] as? [String: Any] ?? [:]
    }

    /// `reelctl ARGS` in a pseudo-terminal (via `script`), so it prints for people rather than JSON; its output.
    static func reelctlInTerminal(_ args: [String], _ reeld: ReeldProcess) async throws -> String {
        let reelctl = try #require(SandboxProcess.binaryPath(named: "reelctl"))
        let command = ([reelctl] + args).map { "'\($0)'" }.joined(separator: " ")
        let run = try await Child.run("/usr/bin/script", ["-qec", command, "/dev/null"],
                                      environment: Child.inheritedEnvironment(adding: ["REEL_SOCKET": reeld.socket,
                                                                                       "NO_COLOR": "1"]))
        return run.stdoutText.replacingOccurrences(of: "\r\n", with: "\n")
    }

    /// Validates each JSON file against the schema (the draft it declares, formats checked); "" when all pass.
    static func schemaProblems(_ schema: String, _ files: [String]) async throws -> String {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            v = cls(schema, format_checker=cls.FORMAT_CHECKER)
            for p in sys.argv[2:]:
                for e in v.iter_errors(json.load(open(p))):
                    print(p, "/".join(map(str, e.absolute_path)), e.message)
            """
        let out = try await Child.run("python3", ["-c", script, schema] + files)  // on PATH: where pip put jsonschema
        let text = out.stdoutText + out.stderrText
        return out.status == 0 ? text : "python3 exited \(out.status): \(text)"
    }

    /// Names in `dir` that are visible (not dot-prefixed).
    static func visible(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    static func hidden(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(".") }.sorted()
    }

    /// The only visible names a batch folder may ever hold: delivered results, their sidecars, the batch files.
    static func isDeliverable(_ name: String) -> Bool {
        name == "batch.json" || name == "SHA256SUMS" || name.hasSuffix(".mp4") || name.hasSuffix(".json")
    }
}

/// Watches a folder tree on a thread of its own while a test runs and remembers every visible name that is not a
/// deliverable (a partial or temporary file someone could open), and every `.mp4` that appeared and later vanished.
final class PartialWatcher: @unchecked Sendable {
    // @unchecked: `seen` and `running` are only touched under `lock`.
    private let lock = NSLock()
    private var seen: Set<String> = []
    private var running = true
    private let thread: Thread

    init(root: String) {
        let box = Box()
        thread = Thread {
            while box.watcher?.isRunning ?? true {
                for batch in DeliveryKit.visible(root) {
                    for name in DeliveryKit.visible(root + "/" + batch) where !DeliveryKit.isDeliverable(name) {
                        box.watcher?.note("\(batch)/\(name)")
                    }
                }
                usleep(2_000)
            }
        }
        box.watcher = self
        thread.start()
    }

    private final class Box: @unchecked Sendable { weak var watcher: PartialWatcher? }

    private var isRunning: Bool { lock.withLock { running } }
    private func note(_ name: String) { _ = lock.withLock { seen.insert(name) } }

    /// Stops watching; returns the offending names seen.
    func stop() -> [String] {
        lock.withLock {
            running = false
            return seen.sorted()
        }
    }
}

/// A real HTTP receiver for the webhook (python3 http.server): checks `X-Reel-Signature` the way docs/delivery.md
/// tells receivers to, answers 503 to the first `failFirst` calls, and logs every call as a JSON line.
final class WebhookReceiver: Sendable {
    /// The python3 server, a `Child` (posix_spawn, its own reaper thread, signal mask reset): Foundation's `Process`
    /// passed on the test runner's blocked SIGTERM, so `terminate()` never ended it and `waitUntilExit` hung.
    let child: Child
    let url: String
    let logPath: String

    init(dir: URL, secret: String, failFirst: Int) async throws {
        let script = """
            import hashlib, hmac, http.server, json, sys, time
            secret, log, fail_first, port_file = open(sys.argv[1], 'rb').read().strip(), sys.argv[2], int(sys.argv[3]), sys.argv[4]
            calls = [0]
            class H(http.server.BaseHTTPRequestHandler):
                def do_POST(self):
                    body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                    ts, sig = self.headers.get('X-Reel-Timestamp', '0'), self.headers.get('X-Reel-Signature', '')
                    expected = 'sha256=' + hmac.new(secret, ts.encode() + b'.' + body, hashlib.sha256).hexdigest()
                    ok = hmac.compare_digest(expected, sig) and abs(time.time() - int(ts)) < 300
                    calls[0] += 1
                    status = 503 if calls[0] <= fail_first else (200 if ok else 401)
                    with open(log, 'a') as f:
                        f.write(json.dumps({'n': calls[0], 'ok': ok, 'status': status,
                                            'sha256': hashlib.sha256(body).hexdigest()}) + '\\n')
                    self.send_response(status)
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                def log_message(self, *a):
                    pass
            s = http.server.HTTPServer(('127.0.0.1', 0), H)
            open(port_file + '.tmp', 'w').write(str(s.server_address[1]))
            import os; os.rename(port_file + '.tmp', port_file)
            s.serve_forever()
            """
        let secretPath = dir.appendingPathComponent("webhook-secret").path
        try (secret + "\n").write(toFile: secretPath, atomically: true, encoding: .utf8)
        logPath = dir.appendingPathComponent("webhook.log").path
        let portFile = dir.appendingPathComponent("webhook.port").path
        child = try Child("python3", ["-c", script, secretPath, logPath, "\(failFirst)", portFile],
                          stdout: .null, stderr: .inherit)
        let deadline = Date().addingTimeInterval(10)
        var port: String?
        while port == nil && Date() < deadline && child.isRunning {
            port = try? String(contentsOfFile: portFile, encoding: .utf8)
            if port == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        guard let port else {
            child.killAndReap()
            throw ReceiverError.didNotStart
        }
        url = "http://127.0.0.1:\(port)/reel"
    }

    /// The calls received so far.
    func calls() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    enum ReceiverError: Error { case didNotStart }

    /// SIGKILL and reap: immediate, so it is fine in a `defer`.
    func stop() {
        child.killAndReap()
    }
}
