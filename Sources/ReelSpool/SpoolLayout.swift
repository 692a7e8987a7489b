import Glibc
import ReelPosix

/// The spool's directories: writers create files in `tmp/` (or as dotfiles in `incoming/`) and rename
/// finished `*.json` into `incoming/`; Reel moves refused files to `rejected/` next to a `NAME.error.json`.
public struct SpoolLayout: Sendable, Hashable {
    public var root: String
    public var tmp: String
    public var incoming: String
    public var rejected: String

    /// Modes for directories `prepare()` creates. `tmp/` and `incoming/` are setgid (files get the directory's
    /// group, e.g. `reel-clients`) and sticky (a user cannot remove another user's file), as in tmpfiles.d.
    public static let rootMode: mode_t = 0o755
    public static let dropMode: mode_t = 0o3770
    public static let rejectedMode: mode_t = 0o750

    /// The standard layout under `root`.
    public init(root: String) {
        let base = root.hasSuffix("/") && root.count > 1 ? String(root.dropLast()) : root
        self.init(root: base, tmp: base + "/tmp", incoming: base + "/incoming", rejected: base + "/rejected")
    }

    public init(root: String, tmp: String, incoming: String, rejected: String) {
        self.root = root
        self.tmp = tmp
        self.incoming = incoming
        self.rejected = rejected
    }

    /// Creates missing directories (the root's parent must exist) with the modes above, set exactly (umask does
    /// not apply). Directories that already exist are left as they are: their owner (tmpfiles.d, the admin)
    /// decides their mode. Then checks that each is a directory and that `tmp/`, `incoming/` and `rejected/` are
    /// on one filesystem, which `rename(2)` needs.
    public func prepare() throws {
        for (path, mode) in [(root, Self.rootMode), (tmp, Self.dropMode), (incoming, Self.dropMode),
                             (rejected, Self.rejectedMode)] {
            do throws(PosixError) {
                try Posix.mkdir(path, mode)
            } catch where error.code == EEXIST {
                continue  // its owner decides its mode
            } catch {
                throw SpoolError(error, hint: "create the spool's parent directory or fix [paths] spool in reel.toml")
            }
            try spoolCall { () throws(PosixError) in try Posix.chmod(path, mode) }
        }
        try checkFilesystems()
    }

    /// Checks that all four paths are directories and that `tmp/` and `rejected/` share `incoming/`'s filesystem.
    public func checkFilesystems() throws {
        func device(_ path: String) throws -> dev_t {
            let st = try spoolCall { () throws(PosixError) in try Posix.stat(path) }
            guard Posix.fileType(st) == S_IFDIR else {
                throw SpoolError(.notADirectory, path: path, message: "exists but is not a directory",
                                 hint: "remove or rename it; Reel creates the spool directories it needs")
            }
            return st.st_dev
        }
        _ = try device(root)
        let home = try device(incoming)
        for (label, path) in [("tmp/", tmp), ("rejected/", rejected)] where try device(path) != home {
            throw SpoolError(.crossDevice, path: path,
                             message: "\(label) is on a different filesystem from incoming/ (\(incoming))",
                             hint: "rename(2) cannot move files across filesystems: keep tmp/, incoming/ and "
                                 + "rejected/ as plain directories on one filesystem (no mounts or symlinks to "
                                 + "other disks)")
        }
    }
}
