import Foundation
import Glibc
@testable import ReelSpool
import Testing

/// Temporary files a crash left behind are removed at start: only names of the given pattern, only regular files,
/// never through a symlink.
@Suite struct StaleTemporariesTests {
    /// The output tree's pattern, `.<name>.tmp-<pid>-<random>` (ReelOutput's own is tested beside Delivery).
    static func outputTemporary(_ name: [UInt8]) -> Bool {
        let s = String(decoding: name, as: UTF8.self)
        return s.hasPrefix(".") && s.range(of: #"^\..+\.tmp-[0-9]+-[0-9]+$"#, options: .regularExpression) != nil
    }

    @Test func batchDirectoriesLoseTheirTemporariesAndKeepEverythingElse() throws {
        let t = try TempSpool()
        let root = t.base + "/output"
        let outside = t.base + "/elsewhere"
        for dir in [root + "/crash", root + "/other", outside] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        let stale = [root + "/crash/.job-064.json.tmp-28228-3378129899", root + "/other/.SHA256SUMS.tmp-1-2"]
        for path in stale { try put(path, "half") }
        let kept = [root + "/crash/job-064.json", root + "/crash/.job-065.mp4.part", root + "/crash/batch.json",
                    root + "/crash/.notes", root + "/crash/x.tmp-1-2", outside + "/.a.json.tmp-1-2"]
        for path in kept { try put(path, "keep") }
        #expect(symlink(outside, root + "/linked") == 0)                                    // a symlinked "batch"
        #expect(symlink(outside + "/.a.json.tmp-1-2", root + "/crash/.b.json.tmp-3-4") == 0) // a symlinked temp
        #expect(mkdir(root + "/crash/.d.json.tmp-5-6", 0o755) == 0)                          // a directory

        let removed = try StaleTemporaries.remove(inSubdirectoriesOf: root, isTemporary: Self.outputTemporary)
        #expect(Set(removed) == Set(stale))
        for path in stale { #expect(kind(path) == nil, "\(path)") }
        for path in kept { #expect(text(path) == "keep", "\(path)") }
        #expect(kind(root + "/crash/.b.json.tmp-3-4") == S_IFLNK)
        #expect(kind(root + "/crash/.d.json.tmp-5-6") == S_IFDIR)
        #expect(try StaleTemporaries.remove(inSubdirectoriesOf: root, isTemporary: Self.outputTemporary).isEmpty)
    }

    @Test func theSpoolLosesItsOwnTemporariesButNotAClientsFreshOne() throws {
        let t = try TempSpool()
        // A report write that crashed in rejected/, a submit that crashed long ago, and one being written now.
        #expect(try t.spool.submit(Array("{}".utf8), as: "x") == "x.json")
        try put(t.rejected + "/.reel.3f9a2b.tmp", "{}")
        try put(t.layout.tmp + "/.reel.old1.tmp", "{}", mtime: 1_600_000_000)
        try put(t.layout.tmp + "/.reel.new1.tmp", "{}")
        try put(t.layout.tmp + "/writer-own.tmp", "{}", mtime: 1_600_000_000)  // another writer's: not ours
        try put(t.incoming + "/.reel.old2.tmp", "{}", mtime: 1_600_000_000)
        let removed = try StaleTemporaries.clean(t.layout, now: Date().timeIntervalSince1970)
        #expect(Set(removed) == [t.rejected + "/.reel.3f9a2b.tmp", t.layout.tmp + "/.reel.old1.tmp",
                                 t.incoming + "/.reel.old2.tmp"])
        #expect(names(t.layout.tmp) == [".reel.new1.tmp", "writer-own.tmp"])
        #expect(names(t.incoming) == ["x.json"])
        #expect(names(t.rejected).isEmpty)
    }
}
