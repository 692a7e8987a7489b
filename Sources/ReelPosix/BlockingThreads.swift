import Dispatch
import Foundation
import Synchronization

/// A fixed set of dedicated OS threads for blocking file work (stat, pread, fsync, rename, hashing).
///
/// Swift's cooperative pool has one thread per core (2 here) and libdispatch's global queues are shared with
/// everything else in the process; a blocking system call parked on either stalls unrelated work. Callers `await`
/// `run`; the body runs on one of these threads and the continuation resumes the caller. These are
/// `WorkerThreads` without a per-thread context, and every one made is joined by `shutdownAll()`.
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

    private let threads: WorkerThreads<Void>
    /// Every pool made in this process, for `shutdownAll()`.
    private static let pools = Mutex<[BlockingThreads]>([])

    /// Starts `threads` threads named `<name>-<n>`; they run until `shutdown()`. A positive `nice` lowers
    /// these threads' scheduling priority by that much.
    public init(threads: Int, name: String, nice: Int32 = 0) {
        self.threads = WorkerThreads(threads: threads, name: name, nice: nice) {}
        Self.pools.withLock { $0.append(self) }
    }

    /// Lets the threads finish every job already queued, then waits until they have returned. Work submitted
    /// afterwards runs on the caller's thread, so nothing is lost and no thread of this pool outlives the call.
    public func shutdown() { threads.closeAndJoin() }

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

    /// The kernel's id of the calling thread.
    static func currentThreadID() -> Int32? { ReelPosix.currentThreadID() }

    /// Runs `body` on one of the threads; returns at once.
    public func async(_ body: @escaping @Sendable () -> Void) { submit(body) }

    private func submit(_ job: @escaping @Sendable () -> Void) {
        threads.submit({ _ in job() }, refused: job)
    }
}
