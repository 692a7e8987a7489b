import Crypto
import Glibc
import ReelCore
import ReelPosix

/// A manifest read whole from `incoming/`.
public struct SpoolFile: Sendable, Hashable {
    /// The file's name in `incoming/`.
    public var name: String
    public var bytes: [UInt8]
    /// Lowercase hex SHA-256 of `bytes`: the daemon's intake key (same content = same file, across crashes).
    public var sha256: String
    public var size: Int
    /// Modification time, seconds since 1970.
    public var mtime: Timestamp
    /// The inode read, so `accept` never removes a different file renamed over the same name meanwhile.
    var device: UInt64
    var inode: UInt64
}

/// Why the spool refuses an entry, in the words a rejection report uses.
public struct SpoolRefusal: Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public var hint: String
    /// The entry is another name for a file that has more than one (a hard link): moving it into `rejected/`
    /// would keep a second name for someone else's file inside the spool, so `discard(_:refusal:report:)`
    /// unlinks it instead (the file itself and its other names are untouched). Nil for entries to move.
    public var linkToRemove: LinkIdentity?

    /// The inode a refused hard link named when it was examined: only that one is unlinked.
    public struct LinkIdentity: Sendable, Hashable {
        var device: UInt64
        var inode: UInt64
    }

    public init(reason: String, hint: String) {
        self.reason = reason
        self.hint = hint
    }

    /// The refusal as a whole-document error, so spool refusals and validation failures share one report format.
    public var issue: ManifestIssue { ManifestIssue(.error, "", reason, hint: hint) }
    public var description: String { "\(reason) (\(hint))" }
}

/// The outcome of `SpoolDirectory.read`.
public enum SpoolRead: Sendable, Hashable {
    /// The whole file, read consistently.
    case ok(SpoolFile)
    /// It is gone (ENOENT): another scan took it or its writer removed it. Nothing to do.
    case vanished
    /// It changed while being read, or a transient error (EMFILE, EIO) stopped the read: try again later (the
    /// next hint or rescan). Nothing is moved.
    case notReady(reason: String)
    /// It must not be ingested; move it away with `reject(_:report:)` using `refusal.issue`.
    case reject(SpoolRefusal)
}

/// One name a scan did not return as a candidate, and why; the daemon logs each once.
public struct SpoolSkip: Sendable, Hashable {
    public enum Reason: String, Sendable, Hashable {
        /// A leading dot: a writer's file in progress, by convention.
        case dotfile
        /// Not `*.json`.
        case notJSON
        /// Not valid UTF-8 (use `reject(rawName:report:)` to move it away).
        case nameNotUTF8
        /// Modified after the scan's `settledBefore` cutoff: maybe still being written in place; its writer's
        /// close (a watcher hint) or a later scan will bring it back.
        case settling
    }

    /// The raw name as found in the directory.
    public var rawName: [UInt8]
    /// The name for logs; invalid UTF-8 bytes shown as `\xNN`.
    public var name: String
    public var reason: Reason
}

/// The result of one pass over `incoming/`.
public struct SpoolScan: Sendable, Hashable {
    /// `*.json` names to read, oldest modification first, then by name (fair to every writer).
    public var candidates: [String]
    public var skipped: [SpoolSkip]
}

/// Where `reject` put a refused entry and its report, both inside `rejected/`.
public struct SpoolRejected: Sendable, Hashable {
    /// The entry's new name, e.g. `x.json` or `x.1.json` if `x.json` was taken.
    public var file: String
    /// The report's name, e.g. `x.error.json` / `x.1.error.json`.
    public var report: String
}

/// The spool's directories, opened once: every operation works relative to these descriptors, by name, with
/// `O_NOFOLLOW`, so nothing a writer puts in the spool can make Reel read or write elsewhere.
///
/// Thread-safe: it holds only immutable descriptors; each call opens what it needs.
public final class SpoolDirectory: Sendable {
    public static let defaultMaxBytes = 4 << 20

    public let layout: SpoolLayout
    /// Largest manifest read or submitted, in bytes.
    public let maxBytes: Int
    /// How long a file with a second name made moments ago is left alone before it is refused (see
    /// `defaultLinkGraceSeconds`).
    let linkGraceSeconds: Double
    private let incoming: Int32
    private let rejected: Int32?
    private let tmp: Int32?

