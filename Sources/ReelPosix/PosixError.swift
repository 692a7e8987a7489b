import Glibc

/// A failed system call: which call, on what, and the errno it left.
///
/// Every wrapper in `Posix` throws this, with `errno` read right after the call (before anything else can
/// change it), so a caller branches on `code` (`ENOENT`, `ENOSPC`, …) and shows `description` to a person.
public struct PosixError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The errno, e.g. `ENOENT`.
    public let code: Int32
    /// The system call, e.g. `"open"`, `"fsync"`, `"renameat"`.
    public let call: String
    /// The path (or other object, e.g. `RLIMIT_NOFILE`) the call was about; empty when there is none.
    public let path: String

    public init(_ code: Int32, call: String, path: String = "") {
        self.code = code
        self.call = call
        self.path = path
    }

    /// The errno left by the call that just failed on this thread.
    public static func last(_ call: String, _ path: String = "") -> PosixError {
        PosixError(errno, call: call, path: path)
    }

    /// The C library's text for `code`, e.g. "No space left on device".
    public var reason: String { Posix.describe(code) }

    /// `"<call> <path>: <reason>"`, e.g. `"open /srv/out/b1: Permission denied"`.
    public var description: String { path.isEmpty ? "\(call): \(reason)" : "\(call) \(path): \(reason)" }
}
