import Foundation
import Glibc
@testable import ReelPosix
import Synchronization
import Testing

/// A fresh directory under the system's temporary directory, removed at the end of the test.
final class Scratch {
    let path: String
    let fd: Int32

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("reelposix-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        fd = try Posix.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    }

    deinit {
        Glibc.close(fd)
        try? FileManager.default.removeItem(atPath: path)
    }

    var names: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
    func text(_ name: String) -> String? { try? String(contentsOfFile: path + "/" + name, encoding: .utf8) }
    func put(_ name: String, _ text: String) throws { try text.write(toFile: path + "/" + name, atomically: false, encoding: .utf8) }
}

@Suite struct PosixErrorTests {
    @Test func theErrorNamesTheCallThePathAndTheErrnoInWords() {
        let error = PosixError(ENOSPC, call: "write", path: "/srv/out/b1/.x.tmp")
        #expect(error.description == "write /srv/out/b1/.x.tmp: No space left on device")
        #expect(PosixError(EROFS, call: "statvfs").description == "statvfs: Read-only file system")
    }

    @Test func aFailedCallThrowsItsOwnErrno() throws {
        let scratch = try Scratch()
        let missing = scratch.path + "/missing/file"
        #expect(throws: PosixError(ENOENT, call: "open", path: missing)) { try Posix.open(missing, O_RDONLY) }
        try scratch.put("file", "x")
        let notADirectory = scratch.path + "/file/below"
        #expect(throws: PosixError(ENOTDIR, call: "stat", path: notADirectory)) { try Posix.stat(notADirectory) }
        #expect(throws: PosixError(EEXIST, call: "mkdir", path: scratch.path)) { try Posix.mkdir(scratch.path, 0o755) }
    }
}

/// Counts SIGUSR2 deliveries for the interrupted-read test.
private let interruptions = Atomic<Int>(0)

@Suite(.serialized) struct RetryTests {
    @Test func aCallFailingWithEINTRIsMadeAgainAndOtherErrorsAreThrown() throws {
        var calls = 0
        let result = try Posix.retrying("read", "p") { () -> Int in
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            return 7
        }
        #expect(result == 7 && calls == 3)
        calls = 0
        #expect(throws: PosixError(EIO, call: "read", path: "p")) {
            try Posix.retrying("read", "p") { () -> Int in
                calls += 1
                if calls == 1 { errno = EINTR } else { errno = EIO }
                return -1
            }
        }
        #expect(calls == 2)
    }

    /// A real interruption: a thread blocked in `read(2)` on a pipe gets a signal whose handler was installed
    /// without SA_RESTART, so the kernel ends the read with EINTR. `Posix.read` reads again and returns the bytes
    /// written afterwards. Everything here runs on plain threads: nothing waits for Swift's cooperative pool.
    @Test func aReadInterruptedByASignalReturnsTheBytesThatCameAfterwards() throws {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptions.add(1, ordering: .relaxed) }
        action.sa_flags = 0  // no SA_RESTART
        sigemptyset(&action.sa_mask)
        var previous = sigaction()
        #expect(sigaction(SIGUSR2, &action, &previous) == 0)
        defer { sigaction(SIGUSR2, &previous, nil) }
        var fds: [Int32] = [-1, -1]
        try Posix.retrying("pipe") { pipe(&fds) }
        defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
        let (readEnd, writeEnd) = (fds[0], fds[1])

        let reader = Mutex<(thread: pthread_t, tid: Int32)?>(nil)
        let outcome = Mutex<Result<[UInt8], PosixError>?>(nil)
        let finished = DispatchSemaphore(value: 0)
        let before = interruptions.load(ordering: .relaxed)
        Thread {
            var unblocked = sigset_t()
            sigemptyset(&unblocked)
            sigaddset(&unblocked, SIGUSR2)
            pthread_sigmask(SIG_UNBLOCK, &unblocked, nil)
            reader.withLock { $0 = (pthread_self(), BlockingThreads.currentThreadID() ?? -1) }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 8)
            defer { buffer.deallocate() }
            let result = Result { () throws(PosixError) in
                let n = try Posix.read(readEnd, into: buffer, path: "pipe")
                return Array(buffer[..<n])
            }
            outcome.withLock { $0 = result }
            finished.signal()
        }.start()

        /// Waits up to 10 s for `condition`.
        func waitFor(_ what: String, _ condition: () -> Bool) throws {
            for _ in 0..<10_000 where !condition() { usleep(1_000) }
            try #require(condition(), "\(what)")
        }
        func sleeping(_ tid: Int32) -> Bool {
            let stat = (try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8)) ?? ""
            guard let close = stat.lastIndex(of: ")") else { return false }
            return stat[close...].dropFirst(2).first == "S"
        }
        try waitFor("the reader thread started") { reader.withLock { $0 } != nil }
        let (thread, tid) = reader.withLock { $0! }
        try waitFor("the reader blocked in read") { sleeping(tid) }
        #expect(pthread_kill(thread, SIGUSR2) == 0)
        try waitFor("the signal was handled") { interruptions.load(ordering: .relaxed) > before }
        try waitFor("the reader blocked in read again") { sleeping(tid) }
        #expect(outcome.withLock { $0 } == nil, "the read returned on the signal instead of reading again")
        try Posix.writeAll(writeEnd, Array("after".utf8), path: "pipe")
        #expect(finished.wait(timeout: .now() + 10) == .success)
        #expect(try outcome.withLock { $0 }?.get() == Array("after".utf8))
    }
}

