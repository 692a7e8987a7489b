import Foundation
import Glibc
import ReelPosix
@testable import ReelSpool
import Testing

@Suite struct WatcherTests {
    /// Moves `name` from tmp/ into incoming/, as writers must.
    func drop(_ t: TempSpool, _ name: String, _ content: String = "{}") throws {
        try put(t.layout.tmp + "/" + name, content)
        #expect(rename(t.layout.tmp + "/" + name, t.incoming + "/" + name) == 0)
    }

    @Test func startsWithARescanThenHintsRenamesAndClosesButNotDotfiles() async throws {
        let t = try TempSpool()
        let watcher = try SpoolWatcher(directory: t.incoming, rescanInterval: nil)
        try put(t.incoming + "/.partial.json", "{")       // CLOSE_WRITE on a dotfile: no hint
        try put(t.incoming + "/notes.txt", "x")            // not *.json: no hint
        try drop(t, "renamed.json")                         // IN_MOVED_TO
        try put(t.incoming + "/in-place.json", "{}")       // IN_CLOSE_WRITE
        let hints = await collect(watcher.hints) { $0.contains(.file("in-place.json")) }
        #expect(hints.filter { $0 != .writing("in-place.json") }
                == [.rescan(.startup), .file("renamed.json"), .file("in-place.json")])
        #expect(hints.contains(.writing("in-place.json")))  // created and written in place before its close
    }

    /// The "still being written" rule end to end: a file written in place is skipped by a rescan while its
    /// mtime is recent, and its writer's close brings the hint that says it is complete.
    @Test func aFileWrittenInPlaceSettlesUntilItsWriterCloses() async throws {
        let t = try TempSpool()
        let watcher = try SpoolWatcher(directory: t.incoming, rescanInterval: nil)
        let fd = open(t.incoming + "/slow.json", O_WRONLY | O_CREAT | O_EXCL, 0o644)
        try Posix.writeAll(fd, Array("{\"half\":".utf8), path: "slow.json")
        let scan = try t.spool.scan(settledBefore: Date().timeIntervalSince1970 - 2)
        #expect(scan.candidates.isEmpty && scan.skipped.map(\.reason) == [.settling])
        try Posix.writeAll(fd, Array("1}".utf8), path: "slow.json")
        close(fd)
        let hints = await collect(watcher.hints) { $0.contains(.file("slow.json")) }
        // Created and written in place: `.writing` until the writer's close brings `.file`.
        #expect(hints.first == .rescan(.startup) && hints.last == .file("slow.json"))
        #expect(Set(hints.dropFirst().dropLast()) == [.writing("slow.json")])
        #expect(t.spool.read("slow.json").file?.bytes == Array("{\"half\":1}".utf8))
    }

    @Test func aThousandFilesMovedInAtOnceAreAllHintedOrRescannedAndAllListed() async throws {
        let t = try TempSpool()
        let watcher = try SpoolWatcher(directory: t.incoming, rescanInterval: nil)
        let names = (0..<1000).map { String(format: "m%04d.json", $0) }
        for name in names { try put(t.layout.tmp + "/" + name, "{\"n\":\"\(name)\"}") }
        for name in names { rename(t.layout.tmp + "/" + name, t.incoming + "/" + name) }
        let hints = await collect(watcher.hints) { seen in  // O(1) per hint: this runs after every one
            guard seen.count > 1, case .rescan = seen[seen.count - 1] else { return seen.count == 1001 }
            return true
        }
        let hinted = Set(hints.compactMap { if case .file(let n) = $0 { n } else { nil } })
        #expect(hinted == Set(names) || hints.dropFirst().contains { if case .rescan = $0 { true } else { false } })
        let scan = try t.spool.scan()
        #expect(scan.candidates.count == 1000 && Set(scan.candidates) == Set(names))
        let files = try scan.candidates.map { try #require(t.spool.read($0).file) }
        #expect(Set(files.map(\.sha256)).count == 1000)
        #expect(try t.spool.accept(files) == 1000)
        #expect(entries(t.incoming).isEmpty)
    }

    @Test func periodicAndRequestedRescans() async throws {
        let t = try TempSpool()
        let watcher = try SpoolWatcher(directory: t.incoming, rescanInterval: .milliseconds(30))
        watcher.requestRescan(after: .milliseconds(1))
        let hints = await collect(watcher.hints) { $0.contains(.rescan(.periodic)) && $0.contains(.rescan(.requested)) }
        #expect(hints.first == .rescan(.startup))
        #expect(hints.contains(.rescan(.periodic)) && hints.contains(.rescan(.requested)))
    }

    @Test func removingIncomingIsReportedAsDirectoryGone() async throws {
        let t = try TempSpool()
        let dir = t.base + "/watched"  // no SpoolDirectory holds it open: IN_DELETE_SELF fires on the last close
        mkdir(dir, 0o755)
        let watcher = try SpoolWatcher(directory: dir, rescanInterval: nil)
        #expect(rmdir(dir) == 0)
        let hints = await collect(watcher.hints) { $0.contains(.rescan(.directoryGone)) }
        #expect(hints.contains(.rescan(.directoryGone)))
        // A SpoolDirectory that still holds the removed incoming/ notices on its next scan.
        #expect(rmdir(t.incoming) == 0)
        #expect((#expect(throws: SpoolError.self) { try t.spool.scan() })?.code == .unavailable)
    }

    @Test func cancelFinishesTheStream() async throws {
        let t = try TempSpool()
        let watcher = try SpoolWatcher(directory: t.incoming, rescanInterval: nil)
        watcher.cancel()
        let hints = await collect(watcher.hints) { _ in false }  // returns when the stream ends, not on timeout
        #expect(hints.count <= 1)
    }

    @Test func watchingSomethingThatIsNotADirectoryFails() throws {
        let t = try TempSpool()
        try put(t.base + "/file", "x")
        #expect(throws: SpoolError.self) { _ = try SpoolWatcher(directory: t.base + "/file") }
        #expect(throws: SpoolError.self) { _ = try SpoolWatcher(directory: t.base + "/missing") }
    }

    /// IN_Q_OVERFLOW cannot be provoked cheaply (the kernel queue holds 16,384 events), so the parser is fed a
    /// synthesized buffer: records are a 16-byte header (wd, mask, cookie, len) and a NUL-padded name.
    @Test func parserMapsSynthesizedEvents() {
        func event(_ mask: Int32, _ name: String = "", wd: Int32 = 1, pad: Int = 16) -> [UInt8] {
            var name = Array(name.utf8)
            if !name.isEmpty { name += [UInt8](repeating: 0, count: pad - name.count % pad) }
            var header = inotify_event()  // `char name[]` hides the memberwise initializer
            header.wd = wd
            header.mask = UInt32(mask)
            header.len = UInt32(name.count)
            return withUnsafeBytes(of: &header) { Array($0) } + name
        }
        let buffer = event(IN_MOVED_TO, "a.json") + event(IN_Q_OVERFLOW, wd: -1) + event(IN_CLOSE_WRITE, ".a.json")
            + event(IN_CLOSE_WRITE, "b.json", pad: 32) + event(IN_MOVED_TO | IN_ISDIR, "dir.json")
            + event(IN_MOVED_TO, "x.txt") + event(IN_DELETE_SELF) + event(IN_IGNORED)
            + event(IN_MODIFY, "w.json") + event(IN_MODIFY, "w.json") + event(IN_CREATE | IN_ISDIR, "d.json")
            + event(IN_MODIFY, ".w.json")
            + Array(event(IN_MOVED_TO, "truncated.json").dropLast(4))
        let hints = buffer.withUnsafeBytes(SpoolWatcher.hints(parsing:))
        #expect(hints == [.file("a.json"), .rescan(.overflow), .file("b.json"), .file("dir.json"),
                          .rescan(.directoryGone), .rescan(.directoryGone), .writing("w.json")])
        let bad = event(IN_MOVED_TO, "") + [0x66, 0xFF, 0x2E, 0x6A, 0x73, 0x6F, 0x6E, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        var fixed = bad
        fixed[12] = 16  // len
        #expect(fixed.withUnsafeBytes(SpoolWatcher.hints(parsing:)).isEmpty)  // non-UTF-8 names wait for a scan
    }

    @Test func aFullBufferTurnsDroppedHintsIntoARescan() async {
        let (stream, continuation) = AsyncStream.makeStream(of: SpoolHint.self, bufferingPolicy: .bufferingOldest(2))
        let queue = DispatchQueue(label: "test.feed")
        let feed = HintFeed(continuation: continuation, queue: queue)
        queue.sync { for i in 0..<10 { feed.send(.file("f\(i).json")) } }
        let hints = await collect(stream) { $0.contains(.rescan(.hintsDropped)) }
        #expect(hints == [.file("f0.json"), .file("f1.json"), .rescan(.hintsDropped)])
        continuation.finish()
    }
}
