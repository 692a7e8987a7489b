import Foundation
import Glibc

/// A `$NOTIFY_SOCKET` for a child process (e.g. reeld): an AF_UNIX datagram socket in a fresh temporary folder,
/// read by a thread of its own that stamps every datagram with its arrival time on `CLOCK_MONOTONIC`.
///
/// Unlike ReelSystemdTests' listener it never touches this process's environment: pass ``environment`` to the
/// child.
public final class NotifyCapture: @unchecked Sendable {
    // @unchecked: `received`, `closed` and `observer` are only touched under `lock`; `fd` and `dir` never change.

    /// One datagram: `KEY=value` lines.
    public struct Message: Sendable, CustomStringConvertible {
        /// Arrival, seconds on `CLOCK_MONOTONIC`.
        public let time: Double
        public let text: String
        /// The `KEY=value` assignments (a later duplicate key wins).
        public var fields: [String: String] {
            var out: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let eq = line.firstIndex(of: "=") else { continue }
                out[String(line[..<eq])] = String(line[line.index(after: eq)...])
            }
            return out
        }
        public var isWatchdog: Bool { fields["WATCHDOG"] == "1" }
        public var isReady: Bool { fields["READY"] == "1" }
        public var description: String { String(format: "%.3f ", time) + text.replacingOccurrences(of: "\n", with: " | ") }
    }

    public let path: String
    private let dir: URL
    private let fd: Int32
    private let lock = NSLock()
    private var received: [Message] = []
    private var closed = false
    private var observer: (@Sendable (Message) -> Void)?

    /// `NOTIFY_SOCKET=<path>`, for the child's environment.
    public var environment: [String: String] { ["NOTIFY_SOCKET": path] }

    public init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-notify-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        path = dir.appendingPathComponent("notify.sock").path
        fd = try UnixSocket.bind(path: path, type: SOCK_DGRAM)
        Thread { [self] in readLoop() }.start()
    }

    deinit { close() }

    private func readLoop() {
        var buf = [UInt8](repeating: 0, count: 8192)
        while !lock.withLock({ closed }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 50) == 1 else { continue }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { continue }
            let message = Message(time: Self.monotonic(), text: String(decoding: buf[..<n], as: UTF8.self))
            lock.withLock { observer }?(message)
            lock.withLock { received.append(message) }
        }
        // `close()` asked us to stop: the descriptor and the folder are ours to release (close() never waits).
        Glibc.close(fd)
        try? FileManager.default.removeItem(at: dir)
    }

    /// Runs `body` on the reader thread as each later datagram arrives, before the next is read: use it to observe
    /// the world at the instant a message arrives (e.g. whether a socket already answers when READY=1 comes).
    public func onReceive(_ body: @escaping @Sendable (Message) -> Void) { lock.withLock { observer = body } }

    /// Every datagram so far, in arrival order.
    public var messages: [Message] { lock.withLock { received } }

    /// Waits for the first message at index ≥ `from` that satisfies `match`; returns its index and the message.
    @discardableResult
    public func waitFor(_ what: String, from: Int = 0, timeout: Double = 20,
                        _ match: (Message) -> Bool) async throws -> (index: Int, message: Message) {
        let deadline = Self.monotonic() + timeout
        while true {
            let all = messages
            if from < all.count, let i = all[from...].firstIndex(where: match) { return (i, all[i]) }
            guard Self.monotonic() < deadline else {
                throw TestHTTPError(description: "no \(what) on NOTIFY_SOCKET within \(timeout) s; got:\n"
                                    + all.map(\.description).joined(separator: "\n"))
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Stops the reader, which then closes the socket and removes its folder within ~50 ms (idempotent, never
    /// blocks).
    public func close() {
        lock.withLock { closed = true }
    }

    /// `CLOCK_MONOTONIC` in seconds (the clock of ``Message/time``).
    public static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

/// Plain AF_UNIX sockets for tests: bind a datagram or listening socket, or check that a path accepts connections.
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let call: String
        public let errno: Int32
        public var description: String { "\(call): \(String(cString: strerror(errno)))" }
    }

    /// A socket of `type` bound at `path` (and listening, for stream sockets), close-on-exec.
    public static func bind(path: String, type: __socket_type, backlog: Int32 = 16) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(call: "socket", errno: errno) }
        var addr = address(path)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else { let e = errno; Glibc.close(fd); throw Failure(call: "bind \(path)", errno: e) }
        if type == SOCK_STREAM, listen(fd, backlog) != 0 {
            let e = errno; Glibc.close(fd); throw Failure(call: "listen", errno: e)
        }
        return fd
    }

    /// True if a stream connection to `path` is accepted (into the listen queue) right now.
    public static func accepts(path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        var addr = address(path)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        } == 0
    }

    private static func address(_ path: String) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8.prefix(raw.count - 1)) + [0])
        }
        return addr
    }
}
