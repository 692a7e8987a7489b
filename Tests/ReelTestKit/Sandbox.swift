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

    enum CodingKeys: String, CodingKey {
        case seq, time, method, path, status, model, fault
        case taskID = "task_id"
        case durationMs = "duration_ms"
        case referenceField = "reference_field"
        case ossHeader = "oss_header"
    }

    public var isCreate: Bool { method == "POST" && path.hasSuffix("/video-synthesis") }
    public var isQuery: Bool { method == "GET" && path.hasPrefix("/api/v1/tasks/") }
}

/// A running `reel-sandbox` process for tests: started from the built binary, stopped on `stop()` or deinit.
public final class SandboxProcess: @unchecked Sendable {
    // @unchecked: `process` is only touched in init and in `stop()`, which is idempotent under `lock`.
    private let process: Process
    private let lock = NSLock()
    private var stopped = false

    /// `http://127.0.0.1:PORT`, from the first stdout line.
    public let url: String
    public let endpoint: TestHTTP.Endpoint
    /// The base URL a DashScope client uses: `url + "/api/v1"`.
    public var apiBase: String { url + "/api/v1" }
    public var pid: Int32 { process.processIdentifier }

    private init(process: Process, url: String) throws {
        self.process = process
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
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = (arguments.contains("--listen") ? [] : ["--listen", "127.0.0.1:0"]) + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.standardError
        try process.run()
        let handle = out.fileHandleForReading
        // Read the first line on a thread of our own: it blocks until the sandbox has bound its port.
        let line: String = await withCheckedContinuation { continuation in
            Thread {
                var bytes: [UInt8] = []
                while true {
                    let chunk = handle.readData(ofLength: 1)
                    guard let b = chunk.first else { break }
                    if b == 10 { break }
                    bytes.append(b)
                }
                continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
            }.start()
        }
        guard line.hasPrefix("listening on ") else {
            process.terminate()
            process.waitUntilExit()
            throw TestHTTPError(description: "reel-sandbox did not start (first line: \"\(line)\")")
        }
        return try SandboxProcess(process: process, url: String(line.dropFirst("listening on ".count)))
    }

    /// SIGTERM, then SIGKILL after 2 s; waits for the exit. Returns the exit status (idempotent).
    @discardableResult
    public func stop() -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        if !stopped {
            stopped = true
            if process.isRunning {
                kill(process.processIdentifier, SIGTERM)
                let deadline = Date().addingTimeInterval(2)
                while process.isRunning && Date() < deadline { usleep(10_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            process.waitUntilExit()
        }
        return process.terminationStatus
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
