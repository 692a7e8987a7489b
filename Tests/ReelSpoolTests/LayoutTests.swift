import Foundation
import Glibc
@testable import ReelSpool
import Testing

@Suite struct LayoutTests {
    func mode(_ path: String) -> mode_t {
        var st = stat()
        _ = stat(path, &st)
        return st.st_mode & 0o7777
    }

    @Test func prepareCreatesEveryDirectoryWithExactModes() throws {
        let t = try TempSpool()
        let old = umask(0o077)
        defer { umask(old) }
        #expect(mode(t.layout.root) == 0o755)
        #expect(mode(t.layout.tmp) == 0o3770)
        #expect(mode(t.layout.incoming) == 0o3770)
        #expect(mode(t.layout.rejected) == 0o750)
        try t.layout.prepare()  // idempotent
        #expect(mode(t.layout.incoming) == 0o3770)
    }

    @Test func prepareLeavesExistingDirectoriesAlone() throws {
        let t = try TempSpool()
        chmod(t.layout.incoming, 0o700)
        try t.layout.prepare()
        #expect(mode(t.layout.incoming) == 0o700)
    }

    @Test func aFileWhereADirectoryBelongsIsAClearError() throws {
        let t = try TempSpool()
        rmdir(t.layout.rejected)
        try put(t.layout.rejected, "not a dir")
        let error = #expect(throws: SpoolError.self) { try t.layout.prepare() }
        #expect(error?.code == .notADirectory)
        #expect(error?.path == t.layout.rejected)
    }

    @Test func directoriesOnDifferentFilesystemsAreRefused() throws {
        let t = try TempSpool()
        var shm = stat(), mine = stat()
        guard stat("/dev/shm", &shm) == 0, stat(t.layout.root, &mine) == 0, shm.st_dev != mine.st_dev else {
            try Test.cancel("/dev/shm is missing or on the same filesystem as the temporary directory")
        }
        let elsewhere = "/dev/shm/reelspool-\(UUID().uuidString)"
        mkdir(elsewhere, 0o700)
        defer { rmdir(elsewhere) }
        rmdir(t.layout.tmp)
        symlink(elsewhere, t.layout.tmp)
        let error = #expect(throws: SpoolError.self) { try t.layout.prepare() }
        #expect(error?.code == .crossDevice)
        #expect(error?.path == t.layout.tmp)
        #expect(error?.hint.contains("one filesystem") == true)
    }

    @Test func missingIncomingMakesOpeningFailClearly() throws {
        let t = try TempSpool()
        let error = #expect(throws: SpoolError.self) {
            _ = try SpoolDirectory(layout: SpoolLayout(root: t.base + "/nowhere"))
        }
        #expect(error?.errno == ENOENT)
    }
}
