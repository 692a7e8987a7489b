import Foundation
import Logging
import ReelCore
import ReelHTTPServer
import ReelMedia
import ReelSandbox
import ReelTestKit
import Testing

/// An in-process sandbox on real TCP, with helpers that speak the provider's protocol.
struct SandboxClient {
    let endpoint: TestHTTP.Endpoint
    let sandbox: Sandbox
    var key = "sk-test"

    static let auth = ["Authorization": "Bearer sk-test", "X-DashScope-Async": "enable"]

    static func body(model: String = "wan2.6-r2v", prompt: String = "character1 waves",
                     refs: [String] = ["https://example.com/a.png"], field: String = "reference_urls",
                     size: String = "1280*720", duration: Int = 2, extra: String = "") -> String {
        let refsJSON = refs.map { "\"\($0)\"" }.joined(separator: ",")
        return """
            {"model":"\(model)","input":{"prompt":"\(prompt)","\(field)":[\(refsJSON)]},\
            "parameters":{"size":"\(size)","duration":\(duration)\(extra)}}
            """
    }

    func send(_ r: TestHTTPRequest) async throws -> TestHTTPResponse { try await TestHTTP.send(endpoint, r) }

    func createRaw(_ body: String, headers: [String: String] = auth) async throws -> TestHTTPResponse {
        try await send(TestHTTPRequest("POST", Sandbox.createPath, headers: headers, json: body))
    }

    /// Creates a task and returns its id (expects 200).
    func create(_ body: String = SandboxClient.body(), headers: [String: String] = auth) async throws -> String {
        let r = try await createRaw(body, headers: headers)
        #expect(r.status == 200, "create: \(r.text)")
        let output = try #require(try r.json()["output"] as? [String: Any])
        #expect(output["task_status"] as? String == "PENDING")
        return try #require(output["task_id"] as? String)
    }

    func query(_ id: String) async throws -> (status: String?, output: [String: Any], body: [String: Any]) {
        let r = try await send(TestHTTPRequest("GET", "/api/v1/tasks/\(id)", headers: ["Authorization": "Bearer sk-test"]))
        #expect(r.status == 200, "query: \(r.text)")
        let body = try r.json()
        let output = body["output"] as? [String: Any] ?? [:]
        return (output["task_status"] as? String, output, body)
    }

    func advance(_ seconds: Double) async throws {
        let r = try await send(TestHTTPRequest("POST", "/__sandbox/clock", json: "{\"advance_s\": \(seconds)}"))
        #expect(r.status == 200)
    }

    func setFaults(_ rules: String) async throws {
        let r = try await send(TestHTTPRequest("PUT", "/__sandbox/faults", json: "{\"rules\": \(rules)}"))
        #expect(r.status == 200, "faults: \(r.text)")
    }

    /// The path and query of a `video_url`.
    static func target(_ url: String) -> String {
        let rest = url.dropFirst("http://".count)
        return String(rest[rest.firstIndex(of: "/")!...])
    }

    /// Runs the task to SUCCEEDED by moving the clock and returns the video target path.
    func finish(_ id: String) async throws -> String {
        try await advance(1000)
        let q = try await query(id)
        #expect(q.status == "SUCCEEDED", "\(q.output)")
        return Self.target(try #require(q.output["video_url"] as? String))
    }
}

/// Runs `body` against a fresh in-process sandbox (time scale 0.001, so only `advance` moves tasks unless set).
func withSandbox(_ configure: (inout SandboxOptions) -> Void = { _ in },
                 _ body: (SandboxClient) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-sandbox-test-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var options = SandboxOptions()
    options.dataDirectory = dir.path
    options.timeScale = 0.001   // tasks move only when a test advances the clock
    options.runTime = 10...10
    options.seed = 7
    options.submitRPS = 1000
    options.queryQPS = 1000
    configure(&options)
    let sandbox = try Sandbox(options: options, logger: Logger(label: "sandbox-test"))
    let (addresses, continuation) = AsyncStream<String>.makeStream()
    let task = Task {
        defer { continuation.finish() }
        try await sandbox.run(on: .tcp(host: "127.0.0.1", port: 0)) { continuation.yield($0) }
    }
    var iterator = addresses.makeAsyncIterator()
    let address = try #require(await iterator.next())
    let client = SandboxClient(endpoint: try #require(TestHTTP.Endpoint(url: address)), sandbox: sandbox)
    do {
        try await body(client)
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
    task.cancel()
    _ = await task.result
}

/// Writes `bytes` to a fresh temp file, probes it, removes it.
func probe(_ bytes: [UInt8]) async throws -> MediaProbe {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString).mp4").path
    defer { unlink(path) }
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return try await FFprobe.probe(path)
}
