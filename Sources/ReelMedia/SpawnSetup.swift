import Foundation

/// What every child process Reel starts gets, in the daemon (`runProcess`) and in the test kit (`Child`): only
/// descriptors 0, 1 and 2, an empty signal mask and default signal dispositions (reeld blocks and ignores signals
/// that its children must not inherit).
public enum SpawnSetup {
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not import.
    private static let closeFrom: CloseFrom? = {
        guard let sym = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(sym, to: CloseFrom.self)
    }()

    /// Closes every descriptor above 2 in the child (dup2'd descriptors lose O_CLOEXEC; the rest are closed). On an
    /// older glibc, closes what is open now (a racing open elsewhere may slip through; Reel's own are O_CLOEXEC).
    public static func closeFrom3(_ actions: inout posix_spawn_file_actions_t) {
        if let closeFrom, closeFrom(&actions, 3) == 0 { return }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            if let fd = Int32(name), fd > 2 { posix_spawn_file_actions_addclose(&actions, fd) }
        }
    }

    /// An empty signal mask and every catchable signal at its default disposition in the child. Returns the
    /// `posix_spawnattr_setflags` bits this needs; add your own (e.g. `POSIX_SPAWN_SETPGROUP`) and set them.
    public static func resetSignals(_ attributes: inout posix_spawnattr_t) -> Int32 {
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGKILL)
        sigdelset(&all, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &all)
        return POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    }
}
