import Foundation
import ReelMedia
import Glibc
import Synchronization

/// A child process for tests, without Foundation's `Process`.
///
/// Foundation's `Process` on Linux learns that a child ended from EOF on a socket the child inherits, then calls a
/// blocking `waitpid` on the one "process manager" thread that all `Process` objects share. A child that closes
/// its inherited descriptors (`systemd-socket-activate` does before it execs the service) makes that EOF arrive while
/// it still runs: the shared thread then sits in `waitpid` until that child exits, and no other `Process` in the test
/// run is ever seen to end. `Child` avoids all of that:
/// - `posix_spawn` with every descriptor above stderr closed in the child (so nothing of ours leaks into it), signal
///   dispositions and mask reset to defaults, a full environment, and its own process group;
/// - one dedicated thread per child blocked in `waitpid(pid)` (never `waitpid(-1)`, never on Swift's cooperative
///   pool), which records the ``Termination`` and wakes every waiter, async or blocking;
/// - a reader thread per captured stream, so a chatty child never blocks on a full pipe.
///
/// `deinit` kills and reaps a child that is still running (with its process group).
public final class Child: Sendable {
    /// How a child ended.
    public enum Termination: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)

        /// Shell-style status: the exit code, or 128 + the signal number.
        public var status: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            }
        }

        public var description: String {
            switch self {
            case .exited(let code): "exit \(code)"
            case .signaled(let signal): "killed by signal \(signal)"
            }
        }
    }

    /// Where the child's stdin comes from.
    public enum Input: Sendable {
        /// `/dev/null`.
        case null
        /// The test process's own stdin.
        case inherit
        /// These bytes, written by a thread of its own, then EOF.
        case bytes([UInt8])
        /// A file, opened read-only.
        case file(String)
    }

    /// Where the child's stdout or stderr goes.
    public enum Output: Sendable {
        /// `/dev/null`.
        case null
        /// The test process's own stream.
        case inherit
        /// A pipe drained by a reader thread: read it with ``stdout``/``stderr`` or ``output(timeout:)``.
        case capture
        /// A file, created if missing; appended to, or truncated first.
        case file(String, append: Bool = true)
    }

    public struct SpawnError: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// The child's process id (also its process group id).
    public let pid: pid_t
    /// The program that was started, for messages.
    public let executable: String
    private let exit = Latch<Termination>()
    private let out: Capture?
    private let err: Capture?

    /// Starts `executable` (an absolute path, or a name looked up on `$PATH`) with `arguments` and exactly
    /// `environment` (pass ``inheritedEnvironment(removing:adding:)`` for the test's own plus changes).
    public init(_ executable: String, _ arguments: [String] = [],
                environment: [String: String] = Child.inheritedEnvironment(),
                stdin: Input = .null, stdout: Output = .inherit, stderr: Output = .inherit) throws {
        guard let path = Child.resolve(executable, path: environment["PATH"]) else {
            throw SpawnError(description: "\(executable): not found (PATH=\(environment["PATH"] ?? "unset"))")
        }
        self.executable = path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        // Parent-side ends to close after the spawn, and the pipes to drain/feed.
        var childEnds: [Int32] = []
        var stdinBytes: (fd: Int32, bytes: [UInt8])?
        var outRead: Int32?, errRead: Int32?
        defer { for fd in childEnds { close(fd) } }
        func pipePair() throws -> (read: Int32, write: Int32) {
            var fds: [Int32] = [-1, -1]
            // (pipe2 is not imported; every spawn of ours closes all fds above 2 anyway, and so does Foundation's.)
            guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(Child.errnoText())") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return (fds[0], fds[1])
        }

        switch stdin {
        case .null: posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        case .inherit: break
        case .file(let file): posix_spawn_file_actions_addopen(&actions, 0, file, O_RDONLY, 0)
        case .bytes(let bytes):
            let p = try pipePair()
            posix_spawn_file_actions_adddup2(&actions, p.read, 0)
            childEnds.append(p.read)
            stdinBytes = (p.write, bytes)
        }
        for (fd, output) in [(Int32(1), stdout), (Int32(2), stderr)] {
            switch output {
            case .null: posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_WRONLY, 0)
            case .inherit: break
            case .file(let file, let append):
                posix_spawn_file_actions_addopen(&actions, fd, file, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC),
                                                 0o644)
            case .capture:
                let p = try pipePair()
                posix_spawn_file_actions_adddup2(&actions, p.write, fd)
                childEnds.append(p.write)
                if fd == 1 { outRead = p.read } else { errRead = p.read }
            }
        }
        // Nothing but 0, 1 and 2 survives into the child (dup2'd descriptors lose O_CLOEXEC; all others close).
        SpawnSetup.closeFrom3(&actions)

        let signalFlags = SpawnSetup.resetSignals(&attributes)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(signalFlags | POSIX_SPAWN_SETPGROUP))

        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var spawned: pid_t = 0
        let rc = posix_spawn(&spawned, path, &actions, &attributes, argv, envp)
        let pid = spawned
        guard rc == 0 else {
            for fd in [stdinBytes?.fd, outRead, errRead].compactMap({ $0 }) { close(fd) }
            throw SpawnError(description: "posix_spawn \(path): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        out = outRead.map { Capture(fd: $0, name: "stdout") }
        err = errRead.map { Capture(fd: $0, name: "stderr") }
        if let (fd, bytes) = stdinBytes {
            Thread.detachNewThread {
                // A child that stops reading must give this thread EPIPE, not the test process a SIGPIPE: block it
                // here (a signal left pending on this thread is discarded when the thread ends).
                var pipeSignal = sigset_t()
                sigemptyset(&pipeSignal)
                sigaddset(&pipeSignal, SIGPIPE)
                pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
                Child.writeAll(fd, bytes)
                close(fd)
            }
        }
        // The reaper: the only waitpid for this pid. It holds the latch, not `self`, so deinit can still run.
        let exit = self.exit
        let reaper = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 {
                guard errno == EINTR else {
                    // ECHILD: someone else reaped it (a waitpid(-1) elsewhere); record what we can.
                    exit.fulfill(.exited(-1))
                    return
                }
            }
            let signal = status & 0x7f
            exit.fulfill(signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal))
        }
        reaper.name = "reel-child-\(pid)"
        reaper.start()
    }

    deinit {
        if exit.value == nil { killAndReap() }
    }

    // MARK: State and waiting

    /// How the child ended; nil while it runs.
    public var termination: Termination? { exit.value }
    public var isRunning: Bool { exit.value == nil }

    /// Waits for the child to end, up to `timeout` seconds (nil: no limit); nil on timeout. Never blocks a thread.
    @discardableResult
    public func wait(timeout: Double? = nil) async -> Termination? {
        await exit.wait(timeout: timeout)
    }

    /// Blocks the calling thread until the child ends or `timeout` seconds pass. For `deinit`/`defer` and other
    /// synchronous call sites; async code should use ``wait(timeout:)``.
    @discardableResult
    public func waitBlocking(timeout: Double? = nil) -> Termination? {
        exit.waitBlocking(timeout: timeout)
    }

    // MARK: Signals

    /// Sends `signal` to the child itself (not its process group); false if it has already been reaped.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        guard exit.value == nil else { return false }
        return kill(pid, signal) == 0
    }

    /// SIGKILL to the child's whole process group, then waits for the reaper. Cannot hang: a SIGKILLed process
    /// always dies (unless it is stuck in the kernel, when nothing would help).
    @discardableResult
    public func killAndReap() -> Termination {
        if exit.value == nil {
            kill(-pid, SIGKILL)   // the group: children it started (e.g. a shell's background job) go too
            kill(pid, SIGKILL)    // in case it left its group
        }
        return exit.waitBlocking(timeout: nil)!
    }

    /// Sends `signal`, waits up to `grace` seconds, then ``killAndReap()``. Returns how it ended.
    @discardableResult
    public func stop(signal: Int32 = SIGTERM, grace: Double = 10) async -> Termination {
        if self.signal(signal), let t = await wait(timeout: grace) { return t }
        return killAndReap()
    }

    /// Blocking ``stop(signal:grace:)`` for synchronous call sites (`defer`, `deinit`).
    @discardableResult
    public func stopBlocking(signal: Int32 = SIGTERM, grace: Double = 10) -> Termination {
        if self.signal(signal), let t = waitBlocking(timeout: grace) { return t }
        return killAndReap()
    }

    // MARK: Output

    /// Captured stdout so far (empty unless started with `stdout: .capture`).
    public var stdout: [UInt8] { out?.bytes ?? [] }
    /// Captured stderr so far (empty unless started with `stderr: .capture`).
    public var stderr: [UInt8] { err?.bytes ?? [] }

    /// What a finished child did.
    public struct Result: Sendable {
        public var termination: Termination
        /// True if the child was killed because `timeout` passed.
        public var timedOut: Bool
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
        /// ``Termination/status``.
        public var status: Int32 { termination.status }
    }

    /// Runs `executable` to completion, stdout and stderr captured; SIGKILL (to its process group) after `timeout`.
    public static func run(_ executable: String, _ arguments: [String] = [],
                           environment: [String: String] = Child.inheritedEnvironment(),
                           stdin: Input = .null, timeout: Double = 60) async throws -> Result {
        try await Child(executable, arguments, environment: environment, stdin: stdin,
                        stdout: .capture, stderr: .capture).output(timeout: timeout)
    }

    /// Waits up to `timeout` seconds for the child to end and its captured streams to reach EOF, then returns how it
    /// ended and what it wrote. On timeout the child (and its group) is killed first.
    public func output(timeout: Double = 60) async -> Result {
        var timedOut = false
        let t: Termination
        if let done = await wait(timeout: timeout) {
            t = done
        } else {
            timedOut = true
            t = killAndReap()
        }
        // A grandchild may still hold the pipes; give it a moment, then stop reading.
        for capture in [out, err].compactMap({ $0 }) where await capture.eof.wait(timeout: 5) == nil {
            capture.abandon()
        }
        return Result(termination: t, timedOut: timedOut, stdout: stdout, stderr: stderr)
    }

    /// Captured stdout once the stream has ended (waits up to 5 s after the exit for a grandchild holding the
    /// pipe). Blocks the calling thread.
    public func stdoutAtEOF() -> [UInt8] {
        _ = out?.eof.waitBlocking(timeout: 5)
        return stdout
    }

    /// Captured stderr once the stream has ended; see ``stdoutAtEOF()``.
    public func stderrAtEOF() -> [UInt8] {
        _ = err?.eof.waitBlocking(timeout: 5)
        return stderr
    }

    /// Waits until the captured stdout satisfies `match` (checked after every chunk), the stream ends, or `timeout`
    /// seconds pass; returns stdout so far.
    public func waitForStdout(timeout: Double = 30, _ match: @escaping @Sendable ([UInt8]) -> Bool) async -> [UInt8] {
        guard let out else { return [] }
        _ = await out.matched(match).wait(timeout: timeout)
        return out.bytes
    }

    // MARK: Helpers

    /// The test process's environment without `removing` and with `adding` on top.
    public static func inheritedEnvironment(removing: [String] = [], adding: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        for key in removing { env[key] = nil }
        for (k, v) in adding { env[k] = v }
        return env
    }

    static func resolve(_ executable: String, path: String?) -> String? {
        if executable.contains("/") { return executable }
        let dirs = (path ?? ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin")
            .split(separator: ":")
        return dirs.map { "\($0)/\(executable)" }.first { access($0, X_OK) == 0 }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return }   // EPIPE: the child stopped reading
            off += n
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// One value set once, awaited by async code (continuations) or blocking code (a condition variable).
final class Latch<Value: Sendable>: @unchecked Sendable {
    // @unchecked: every stored property is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var result: Value?
    private var waiters: [Int: CheckedContinuation<Value?, Never>] = [:]
    private var expired: Set<Int> = []
    private var nextID = 0

    var value: Value? { condition.withLock { result } }

    /// Sets the value (first call wins) and wakes every waiter.
    func fulfill(_ value: Value) {
        let woken: [CheckedContinuation<Value?, Never>] = condition.withLock {
            guard result == nil else { return [] }
            result = value
            defer { waiters = [:] }
            condition.broadcast()
            return Array(waiters.values)
        }
        for w in woken { w.resume(returning: value) }
    }

    /// The value once set, or nil after `timeout` seconds.
    func wait(timeout: Double?) async -> Value? {
        let id: Int = condition.withLock { nextID += 1; return nextID }
        let timer = timeout.map { seconds in
            Task { [self] in
                try? await Task.sleep(for: .milliseconds(Int(max(0, seconds) * 1000)))
                expire(id)
            }
        }
        defer { timer?.cancel() }
        return await withCheckedContinuation { (c: CheckedContinuation<Value?, Never>) in
            let now: Value?? = condition.withLock {
                if let result { return .some(result) }
                if expired.remove(id) != nil { return .some(nil) }
                waiters[id] = c
                return .none
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// The timer of waiter `id` fired: resume it with nil, or mark it expired if it has not registered yet.
    private func expire(_ id: Int) {
        let w: CheckedContinuation<Value?, Never>? = condition.withLock {
            if let w = waiters.removeValue(forKey: id) { return w }
            if result == nil { expired.insert(id) }
            return nil
        }
        w?.resume(returning: nil)
    }

    /// Blocks the calling thread until the value is set or `timeout` seconds pass.
    func waitBlocking(timeout: Double?) -> Value? {
        condition.withLock {
            let deadline = timeout.map { Date().addingTimeInterval($0) }
            while result == nil {
                if let deadline {
                    if !condition.wait(until: deadline) && result == nil { return nil }
                } else {
                    condition.wait()
                }
            }
            return result
        }
    }
}

/// A pipe drained by a thread of its own into a buffer.
final class Capture: Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var matchers: [(match: @Sendable ([UInt8]) -> Bool, latch: Latch<Void>)] = []
        var abandoned = false
        var ended = false
    }
    private let state = Mutex(State())
    /// Fulfilled at EOF (or read error).
    let eof = Latch<Void>()
    private let fd: Int32

    init(fd: Int32, name: String) {
        self.fd = fd
        let thread = Thread { [self] in readLoop() }
        thread.name = "reel-child-\(name)"
        thread.start()
    }

    var bytes: [UInt8] { state.withLock { $0.bytes } }

    private func readLoop() {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            let hit = state.withLock { s -> [Latch<Void>] in
                guard !s.abandoned else { return [] }
                s.bytes += chunk[0..<n]
                let all = s.bytes
                let (hit, keep) = (s.matchers.filter { $0.match(all) }, s.matchers.filter { !$0.match(all) })
                s.matchers = keep
                return hit.map(\.latch)
            }
            for latch in hit { latch.fulfill(()) }
        }
        let rest = state.withLock { s in
            defer { s.matchers = []; s.ended = true }
            close(fd)   // under the lock, so `interrupt()` never touches a descriptor number reused elsewhere
            return s.matchers.map(\.latch)
        }
        for latch in rest { latch.fulfill(()) }
        eof.fulfill(())
    }

    /// A latch fulfilled once the bytes satisfy `match` or the stream ends.
    func matched(_ match: @escaping @Sendable ([UInt8]) -> Bool) -> Latch<Void> {
        let latch = Latch<Void>()
        let now = state.withLock { s -> Bool in
            if s.ended || match(s.bytes) { return true }
            s.matchers.append((match, latch))
            return false
        }
        if now { latch.fulfill(()) }
        return latch
    }

    /// Makes the reader see EOF now, if `fd` is a socket still being read.
    func interrupt() {
        state.withLock { s in if !s.ended { _ = shutdown(fd, Int32(SHUT_RDWR)) } }
    }

    /// Stops recording (a grandchild keeps the pipe open); the thread exits at the pipe's EOF.
    func abandon() { state.withLock { $0.abandoned = true } }
}
