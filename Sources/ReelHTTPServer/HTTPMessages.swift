import Foundation
import NIOCore
import NIOHTTP1

/// The process on the other end of a Unix-socket connection, read with `SO_PEERCRED` at accept.
public struct PeerCredentials: Sendable, Hashable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// One complete HTTP request: head plus the whole body (bounded by the server's `maxBodyBytes`).
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod
    /// The request target as sent, e.g. `/api/v1/tasks?page_no=2`.
    public var uri: String
    /// The percent-decoded path part of `uri`, e.g. `/api/v1/tasks`.
    public var path: String
    /// The path's segments, split at its `/` bytes and then percent-decoded one by one: a decoded segment may hold
    /// any character (an encoded `%2F` or a combining mark right after a slash) without moving a boundary.
    /// Empty segments are dropped. `/v1/jobs/a/b` gives `["v1", "jobs", "a", "b"]`.
    public var pathSegments: [String] {
        uri.utf8.prefix { $0 != UInt8(ascii: "?") }.split(separator: UInt8(ascii: "/")).map {
            percentDecoded(String(decoding: $0, as: UTF8.self), plusIsSpace: false)
        }
    }
    /// Percent-decoded query parameters (`+` is a space); the last value wins for repeated names.
    public var query: [String: String]
    public var headers: HTTPHeaders
    public var body: ByteBuffer
    /// Who connected, on Unix sockets; nil on TCP.
    public var peer: PeerCredentials?

    public init(method: HTTPMethod, uri: String, headers: HTTPHeaders = [:], body: ByteBuffer = ByteBuffer(),
                peer: PeerCredentials? = nil) {
        self.method = method
        self.uri = uri
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        self.path = percentDecoded(parts.first.map(String.init) ?? "/", plusIsSpace: false)
        self.query = parts.count > 1 ? parseQuery(String(parts[1])) : [:]
        self.headers = headers
        self.body = body
        self.peer = peer
    }

    /// The body as bytes.
    public var bodyBytes: [UInt8] { Array(body.readableBytesView) }

    /// Decodes the body as JSON.
    public func decodeJSON<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }
}

/// Writes a streamed response body. Throwing from the stream closure closes the connection at once, without
/// finishing the body: with a `Content-Length` larger than what was written, the client sees a truncated body.
public struct HTTPBodyWriter: Sendable {
    let sink: @Sendable (ByteBuffer) async throws -> Void

    public init(_ sink: @escaping @Sendable (ByteBuffer) async throws -> Void) { self.sink = sink }

    public func write(_ buffer: ByteBuffer) async throws { try await sink(buffer) }

    public func write(_ bytes: some Sequence<UInt8>) async throws { try await sink(ByteBuffer(bytes: bytes)) }

    public func write(_ string: String) async throws { try await sink(ByteBuffer(string: string)) }
}

/// Thrown from a stream closure to cut a body short on purpose (fault injection).
public struct HTTPAbort: Error, Sendable {
    public init() {}
}

/// A response: status, headers and a body that is either all bytes or streamed.
public struct HTTPResponse: Sendable {
    public enum Body: Sendable {
        case bytes(ByteBuffer)
        /// Streamed chunk by chunk (SSE, NDJSON, file downloads). Without a `Content-Length` header the body
        /// goes out chunked on HTTP/1.1, or delimited by closing the connection on HTTP/1.0.
        case stream(@Sendable (HTTPBodyWriter) async throws -> Void)
    }

    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: Body
    /// When true the server sends nothing and resets the connection (TCP RST), as a crashed peer would.
    public var resetsConnection: Bool = false

    /// For `.bytes` bodies a `Content-Length` is added unless set; for `HEAD` requests only the head is sent, so
    /// a handler may answer `HEAD` exactly like `GET`.
    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: Body = .bytes(ByteBuffer())) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// Drop the connection without any response.
    public static var reset: HTTPResponse {
        var r = HTTPResponse(status: .internalServerError)
        r.resetsConnection = true
        return r
    }

    /// JSON encoder shared by `json(_:status:)`: no escaped slashes, so URLs stay readable.
    public static func jsonEncoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return e
    }

    /// `value` encoded as JSON with `Content-Type: application/json`.
    public static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok,
                            headers: HTTPHeaders = [:]) -> HTTPResponse {
        let data: Data
        do {
            data = try jsonEncoder().encode(value)
        } catch {
            return text("cannot encode response: \(error)\n", status: .internalServerError)
        }
        return jsonBytes(Array(data), status: status, headers: headers)
    }

    /// Raw JSON bytes with `Content-Type: application/json`.
    public static func jsonBytes(_ bytes: [UInt8], status: HTTPResponseStatus = .ok,
                                 headers: HTTPHeaders = [:]) -> HTTPResponse {
        var h = headers
        h.replaceOrAdd(name: "Content-Type", value: "application/json")
        return HTTPResponse(status: status, headers: h, body: .bytes(ByteBuffer(bytes: bytes)))
    }

    /// Plain text (or another type given in `contentType`).
    public static func text(_ text: String, status: HTTPResponseStatus = .ok,
                            contentType: String = "text/plain; charset=utf-8") -> HTTPResponse {
        HTTPResponse(status: status, headers: ["Content-Type": contentType], body: .bytes(ByteBuffer(string: text)))
    }
}

func parseQuery(_ s: String) -> [String: String] {
    var out: [String: String] = [:]
    for pair in s.split(separator: "&") where !pair.isEmpty {
        let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = percentDecoded(String(kv[0]), plusIsSpace: true)
        out[key] = kv.count > 1 ? percentDecoded(String(kv[1]), plusIsSpace: true) : ""
    }
    return out
}

/// Decodes `%XX` escapes (and `+` when `plusIsSpace`); malformed escapes stay as they are.
func percentDecoded(_ s: String, plusIsSpace: Bool) -> String {
    guard s.contains("%") || (plusIsSpace && s.contains("+")) else { return s }
    var out: [UInt8] = []
    let bytes = Array(s.utf8)
    var i = 0
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }
    while i < bytes.count {
        let b = bytes[i]
        if b == UInt8(ascii: "%"), i + 2 < bytes.count, let h = hex(bytes[i + 1]), let l = hex(bytes[i + 2]) {
            out.append(h << 4 | l)
            i += 3
        } else {
            out.append(plusIsSpace && b == UInt8(ascii: "+") ? UInt8(ascii: " ") : b)
            i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}
