import Glibc
import ReelCore

/// File names in the spool are raw bytes: a hostile writer may use any byte but `/` and NUL.
enum SpoolName {
    static let json = Array(".json".utf8)

    /// One path component, no `/`, no NUL, not `.` or `..`, at most NAME_MAX bytes: it cannot leave its directory.
    static func isPlain(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.count <= Int(NAME_MAX) && name != [0x2E] && name != [0x2E, 0x2E]
            && !name.contains(0x2F) && !name.contains(0)
    }

    /// The name as a String when it is valid UTF-8.
    static func decode(_ name: [UInt8]) -> String? { String(validating: name, as: UTF8.self) }

    /// A printable form for logs and reports: invalid bytes become `\xNN`.
    static func display(_ name: [UInt8]) -> String {
        if let s = decode(name) { return s }
        return name.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "\\x" + hex2($0) }.joined()
    }

    /// What a watcher hint or a scan keeps: UTF-8, no leading dot, ends in `.json` (with something before it).
    static func isCandidate(_ name: [UInt8]) -> Bool {
        name.first != 0x2E && name.count > json.count && name.suffix(json.count).elementsEqual(json)
            && decode(name) != nil
    }

    static func hex2(_ b: UInt8) -> String { Hex.string(CollectionOfOne(b)) }

    /// The spool's temporary files: `.reel.<random>.tmp` (a dotfile, so scans skip it; not derived from the final
    /// name, which may be NAME_MAX long).
    static let temporaryPrefix = Array(".reel.".utf8), temporarySuffix = Array(".tmp".utf8)

    static func newTemporary() -> [UInt8] { temporaryPrefix + Array(randomSuffix().utf8) + temporarySuffix }

    /// True for a name `newTemporary` makes.
    static func isTemporary(_ name: [UInt8]) -> Bool {
        name.count > temporaryPrefix.count + temporarySuffix.count && name.starts(with: temporaryPrefix)
            && name.suffix(temporarySuffix.count).elementsEqual(temporarySuffix)
            && name.dropFirst(temporaryPrefix.count).dropLast(temporarySuffix.count).allSatisfy {
                (0x30...0x39).contains($0) || (0x61...0x7A).contains($0)
            }
    }
}

/// Calls `body` with `name` as a NUL-terminated C string.
func withCName<R>(_ name: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    try (name + [0]).withUnsafeBufferPointer { buf in
        try buf.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}

/// `fstatat` without following a final symlink; nil with `errno` set when it fails.
func lstatAt(_ dir: Int32, _ name: [UInt8]) -> stat? {
    var st = stat()
    return withCName(name) { fstatat(dir, $0, &st, AT_SYMLINK_NOFOLLOW) } == 0 ? st : nil
}

/// Seconds since 1970 with nanoseconds.
/// The names in the directory open as `fd`, without `.` and `..`, read through a descriptor of its own (so scans
/// may overlap and `fd` keeps its offset). Throws `SpoolError.system` naming `path`.
func entryNames(_ fd: Int32, path: String) throws -> [[UInt8]] {
    let own = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard own >= 0, let dir = fdopendir(own) else {
        let err = errno
        if own >= 0 { close(own) }
        throw SpoolError.system("opendir", path, err)
    }
    defer { closedir(dir) }
    var names: [[UInt8]] = []
    while let entry = readdir(dir) {
        let raw = withUnsafeBytes(of: &entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
        if raw != [0x2E] && raw != [0x2E, 0x2E] { names.append(raw) }
    }
    return names
}

func seconds(_ t: timespec) -> Double { Double(t.tv_sec) + Double(t.tv_nsec) / 1e9 }

func fileType(_ st: stat) -> mode_t { st.st_mode & S_IFMT }

/// Writes all of `bytes` to `fd`, retrying on EINTR and short writes; returns 0 or an errno.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
    bytes.withUnsafeBytes { buf in
        var off = 0
        while off < buf.count {
            let n = write(fd, buf.baseAddress! + off, buf.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            off += n
        }
        return 0
    }
}

/// A random suffix for temporary names, so two writers never pick the same one.
func randomSuffix() -> String { String(UInt64.random(in: .min ... .max), radix: 36) }

private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32

/// glibc's `renameat2` (2.28+), looked up at run time: Swift's Glibc module does not import it (it needs
/// `_GNU_SOURCE`), and `syscall(2)` is variadic, so Swift cannot call it either.
private let renameat2Function: RenameAt2? = {
    guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "renameat2") else { return nil }
    return unsafeBitCast(sym, to: RenameAt2.self)
}()

private let renameNoReplaceFlag: UInt32 = 1  // RENAME_NOREPLACE from <linux/fs.h>

/// Moves `fromDir/from` to `toDir/to` without ever replacing an existing `to`, and without following links
/// (rename moves a symlink or special file itself). Returns 0 or an errno (EEXIST when `to` exists).
///
/// Uses `renameat2(RENAME_NOREPLACE)`; where the filesystem lacks it (EINVAL, e.g. NFS) it falls back to
/// `linkat` + `unlinkat` for non-directories (atomic no-replace) and to check-then-`renameat` for directories.
func renameNoReplace(_ fromDir: Int32, _ from: [UInt8], _ toDir: Int32, _ to: [UInt8],
                     allowRenameat2: Bool = true) -> Int32 {
    withCName(from) { f in
        withCName(to) { t in
            if allowRenameat2, let renameat2 = renameat2Function {
                if renameat2(fromDir, f, toDir, t, renameNoReplaceFlag) == 0 { return 0 }
                let err = errno
                if err != EINVAL && err != ENOSYS { return err }
            }
            var st = stat()
            guard fstatat(fromDir, f, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return errno }
            if fileType(st) == S_IFDIR {
                var other = stat()
                if fstatat(toDir, t, &other, AT_SYMLINK_NOFOLLOW) == 0 { return EEXIST }
                return renameat(fromDir, f, toDir, t) == 0 ? 0 : errno
            }
            guard linkat(fromDir, f, toDir, t, 0) == 0 else { return errno }
            return unlinkat(fromDir, f, 0) == 0 ? 0 : errno
        }
    }
}

/// The open-file limit (RLIMIT_NOFILE) of this process.
public struct OpenFileLimit: Sendable, Equatable {
    public var soft: UInt64
    public var hard: UInt64

    /// The limit now in force.
    public static func current() throws -> OpenFileLimit {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SpoolError.system("getrlimit", "RLIMIT_NOFILE", errno, hint: "none") }
        return OpenFileLimit(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one (a daemon holding many connections and files should not stop at the
    /// 1,024 a login shell starts with) and returns the limit now in force.
    @discardableResult
    public static func raiseSoftToHard() throws -> OpenFileLimit {
        let now = try current()
        guard now.soft < now.hard else { return now }
        var limit = rlimit(rlim_cur: rlim_t(now.hard), rlim_max: rlim_t(now.hard))
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { throw SpoolError.system("setrlimit", "RLIMIT_NOFILE", errno, hint: "LimitNOFILE= in the unit sets the hard limit") }
        return try current()
    }
}
