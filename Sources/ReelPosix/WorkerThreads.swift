import Dispatch
import Foundation
import Synchronization

/// A fixed set of dedicated OS threads that run queued jobs in order, each thread with a `Context` of its own
/// made on that thread when it starts and released there when it ends (e.g. a libcurl easy handle, which must
/// never leave its thread). `BlockingThreads` is this with no context; `CurlClient` runs its transfers here.
///
/// Swift's cooperative pool has one thread per core (2 here) and libdispatch's global queues are shared with
/// everything else in the process; a blocking call parked on either stalls unrelated work.
public final class WorkerThreads<Context>: Sendable {
    public typealias Job = @Sendable (Context) -> Void

    private struct Queue {
        var jobs: [Job] = []
        var closed = false
    }

    private let queue = Mutex(Queue())
    private let ready = DispatchSemaphore(value: 0)
    private let threadCount: Int
    /// Entered once per thread, left when it has released its context and returns.
    private let running = DispatchGroup()

    /// Starts `threads` threads named `<name>-<n>`; each makes its context with `makeContext` and runs jobs until
    /// `close()`. A positive `nice` lowers these threads' scheduling priority by that much (Linux nice values are
    /// per thread).
    public init(threads: Int, name: String, nice: Int32 = 0, makeContext: @escaping @Sendable () -> Context) {
        threadCount = max(1, threads)
        for index in 0..<threadCount {
            running.enter()
            let thread = Thread { [self] in
                if nice > 0, let tid = currentThreadID() {
                    // Relative to the process's own nice value (a unit may set Nice=), capped at 19.
                    let which = __priority_which_t(PRIO_PROCESS.rawValue)
                    _ = setpriority(which, id_t(tid), min(19, getpriority(which, id_t(tid)) + nice))
                }
                work(makeContext())
                running.leave()
            }
            thread.name = "\(name)-\(index)"
            thread.start()
        }
    }

    /// Queues `job`; once the threads are closed it is not run, and `refused` runs instead (on the caller's
    /// thread).
    public func submit(_ job: @escaping Job, refused: () -> Void) {
        let queued = queue.withLock { q -> Bool in
            guard !q.closed else { return false }
            q.jobs.append(job)
            return true
        }
        if queued { ready.signal() } else { refused() }
    }

    /// Lets the threads finish every job already queued, then return; does not wait for them.
    public func close() {
        queue.withLock { $0.closed = true }
        for _ in 0..<threadCount { ready.signal() }
    }

    /// `close()`, then waits until every thread has released its context and returned.
    public func closeAndJoin() {
        close()
        running.wait()
    }

    private func work(_ context: Context) {
        while true {
            ready.wait()
            let (next, closed) = queue.withLock { q in (q.jobs.isEmpty ? nil : q.jobs.removeFirst(), q.closed) }
            if let next {
                next(context)
            } else if closed {
                return
            }
        }
    }
}

/// The kernel's id of the calling thread (Glibc's `gettid` is not imported): `/proc/thread-self` links to
/// `PID/task/TID`.
func currentThreadID() -> Int32? {
    var buffer = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .split(separator: "/").last.flatMap { Int32($0) }
}
