import Foundation
import Glibc
import ReelPosix
import ReelCore
@testable import ReelSpool
import Testing

/// Every hostile entry a writer can leave in `incoming/`: refused without following links, without blocking,
/// and moved to `rejected/` as the entry itself with a report beside it.
@Suite struct HostileSpoolTests {
    let report = Array(#"{"issues":[]}"#.utf8)

    /// Reads `name`, expects a refusal mentioning `words`, rejects it, and checks what landed in rejected/.
    func expectRefusedAndMoved(_ t: TempSpool, _ name: String, type: mode_t, words: String) throws {
        let result = withinFiveSeconds { [spool = t.spool] in spool.read(name) }
        let refusal = try #require(result?.refusal, "read(\(name)) gave \(String(describing: result))")
        #expect(refusal.reason.contains(words))
        #expect(refusal.issue.pointer == "" && refusal.issue.severity == .error)
        let moved = try #require(try t.spool.reject(name, report: report))
        #expect(moved.file == name)
        #expect(kind(t.incoming + "/" + name) == nil)
        #expect(kind(t.rejected + "/" + moved.file) == type)
        #expect(text(t.rejected + "/" + moved.report) == String(decoding: report, as: UTF8.self))
    }

    @Test func aRegularFileIsReadWithItsHashSizeAndMtime() throws {
        let t = try TempSpool()
        try put(t.incoming + "/a.json", "abc", mtime: 1_700_000_000)
        let file = try #require(t.spool.read("a.json").file)
        #expect(file.bytes == Array("abc".utf8))
        #expect(file.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(file.size == 3)
        #expect(file.mtime == 1_700_000_000)
    }

    @Test func aSymlinkToAFileOutsideIsNotFollowedAndTheLinkItselfIsMoved() throws {
        let t = try TempSpool()
        let outside = t.base + "/secret.txt"
        try put(outside, "do not read me", mtime: 1_600_000_000)
        symlink(outside, t.incoming + "/link.json")
        try expectRefusedAndMoved(t, "link.json", type: S_IFLNK, words: "symbolic link")
        #expect(text(outside) == "do not read me")
        var st = stat()
        stat(outside, &st)
        #expect(st.st_mtim.tv_sec == 1_600_000_000)
        var target = [CChar](repeating: 0, count: 4096)
        let n = readlink(t.rejected + "/link.json", &target, target.count)
        #expect(String(decoding: target[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self) == outside)
    }

    @Test func aSymlinkLoopIsRefused() throws {
        let t = try TempSpool()
        symlink("loop.json", t.incoming + "/loop.json")
        try expectRefusedAndMoved(t, "loop.json", type: S_IFLNK, words: "symbolic link")
    }

    @Test func aFIFOIsRefusedWithoutBlocking() throws {
        let t = try TempSpool()
        #expect(mkfifo(t.incoming + "/pipe.json", 0o644) == 0)
        try expectRefusedAndMoved(t, "pipe.json", type: S_IFIFO, words: "FIFO")
    }

    @Test func aDirectoryNamedLikeAManifestIsRefusedAndMoved() throws {
        let t = try TempSpool()
        mkdir(t.incoming + "/x.json", 0o755)
        try put(t.incoming + "/x.json/inner", "kept")
        try expectRefusedAndMoved(t, "x.json", type: S_IFDIR, words: "directory")
        #expect(text(t.rejected + "/x.json/inner") == "kept")
    }

    @Test func aUnixSocketIsRefused() throws {
        let t = try TempSpool()
        let path = t.incoming + "/sock.json"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        try expectRefusedAndMoved(t, "sock.json", type: S_IFSOCK, words: "socket")
    }

    @Test func aDeviceNodeIsRefusedWithoutBeingOpened() throws {
        let t = try TempSpool()
        // char 1:3 is /dev/null; opening a device can have effects (a watchdog, a tape), so it must never be opened.
        guard mknod(t.incoming + "/dev.json", S_IFCHR | 0o600, dev_t(0x103)) == 0 else {
            try Test.cancel("mknod needs CAP_MKNOD (errno \(errno)); device nodes untested here")
        }
        try expectRefusedAndMoved(t, "dev.json", type: S_IFCHR, words: "device")
    }

    @Test func aFileOverTheCapIsRefusedAndOneAtTheCapIsRead() throws {
        let t = try TempSpool(maxBytes: 100)
        try put(t.incoming + "/big.json", String(repeating: "x", count: 101))
        try put(t.incoming + "/fits.json", String(repeating: "x", count: 100))
        #expect(t.spool.read("fits.json").file?.size == 100)
        try expectRefusedAndMoved(t, "big.json", type: S_IFREG, words: "101 bytes, over the spool's cap of 100")
    }

    @Test func aFileThatGrowsPastTheCapWhileBeingReadIsRefused() throws {
        let t = try TempSpool(maxBytes: 100)
        try put(t.incoming + "/grows.json", "{}")
        let result = t.spool.read("grows.json") { _ in
            let fd = open(t.incoming + "/grows.json", O_WRONLY | O_APPEND)
            try? Posix.writeAll(fd, [UInt8](repeating: 0x20, count: 200), path: "")
            close(fd)
        }
        #expect(result.refusal?.reason.contains("grew past") == true)
    }

    @Test func aFileThatChangesWhileBeingReadIsNotReady() throws {
        let t = try TempSpool()
        try put(t.incoming + "/busy.json", "{\"a\":")
        let grown = t.spool.read("busy.json") { _ in
            let fd = open(t.incoming + "/busy.json", O_WRONLY | O_APPEND)
            try? Posix.writeAll(fd, Array("1}".utf8), path: "")
            close(fd)
        }
        #expect(grown.isNotReady)
        let truncated = t.spool.read("busy.json") { _ in _ = truncate(t.incoming + "/busy.json", 1) }
        #expect(truncated.isNotReady)
        #expect(t.spool.read("busy.json").file?.bytes == Array("{".utf8))  // settled: read whole
    }

    @Test func aNonUTF8NameIsSkippedByTheScanAndCanBeRejectedByItsRawName() throws {
        let t = try TempSpool()
        let raw: [UInt8] = Array("bad".utf8) + [0xFF] + Array(".json".utf8)
        let fd = Posix.withCName(Array(t.incoming.utf8) + [0x2F] + raw) { open($0, O_WRONLY | O_CREAT, 0o644) }
        #expect(fd >= 0)
        close(fd)
        let scan = try t.spool.scan()
        #expect(scan.candidates.isEmpty)
        let skip = try #require(scan.skipped.first)
        #expect(skip.reason == .nameNotUTF8 && skip.rawName == raw && skip.name == "bad\\xff.json")
        let moved = try #require(try t.spool.reject(rawName: raw, report: report))
        #expect(entries(t.incoming).isEmpty)
        #expect(Set(entries(t.rejected)) == [raw, Array("bad".utf8) + [0xFF] + Array(".error.json".utf8)])
        #expect(moved.file == "bad\\xff.json")
    }

    @Test func dotfilesAndOtherNamesAreSkippedNotRead() throws {
        let t = try TempSpool()
        try put(t.incoming + "/.wip.json", "{}")
        try put(t.incoming + "/notes.txt", "hi")
        try put(t.incoming + "/.json", "{}")
        try put(t.incoming + "/ok.json", "{}")
        let scan = try t.spool.scan()
        #expect(scan.candidates == ["ok.json"])
        #expect(Set(scan.skipped.map { "\($0.name):\($0.reason)" })
                == [".wip.json:dotfile", "notes.txt:notJSON", ".json:dotfile"])
    }

