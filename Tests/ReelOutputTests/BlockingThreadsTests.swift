import Glibc
@testable import ReelMedia
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
}
