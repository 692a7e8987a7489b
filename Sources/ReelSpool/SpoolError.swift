import Glibc
import ReelPosix

/// A spool operation that failed, with what went wrong and how to fix it.
public struct SpoolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure, for callers that branch on it.
    public enum Code: Sendable, Hashable {
        /// A spool path exists but is not a directory.
        case notADirectory
        /// `tmp/`, `incoming/` and `rejected/` are not on one filesystem, so `rename(2)` cannot move between them.
        case crossDevice
        /// A name that cannot be used (syntax, `/`, too long).
        case invalidName
        /// `submit` found a file of that name already waiting in `incoming/`.
        case nameTaken
        /// A manifest over the spool's size cap.
        case tooLarge
        /// A directory this operation needs could not be opened (e.g. `rejected/` from a client account).
        case unavailable
        /// Any other system call failure; `errno` says which.
        case system
    }

    public let code: Code
    /// The path or name concerned.
    public let path: String
    /// The `errno` behind a system failure, 0 otherwise.
    public let errno: Int32
    public let message: String
    public let hint: String

    public init(_ code: Code, path: String, errno: Int32 = 0, message: String, hint: String) {
        self.code = code
        self.path = path
        self.errno = errno
        self.message = message
        self.hint = hint
    }

    /// A failed system call, from the `PosixError` it threw.
    init(_ error: PosixError, hint: String = "check the path and its permissions") {
        self.init(.system, path: error.path, errno: error.code, message: "\(error.call) failed: \(error.reason)",
                  hint: hint)
    }

    public var description: String { "\(path): \(message) (\(hint))" }
}

/// Runs `body`, turning the `PosixError` it throws into a `SpoolError` (`.system`) with `hint`.
func spoolCall<T>(hint: String = "check the path and its permissions",
                  _ body: () throws(PosixError) -> T) throws(SpoolError) -> T {
    do throws(PosixError) { return try body() } catch { throw SpoolError(error, hint: hint) }
}
