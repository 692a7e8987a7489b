// The only Swift file in Reel that calls libsystemd (`sd_*`). Everything above it works with Swift types.
import CSystemd
import Glibc

/// Thin typed wrappers over libsystemd 252. Return values follow libsystemd: negative numbers are `-errno`.
enum LibSystemd {
    /// `sd_notify(0, state)`: sends one datagram to `$NOTIFY_SOCKET` (read on every call, left set).
    /// Returns > 0 when sent, 0 when `$NOTIFY_SOCKET` is unset, `-errno` on failure.
    static func notify(_ state: String) -> Int32 {
        sd_notify(0, state)
    }

    /// `sd_watchdog_enabled(0, &usec)`: `WATCHDOG_USEC` when the watchdog is on for this process, else nil.
    static func watchdogUSec() -> UInt64? {
        var usec: UInt64 = 0
        return sd_watchdog_enabled(0, &usec) > 0 && usec > 0 ? usec : nil
    }

    /// `sd_listen_fds_with_names(1, &names)`: the fds passed by socket activation with their names, in order
    /// (fd numbers start at `SD_LISTEN_FDS_START`). Empty unless `LISTEN_PID` is this process. Unsets `LISTEN_*`
    /// so children never inherit them, and sets `FD_CLOEXEC` on the passed fds.
    static func listenFDsWithNames() -> [(fd: Int32, name: String)] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(1, &names)
        defer {
            if let names {
                var i = 0
                while let p = names[i] { free(p); i += 1 }
                free(names)
            }
        }
        guard count > 0 else { return [] }
        return (0..<Int(count)).map { i in
            let name = names?[i].map { String(cString: $0) } ?? "unknown"
            return (SD_LISTEN_FDS_START + Int32(i), name)
        }
    }

    /// `sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0)`: true for a listening AF_UNIX stream socket.
    static func isListeningUnixStream(_ fd: Int32) -> Bool {
        sd_is_socket_unix(fd, Int32(SOCK_STREAM.rawValue), 1, nil, 0) > 0
    }

    /// `sd_journal_sendv`: one journal entry from `FIELD=value` strings (values may hold newlines or any bytes).
    /// Returns 0 on success (also when journald is absent: libsystemd ignores a missing socket), `-errno` on failure.
    static func journalSend(_ fields: [String]) -> Int32 {
        // One contiguous buffer, so every iovec points into memory that is valid for the whole call.
        var bytes: [UInt8] = []
        var spans: [(offset: Int, count: Int)] = []
        for field in fields {
            spans.append((bytes.count, field.utf8.count))
            bytes.append(contentsOf: field.utf8)
        }
        return bytes.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress
            let iovecs = spans.map { span in iovec(iov_base: base.map { $0 + span.offset }, iov_len: span.count) }
            return sd_journal_sendv(iovecs, Int32(iovecs.count))
        }
    }
}
