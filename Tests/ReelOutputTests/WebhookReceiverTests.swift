import Foundation
import ReelCore
import ReelMedia
import ReelOutput
import Testing

/// POSTs with the curl command-line tool: a stand-in for the ReelCurl transport (not merged yet) so the webhook
/// is tested against a real HTTP receiver over a real socket.
struct CurlCLITransport: WebhookTransport {
    let dir: String

    func post(url: String, headers: [String: String], body: Data, timeout: Double) async throws -> Int {
        let bodyFile = "\(dir)/body-\(UUID().uuidString).json"
        try body.write(to: URL(fileURLWithPath: bodyFile))
        defer { try? FileManager.default.removeItem(atPath: bodyFile) }
        var args = ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", String(timeout), "-X", "POST",
                    "--data-binary", "@\(bodyFile)"]
        for (k, v) in headers.sorted(by: { $0.key < $1.key }) { args += ["-H", "\(k): \(v)"] }
        args.append(url)
        let out = try await runProcess(which("curl")!, args, timeout: timeout + 5)
        guard out.status == 0, let code = Int(String(decoding: out.stdout, as: UTF8.self)) else {
            throw DeliveryError.invalidArgument("curl: \(out.stderrText)")
        }
        return code
    }
}

@Suite(.enabled(if: which("curl") != nil && which("python3") != nil, "needs curl and python3"))
struct WebhookReceiverTests {
    /// A python3 receiver on 127.0.0.1:<random> that checks the HMAC (401 when wrong) and answers the scripted
    /// statuses otherwise, logging every request as JSON.
    static let receiver = #"""
    import hashlib, hmac, json, sys, time
    from http.server import BaseHTTPRequestHandler, HTTPServer
    secret, portfile, logfile, script = sys.argv[1].encode(), sys.argv[2], sys.argv[3], [int(s) for s in sys.argv[4].split(",")]
    log = []
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ts = self.headers.get("X-Reel-Timestamp", "")
            want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
            ok = hmac.compare_digest(want, self.headers.get("X-Reel-Signature", ""))
            status = script[len(log)] if ok else 401
            log.append({"valid": ok, "status": status, "ts": ts, "body": body.decode()})
            self.send_response(status); self.send_header("Content-Length", "0"); self.end_headers()
        def log_message(self, *a): pass
    srv = HTTPServer(("127.0.0.1", 0), H)
    open(portfile + ".tmp", "w").write(str(srv.server_port)); __import__("os").rename(portfile + ".tmp", portfile)
    srv.timeout = 10
    while len(log) < len(script):
        srv.handle_request()
    json.dump(log, open(logfile + ".tmp", "w")); __import__("os").rename(logfile + ".tmp", logfile)
    """#

    func waitFor(_ path: String) async throws -> String {
        for _ in 0..<500 {
            if let s = try? String(contentsOfFile: path, encoding: .utf8) { return s }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DeliveryError.invalidArgument("\(path) never appeared")
    }

    func run(secret: String, receiverSecret: String, script: [Int], attempts: Int) async throws -> (delivered: Bool, attempts: [WebhookAttempt], log: [[String: Any]]) {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let server = Process()
        server.executableURL = URL(fileURLWithPath: which("python3")!)
        server.arguments = ["-c", Self.receiver, receiverSecret, "\(tmp.path)/port", "\(tmp.path)/log",
                            script.map(String.init).joined(separator: ",")]
        try server.run()
        defer { if server.isRunning { server.terminate() } }
        let port = try await waitFor("\(tmp.path)/port")
        let hook = Webhook(url: "http://127.0.0.1:\(port)/reel", secret: Array(secret.utf8), attempts: attempts,
                           baseDelay: 0.01)
        let body = try Delivery.encodeJSON(BatchSummary(batch: "spring", jobs: 2, succeeded: 2, failed: 0, cancelled: 0, costUSD: 0.9))
        let r = await hook.deliver(body: body, transport: CurlCLITransport(dir: tmp.path),
                                   now: { Date().timeIntervalSince1970 }, sleep: { _ in })
        guard r.attempts.count == script.count else { return (r.delivered, r.attempts, []) }
        let log = try JSONSerialization.jsonObject(with: Data(try await waitFor("\(tmp.path)/log").utf8)) as? [[String: Any]]
        return (r.delivered, r.attempts, log ?? [])
    }

    @Test func realReceiverVerifiesTheHMACAndTheRetryLands() async throws {
        let r = try await run(secret: "s3cret", receiverSecret: "s3cret", script: [503, 200], attempts: 3)
        #expect(r.delivered && r.attempts.map(\.httpStatus) == [503, 200])
        #expect(r.log.count == 2 && r.log.allSatisfy { $0["valid"] as? Bool == true })
        #expect((r.log.first?["body"] as? String)?.contains("\"batch\" : \"spring\"") == true)
    }

    @Test func wrongSecretIsRejectedAndNotRetried() async throws {
        let r = try await run(secret: "wrong", receiverSecret: "s3cret", script: [200], attempts: 3)
        #expect(!r.delivered && r.attempts.map(\.httpStatus) == [401])
        #expect(r.log.first?["valid"] as? Bool == false)
    }
}
