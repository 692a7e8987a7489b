import Foundation

/// A running `reeld` for end-to-end tests: a scratch folder (spool, output, state, socket), a config pointing at a
/// `reel-sandbox`, the real binary started as a ``Child``, and helpers to drive it over its Unix socket.
public final class ReeldProcess: @unchecked Sendable {
    // @unchecked: `child` is replaced only by `start` and read by `stop`/`pid`, all under `lock`; `environment` and
    // `launcher` are set by the test before `start`, from one task.
    private let lock = NSLock()
    private var child: Child?
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
        [in_doubt]
        list_lag = "2s"
        unknown_grace = "5s"
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

    /// The variables systemd sets, removed from the inherited environment so the test's own never leak in.
    public static let systemdVariables = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID",
                                          "LISTEN_FDNAMES", "JOURNAL_STREAM", "DASHSCOPE_API_KEY", "CREDENTIALS_DIRECTORY"]

    /// Starts reeld (stdout and stderr to ``logPath``, truncated first) and waits until its control socket answers
    /// `GET /v1/status`. Throws, with the log's tail, if reeld exits first or does not answer within `timeout`.
    public func start(timeout: Double = 30) async throws {
        guard let binary = SandboxProcess.binaryPath(named: "reeld") else {
            throw TestHTTPError(description: "reeld binary not found: run `swift build` or set REEL_BIN_DIR")
        }
        let command = launcher + [binary, "--config", configPath]
        // Each start begins a fresh log (as before); stdout and stderr then both append to it.
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw TestHTTPError(description: "cannot create \(logPath)")
        }
        let child = try Child(command[0], Array(command.dropFirst()),
                              environment: Child.inheritedEnvironment(removing: Self.systemdVariables, adding: environment),
                              stdout: .file(logPath), stderr: .file(logPath))
        let previous = lock.withLock { () -> Child? in
            defer { self.child = child }
            return self.child
        }
        previous?.killAndReap()
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let t = child.termination {
                throw TestHTTPError(description: "reeld exited (\(t)):\n\(logTail())")
            }
            if let r = try? await get("/v1/status"), r.status == 200 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestHTTPError(description: "reeld did not answer on \(socket) within \(timeout) s:\n\(logTail())")
    }

    /// The running reeld's process id; nil before `start` and after `stop`.
    public var pid: Int32? { lock.withLock { child?.pid } }

    /// Sends `signal` and waits for the exit (SIGKILL after `grace` seconds). Returns the exit status, 128+N for a
    /// signal; 0 if reeld is not running. Blocks the calling thread (fine in `defer`); async code can use
    /// ``terminate(signal:grace:)``.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Double = 30) -> Int32 {
        guard let child = takeChild() else { return 0 }
        return child.stopBlocking(signal: signal, grace: grace).status
    }

    /// ``stop(signal:grace:)`` without blocking a thread while reeld shuts down.
    @discardableResult
    public func terminate(signal: Int32 = SIGTERM, grace: Double = 30) async -> Int32 {
        guard let child = takeChild() else { return 0 }
        return await child.stop(signal: signal, grace: grace).status
    }

    private func takeChild() -> Child? {
        lock.withLock {
            defer { child = nil }
            return child
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
    /// The exit code, or 128+N if a signal ended it (137 after a timeout).
    public var status: Int32
    public var stdout: String
    public var stderr: String

    /// Runs `name` from the build folder with the test's environment plus `NO_COLOR=1` and `environment`, feeding
    /// `stdin` (empty if nil); SIGKILL after `timeout` seconds. Never blocks a thread of Swift's pool.
    public static func launch(_ name: String, _ arguments: [String], environment: [String: String] = [:],
                              stdin: String? = nil, timeout: Double = 60) async throws -> BinaryRun {
        let child = try spawn(name, arguments, environment: environment, stdin: stdin)
        let result = await child.output(timeout: timeout)
        return BinaryRun(status: result.termination.status, stdout: String(decoding: result.stdout, as: UTF8.self),
                         stderr: String(decoding: result.stderr, as: UTF8.self))
    }

    /// ``launch(_:_:environment:stdin:timeout:)`` for synchronous callers: blocks the calling thread until the
    /// binary exits (it talks only to other processes, so this cannot deadlock, but prefer `launch` in async code).
    public static func run(_ name: String, _ arguments: [String], environment: [String: String] = [:],
                           stdin: String? = nil, timeout: Double = 60) throws -> BinaryRun {
        let child = try spawn(name, arguments, environment: environment, stdin: stdin)
        let termination = child.waitBlocking(timeout: timeout) ?? child.killAndReap()
        return BinaryRun(status: termination.status, stdout: String(decoding: child.stdoutAtEOF(), as: UTF8.self),
                         stderr: String(decoding: child.stderrAtEOF(), as: UTF8.self))
    }

    private static func spawn(_ name: String, _ arguments: [String], environment: [String: String],
                              stdin: String?) throws -> Child {
        guard let binary = SandboxProcess.binaryPath(named: name) else {
            throw TestHTTPError(description: "\(name) binary not found: run `swift build` or set REEL_BIN_DIR")
        }
        return try Child(binary, arguments,
                         environment: Child.inheritedEnvironment(adding: ["NO_COLOR": "1"].merging(environment) { $1 }),
                         stdin: .bytes(Array((stdin ?? "").utf8)), stdout: .capture, stderr: .capture)
    }
}

/// The repository's root (for `examples/`).
public func repositoryRoot(file: String = #filePath) -> URL {
    var url = URL(fileURLWithPath: file)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
}
