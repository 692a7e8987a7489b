import Foundation
import Glibc

/// Reel's system calls, each in one place: a failure throws `PosixError` with the errno read right after the call,
/// and a call the kernel may interrupt (`EINTR`) is made again. Names are raw bytes (`[UInt8]`) where a hostile
/// writer chooses them (any byte but `/` and NUL), `String` where Reel built them.
///
/// These calls block: run them on `BlockingThreads`, never on Swift's cooperative pool or inside an actor.
public enum Posix {
    /// The C library's text for an errno, e.g. "No space left on device".
    public static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Runs `body`, a system call that returns -1 and sets `errno` on failure, until it does not fail with EINTR;
    /// returns its result, or throws the errno as a `PosixError` naming `call` and `path`.
    @discardableResult
    public static func retrying<T: FixedWidthInteger & SignedInteger>(
        _ call: String, _ path: String = "", _ body: () -> T
    ) throws(PosixError) -> T {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = errno
            if code != EINTR { throw PosixError(code, call: call, path: path) }
        }
    }

    /// Calls `body` with `name` as a NUL-terminated C string.
    public static func withCName<R, E: Error>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) throws(E) -> R)
        throws(E) -> R
    {
        let terminated = name + [0]
        return try terminated.withUnsafeBufferPointer { (buf) throws(E) -> R in
            try buf.withMemoryRebound(to: CChar.self) { (chars) throws(E) -> R in try body(chars.baseAddress!) }
        }
    }

    // MARK: - Descriptors

    /// `open(2)`; the caller closes the descriptor.
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) throws(PosixError) -> Int32 {
        try retrying("open", path) { Glibc.open(path, flags, mode) }
    }

    /// `openat(2)` of `name` in the directory open as `dir`; `path` names it in errors.
    public static func openAt(_ dir: Int32, _ name: [UInt8], _ flags: Int32, _ mode: mode_t = 0,
                              path: String) throws(PosixError) -> Int32 {
        try retrying("openat", path) { withCName(name) { Glibc.openat(dir, $0, flags, mode) } }
    }

    /// `close(2)`. EINTR is not retried: Linux has released the descriptor by then, and closing the number again
    /// could close one another thread has just opened. A failure (e.g. EIO from NFS) is thrown.
    public static func close(_ fd: Int32, path: String = "") throws(PosixError) {
        if Glibc.close(fd) != 0, errno != EINTR { throw PosixError.last("close", path) }
    }

    /// `read(2)` into `buffer`; 0 at end of file.
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                            path: String) throws(PosixError) -> Int {
        try retrying("read", path) { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// `pread(2)` into `buffer` from `offset`; 0 at end of file.
    public static func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: off_t,
                             path: String) throws(PosixError) -> Int {
        try retrying("pread", path) { Glibc.pread(fd, buffer.baseAddress, buffer.count, offset) }
    }

    /// Writes all of `bytes` to `fd`, across short writes.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(PosixError) {
        var offset = 0
        while offset < bytes.count {
            offset += try retrying("write", path) { Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset) }
        }
    }

    /// `writeAll` for an array or `Data`.
    public static func writeAll(_ fd: Int32, _ bytes: some ContiguousBytes, path: String) throws(PosixError) {
        let result: Result<Void, PosixError> = bytes.withUnsafeBytes { buffer in
            Result { () throws(PosixError) in try writeAll(fd, buffer, path: path) }
        }
        try result.get()
    }

    /// `ftruncate(2)`: the file open as `fd` becomes `length` bytes long.
    public static func truncate(_ fd: Int32, to length: off_t, path: String) throws(PosixError) {
        try retrying("ftruncate", path) { ftruncate(fd, length) }
    }

    /// `fsync(2)`: the file's data (or a directory's entries) are on disk when it returns.
    public static func fsync(_ fd: Int32, path: String) throws(PosixError) {
        try retrying("fsync", path) { Glibc.fsync(fd) }
    }

    // MARK: - Metadata

    /// `fstat(2)`.
    public static func fstat(_ fd: Int32, path: String) throws(PosixError) -> stat {
        var st = Glibc.stat()
        try retrying("fstat", path) { Glibc.fstat(fd, &st) }
        return st
    }

    /// `stat(2)`, following symlinks.
    public static func stat(_ path: String) throws(PosixError) -> stat {
        var st = Glibc.stat()
        try retrying("stat", path) { callStat(path, &st) }
        return st
    }

    /// `lstat(2)`: a final symlink is described, not followed.
    public static func lstat(_ path: String) throws(PosixError) -> stat {
        var st = Glibc.stat()
        try retrying("lstat", path) { Glibc.lstat(path, &st) }
        return st
    }

    /// `fstatat(2)` of `name` in `dir` without following a final symlink.
    public static func lstatAt(_ dir: Int32, _ name: [UInt8], path: String) throws(PosixError) -> stat {
        var st = Glibc.stat()
        try retrying("fstatat", path) { withCName(name) { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) } }
        return st
    }

    /// The file type bits of `st.st_mode` (`S_IFREG`, `S_IFDIR`, `S_IFLNK`, …).
    public static func fileType(_ st: stat) -> mode_t { st.st_mode & S_IFMT }

    /// A timestamp as seconds since 1970, with nanoseconds.
    public static func seconds(_ t: timespec) -> Double { Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }

    /// The canonical absolute path (`realpath(3)`): symlinks resolved, `.` and `..` removed.
    public static func realPath(_ path: String) throws(PosixError) -> String {
        guard let resolved = Glibc.realpath(path, nil) else { throw PosixError.last("realpath", path) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    // MARK: - Names

    /// `unlinkat(2)` of `name` in `dir` (`AT_REMOVEDIR` in `flags` for a directory).
    public static func unlinkAt(_ dir: Int32, _ name: [UInt8], flags: Int32 = 0, path: String) throws(PosixError) {
        try retrying("unlinkat", path) { withCName(name) { Glibc.unlinkat(dir, $0, flags) } }
    }

    /// `unlink(2)`.
    public static func unlink(_ path: String) throws(PosixError) {
        try retrying("unlink", path) { Glibc.unlink(path) }
    }

    /// `renameat(2)`: moves `from` in `fromDir` to `to` in `toDir`, replacing `to` if it exists.
    public static func renameAt(_ fromDir: Int32, _ from: [UInt8], _ toDir: Int32, _ to: [UInt8],
                                path: String) throws(PosixError) {
        try retrying("renameat", path) {
            withCName(from) { f in withCName(to) { t in Glibc.renameat(fromDir, f, toDir, t) } }
        }
    }

    /// `rename(2)`, replacing `to` if it exists.
    public static func rename(_ from: String, to: String) throws(PosixError) {
        try retrying("rename", to) { Glibc.rename(from, to) }
    }

    /// Moves `fromDir/from` to `toDir/to` without ever replacing an existing `to` (EEXIST then), and without
    /// following links (rename moves a symlink or special file itself).
    ///
    /// Uses `renameat2(RENAME_NOREPLACE)`; where the filesystem lacks it (EINVAL, e.g. NFS) it falls back to
    /// `linkat` + `unlinkat` for non-directories (atomic no-replace) and to check-then-`renameat` for directories.
    public static func renameNoReplace(_ fromDir: Int32, _ from: [UInt8], _ toDir: Int32, _ to: [UInt8],
                                       path: String, allowRenameat2: Bool = true) throws(PosixError) {
        try withCName(from) { (f) throws(PosixError) in
            try withCName(to) { (t) throws(PosixError) in
                if allowRenameat2, let renameat2 = renameat2Function {
                    do throws(PosixError) {
                        try retrying("renameat2", path) { renameat2(fromDir, f, toDir, t, renameNoReplaceFlag) }
                        return
                    } catch where error.code == EINVAL || error.code == ENOSYS {
                        // Not supported here: the fallback below.
                    }
                }
                var st = Glibc.stat()
                try retrying("fstatat", path) { fstatat(fromDir, f, &st, AT_SYMLINK_NOFOLLOW) }
                if fileType(st) == S_IFDIR {
                    var other = Glibc.stat()
                    if fstatat(toDir, t, &other, AT_SYMLINK_NOFOLLOW) == 0 {
                        throw PosixError(EEXIST, call: "renameat", path: path)
                    }
                    try retrying("renameat", path) { Glibc.renameat(fromDir, f, toDir, t) }
                    return
                }
                try retrying("linkat", path) { linkat(fromDir, f, toDir, t, 0) }
                try retrying("unlinkat", path) { Glibc.unlinkat(fromDir, f, 0) }
            }
        }
    }

    /// `mkdir(2)` with `mode` (umask applies).
    public static func mkdir(_ path: String, _ mode: mode_t) throws(PosixError) {
        try retrying("mkdir", path) { Glibc.mkdir(path, mode) }
    }

    /// `mkdirat(2)` of `name` in `dir` with `mode` (umask applies).
    public static func mkdirAt(_ dir: Int32, _ name: [UInt8], _ mode: mode_t, path: String) throws(PosixError) {
        try retrying("mkdirat", path) { withCName(name) { Glibc.mkdirat(dir, $0, mode) } }
    }

    /// `chmod(2)`: sets `mode` exactly.
    public static func chmod(_ path: String, _ mode: mode_t) throws(PosixError) {
        try retrying("chmod", path) { Glibc.chmod(path, mode) }
    }

    /// The names in the directory open as `fd`, without `.` and `..`, read through a descriptor of its own (so
    /// listings may overlap and `fd` keeps its offset).
    public static func entryNames(_ fd: Int32, path: String) throws(PosixError) -> [[UInt8]] {
        let own = try retrying("openat", path) { Glibc.openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard let dir = fdopendir(own) else {
            let failure = PosixError.last("fdopendir", path)
            Glibc.close(own)
            throw failure
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let raw = withUnsafeBytes(of: &entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if raw != [0x2E] && raw != [0x2E, 0x2E] { names.append(raw) }
        }
        return names
    }

    // MARK: - Filesystems

    /// What `statvfs(3)` says about the filesystem holding a path.
    public struct Filesystem: Sendable, Hashable {
        /// Mounted read-only (`ST_RDONLY`).
        public var readOnly: Bool
        /// Bytes an unprivileged writer may still use (`f_bavail × f_frsize`).
        public var availableBytes: UInt64

        public init(readOnly: Bool, availableBytes: UInt64) {
            self.readOnly = readOnly
            self.availableBytes = availableBytes
        }

        /// Why a write there would be refused, before trying it: `EROFS` when read-only, `ENOSPC` when no byte is
        /// left; nil when the filesystem takes writes.
        public var writeRefusal: PosixError? {
            readOnly ? PosixError(EROFS, call: "statvfs") : availableBytes == 0 ? PosixError(ENOSPC, call: "statvfs") : nil
        }
    }

    /// `statvfs(3)` of the filesystem holding `path`.
    public static func filesystem(at path: String) throws(PosixError) -> Filesystem {
        var fs = statvfs()
        try retrying("statvfs", path) { callStatvfs(path, &fs) }
        let readOnlyFlag: UInt = 1  // ST_RDONLY from <sys/statvfs.h>
        return Filesystem(readOnly: UInt(fs.f_flag) & readOnlyFlag != 0,
                          availableBytes: UInt64(fs.f_bavail) &* UInt64(fs.f_frsize))
    }
}

private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32

/// glibc's `renameat2` (2.28+), looked up at run time: Swift's Glibc module does not import it (it needs
/// `_GNU_SOURCE`), and `syscall(2)` is variadic, so Swift cannot call it either.
private let renameat2Function: RenameAt2? = {
    guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "renameat2") else { return nil }
    return unsafeBitCast(sym, to: RenameAt2.self)
}()

private let renameNoReplaceFlag: UInt32 = 1  // RENAME_NOREPLACE from <linux/fs.h>

/// `stat(2)` and `statvfs(3)` under names of their own: inside `Posix` its methods of the same names hide them.
private func callStat(_ path: String, _ st: inout stat) -> Int32 { stat(path, &st) }
private func callStatvfs(_ path: String, _ fs: inout statvfs) -> Int32 { statvfs(path, &fs) }
