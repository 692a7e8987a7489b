import Foundation
import Glibc

/// A reply read by `TestHTTP`: status, lower-cased headers, body, and whether the body was complete.
public struct TestHTTPResponse: Sendable {
    public var status: Int
    public var headers: [String: String]
    public var body: [UInt8]
    /// False when the connection closed before `Content-Length` bytes (or the last chunk) arrived.
    public var complete: Bool

    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object; throws when it is not one.
    public func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw TestHTTPError(description: "body is not a JSON object: \(text)")
        }
        return object
    }

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

public struct TestHTTPError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The errno behind the failure (ECONNRESET for a reset), 0 if none.
    public var errno: Int32 = 0

    public init(description: String, errno: Int32 = 0) {
        self.description = description
        self.errno = errno
    }
}

/// One request for `TestHTTP.exchange`.
public struct TestHTTPRequest: Sendable {
    public var method: String
    public var target: String
    public var headers: [String: String]
    public var body: [UInt8]

    public init(_ method: String, _ target: String, headers: [String: String] = [:], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    public init(_ method: String, _ target: String, headers: [String: String] = [:], json: String) {
        var h = headers
        h["Content-Type"] = h["Content-Type"] ?? "application/json"
        self.init(method, target, headers: h, body: Array(json.utf8))
    }
}

/// A tiny blocking HTTP/1.1 client for tests (FoundationNetworking may be absent). Its socket work runs on a
/// thread of its own, never on Swift's cooperative pool.
public enum TestHTTP {
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unix(path: String)

