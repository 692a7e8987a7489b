import Foundation
import Glibc

/// The one way Reel replaces a file: a reader sees the old content or the new one, complete and durable, never
/// a part.
///
/// The bytes go to a temporary file in the same directory (created with `O_EXCL | O_NOFOLLOW`, so it is a new
/// inode nobody else holds), which is fsynced, closed and renamed over the final name; then the directory is
/// fsynced so the rename survives a power loss. If any step before the rename fails, the temporary file is
/// removed and the previous version (if any) stays in place.
public enum AtomicFile {
    /// Writes `bytes` to `dir/name` atomically and durably.
    /// - Parameters:
    ///   - dir: a descriptor of the directory.
    ///   - temporary: the temporary file's name in `dir` (each caller's start-up cleanup recognises its own
    ///     pattern, e.g. `.reel.<random>.tmp` in the spool).
    ///   - mode: the new file's mode (umask applies).
    ///   - directoryPath: the directory's path, for errors.
    ///   - syncDirectory: false for a caller that renames more into `dir` and fsyncs it once afterwards.
    /// - Throws: `PosixError` naming the step that failed; nothing new is left behind unless the rename was done
    ///   and only the directory fsync failed (the file is complete then, but may not survive a power loss).
    public static func write(_ bytes: some ContiguousBytes, in dir: Int32, as name: [UInt8], through temporary: [UInt8],
                             mode: mode_t, directoryPath: String, syncDirectory: Bool = true) throws(PosixError) {
        try writeTemporary(bytes, in: dir, as: temporary, mode: mode, directoryPath: directoryPath)
        do throws(PosixError) {
            try Posix.renameAt(dir, temporary, dir, name, path: display(directoryPath, name))
        } catch {
            try? Posix.unlinkAt(dir, temporary, path: display(directoryPath, temporary))  // the rename error is the one to report
            throw error
        }
        if syncDirectory { try Posix.fsync(dir, path: directoryPath) }
    }

    /// The first half of `write`: creates `dir/temporary` (it must not exist) with `bytes`, fsynced and closed, for
    /// a caller that publishes it with a rename of its own (e.g. `Posix.renameNoReplace` into another directory).
    /// On failure nothing is left behind.
    public static func writeTemporary(_ bytes: some ContiguousBytes, in dir: Int32, as temporary: [UInt8],
                                      mode: mode_t, directoryPath: String) throws(PosixError) {
        let path = display(directoryPath, temporary)
        let fd = try Posix.openAt(dir, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode,
                                  path: path)
        var open = true
        do throws(PosixError) {
            try Posix.writeAll(fd, bytes, path: path)
            try Posix.fsync(fd, path: path)
            open = false
            try Posix.close(fd, path: path)
        } catch {
            if open { Glibc.close(fd) }
            try? Posix.unlinkAt(dir, temporary, path: path)  // the write error is the one to report
            throw error
        }
    }

    /// `directory/name` for errors; bytes that are not UTF-8 show as U+FFFD.
    static func display(_ directory: String, _ name: [UInt8]) -> String {
        directory + "/" + String(decoding: name, as: UTF8.self)
    }
}
