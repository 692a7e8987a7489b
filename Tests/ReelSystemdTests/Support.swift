import Foundation
import Glibc
import ReelTestKit
import Testing

/// Every ReelSystemd test runs in this one serialized suite: several of them set process environment variables
/// (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, `LISTEN_*`) that libsystemd reads, and setenv must not race other tests here.
@Suite(.serialized) enum SystemdTests {}

/// A fresh temporary directory, removed by `remove()`.
struct TempDir {
    let url: URL
    var path: String { url.path }
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("reel-systemd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// A monotonic microsecond source driven by a ManualClock.
func micros(_ clock: ManualClock) -> @Sendable () -> UInt64 {
    { UInt64((clock.now() * 1_000_000).rounded()) }
}

/// Binds an AF_UNIX datagram socket, points `$NOTIFY_SOCKET` at it, and reads what sd_notify sends.
final class NotifyListener {
    let dir: TempDir
    let fd: Int32

    init() throws {
        dir = try TempDir()
        let path = dir.path + "/notify.sock"
        fd = try bindUnix(path: path, type: SOCK_DGRAM, listen: false)
        setenv("NOTIFY_SOCKET", path, 1)
    }

    /// The next datagram, or nil after `timeout` seconds. Blocks the calling thread: async tests whose sender runs
    /// on the cooperative pool (the watchdog loop) use ``next(timeout:)``.
    func receive(timeout: Double = 5) -> String? { Self.receive(fd: fd, timeout: timeout) }

    /// ``receive(timeout:)`` on a thread of its own, so the wait never holds one of the pool's two threads.
    func next(timeout: Double = 5) async -> String? {
        let fd = self.fd
        return await withCheckedContinuation { continuation in
            Thread { continuation.resume(returning: Self.receive(fd: fd, timeout: timeout)) }.start()
        }
    }

    private static func receive(fd: Int32, timeout: Double) -> String? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buf = [UInt8](repeating: 0, count: 4096)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n >= 0 ? String(decoding: buf[..<n], as: UTF8.self) : nil
    }

    /// Everything queued right now.
    func drain() -> [String] {
        var out: [String] = []
        while let m = receive(timeout: 0) { out.append(m) }
        return out
    }

    func close() {
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        Glibc.close(fd)
        dir.remove()
    }
}

struct SocketError: Error { let call: String; let errno: Int32 }

/// A bound AF_UNIX socket of `type` at `path` (listening when asked).
func bindUnix(path: String, type: __socket_type, listen shouldListen: Bool) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SocketError(call: "socket", errno: errno) }
    var addr = sockaddr_un()
    addr.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &addr.sun_path) { raw in
        raw.copyBytes(from: Array(path.utf8.prefix(raw.count - 1)) + [0])
    }
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard ok == 0 else { close(fd); throw SocketError(call: "bind", errno: errno) }
    if shouldListen { guard listen(fd, 8) == 0 else { close(fd); throw SocketError(call: "listen", errno: errno) } }
    return fd
}