        /// Parses `http://HOST:PORT` (a path after it is ignored).
        public init?(url: String) {
            guard url.hasPrefix("http://") else { return nil }
            let hostPort = url.dropFirst(7).split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
            guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...])
            else { return nil }
            self = .tcp(host: String(hostPort[..<colon]), port: port)
        }
    }

    /// Sends `requests` one after another over one keep-alive connection and reads each reply. `HEAD` replies
    /// carry no body. A connection the server resets or closes is reported as a thrown `TestHTTPError`, unless
    /// some reply bytes arrived (then the reply comes back with `complete == false`).
    public static func exchange(_ endpoint: Endpoint, _ requests: [TestHTTPRequest],
                                timeout: Double = 30) async throws -> [TestHTTPResponse] {
        try await withCheckedThrowingContinuation { continuation in
            // A thread of its own: libdispatch on Linux adds global-queue threads only slowly when they block.
            Thread {
                continuation.resume(with: Result { try blockingExchange(endpoint, requests, timeout: timeout) })
            }.start()
        }
    }

    /// One request on a fresh connection.
    public static func send(_ endpoint: Endpoint, _ request: TestHTTPRequest,
                            timeout: Double = 30) async throws -> TestHTTPResponse {
        try await exchange(endpoint, [request], timeout: timeout)[0]
    }

    static func blockingExchange(_ endpoint: Endpoint, _ requests: [TestHTTPRequest],
                                 timeout: Double) throws -> [TestHTTPResponse] {
        let fd = try connect(endpoint, timeout: timeout)
        defer { close(fd) }
        var reader = Reader(fd: fd)
        var replies: [TestHTTPResponse] = []
        for request in requests {
            try sendAll(fd, bytes(of: request))
            replies.append(try reader.readResponse(isHead: request.method == "HEAD"))
        }
        return replies
    }

    /// `request` as it goes on the wire.
    static func bytes(of request: TestHTTPRequest) -> [UInt8] {
        var head = "\(request.method) \(request.target) HTTP/1.1\r\nHost: sandbox\r\n"
        for (k, v) in request.headers { head += "\(k): \(v)\r\n" }
        if !request.body.isEmpty || request.method == "POST" || request.method == "PUT" {
            head += "Content-Length: \(request.body.count)\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + request.body
    }

    /// A connected socket with a receive timeout; `receiveBuffer` sets SO_RCVBUF before connecting (a small one
    /// makes a slow reader hold the server back).
    static func connect(_ endpoint: Endpoint, timeout: Double, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd: Int32
        var rc: Int32
        func sizeBuffer(_ fd: Int32) {
            guard var size = receiveBuffer else { return }
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        switch endpoint {
        case .tcp(let host, let port):
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            sizeBuffer(fd)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr)
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case .unix(let path):
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            sizeBuffer(fd)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { raw in
                for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
            }
            rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
        }
        if rc != 0 {
            let e = errno
            close(fd)
            throw TestHTTPError(description: "connect \(endpoint): errno \(e)", errno: e)
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TestHTTPError(description: "send: errno \(errno)", errno: errno)
            }
            off += n
        }
    }

    private struct Reader {
        let fd: Int32
        var buffer: [UInt8] = []
        var eof = false

        init(fd: Int32) { self.fd = fd }

        /// Reads more bytes; false at end of stream. Throws on a reset or timeout.
        mutating func fill() throws -> Bool {
            if eof { return false }
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    buffer += chunk[0..<n]
                    return true
                }
                if n == 0 {
                    eof = true
                    return false
                }
                if errno == EINTR { continue }
                throw TestHTTPError(description: errno == ECONNRESET ? "connection reset by peer" : "recv: errno \(errno)",
                                    errno: errno)
            }
        }

        mutating func line() throws -> String? {
            while true {
                if let i = buffer.firstIndex(of: 10) {
                    let l = String(decoding: buffer[..<i], as: UTF8.self)
                    buffer.removeSubrange(...i)
                    return l.hasSuffix("\r") ? String(l.dropLast()) : l
                }
                if try !fill() { return nil }
            }
        }

        mutating func take(_ n: Int) throws -> ([UInt8], Bool) {
            while buffer.count < n { if try !fill() { break } }
            let k = min(n, buffer.count)
            let out = Array(buffer[..<k])
            buffer.removeSubrange(..<k)
            return (out, k == n)
        }

        mutating func readResponse(isHead: Bool) throws -> TestHTTPResponse {
            guard let statusLine = try line() else {
                throw TestHTTPError(description: "connection closed before any reply", errno: 0)
            }
            let fields = statusLine.split(separator: " ", maxSplits: 2)
            guard fields.count >= 2, let status = Int(fields[1]) else {
                throw TestHTTPError(description: "bad status line: \(statusLine)")
            }
            var headers: [String: String] = [:]
            while let l = try line(), !l.isEmpty {
                guard let c = l.firstIndex(of: ":") else { continue }
                headers[l[..<c].lowercased()] = l[l.index(after: c)...].trimmingCharacters(in: .whitespaces)
            }
            if status == 100 { return try readResponse(isHead: isHead) }
            if isHead || status == 204 || status == 304 {
                return TestHTTPResponse(status: status, headers: headers, body: [], complete: true)
            }
            if let length = headers["content-length"].flatMap(Int.init) {
                let (body, complete) = try takeTolerant(length)
                return TestHTTPResponse(status: status, headers: headers, body: body, complete: complete)
            }
            if headers["transfer-encoding"]?.lowercased() == "chunked" {
                var body: [UInt8] = []
                while let sizeLine = try line(), let size = Int(sizeLine.split(separator: ";")[0], radix: 16) {
                    if size == 0 {
                        _ = try line()
                        return TestHTTPResponse(status: status, headers: headers, body: body, complete: true)
                    }
                    let (chunk, ok) = try takeTolerant(size)
                    body += chunk
                    if !ok { break }
                    _ = try line()
                }
                return TestHTTPResponse(status: status, headers: headers, body: body, complete: false)
            }
            while try fill() {}
            let body = buffer
            buffer = []
            return TestHTTPResponse(status: status, headers: headers, body: body, complete: true)
        }

        /// Like `take`, but a reset mid-body counts as an early end, not an error.
        mutating func takeTolerant(_ n: Int) throws -> ([UInt8], Bool) {
            do {
                return try take(n)
            } catch let e as TestHTTPError where e.errno == ECONNRESET {
                let out = buffer
                buffer = []
                return (out, false)
            }
        }
    }
}

/// A reply that keeps coming (server-sent events, a long poll): the request is sent, then a thread of its own
/// reads the raw bytes (status line, headers, chunk framing and all) until the server closes or ``close()``.
public final class TestHTTPStream: Sendable {
    private let capture: Capture

    public init(_ endpoint: TestHTTP.Endpoint, _ request: TestHTTPRequest) throws {
        let fd = try TestHTTP.connect(endpoint, timeout: 3600)
        do {
            try TestHTTP.sendAll(fd, TestHTTP.bytes(of: request))
        } catch {
            Glibc.close(fd)
            throw error
        }
        capture = Capture(fd: fd, name: "http-stream")   // closes `fd` at EOF
    }

    deinit { close() }

    /// Everything read so far, as text.
    public var text: String { String(decoding: capture.bytes, as: UTF8.self) }

    /// Waits until `until(text)` holds (checked as bytes arrive), the stream ends, or `timeout` seconds pass;
    /// returns the text so far either way.
    @discardableResult
    public func wait(timeout: Double = 10, until: @escaping @Sendable (String) -> Bool) async -> String {
        _ = await capture.matched { until(String(decoding: $0, as: UTF8.self)) }.wait(timeout: timeout)
        return text
    }

    /// Ends the stream: the reader sees EOF and closes the socket (idempotent).
    public func close() { capture.interrupt() }
}
