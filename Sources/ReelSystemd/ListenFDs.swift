/// Socket activation (`sd_listen_fds(3)`): the control socket handed over by `reeld.socket`.
public enum ListenFDs {
    /// The name `reeld.socket` gives its listener (`FileDescriptorName=control`).
    public static let controlName = "control"

    /// The fds passed by the service manager, with their names (`LISTEN_FDNAMES`; "unknown" when unnamed).
    /// Empty unless `LISTEN_PID` is this process. Consumes `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` (unsets them),
    /// so call it once, early in `main`.
    public static func passed() -> [(fd: Int32, name: String)] {
        LibSystemd.listenFDsWithNames()
    }

    /// The socket-activated control socket: the fd named "control" (else the first one passed) when `LISTEN_PID`
    /// matches, and only if it is a listening AF_UNIX stream socket; nil otherwise (then bind the configured path).
    /// Hand it to NIO `ServerBootstrap.bind(_:)`; never `shutdown(2)` it (PID 1 keeps a copy for the next start).
    public static func controlSocket() -> Int32? {
        guard let fd = choose(passed(), name: controlName) else { return nil }
        return isListeningUnixStream(fd) ? fd : nil
    }

    /// Picks the fd named `name`, else the first one.
    static func choose(_ fds: [(fd: Int32, name: String)], name: String) -> Int32? {
        (fds.first { $0.name == name } ?? fds.first)?.fd
    }

    /// True if `fd` is a listening AF_UNIX stream socket (`sd_is_socket_unix`).
    public static func isListeningUnixStream(_ fd: Int32) -> Bool {
        LibSystemd.isListeningUnixStream(fd)
    }
}
