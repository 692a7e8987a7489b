import Glibc
import ReelPosix

/// Removes temporary files that a crash left behind: a writer's `.NAME.tmp-…` that never got renamed over its
/// final name stays forever otherwise. Used at start, for the spool and for the output tree, each with its own
/// name pattern, so nothing but a temporary file of that pattern is ever removed.
///
/// Only regular files whose name matches are removed; directories are opened with `O_NOFOLLOW` and entries are
/// examined with `lstat`, so a symlink (to a directory or to a file) is never followed, and a symlink or any
/// other non-regular entry is left alone.
public enum StaleTemporaries {
    /// Removes from the directory at `path` every regular file whose name `isTemporary` accepts and that was last
    /// modified before `modifiedBefore` (seconds since 1970; nil: any, for a directory only this process writes).
    /// A missing directory has nothing to clean. Returns the paths removed.
    public static func remove(in path: String, isTemporary: ([UInt8]) -> Bool,
                              modifiedBefore: Double? = nil) throws -> [String] {
        let fd: Int32
        do throws(PosixError) {
            fd = try Posix.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        } catch where error.code == ENOENT {
            return []
        } catch {
            throw SpoolError(error)
        }
        return try remove(inDirectory: fd, path: path, isTemporary: isTemporary, modifiedBefore: modifiedBefore)
    }

    /// `remove(in:)` for every subdirectory of `root` (not following symlinks), e.g. the output tree's batch
    /// directories. Returns the paths removed.
    public static func remove(inSubdirectoriesOf root: String, isTemporary: ([UInt8]) -> Bool) throws -> [String] {
        let rootFD: Int32
        do throws(PosixError) {
            rootFD = try Posix.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)  // the root itself may be a symlink (a mount)
        } catch where error.code == ENOENT {
            return []
        } catch {
            throw SpoolError(error)
        }
        defer { close(rootFD) }
        var removed: [String] = []
        for name in try spoolCall({ () throws(PosixError) in try Posix.entryNames(rootFD, path: root) }) {
            guard let st = lstatAt(rootFD, name), Posix.fileType(st) == S_IFDIR else { continue }
            let path = root + "/" + SpoolName.display(name)
            let fd: Int32
            do throws(PosixError) {
                fd = try Posix.openAt(rootFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, path: path)
            } catch where [ENOENT, ELOOP, ENOTDIR].contains(error.code) {
                continue  // gone or replaced meanwhile
            } catch {
                throw SpoolError(error)
            }
            removed += try remove(inDirectory: fd, path: path, isTemporary: isTemporary, modifiedBefore: nil)
        }
        return removed
    }

    /// The spool's own temporary files, `.reel.<random>.tmp` (`SpoolDirectory` writes reports and submitted
    /// manifests through them).
    public static func isSpoolTemporary(_ name: [UInt8]) -> Bool { SpoolName.isTemporary(name) }

    /// Cleans the spool at start: the daemon's own temporaries in `rejected/` (only reeld writes there), and
    /// `.reel.*.tmp` in `tmp/` and `incoming/` older than `clientGraceSeconds` (`reelctl submit` may be writing
    /// one right now). Other writers' files in `tmp/` are theirs and are left alone.
    public static func clean(_ layout: SpoolLayout, now: Double, clientGraceSeconds: Double = 3600) throws -> [String] {
        try remove(in: layout.rejected, isTemporary: isSpoolTemporary)
            + remove(in: layout.tmp, isTemporary: isSpoolTemporary, modifiedBefore: now - clientGraceSeconds)
            + remove(in: layout.incoming, isTemporary: isSpoolTemporary, modifiedBefore: now - clientGraceSeconds)
    }

    /// Takes ownership of `fd`.
    private static func remove(inDirectory fd: Int32, path: String, isTemporary: ([UInt8]) -> Bool,
                               modifiedBefore: Double?) throws -> [String] {
        defer { close(fd) }
        var removed: [String] = []
        var dirty = false
        for name in try spoolCall({ () throws(PosixError) in try Posix.entryNames(fd, path: path) }) where isTemporary(name) {
            guard let st = lstatAt(fd, name), Posix.fileType(st) == S_IFREG else { continue }
            if let modifiedBefore, Posix.seconds(st.st_mtim) >= modifiedBefore { continue }
            let shown = path + "/" + SpoolName.display(name)
            do throws(PosixError) {
                try Posix.unlinkAt(fd, name, path: shown)
            } catch where error.code == ENOENT {
                continue
            } catch {
                throw SpoolError(error)
            }
            dirty = true
            removed.append(shown)
        }
        if dirty { try spoolCall { () throws(PosixError) in try Posix.fsync(fd, path: path) } }
        return removed
    }
}