    @Test func aFileThatVanishesBetweenScanAndReadIsHarmless() throws {
        let t = try TempSpool()
        try put(t.incoming + "/gone.json", "{}")
        let earlier = try #require(t.spool.read("gone.json").file)
        #expect(try t.spool.scan().candidates == ["gone.json"])
        unlink(t.incoming + "/gone.json")
        #expect(t.spool.read("gone.json") == .vanished)
        #expect(try t.spool.accept(earlier) == false)
        #expect(try t.spool.reject("gone.json", report: report) == nil)
        #expect(entries(t.rejected).isEmpty)  // no orphan report
    }

    @Test func anUnreadableFile() throws {
        let t = try TempSpool()
        try put(t.incoming + "/locked.json", "{}")
        chmod(t.incoming + "/locked.json", 0)
        let result = t.spool.read("locked.json")
        if geteuid() == 0 {
            // root bypasses file permissions (CAP_DAC_OVERRIDE): the refusal path for EACCES is not reachable here.
            #expect(result.file?.bytes == Array("{}".utf8))
        } else {
            #expect(result.refusal?.reason.contains("permission denied") == true)
        }
    }

    @Test func namesWithSpacesAndUnicodeAreOrdinaryCandidates() throws {
        let t = try TempSpool()
        let name = "Été 2026 — shot 1 🎬.json"
        try put(t.incoming + "/" + name, "{}")
        #expect(try t.spool.scan().candidates == [name])
        let file = try #require(t.spool.read(name).file)
        #expect(file.name == name)
        #expect(try t.spool.accept(file))
        #expect(entries(t.incoming).isEmpty)
    }

