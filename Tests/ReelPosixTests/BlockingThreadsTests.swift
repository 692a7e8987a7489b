import Foundation
import Dispatch
import Glibc
import Synchronization
@testable import ReelPosix
import Testing

/// The dedicated threads for blocking work: work runs on them, and a `nice` lowers their priority relative to
/// the process (intake's unlinker runs on such a thread so that cleanup yields to commits).
@Suite struct BlockingThreadsTests {
    static func niceOfThisThread() -> Int32? {
        guard let tid = BlockingThreads.currentThreadID() else { return nil }
        return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid))
    }

    @Test func workRunsOnTheThreadsAtTheirNiceValue() async throws {
        let processNice = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let plain = BlockingThreads(threads: 1, name: "test-plain")
        let lowered = BlockingThreads(threads: 1, name: "test-nice", nice: 7)
        let here = try #require(BlockingThreads.currentThreadID())
        let (plainTID, plainNice) = await plain.run { (BlockingThreads.currentThreadID(), Self.niceOfThisThread()) }
        let (loweredTID, loweredNice) = await lowered.run { (BlockingThreads.currentThreadID(), Self.niceOfThisThread()) }
        #expect(plainTID != nil && plainTID != here && loweredTID != here && plainTID != loweredTID)
        #expect(plainNice == processNice)
        #expect(loweredNice == min(19, processNice + 7))
        // async: fire and forget, still on the thread.
        let seen = AsyncStream<Int32?>.makeStream()
        lowered.async { seen.continuation.yield(BlockingThreads.currentThreadID()); seen.continuation.finish() }
        var iterator = seen.stream.makeAsyncIterator()
        #expect(await iterator.next() == loweredTID)
    }

    /// `shutdown` finishes the work already queued, then joins the threads: none is left afterwards, and work
    /// handed over later runs on the caller's thread instead of waiting for a thread that is gone.
    @Test func shutdownFinishesQueuedWorkAndJoinsItsThreads() async throws {
        let pool = BlockingThreads(threads: 2, name: "test-stop")
        // Two jobs that wait for each other: one on each thread, so both threads' ids are seen.
        let both = DispatchGroup()
        both.enter()
        both.enter()
        let tids = Mutex<[Int32]>([])
        let done = Mutex(0)
        for _ in 0..<2 {
            pool.async {
                tids.withLock { $0.append(BlockingThreads.currentThreadID() ?? -1) }
                both.leave()
                both.wait()
            }
        }
        for _ in 0..<4 {
            pool.async {
                usleep(50_000)
                done.withLock { $0 += 1 }
            }
        }
        await Task.detached { pool.shutdown() }.value
        #expect(done.withLock { $0 } == 4)
        let seen = tids.withLock { $0 }
        #expect(seen.count == 2 && Set(seen).count == 2 && !seen.contains(-1), "\(seen)")
        for tid in seen { #expect(!FileManager.default.fileExists(atPath: "/proc/self/task/\(tid)"), "thread \(tid) lives") }
        #expect(await pool.run { 42 } == 42)  // runs on the awaiting thread: it does not wait for a thread forever
    }
}

