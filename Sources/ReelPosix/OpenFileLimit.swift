import Glibc

/// The open-file limit (RLIMIT_NOFILE) of this process.
public struct OpenFileLimit: Sendable, Equatable {
    public var soft: UInt64
    public var hard: UInt64

    /// The limit now in force.
    public static func current() throws(PosixError) -> OpenFileLimit {
        var limit = rlimit()
        try Posix.retrying("getrlimit", "RLIMIT_NOFILE") { getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) }
        return OpenFileLimit(soft: UInt64(limit.rlim_cur), hard: UInt64(limit.rlim_max))
    }

    /// Raises the soft limit to the hard one (a daemon holding many connections and files should not stop at the
    /// 1,024 a login shell starts with) and returns the limit now in force. `LimitNOFILE=` in the unit sets the
    /// hard limit.
    @discardableResult
    public static func raiseSoftToHard() throws(PosixError) -> OpenFileLimit {
        let now = try current()
        guard now.soft < now.hard else { return now }
        var limit = rlimit(rlim_cur: rlim_t(now.hard), rlim_max: rlim_t(now.hard))
        try Posix.retrying("setrlimit", "RLIMIT_NOFILE") { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) }
        return try current()
    }
}
