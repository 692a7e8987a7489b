import Foundation
import Glibc
@testable import ReelSpool
import Synchronization
import Testing

@Suite struct SpoolDirectoryTests {
    @Test func candidatesAreOldestFirstThenByNameAndRecentOnesSettle() throws {
        let t = try TempSpool()
        try put(t.incoming + "/c.json", "{}", mtime: 1_000)
        try put(t.incoming + "/b.json", "{}", mtime: 2_000)
        try put(t.incoming + "/a.json", "{}", mtime: 2_000)
        try put(t.incoming + "/new.json", "{}", mtime: 3_000)
        #expect(try t.spool.scan().candidates == ["c.json", "a.json", "b.json", "new.json"])
        let settled = try t.spool.scan(settledBefore: 2_500)
        #expect(settled.candidates == ["c.json", "a.json", "b.json"])
        #expect(settled.skipped == [SpoolSkip(rawName: Array("new.json".utf8), name: "new.json", reason: .settling)])
    }

    @Test func acceptRemovesWhatWasReadAndIsIdempotent() throws {
        let t = try TempSpool()
        for i in 0..<5 { try put(t.incoming + "/m\(i).json", "{}") }
        let files = try (0..<5).map { try #require(t.spool.read("m\($0).json").file) }
        #expect(try t.spool.accept(Array(files[0..<3])) == 3)
        #expect(try t.spool.accept([files[0], files[3]]) == 1)
        #expect(names(t.incoming) == ["m4.json"])
    }

    @Test func acceptLeavesAFileRenamedOverTheNameSinceItWasRead() throws {
        let t = try TempSpool()
        try put(t.incoming + "/x.json", "first")
        let first = try #require(t.spool.read("x.json").file)
        try put(t.layout.tmp + "/x.json", "second")
        rename(t.layout.tmp + "/x.json", t.incoming + "/x.json")
        #expect(try t.spool.accept(first) == false)
        #expect(text(t.incoming + "/x.json") == "second")
    }

    @Test func rejectNeverOverwritesEarlierRejections() throws {
        let t = try TempSpool()
        for round in 0..<3 {
            try put(t.incoming + "/x.json", "v\(round)")
            _ = try t.spool.reject("x.json", report: Array("r\(round)".utf8))
        }
        // A file whose own name is a report name gets a suffix too, rather than replacing x.error.json.
        try put(t.incoming + "/x.error.json", "hostile")
        let moved = try #require(try t.spool.reject("x.error.json", report: Array("r3".utf8)))
        #expect(moved == SpoolRejected(file: "x.error.1.json", report: "x.error.1.error.json"))
        #expect(text(t.rejected + "/x.json") == "v0" && text(t.rejected + "/x.error.json") == "r0")
        #expect(text(t.rejected + "/x.1.json") == "v1" && text(t.rejected + "/x.1.error.json") == "r1")
        #expect(text(t.rejected + "/x.2.json") == "v2" && text(t.rejected + "/x.2.error.json") == "r2")
        #expect(text(t.rejected + "/x.error.1.json") == "hostile")
        #expect(!names(t.rejected).contains { $0.hasPrefix(".") })  // no temp files left
    }

    @Test func aMaximalNameStillGetsAReport() throws {
        let t = try TempSpool()
        let name = String(repeating: "n", count: 250) + ".json"  // 255 bytes, NAME_MAX
        try put(t.incoming + "/" + name, "{}")
        let moved = try #require(try t.spool.reject(name, report: Array("r".utf8)))
        #expect(moved.report.hasSuffix(".error.json") && moved.report.utf8.count <= 255)
        #expect(text(t.rejected + "/" + moved.report) == "r")
        #expect(kind(t.rejected + "/" + moved.file) == S_IFREG)
    }

    @Test func rejectNeedsTheRejectedDirectory() throws {
        let t = try TempSpool()
        try put(t.incoming + "/x.json", "{}")
        chmod(t.rejected, 0o750)
        rmdir(t.rejected)
        let client = try SpoolDirectory(layout: t.layout)
        let error = #expect(throws: SpoolError.self) { try client.reject("x.json", report: []) }
        #expect(error?.code == .unavailable)
        #expect(names(t.incoming) == ["x.json"])
    }

    @Test func submitWritesAtomicallyAndRefusesToOverwrite() throws {
        let t = try TempSpool()
        #expect(try t.spool.submit(Array("one".utf8), as: "batch-1") == "batch-1.json")
        #expect(try t.spool.submit(Array("two".utf8), as: "batch-2.json") == "batch-2.json")
        let taken = #expect(throws: SpoolError.self) { try t.spool.submit(Array("again".utf8), as: "batch-1") }
        #expect(taken?.code == .nameTaken)
        #expect(text(t.incoming + "/batch-1.json") == "one")
        #expect(names(t.incoming) == ["batch-1.json", "batch-2.json"])
        #expect(names(t.layout.tmp).isEmpty)
        for bad in ["../x", "a/b", ".hidden", "", "sp ace", String(repeating: "a", count: 65)] {
            let error = #expect(throws: SpoolError.self) { try t.spool.submit([], as: bad) }
            #expect(error?.code == .invalidName, "\(bad)")
        }
        let small = try TempSpool(maxBytes: 2)
        #expect((#expect(throws: SpoolError.self) { try small.spool.submit(Array("abc".utf8), as: "b") })?.code
                == .tooLarge)
    }

    @Test func submitWithoutTmpUsesADotfileInIncoming() throws {
        let t = try TempSpool()
        rmdir(t.layout.tmp)
        let client = try SpoolDirectory(layout: t.layout)
        #expect(try client.submit(Array("{}".utf8), as: "solo") == "solo.json")
        #expect(names(t.incoming) == ["solo.json"])
    }

    @Test func concurrentSubmitsOfOneNameHaveExactlyOneWinner() throws {
        let t = try TempSpool()
        let outcomes = Locked<[Int: SpoolError.Code?]>([:])
        DispatchQueue.concurrentPerform(iterations: 16) { [spool = t.spool] i in
            let code: SpoolError.Code?
            do {
                _ = try spool.submit(Array("writer \(i)".utf8), as: "race")
                code = nil
            } catch let error as SpoolError { code = error.code } catch { code = .system }
            outcomes.value.withLock { $0[i] = code }
        }
        let all = outcomes.value.withLock { $0 }
        let winners = all.filter { $0.value == nil }.map(\.key)
        #expect(winners.count == 1)
        #expect(all.values.filter { $0 == .nameTaken }.count == 15)
        #expect(text(t.incoming + "/race.json") == "writer \(winners.first ?? -1)")
        #expect(names(t.layout.tmp).isEmpty)
    }
}
