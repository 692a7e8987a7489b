import Foundation
import Glibc

/// A client connection driven by hand, for servers facing slow readers, idle clients and half-sent requests.
/// Its calls block: run them through `RawClient.onThread`.
public final class RawClient: Sendable {
    public let fd: Int32

    /// - Parameter receiveBuffer: SO_RCVBUF, set before connecting.
    public init(_ endpoint: TestHTTP.Endpoint, receiveBuffer: Int32? = nil, timeout: Double = 30) throws {
        fd = try TestHTTP.connect(endpoint, timeout: timeout, receiveBuffer: receiveBuffer)
    }

    deinit { Glibc.close(fd) }

    public func send(_ text: String) throws { try TestHTTP.sendAll(fd, Array(text.utf8)) }

    /// Everything until the server closes, read `chunk` bytes at a time with `pause` seconds between reads.
    /// A reset ends the read like a close does.
    public func readToEnd(chunk: Int = 65536, pause: Double = 0) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                out += buffer[0..<n]
                if pause > 0 { usleep(useconds_t(pause * 1_000_000)) }
            } else if n == 0 || errno == ECONNRESET {
                return out
            } else if errno != EINTR {
                throw TestHTTPError(description: "recv: errno \(errno)", errno: errno)
            }
        }
    }

    /// Whether the server closed the connection (end of stream or reset) within `timeout` seconds. Bytes that
    /// arrive meanwhile are read and dropped.
    public func closedByPeer(within timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&p, 1, Int32(left * 1000) + 1)
            if ready < 0 && errno != EINTR { return false }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
        }
    }

    /// Runs blocking socket work on a thread of its own, off Swift's cooperative pool.
    public static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}

extension TestHTTPResponse {
    /// Splits a whole HTTP/1.1 reply read off a socket into status, lower-cased headers and the raw body.
    public init(raw: [UInt8]) throws {
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        guard let end = raw.indices.first(where: { raw[$0...].starts(with: separator) }) else {
            throw TestHTTPError(description: "no complete head in \(raw.count) bytes")
        }
        let lines = String(decoding: raw[..<end], as: UTF8.self).components(separatedBy: "\r\n")
        let fields = lines[0].split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, let status = Int(fields[1]) else {
            throw TestHTTPError(description: "bad status line: \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let c = line.firstIndex(of: ":") else { continue }
            headers[line[..<c].lowercased()] = line[line.index(after: c)...].trimmingCharacters(in: .whitespaces)
        }
        let body = Array(raw[(end + 4)...])
        let expected = headers["content-length"].flatMap(Int.init)
        self.init(status: status, headers: headers, body: body, complete: expected.map { $0 == body.count } ?? true)
    }
}
