import Dispatch
import Foundation
import Synchronization

/// A fixed set of dedicated OS threads for blocking file work (stat, pread, fsync, rename, hashing).
///
/// Swift's cooperative pool has one thread per core (2 here) and libdispatch's global queues are shared with
/// everything else in the process; a blocking system call parked on either stalls unrelated work. Callers `await`
/// `run`; the body runs on one of these threads and the continuation resumes the caller.
public final class BlockingThreads: Sendable {
    /// Short file work: stat, publishing renames and fsyncs, small atomic writes.
    public static let files = BlockingThreads(threads: 2, name: "reel-files")
    /// Whole-file hashing (reference files up to 100 MB, delivered videos): one thread, so hashing never takes
    /// both cores and never queues short file work behind a long read.
    public static let hashing = BlockingThreads(threads: 1, name: "reel-hash")
    /// Background cleanup that may trail (intake's removal of committed spool files): one thread 10 nice levels
    /// below the process, so a burst of unlinks, which costs the kernel more than the commits it follows, yields
    /// the CPU to them.
    public static let cleanup = BlockingThreads(threads: 1, name: "reel-cleanup", nice: 10)

    private typealias Job = @Sendable () -> Void
    private let jobs = Mutex<[Job]>([])
    private let ready = DispatchSemaphore(value: 0)

    /// Starts `threads` threads named `<name>-<n>`; they live as long as the process. A positive `nice` lowers
    /// these threads' scheduling priority by that much (Linux nice values are per thread).
    public init(threads: Int, name: String, nice: Int32 = 0) {
        for index in 0..<max(1, threads) {
            let thread = Thread { [self] in
                if nice > 0, let tid = Self.currentThreadID() {
                    // Relative to the process's own nice value (a unit may set Nice=), capped at 19.
                    let which = __priority_which_t(PRIO_PROCESS.rawValue)
                    _ = setpriority(which, id_t(tid), min(19, getpriority(which, id_t(tid)) + nice))
                }
                work()
            }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Runs `body` on one of the threads and returns (or throws) what it did.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { continuation.resume(with: Result { try body() }) }
        }
    }

    /// `run` for a body that cannot fail.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: body()) }
        }
    }

    /// The kernel's id of the calling thread (Glibc's `gettid` is not imported): `/proc/thread-self` links to
    /// `PID/task/TID`.
    static func currentThreadID() -> Int32? {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            .split(separator: "/").last.flatMap { Int32($0) }
    }

    /// Runs `body` on one of the threads; returns at once.
    public func async(_ body: @escaping @Sendable () -> Void) { submit(body) }

    private func submit(_ job: @escaping Job) {
        jobs.withLock { $0.append(job) }
        ready.signal()
    }

    private func work() {
        while true {
            ready.wait()
            if let next = jobs.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { next() }
        }
    }
}
