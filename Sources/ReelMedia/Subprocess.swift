import Foundation
import Glibc
import ReelPosix

/// The outcome of a finished child process.
public struct ProcessOutput: Sendable {
    public var status: Int32
    public var stdout: [UInt8]
    public var stderr: [UInt8]

    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

public struct SubprocessError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Runs `executable` with `arguments` (no shell) and returns its exit status and output, without blocking Swift's
/// cooperative pool: the child is started with `posix_spawn` and everything blocking (draining both pipes with
/// `poll`, the timeout, `waitpid` for exactly this pid) happens on one dedicated thread per child.
///
/// Not Foundation's `Process`: on Linux it reaps every child from one shared thread that can sit in `waitpid`
/// for a single child that closed its inherited descriptors, delaying every other child's end (ffprobe's QC
/// included), and it passes on the daemon's ignored and blocked signals (swift-service-lifecycle ignores SIGTERM
/// to handle it itself), so a hook script could not TERM its own children. Here the child starts with default
/// signal dispositions, an empty mask, stdin on /dev/null and no descriptor but 0, 1 and 2.
/// - Parameters:
///   - environment: the child's whole environment; nil: the daemon's.
///   - timeout: seconds after which the child (only the child, not what it started) is killed with SIGKILL and
///     the call throws.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       timeout: Double = 120) async throws -> ProcessOutput {
    let env = environment ?? ProcessInfo.processInfo.environment
    return try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try Spawned.run(executable, arguments, environment: env, timeout: timeout) })
        }
        thread.name = "reel-child"
        thread.start()
    }
}

private enum Spawned {
    /// Spawns, drains, waits; on the calling (dedicated) thread.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                    timeout: Double) throws -> ProcessOutput {
        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        do throws(PosixError) { try pipeCloseOnExec(&outPipe) } catch { throw failure(error, executable) }
        do throws(PosixError) {
            try pipeCloseOnExec(&errPipe)
        } catch {
            close(outPipe[0]); close(outPipe[1])
            throw failure(error, executable)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        SpawnSetup.closeFrom3(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(SpawnSetup.resetSignals(&attributes)))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            throw SubprocessError(description: "cannot run \(executable): \(Posix.describe(rc))")
        }

        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        var killed = false
        func killOnDeadline() {
            if !killed && ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                killed = true
            }
        }
        // Drain both pipes until EOF on both. A grandchild (a hook's background job) may hold them after the child
        // is gone: then stop reading 1 s after the child's exit (5 s after a timeout kill).
        var out: [UInt8] = [], err: [UInt8] = []
        var open: [(fd: Int32, isOut: Bool)] = [(outPipe[0], true), (errPipe[0], false)]
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        var status: Int32 = 0
        var reaped = false
        var giveUpAt: ContinuousClock.Instant?
        func reap(blocking: Bool) throws {
            guard !reaped else { return }
            do {
                let r = try Posix.retrying("waitpid", executable) { waitpid(pid, &status, blocking ? 0 : WNOHANG) }
                reaped = r == pid
            } catch {
                throw SubprocessError(description: "\(error)")
            }
        }
        while !open.isEmpty {
            killOnDeadline()
            try reap(blocking: false)
            if giveUpAt == nil && (reaped || killed) { giveUpAt = ContinuousClock.now + .seconds(reaped && !killed ? 1 : 5) }
            if let giveUpAt, ContinuousClock.now >= giveUpAt { break }
            var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            guard (try? Posix.retrying("poll", executable) { poll(&fds, nfds_t(fds.count), 50) }) != nil else { break }
            for (index, pfd) in fds.enumerated().reversed() where pfd.revents != 0 {
                // A failed read ends that stream like its end of file does.
                let n = (try? Posix.read(pfd.fd, into: buffer, path: executable)) ?? 0
                if n > 0 {
                    let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                    if open[index].isOut { out += bytes } else { err += bytes }
                } else {
                    close(pfd.fd)
                    open.remove(at: index)
                }
            }
        }
        for entry in open { close(entry.fd) }
        // Both streams ended; the child may still run (it closed them early): wait for it up to the deadline.
        while !reaped {
            try reap(blocking: killed)
            if reaped { break }
            killOnDeadline()
            if !killed { usleep(10_000) }  // a dedicated thread, never the cooperative pool
        }
        let signal = status & 0x7f
        if killed && signal == SIGKILL {
            throw SubprocessError(description: "\(executable) killed after \(timeout) s timeout")
        }
        return ProcessOutput(status: signal == 0 ? (status >> 8) & 0xff : 128 + signal, stdout: out, stderr: err)
    }

    /// `pipe` with both ends close-on-exec (`pipe2` is not imported by Swift's Glibc module). Another thread's
    /// spawn between the two calls cannot leak them: every child Reel starts closes all descriptors above 2.
    static func pipeCloseOnExec(_ fds: inout [Int32]) throws(PosixError) {
        try Posix.retrying("pipe") { pipe(&fds) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    static func failure(_ error: PosixError, _ executable: String) -> SubprocessError {
        SubprocessError(description: "cannot run \(executable): \(error)")
    }
}

/// Finds a program on `$PATH` (ffmpeg and ffprobe live in /usr/bin on Debian).
public func which(_ program: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(program)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}