    @Test func namesThatWouldLeaveTheDirectoryAreRefusedWithoutTouchingAnything() throws {
        let t = try TempSpool()
        try put(t.base + "/spool/escape.json", "{}")
        for name in ["../escape.json", "a/b.json", "", ".", ".."] {
            #expect(t.spool.read(name).refusal != nil, "\(name)")
            #expect(throws: SpoolError.self) { try t.spool.reject(name, report: report) }
        }
        #expect(text(t.base + "/spool/escape.json") == "{}")
    }

    /// An inotify watch for IN_OPEN/IN_ACCESS on `path` (a file, or a directory: then for the files in it).
    final class OpenWatch {
        let fd: Int32
        init(_ path: String) {
            fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
            inotify_add_watch(fd, path, UInt32(IN_OPEN | IN_ACCESS))
        }
        /// True if anything opened or read the watched file since the watch began.
        var sawOpen: Bool {
            var buffer = [UInt8](repeating: 0, count: 4096)
            return buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } > 0
        }
        deinit { close(fd) }
    }

    @Test func aHardLinkIsRemovedUnreadAndOnlyAReportIsKept() throws {
        let t = try TempSpool(linkGraceSeconds: 0)
        let secret = t.base + "/shadow"
        try put(secret, "root:$6$saltsalt$hashhash:19000:0:99999:7:::\n", mtime: 1_600_000_000)
        #expect(chown(secret, 0, 42) == 0 && chmod(secret, 0o640) == 0)
        #expect(link(secret, t.incoming + "/shadow.json") == 0)
        let watch = OpenWatch(secret)

        let refusal = try #require(t.spool.read("shadow.json").refusal)
        #expect(refusal.reason.contains("hard link") && refusal.linkToRemove != nil)
        let written = try #require(try t.spool.discard("shadow.json", refusal: refusal, report: report))
        #expect(written == "shadow.error.json")
        #expect(names(t.incoming).isEmpty)
        #expect(names(t.rejected) == ["shadow.error.json"])     // no second name for the secret in rejected/
        #expect(!watch.sawOpen, "the linked file was opened")
        var st = stat()
        #expect(lstat(secret, &st) == 0)
        #expect(st.st_nlink == 1 && st.st_uid == 0 && st.st_gid == 42 && st.st_mode & 0o7777 == 0o640)
        #expect(text(secret)?.hasPrefix("root:$6$") == true)
    }

    @Test func aHardLinkMadeMomentsAgoWaitsForItsWriterToDropTheOtherName() throws {
        let t = try TempSpool()  // the default grace: a link + unlink writer is mid-publish
        try put(t.layout.tmp + "/m", #"{"manifest_version": 1}"#)
        #expect(link(t.layout.tmp + "/m", t.incoming + "/m.json") == 0)
        #expect(t.spool.read("m.json").isNotReady)
        #expect(unlink(t.layout.tmp + "/m") == 0)
        #expect(t.spool.read("m.json").file != nil)
    }

    @Test func aFileOfAStrangerIsRefusedUnreadAndOneOfTheSpoolsGroupIsRead() throws {
        let t = try TempSpool()
        var home = stat()
        #expect(stat(t.incoming, &home) == 0)
        let stranger: uid_t = 4242, otherGroup: gid_t = home.st_gid == 4343 ? 4344 : 4343
        try put(t.incoming + "/foreign.json", #"{"secret": "not yours"}"#)
        #expect(chown(t.incoming + "/foreign.json", stranger, otherGroup) == 0)
        let watch = OpenWatch(t.incoming)
        let refusal = try #require(t.spool.read("foreign.json").refusal)
        #expect(refusal.reason.contains("owned by uid 4242") && refusal.linkToRemove == nil)
        #expect(!watch.sawOpen, "the stranger's file was opened")

        // A member of the spool's group (the group incoming/ and tmp/ give every new file) is an allowed writer.
        try put(t.incoming + "/member.json", "{}")
        #expect(chown(t.incoming + "/member.json", stranger, home.st_gid) == 0)
        #expect(t.spool.read("member.json").file?.bytes == Array("{}".utf8))
    }
}