    /// Opens `layout.incoming` (required) and `tmp/`, `rejected/` when this account may (a client running
    /// `reelctl submit` usually cannot open `rejected/`; then `reject` throws `.unavailable`, and `submit` writes
    /// its temporary file as a dotfile in `incoming/` if `tmp/` is unusable).
    public init(layout: SpoolLayout, maxBytes: Int = SpoolDirectory.defaultMaxBytes,
                linkGraceSeconds: Double = SpoolDirectory.defaultLinkGraceSeconds) throws {
        func openDir(_ path: String) throws(PosixError) -> Int32 { try Posix.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        incoming = try spoolCall(hint: "create the spool (reeld does at start) or fix [paths] spool") {
            () throws(PosixError) in try openDir(layout.incoming)
        }
        self.layout = layout
        self.maxBytes = maxBytes
        self.linkGraceSeconds = linkGraceSeconds
        // Optional: a client account usually may not open them (see above).
        rejected = try? openDir(layout.rejected)
        tmp = try? openDir(layout.tmp)
    }

    deinit {
        for fd in [incoming, rejected, tmp].compactMap({ $0 }) { close(fd) }
    }

    // MARK: scan

    /// Lists `incoming/`. Candidates are `*.json` names that are valid UTF-8 and not dotfiles, oldest first;
    /// everything else is a `SpoolSkip`. With `settledBefore`, names modified after that time are skipped as
    /// `.settling` (use `now - 2 s` for rescans; files that arrive by rename or close come with a watcher hint and
    /// are read at once). Candidates may still be symlinks, FIFOs or directories: `read` refuses those.
    ///
    /// Throws `.unavailable` if `incoming/` was removed since it was opened (then prepare the layout again and
    /// open a new `SpoolDirectory`; while this one holds the removed directory open, inotify reports nothing).
    public func scan(settledBefore cutoff: Timestamp? = nil) throws -> SpoolScan {
        if let home = try? Posix.fstat(incoming, path: layout.incoming), home.st_nlink == 0 {
            throw SpoolError(.unavailable, path: layout.incoming, message: "incoming/ was removed",
                             hint: "prepare the spool again and reopen it (restart reeld)")
        }
        var found: [(time: timespec, name: [UInt8], string: String)] = []
        var skipped: [SpoolSkip] = []
        for raw in try spoolCall({ () throws(PosixError) in try Posix.entryNames(incoming, path: layout.incoming) }) {
            let reason: SpoolSkip.Reason? =
                raw.first == 0x2E ? .dotfile
                : SpoolName.decode(raw) == nil ? .nameNotUTF8
                : SpoolName.isCandidate(raw) ? nil : .notJSON
            if let reason {
                skipped.append(SpoolSkip(rawName: raw, name: SpoolName.display(raw), reason: reason))
                continue
            }
            guard let st = lstatAt(incoming, raw) else { continue }  // vanished since readdir
            if let cutoff, Posix.seconds(st.st_mtim) > cutoff {
                skipped.append(SpoolSkip(rawName: raw, name: SpoolName.display(raw), reason: .settling))
                continue
            }
            found.append((st.st_mtim, raw, SpoolName.display(raw)))
        }
        found.sort { a, b in
            (a.time.tv_sec, a.time.tv_nsec) != (b.time.tv_sec, b.time.tv_nsec)
                ? (a.time.tv_sec, a.time.tv_nsec) < (b.time.tv_sec, b.time.tv_nsec)
                : a.name.lexicographicallyPrecedes(b.name)
        }
        return SpoolScan(candidates: found.map(\.string), skipped: skipped)
    }

    // MARK: read

    /// Reads `incoming/NAME` whole, safely: `lstat` first (a symlink, FIFO, socket, device or directory, a file
    /// with more than one link, or one not owned by an allowed writer is refused without being opened), then
    /// `openat(O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC)`, `fstat` on the descriptor (same inode, and the same
    /// checks again, before any byte is read), read to EOF with the cap enforced while reading, and a final
    /// `fstat`: a file whose size or mtime changed meanwhile is `.notReady`.
    ///
    /// Allowed writers: the file's owner is the daemon's user, root or `incoming/`'s owner, or its group is
    /// `incoming/`'s group (which the setgid `incoming/` and `tmp/` give every file created in them, e.g. by
    /// `reelctl submit` run by a member of that group).
    public func read(_ name: String) -> SpoolRead { read(name, midRead: nil) }

    /// `read`, with a test hook run on the open descriptor between the first `fstat` and the read.
    func read(_ name: String, midRead: ((Int32) -> Void)?) -> SpoolRead {
        let raw = Array(name.utf8)
        guard SpoolName.isPlain(raw) else {
            return .reject(SpoolRefusal(reason: "\"\(name)\" is not a plain file name",
                                        hint: "spool names are one path component without '/'"))
        }
        let path = layout.incoming + "/" + name
        let before: stat
        do throws(PosixError) { before = try Posix.lstatAt(incoming, raw, path: path) } catch { return failure(error.code, opening: name) }
        if let refusal = refuse(before) ?? refuseWriter(before) {
            if refusal.linkToRemove != nil, linkIsFresh(before) {
                return .notReady(reason: "it has another name, made moments ago (a writer that links, then unlinks)")
            }
            return .reject(refusal)
        }
        let fd: Int32
        do throws(PosixError) {
            fd = try Posix.openAt(incoming, raw, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, path: path)
        } catch {
            return failure(error.code, opening: name)
        }
        defer { close(fd) }
        let st: stat
        do throws(PosixError) { st = try Posix.fstat(fd, path: path) } catch { return failure(error.code, opening: name) }
        guard st.st_dev == before.st_dev, st.st_ino == before.st_ino else {
            return .notReady(reason: "it was replaced while being opened")
        }
        if let refusal = refuse(st) ?? refuseWriter(st) { return .reject(refusal) }
        midRead?(fd)

        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(st.st_size))
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
        defer { chunk.deallocate() }
        while true {
            let n: Int
            do throws(PosixError) { n = try Posix.read(fd, into: chunk, path: path) } catch { return .notReady(reason: "read failed: \(error.reason)") }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
            if bytes.count > maxBytes { return .reject(tooLarge(bytes.count, whileReading: true)) }
        }
        let after: stat
        do throws(PosixError) { after = try Posix.fstat(fd, path: path) } catch { return failure(error.code, opening: name) }
        guard after.st_size == st.st_size, bytes.count == Int(st.st_size),
              (after.st_mtim.tv_sec, after.st_mtim.tv_nsec) == (st.st_mtim.tv_sec, st.st_mtim.tv_nsec) else {
            return .notReady(reason: "it changed while being read (writers should write in tmp/ and rename)")
        }
        let digest = Hex.string(SHA256.hash(data: bytes))
        return .ok(SpoolFile(name: name, bytes: bytes, sha256: digest, size: bytes.count, mtime: Posix.seconds(st.st_mtim),
                             device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
    }

    private static let putRegularFile = "put a regular file there: write it in tmp/ and rename it into incoming/, "
        + "or use `reelctl submit FILE`"

    /// A refusal for anything but a regular file under the cap.
    private func refuse(_ st: stat) -> SpoolRefusal? {
        let what: String
        switch Posix.fileType(st) {
        case S_IFREG:
            return Int(st.st_size) > maxBytes ? tooLarge(Int(st.st_size), whileReading: false) : nil
        case S_IFLNK: what = "a symbolic link; Reel never follows links in the spool"
        case S_IFDIR: what = "a directory"
        case S_IFIFO: what = "a FIFO (named pipe)"
        case S_IFSOCK: what = "a socket"
        case S_IFCHR, S_IFBLK: what = "a device node"
        default: what = "not a regular file"
        }
        return SpoolRefusal(reason: "it is \(what), not a regular file", hint: Self.putRegularFile)
    }

    /// A writer may publish with `link` + `unlink` (as `renameNoReplace` does on NFS): for a moment the file
    /// has two names. Linking sets the file's ctime, so a hard link whose ctime is this recent is left for a
    /// later pass rather than refused; one that is still there afterwards is refused.
    public static let defaultLinkGraceSeconds = 2.0

    private func linkIsFresh(_ st: stat) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Posix.seconds(now) - Posix.seconds(st.st_ctim) < linkGraceSeconds
    }

    /// A refusal for a regular file that has other names (a hard link) or whose owner is not an allowed writer
    /// (see `read`). Neither is ever opened for reading.
    private func refuseWriter(_ st: stat) -> SpoolRefusal? {
        guard Posix.fileType(st) == S_IFREG else { return nil }
        if st.st_nlink > 1 {
            var refusal = SpoolRefusal(
                reason: "it is a hard link (the file has \(st.st_nlink) names); Reel never reads a file that has "
                    + "another name elsewhere, and removed this name without reading it",
                hint: Self.putRegularFile)
            refusal.linkToRemove = .init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            return refusal
        }
        guard let home = try? Posix.fstat(incoming, path: layout.incoming) else { return nil }  // the read's own open decides then
        if st.st_uid == geteuid() || st.st_uid == 0 || st.st_uid == home.st_uid || st.st_gid == home.st_gid {
            return nil
        }
        return SpoolRefusal(
            reason: "it is owned by uid \(st.st_uid), group \(st.st_gid): not the daemon's user, root, or "
                + "incoming/'s owner (uid \(home.st_uid)) or group (gid \(home.st_gid)); it was not read",
            hint: "write manifests as a member of the spool's group in tmp/ (setgid, so files get that group) and "
                + "rename them into incoming/, or use `reelctl submit FILE`")
    }

    private func tooLarge(_ size: Int, whileReading: Bool) -> SpoolRefusal {
        SpoolRefusal(reason: (whileReading ? "it grew past \(size - 1) bytes while being read" : "it is \(size) bytes")
                         + ", over the spool's cap of \(maxBytes) bytes",
                     hint: "split the batch into smaller manifests of at most \(maxBytes) bytes each")
    }

    /// Maps an errno from lstat/open/fstat to a result.
    private func failure(_ err: Int32, opening name: String) -> SpoolRead {
        switch err {
        case ENOENT, ENOTDIR:
            return .vanished
        case ELOOP:  // O_NOFOLLOW met a symlink that replaced the file after lstat
            return .reject(SpoolRefusal(reason: "it is a symbolic link; Reel never follows links in the spool",
                                        hint: Self.putRegularFile))
        case ENXIO:
            return .reject(SpoolRefusal(reason: "it is a socket or device, not a regular file",
                                        hint: Self.putRegularFile))
        case EACCES, EPERM:
            return .reject(SpoolRefusal(reason: "the daemon may not read it (permission denied)",
                                        hint: "make it readable by the reel user, e.g. mode 0640 with the spool's "
                                            + "group (incoming/ is setgid, so new files get that group)"))
        case ENAMETOOLONG:
            return .reject(SpoolRefusal(reason: "its name is too long", hint: "use a shorter name"))
        default:
            return .notReady(reason: "opening \(name) failed: \(Posix.describe(err))")
        }
    }

    // MARK: accept / reject

    /// Removes a file from `incoming/` once its jobs are committed, then fsyncs the directory. Only the inode that
    /// was read is removed: if another file was renamed over the name since, it stays (and gets its own hint).
    /// False if nothing was removed (already gone after a crash, or replaced).
    @discardableResult
    public func accept(_ file: SpoolFile) throws -> Bool { try accept([file]) == 1 }

    /// `accept` for many files with one directory fsync (none with `syncDirectory: false`, for a caller that
    /// recognises a file again by its content should a power loss undo the unlink); returns how many were removed.
    @discardableResult
    public func accept(_ files: [SpoolFile], syncDirectory: Bool = true) throws -> Int {
        var removed = 0
        for file in files {
            let raw = Array(file.name.utf8)
            guard SpoolName.isPlain(raw) else { throw invalidName(file.name) }
            guard let st = lstatAt(incoming, raw), UInt64(st.st_dev) == file.device, UInt64(st.st_ino) == file.inode
            else { continue }
            do throws(PosixError) {
                try Posix.unlinkAt(incoming, raw, path: layout.incoming + "/" + file.name)
                removed += 1
            } catch where error.code == ENOENT {
                // Gone meanwhile: nothing to remove.
            } catch {
                throw SpoolError(error)
            }
        }
        if syncDirectory { try spoolCall { () throws(PosixError) in try Posix.fsync(incoming, path: layout.incoming) } }
        return removed
    }

    /// Moves `incoming/NAME` (the entry itself: a symlink or FIFO is moved, never opened) to `rejected/NAME`,
    /// after writing `rejected/NAME.error.json` with `report` (temp file, fsync, rename). If either name is taken
    /// in `rejected/`, both get a numeric suffix: `x.1.json` with `x.1.error.json`. Returns nil, leaving no report,
    /// if the entry is gone.
    @discardableResult
    public func reject(_ name: String, report: [UInt8]) throws -> SpoolRejected? {
        try reject(rawName: Array(name.utf8), report: report)
    }

    /// `reject` for a name that is not valid UTF-8, as `SpoolSkip.rawName` gives it.
    @discardableResult
    public func reject(rawName raw: [UInt8], report: [UInt8]) throws -> SpoolRejected? {
        guard SpoolName.isPlain(raw) else { throw invalidName(SpoolName.display(raw)) }
        guard let rejected else {
            throw SpoolError(.unavailable, path: layout.rejected, message: "rejected/ could not be opened",
                             hint: "run as the daemon's user, which owns rejected/")
        }
        guard lstatAt(incoming, raw) != nil else { return nil }
        let json = SpoolName.json
        let hasJSON = raw.count > json.count && raw.suffix(json.count).elementsEqual(json)
        var base = hasJSON ? Array(raw.dropLast(json.count)) : raw
        let ext: [UInt8] = hasJSON ? json : []
        let reportExt = Array(".error.json".utf8)
        base = Array(base.prefix(Int(NAME_MAX) - reportExt.count - 6))  // room for ".NNNN" and the report suffix
        for k in 0..<10_000 {
            let stem = base + (k == 0 ? [] : Array(".\(k)".utf8))
            let target = stem + ext
            let reportName = stem + reportExt
            if lstatAt(rejected, target) != nil || lstatAt(rejected, reportName) != nil { continue }
            try writeReport(report, in: rejected, as: reportName)
            do throws(PosixError) {
                try Posix.renameNoReplace(incoming, raw, rejected, target,
                                          path: layout.incoming + "/" + SpoolName.display(raw))
            } catch {
                // Take the report back: it must not describe an entry that is not there.
                try spoolCall { () throws(PosixError) in
                    try Posix.unlinkAt(rejected, reportName, path: layout.rejected + "/" + SpoolName.display(reportName))
                }
                if error.code == EEXIST { continue }
                try spoolCall { () throws(PosixError) in try Posix.fsync(rejected, path: layout.rejected) }
                if error.code == ENOENT { return nil }
                throw SpoolError(error)
            }
            try spoolCall { () throws(PosixError) in
                try Posix.fsync(rejected, path: layout.rejected)
                try Posix.fsync(incoming, path: layout.incoming)
            }
            return SpoolRejected(file: SpoolName.display(target), report: SpoolName.display(reportName))
        }
        throw SpoolError(.system, path: layout.rejected, message: "no free name for \(SpoolName.display(raw))",
                         hint: "clean up rejected/")
    }

    /// Removes a refused hard link from `incoming/` without reading or moving it, and writes only its report,
    /// `rejected/NAME.error.json` (numbered like `reject`'s when taken). The name is unlinked only while it still
    /// names the inode that was examined (`refusal.linkToRemove`); unlinking one name of a file leaves the file
    /// and its other names as they were. Returns the report's name, or nil (no report) if the entry is gone or
    /// was replaced by another file meanwhile (which then gets its own read).
    @discardableResult
    public func discard(_ name: String, refusal: SpoolRefusal, report: [UInt8]) throws -> String? {
        let raw = Array(name.utf8)
        guard SpoolName.isPlain(raw), let link = refusal.linkToRemove else { throw invalidName(name) }
        guard let rejected else {
            throw SpoolError(.unavailable, path: layout.rejected, message: "rejected/ could not be opened",
                             hint: "run as the daemon's user, which owns rejected/")
        }
        guard let st = lstatAt(incoming, raw), UInt64(st.st_dev) == link.device, UInt64(st.st_ino) == link.inode
        else { return nil }
        do throws(PosixError) {
            try Posix.unlinkAt(incoming, raw, path: layout.incoming + "/" + name)
        } catch where error.code == ENOENT {
            return nil
        } catch {
            throw SpoolError(error)
        }
        try spoolCall { () throws(PosixError) in try Posix.fsync(incoming, path: layout.incoming) }
        let stem = name.hasSuffix(".json") ? String(name.dropLast(5)) : name
        for k in 0..<10_000 {
            let reportName = Array((stem.utf8.prefix(Int(NAME_MAX) - 17)) + (k == 0 ? [] : Array(".\(k)".utf8)))
                + Array(".error.json".utf8)
            if lstatAt(rejected, reportName) != nil { continue }
            try writeReport(report, in: rejected, as: reportName)
            try spoolCall { () throws(PosixError) in try Posix.fsync(rejected, path: layout.rejected) }
            return SpoolName.display(reportName)
        }
        throw SpoolError(.system, path: layout.rejected, message: "no free report name for \(name)",
                         hint: "clean up rejected/")
    }

    /// Writes a report into `rejected/` atomically through `.reel.<random>.tmp`; the caller fsyncs `rejected/`
    /// once the entry it describes is moved too.
    private func writeReport(_ bytes: [UInt8], in rejected: Int32, as name: [UInt8]) throws(SpoolError) {
        try spoolCall { () throws(PosixError) in
            try AtomicFile.write(bytes, in: rejected, as: name, through: SpoolName.newTemporary(), mode: 0o640,
                                 directoryPath: layout.rejected, syncDirectory: false)
        }
    }

    // MARK: submit

    /// The writer behind `reelctl submit`: puts `bytes` into `incoming/NAME.json` atomically. `name` is a batch
    /// style identifier, with or without `.json`. The file is written in `tmp/` (or as a dotfile in `incoming/`
    /// if this account cannot use `tmp/`), fsynced, and renamed in without replacing anything: if
    /// `incoming/NAME.json` exists, it throws `.nameTaken`. Returns the name in `incoming/`.
    public func submit(_ bytes: [UInt8], as name: String) throws -> String {
        let stem = name.hasSuffix(".json") ? String(name.dropLast(5)) : name
        guard Identifier.isValid(stem) else { throw invalidName(name) }
        guard bytes.count <= maxBytes else {
            throw SpoolError(.tooLarge, path: name, message: "\(bytes.count) bytes is over the spool's cap of "
                                 + "\(maxBytes) bytes", hint: "split the batch into smaller manifests")
        }
        let target = Array((stem + ".json").utf8)
        var dir = tmp ?? incoming
        var dirPath = tmp == nil ? layout.incoming : layout.tmp
        let temp = SpoolName.newTemporary()
        do throws(PosixError) {
            try AtomicFile.writeTemporary(bytes, in: dir, as: temp, mode: 0o640, directoryPath: dirPath)
        } catch where dir != incoming && (error.code == EACCES || error.code == EPERM) {
            (dir, dirPath) = (incoming, layout.incoming)
            try spoolCall { () throws(PosixError) in
                try AtomicFile.writeTemporary(bytes, in: dir, as: temp, mode: 0o640, directoryPath: dirPath)
            }
        } catch {
            throw SpoolError(error)
        }
        let path = layout.incoming + "/" + stem + ".json"
        do throws(PosixError) {
            try Posix.renameNoReplace(dir, temp, incoming, target, path: path)
        } catch {
            try spoolCall { () throws(PosixError) in
                try Posix.unlinkAt(dir, temp, path: dirPath + "/" + SpoolName.display(temp))
            }
            if error.code == EEXIST {
                throw SpoolError(.nameTaken, path: path,
                                 message: "a manifest of that name is already waiting in incoming/",
                                 hint: "submit it under another name, or wait until Reel has taken the first one")
            }
            throw SpoolError(error)
        }
        try spoolCall { () throws(PosixError) in try Posix.fsync(incoming, path: layout.incoming) }
        return stem + ".json"
    }

    private func invalidName(_ name: String) -> SpoolError {
        SpoolError(.invalidName, path: name, message: "\"\(name)\" is not a valid spool name",
                   hint: "use \(Identifier.syntax), optionally followed by .json")
    }
}
