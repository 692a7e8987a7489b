import Foundation
import Glibc

/// One line of the sandbox's `/__sandbox/requests` journal.
public struct SandboxJournalEntry: Decodable, Sendable, Hashable {
    public var seq: Int
    public var time: Double
    public var method: String
    public var path: String
    /// 0 when the sandbox reset the connection instead of answering.
    public var status: Int
    public var taskID: String?
    public var model: String?
    public var durationMs: Double
    public var referenceField: String?
    public var ossHeader: Bool?
    public var fault: String?
    /// The account of the request's key (downloads: of the task).
    public var account: String?
    /// A gateway start's `idempotency-key`.
    public var idempotencyKey: String?

    enum CodingKeys: String, CodingKey {
        case seq, time, method, path, status, model, fault, account
        case idempotencyKey = "idempotency_key"
        case taskID = "task_id"
        case durationMs = "duration_ms"
        case referenceField = "reference_field"
        case ossHeader = "oss_header"
    }

    public var isCreate: Bool { method == "POST" && path.hasSuffix("/video-synthesis") }
    public var isQuery: Bool { method == "GET" && path.hasPrefix("/api/v1/tasks/") }
    public var isGatewayStart: Bool { method == "POST" && path == "/v4/ai/video-model/start" }
    public var isGatewayStatus: Bool { method == "POST" && path == "/v4/ai/video-model/status" }
}

/// One row of `/__sandbox/gateway/starts`: gateway starts and the jobs they made, per (account, idempotency key).
public struct SandboxGatewayStarts: Decodable, Sendable, Hashable {
    public var account: String
    public var idempotencyKey: String
    /// Start calls with the key, answered or refused.
    public var starts: Int
    /// Renders the key made (0 or 1).
    public var jobs: Int
    public var jobID: String?

    enum CodingKeys: String, CodingKey {
        case account, starts, jobs
        case idempotencyKey = "idempotency_key"
        case jobID = "job_id"
    }
}

/// A running `reel-sandbox` process for tests: started from the built binary as a ``Child``, stopped on `stop()`
/// or deinit.
public final class SandboxProcess: Sendable {
    private let child: Child

    /// `http://127.0.0.1:PORT`, from the first stdout line.
    public let url: String
    public let endpoint: TestHTTP.Endpoint
    /// The base URL a DashScope client uses: `url + "/api/v1"`.
    public var apiBase: String { url + "/api/v1" }
    public var pid: Int32 { child.pid }

    private init(child: Child, url: String) throws {
        self.child = child
        self.url = url
        guard let endpoint = TestHTTP.Endpoint(url: url) else {
            throw TestHTTPError(description: "reel-sandbox printed an unusable address: \(url)")
        }
        self.endpoint = endpoint
    }

    deinit { stop() }

    /// Finds the built `reel-sandbox`: `$REEL_BIN_DIR`, the test bundle's directory, or `.build/debug`.
    public static func binaryPath(named name: String = "reel-sandbox", file: String = #filePath) -> String? {
        var dirs: [String] = []
        if let dir = ProcessInfo.processInfo.environment["REEL_BIN_DIR"] { dirs.append(dir) }
        dirs.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path)
        var repo = URL(fileURLWithPath: file)
        for _ in 0..<3 { repo.deleteLastPathComponent() }   // Tests/ReelTestKit/Sandbox.swift -> repo
        dirs.append(repo.appendingPathComponent(".build/debug").path)
        return dirs.map { $0 + "/" + name }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Starts the sandbox with `arguments` (`--listen 127.0.0.1:0` is added unless given) and waits for its
    /// `listening on` line. The default arguments make renders take a few milliseconds.
    public static func start(_ arguments: [String] = ["--time-scale", "1000", "--run-time", "1..2"],
                             binary: String? = nil) async throws -> SandboxProcess {
        guard let path = binary ?? binaryPath() else {
            throw TestHTTPError(description: "reel-sandbox binary not found: run `swift build` or set REEL_BIN_DIR")
        }
        let arguments = (arguments.contains("--listen") ? [] : ["--listen", "127.0.0.1:0"]) + arguments
        // stdout is captured (and drained for the sandbox's whole life); its first line is the address.
        let child = try Child(path, arguments, stdout: .capture, stderr: .inherit)
        let head = await child.waitForStdout(timeout: 30) { $0.contains(10) }
        let line = String(decoding: head.prefix { $0 != 10 }, as: UTF8.self)
        guard head.contains(10), line.hasPrefix("listening on ") else {
            let t = child.stopBlocking(signal: SIGTERM, grace: 2)
            throw TestHTTPError(description: "reel-sandbox did not start (\(t); first line: \"\(line)\")")
        }
        return try SandboxProcess(child: child, url: String(line.dropFirst("listening on ".count)))
    }

    /// SIGTERM, then SIGKILL after 2 s; waits for the exit. Returns the exit status, 128+N for a signal
    /// (idempotent). Blocks the calling thread (fine in `defer`); async code can use ``terminate()``.
    @discardableResult
    public func stop() -> Int32 {
        child.stopBlocking(signal: SIGTERM, grace: 2).status
    }

    /// ``stop()`` without blocking a thread.
    @discardableResult
    public func terminate() async -> Int32 {
        await child.stop(signal: SIGTERM, grace: 2).status
    }

    /// Any request to the sandbox.
    public func send(_ request: TestHTTPRequest) async throws -> TestHTTPResponse {
        try await TestHTTP.send(endpoint, request)
    }

    /// Journal entries after `since`.
    public func journal(since: Int = 0) async throws -> [SandboxJournalEntry] {
        struct Page: Decodable { var requests: [SandboxJournalEntry] }
        let reply = try await send(TestHTTPRequest("GET", "/__sandbox/requests?since=\(since)"))
        return try JSONDecoder().decode(Page.self, from: Data(reply.body)).requests
    }

    /// The gateway's `/v4/ai` base URL on this sandbox.
    public var gatewayBase: String { url + "/v4/ai" }

    /// Gateway starts per (account, idempotency key).
    public func gatewayStarts() async throws -> [SandboxGatewayStarts] {
        struct Page: Decodable { var keys: [SandboxGatewayStarts] }
        let reply = try await send(TestHTTPRequest("GET", "/__sandbox/gateway/starts"))
        return try JSONDecoder().decode(Page.self, from: Data(reply.body)).keys
    }

    /// Replaces the fault rules with `rules`, a JSON array such as `[{"fault":"create_throttle","count":2}]`.
    public func setFaults(_ rulesJSON: String) async throws {
        let reply = try await send(TestHTTPRequest("PUT", "/__sandbox/faults", json: "{\"rules\": \(rulesJSON)}"))
        guard reply.status == 200 else { throw TestHTTPError(description: "setFaults: \(reply.status) \(reply.text)") }
    }

    public func clearFaults() async throws {
        _ = try await send(TestHTTPRequest("DELETE", "/__sandbox/faults"))
    }

    /// Jumps the sandbox's virtual clock by `seconds` (sandbox seconds), e.g. past a URL's expiry.
    public func advanceClock(_ seconds: Double) async throws {
        let reply = try await send(TestHTTPRequest("POST", "/__sandbox/clock", json: "{\"advance_s\": \(seconds)}"))
        guard reply.status == 200 else { throw TestHTTPError(description: "advanceClock: \(reply.status) \(reply.text)") }
    }
}
