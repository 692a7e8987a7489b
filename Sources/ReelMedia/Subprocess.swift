import Foundation

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

/// Runs `executable` with `arguments` (no shell), without blocking Swift's cooperative pool: Foundation's
/// `Process` reaps the child on its own thread and the pipes are drained by Dispatch.
/// - Parameters:
///   - timeout: seconds after which the child is killed with SIGKILL and the call throws.
public func runProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       timeout: Double = 120) async throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    let collector = PipeCollector(out: out.fileHandleForReading, err: err.fileHandleForReading)

    return try await withCheckedThrowingContinuation { continuation in
        process.terminationHandler = { p in
            let (o, e) = collector.finish()
            if p.terminationReason == .uncaughtSignal, p.terminationStatus == SIGKILL {
                continuation.resume(throwing: SubprocessError(description:
                    "\(executable) killed after \(timeout) s timeout"))
            } else {
                continuation.resume(returning: ProcessOutput(status: p.terminationStatus, stdout: o, stderr: e))
            }
        }
        do {
            try process.run()
        } catch {
            continuation.resume(throwing: SubprocessError(description: "cannot run \(executable): \(error)"))
            return
        }
        // The timeout runs on a thread of its own: libdispatch's global queue can be starved under load.
        let pid = process.processIdentifier
        Thread.detachNewThread {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { kill(pid, SIGKILL) }
        }
    }
}

/// Drains both pipes concurrently so a chatty child never blocks on a full pipe. The blocking reads run on
/// threads of their own: parked on libdispatch's few global threads they stall every other user of that pool.
private final class PipeCollector: @unchecked Sendable {
    // Safe: each buffer is written only by its own reader thread and read after group.wait().
    private var outBytes: [UInt8] = []
    private var errBytes: [UInt8] = []
    private let group = DispatchGroup()

    init(out: FileHandle, err: FileHandle) {
        group.enter()
        group.enter()
        Thread.detachNewThread { self.outBytes = Array(out.readDataToEndOfFile()); self.group.leave() }
        Thread.detachNewThread { self.errBytes = Array(err.readDataToEndOfFile()); self.group.leave() }
    }

    func finish() -> ([UInt8], [UInt8]) {
        group.wait()
        return (outBytes, errBytes)
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
