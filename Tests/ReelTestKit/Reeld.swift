import Foundation

/// A running `reeld` for end-to-end tests: a scratch folder (spool, output, state, socket), a config pointing at a
/// `reel-sandbox`, the real binary started as a child process, and helpers to drive it over its Unix socket.
public final class ReeldProcess: @unchecked Sendable {
    // @unchecked: `process` is replaced only by `start`/`restart` and read by `stop`/`kill`, all under `lock`.
    private let lock = NSLock()
    private var process: Process?
    public let root: URL
    public var socket: String { root.appendingPathComponent("reel.sock").path }
    public var spool: String { root.appendingPathComponent("spool").path }
    public var output: String { root.appendingPathComponent("output").path }
    public var state: String { root.appendingPathComponent("state").path }
    public var configPath: String { root.appendingPathComponent("reel.toml").path }
    public var logPath: String { root.appendingPathComponent("reeld.log").path }
    /// The child's environment on top of the test's (minus systemd's variables); may change between starts.
    public var environment: [String: String]
    /// A command that runs reeld, e.g. `["/usr/bin/setpriv", "--inh-caps=-dac_override", "--"]`; empty: run it directly.
    public var launcher: [String] = []

    /// Fast settings for a sandbox whose renders take milliseconds.
    public static let fastConfig = """
        [retry]
        base_delay = "50ms"
        max_delay = "500ms"
        [polling]
        expected_run_time = "50ms..500ms"
        min_interval = "20ms"
        max_interval = "500ms"
        overdue_interval = "50ms"
        [intake]
        rescan_interval = "1s"
        [pricing]
        "wan2.6-r2v".720p = 0.10
        "wan2.6-r2v".1080p = 0.15
        "wan2.6-r2v-flash".720p = 0.05
        "wan2.6-r2v-flash".1080p = 0.075
        """

    public init(providerURL: String, extraConfig: String = ReeldProcess.fastConfig,
                environment: [String: String] = ["DASHSCOPE_API_KEY": "sk-reel-test"]) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("reeld-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        self.environment = environment
        let config = """
            [paths]
            spool = "\(spool)"
            output = "\(output)"
            state = "\(state)"
            socket = "\(socket)"
            [provider]
            kind = "sandbox"
            base_url = "\(providerURL)"
            request_timeout = "5s"
            [log]
            level = "debug"
            \(extraConfig)
            """
        try config.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        _ = stop()
        if ProcessInfo.processInfo.environment["REEL_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(at: root)
        }
    }

    /// Starts reeld and waits until its control socket answers `GET /v1/status`.
    public func start(timeout: Double = 30) async throws {
        guard let binary = SandboxProcess.binaryPath(named: "reeld") else {
            throw TestHTTPError(description: "reeld binary not found: run `swift build` or set REEL_BIN_DIR")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: launcher.first ?? binary)
        p.arguments = launcher.dropFirst() + (launcher.isEmpty ? [] : [binary]) + ["--config", configPath]
        var env = ProcessInfo.processInfo.environment
        for key in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                    "JOURNAL_STREAM", "DASHSCOPE_API_KEY", "CREDENTIALS_DIRECTORY"] { env[key] = nil }
        for (k, v) in environment { env[k] = v }
        p.environment = env
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        p.standardError = log
        p.standardOutput = log
        try p.run()
        lock.withLock { process = p }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if !p.isRunning {
                throw TestHTTPError(description: "reeld exited with \(p.terminationStatus):\n\(logTail())")
            }
            if let r = try? await get("/v1/status"), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestHTTPError(description: "reeld did not answer on \(socket) within \(timeout) s:\n\(logTail())")
    }

    public var pid: Int32? { lock.withLock { process?.processIdentifier } }

    /// Sends `signal` and waits for the exit (SIGKILL after `grace` seconds). Returns the exit status.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Double = 30) -> Int32 {
        lock.withLock {
            guard let p = process else { return 0 }
            if p.isRunning {
                kill(p.processIdentifier, signal)
                let deadline = Date().addingTimeInterval(grace)
                while p.isRunning && Date() < deadline { usleep(5_000) }
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            }
            p.waitUntilExit()
            process = nil
            return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        }
    }

    /// SIGKILL: a crash, as far as reeld can tell.
    public func crash() { _ = stop(signal: SIGKILL, grace: 5) }

    public func logTail(_ bytes: Int = 4000) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return String(text.suffix(bytes))
    }

    // MARK: The control API

    public func get(_ path: String, headers: [String: String] = [:]) async throws -> TestHTTPResponse {
        try await TestHTTP.send(.unix(path: socket), TestHTTPRequest("GET", path, headers: headers))
    }

    public func post(_ path: String, json: String? = nil) async throws -> TestHTTPResponse {
        if let json { return try await TestHTTP.send(.unix(path: socket), TestHTTPRequest("POST", path, json: json)) }
        return try await TestHTTP.send(.unix(path: socket), TestHTTPRequest("POST", path))
    }

    public func status() async throws -> [String: Any] { try await get("/v1/status").json() }

    /// Jobs by state, from `/v1/status`.
    public func counts() async throws -> [String: Int] {
        (try await status()["jobs"] as? [String: Any] ?? [:]).compactMapValues { $0 as? Int }
    }

    /// Polls `/v1/status` until `done(counts)` holds.
    public func waitFor(timeout: Double = 60, _ what: String = "condition",
                        _ done: ([String: Int]) -> Bool) async throws -> [String: Int] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [String: Int] = [:]
        while Date() < deadline {
            if let c = try? await counts() {
                last = c
                if done(c) { return c }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestHTTPError(description: "timed out waiting for \(what); last counts \(last)\n\(logTail())")
    }

    /// Waits until `total` jobs exist and all are terminal.
    public func waitForTerminal(total: Int, timeout: Double = 60) async throws -> [String: Int] {
        try await waitFor(timeout: timeout, "\(total) terminal jobs") { c in
            let terminal = ["succeeded", "failed", "cancelled", "expired"].reduce(0) { $0 + (c[$1] ?? 0) }
            return c.values.reduce(0, +) == total && terminal == total
        }
    }

    /// Drops a manifest into `incoming/` the way writers must: written in `tmp/`, then renamed.
    public func drop(_ json: String, as name: String) throws {
        let tmp = spool + "/tmp/" + name
        try json.write(toFile: tmp, atomically: false, encoding: .utf8)
        guard rename(tmp, spool + "/incoming/" + name) == 0 else {
            throw TestHTTPError(description: "rename into incoming/ failed: errno \(errno)")
        }
    }
}

/// Runs a built Reel binary (e.g. `reelctl`) to completion and captures its output.
public struct BinaryRun: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String

    public static func run(_ name: String, _ arguments: [String], environment: [String: String] = [:],
                           stdin: String? = nil, timeout: Double = 60) throws -> BinaryRun {
        guard let binary = SandboxProcess.binaryPath(named: name) else {
            throw TestHTTPError(description: "\(name) binary not found: run `swift build` or set REEL_BIN_DIR")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["NO_COLOR"] = "1"
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? inp.fileHandleForWriting.close()
        // Drain on threads of our own so a chatty child cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let o = Box(), e = Box()
        let group = DispatchGroup()
        group.enter(); group.enter()
        Thread { o.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }.start()
        Thread { e.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }.start()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(5_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        group.wait()
        return BinaryRun(status: p.terminationStatus, stdout: String(decoding: o.data, as: UTF8.self),
                         stderr: String(decoding: e.data, as: UTF8.self))
    }
}

/// The repository's root (for `examples/`).
public func repositoryRoot(file: String = #filePath) -> URL {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}