@Suite struct AtomicFileTests {
    @Test func aWriteReplacesTheFileWholeAndLeavesNoTemporary() throws {
        let scratch = try Scratch()
        try scratch.put("report.json", "old")
        try AtomicFile.write(Array("new".utf8), in: scratch.fd, as: Array("report.json".utf8),
                             through: Array(".t1.tmp".utf8), mode: 0o640, directoryPath: scratch.path)
        #expect(scratch.names == ["report.json"])
        #expect(scratch.text("report.json") == "new")
        #expect(try Posix.stat(scratch.path + "/report.json").st_mode & 0o777 == 0o640 & ~currentUmask())
    }

    @Test func aFailedRenameRemovesTheTemporaryAndKeepsWhatWasThere() throws {
        let scratch = try Scratch()
        try Posix.mkdir(scratch.path + "/taken", 0o755)  // a file cannot be renamed over a directory
        try scratch.put("taken/inside", "kept")
        #expect(throws: PosixError(EISDIR, call: "renameat", path: scratch.path + "/taken")) {
            try AtomicFile.write(Array("new".utf8), in: scratch.fd, as: Array("taken".utf8),
                                 through: Array(".t2.tmp".utf8), mode: 0o644, directoryPath: scratch.path)
        }
        #expect(scratch.names == ["taken"])
        #expect(scratch.text("taken/inside") == "kept")
    }

    @Test func aTemporaryNameInUseIsNeitherOverwrittenNorRemoved() throws {
        let scratch = try Scratch()
        try scratch.put(".t3.tmp", "someone else's")
        #expect(throws: PosixError(EEXIST, call: "openat", path: scratch.path + "/.t3.tmp")) {
            try AtomicFile.write(Array("new".utf8), in: scratch.fd, as: Array("final".utf8),
                                 through: Array(".t3.tmp".utf8), mode: 0o644, directoryPath: scratch.path)
        }
        #expect(scratch.names == [".t3.tmp"])
        #expect(scratch.text(".t3.tmp") == "someone else's")
    }
}

private func currentUmask() -> mode_t {
    let mask = umask(0o022)
    umask(mask)
    return mask
}

@Suite struct RenameNoReplaceTests {
    @Test(arguments: [true, false])
    func neverReplaces(renameat2: Bool) throws {
        let scratch = try Scratch()
        try scratch.put("a", "a")
        try scratch.put("b", "b")
        try Posix.mkdir(scratch.path + "/d", 0o755)
        try Posix.mkdir(scratch.path + "/e", 0o755)
        func move(_ from: String, _ to: String) -> Int32 {
            do throws(PosixError) {
                try Posix.renameNoReplace(scratch.fd, Array(from.utf8), scratch.fd, Array(to.utf8), path: to,
                                          allowRenameat2: renameat2)
                return 0
            } catch {
                return error.code
            }
        }
        #expect(move("a", "b") == EEXIST)
        #expect(move("d", "e") == EEXIST)
        #expect(move("a", "c") == 0)
        #expect(move("d", "f") == 0)
        #expect(move("missing", "g") == ENOENT)
        #expect(scratch.names == ["b", "c", "e", "f"])
        #expect(scratch.text("b") == "b" && scratch.text("c") == "a")
    }
}

@Suite struct FilesystemTests {
    @Test func aFilesystemRefusesWritesWhenReadOnlyOrFull() throws {
        #expect(Posix.Filesystem(readOnly: true, availableBytes: 1 << 30).writeRefusal?.code == EROFS)
        #expect(Posix.Filesystem(readOnly: false, availableBytes: 0).writeRefusal?.code == ENOSPC)
        #expect(Posix.Filesystem(readOnly: false, availableBytes: 1).writeRefusal == nil)
        let scratch = try Scratch()
        let here = try Posix.filesystem(at: scratch.path)
        #expect(!here.readOnly && here.availableBytes > 0 && here.writeRefusal == nil)
        #expect(throws: PosixError(ENOENT, call: "statvfs", path: scratch.path + "/missing")) {
            try Posix.filesystem(at: scratch.path + "/missing")
        }
    }
}
