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
    private struct Queue {
        var jobs: [Job] = []
        var closed = false
    }
    private let queue = Mutex(Queue())
    private let ready = DispatchSemaphore(value: 0)
    private let threadCount: Int
    /// Entered once per thread, left when it returns.
    private let running = DispatchGroup()
    /// Every pool made in this process, for `shutdownAll()`.
    private static let pools = Mutex<[BlockingThreads]>([])

    /// Starts `threads` threads named `<name>-<n>`; they run until `shutdown()`. A positive `nice` lowers
    /// these threads' scheduling priority by that much (Linux nice values are per thread).
    public init(threads: Int, name: String, nice: Int32 = 0) {
        threadCount = max(1, threads)
        for index in 0..<threadCount {
            running.enter()
            let thread = Thread { [self] in
                if nice > 0, let tid = Self.currentThreadID() {
                    // Relative to the process's own nice value (a unit may set Nice=), capped at 19.
                    let which = __priority_which_t(PRIO_PROCESS.rawValue)
                    _ = setpriority(which, id_t(tid), min(19, getpriority(which, id_t(tid)) + nice))
                }
                work()
                running.leave()
            }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
        Self.pools.withLock { $0.append(self) }
    }

    /// Lets the threads finish every job already queued, then waits until they have returned. Work submitted
    /// afterwards runs on the caller's thread, so nothing is lost and no thread of this pool outlives the call.
    public func shutdown() {
        queue.withLock { $0.closed = true }
        for _ in 0..<threadCount { ready.signal() }
        running.wait()
    }

    /// `shutdown()` of every pool made in this process (the shared `files`, `hashing` and `cleanup` ones among
    /// them, if they were used): what the daemon does before it exits, so no thread is still hashing or writing
    /// while `exit` tears the process down.
    public static func shutdownAll() {
        for pool in pools.withLock({ $0 }) { pool.shutdown() }
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
        let queued = queue.withLock { q -> Bool in
            guard !q.closed else { return false }
            q.jobs.append(job)
            return true
        }
        if queued { ready.signal() } else { job() }
    }

    private func work() {
        while true {
            ready.wait()
            let (next, closed) = queue.withLock { q in (q.jobs.isEmpty ? nil : q.jobs.removeFirst(), q.closed) }
            if let next {
                next()
            } else if closed {
                return
            }
        }
    }
}
