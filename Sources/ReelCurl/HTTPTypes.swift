// Value types of the libcurl layer. No curl calls here: those live only in LibCurl.swift.

/// One HTTP header. Response header names are lower-cased; request header names are sent as given.
public struct HTTPHeader: Hashable, Sendable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// One part of a `multipart/form-data` body.
public enum FormPart: Hashable, Sendable {
    /// A plain text field.
    case field(name: String, value: String)
    /// A file streamed from disk by libcurl (never loaded into memory).
    case file(name: String, path: String, filename: String, contentType: String)
}

/// Abort a transfer slower than `bytesPerSecond` for `seconds` (CURLOPT_LOW_SPEED_LIMIT/TIME).
public struct LowSpeedLimit: Hashable, Sendable {
    public var bytesPerSecond: Int
    public var seconds: Int

    public init(bytesPerSecond: Int, seconds: Int) {
        self.bytesPerSecond = bytesPerSecond
        self.seconds = seconds
    }
}

/// What to send. `body` and `form` are exclusive; a POST with neither sends an empty body.
///
/// Idempotent methods (GET, HEAD, PUT, DELETE, OPTIONS) reuse kept-alive connections, and libcurl transparently
/// retries one whose reused connection died before any answer. Any other method (POST, PATCH…) always opens a
/// fresh connection, so such a request is never sent twice behind the caller's back.
public struct HTTPRequestSpec: Hashable, Sendable {
    /// `GET`, `POST`, `HEAD`, or any other verb (sent with CURLOPT_CUSTOMREQUEST).
    public var method: String
    public var url: String
    public var headers: [HTTPHeader]
    public var body: [UInt8]?
    public var form: [FormPart]?
    /// Whole-transfer limit in seconds; 0 means none.
    public var timeout: Double
    public var connectTimeout: Double
    /// Talk HTTP over this Unix socket instead of TCP (the URL's host is then only the `Host` header).
    public var unixSocketPath: String?
    public var lowSpeed: LowSpeedLimit?
    /// Follow up to 5 redirects (off by default: API calls must see what the server said).
    public var followRedirects: Bool
    /// A response body larger than this fails with CURLE_WRITE_ERROR instead of filling memory.
    public var maxResponseBytes: Int

    public init(method: String = "GET", url: String, headers: [HTTPHeader] = [], body: [UInt8]? = nil,
                form: [FormPart]? = nil, timeout: Double = 60, connectTimeout: Double = 10,
                unixSocketPath: String? = nil, lowSpeed: LowSpeedLimit? = nil, followRedirects: Bool = false,
                maxResponseBytes: Int = 16 << 20) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.form = form
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        self.unixSocketPath = unixSocketPath
        self.lowSpeed = lowSpeed
        self.followRedirects = followRedirects
        self.maxResponseBytes = maxResponseBytes
    }
}

/// Lookup helpers shared by results that carry response headers.
public protocol HTTPHeaderLookup {
    var headers: [HTTPHeader] { get }
}

extension HTTPHeaderLookup {
    /// The last value of a response header (case-insensitive name), if present.
    public func header(_ name: String) -> String? { headerValues(name).last }

    /// Every value of a response header, in the order received.
    public func headerValues(_ name: String) -> [String] {
        let key = name.lowercased()
        return headers.filter { $0.name == key }.map(\.value)
    }
}

/// A complete HTTP answer (any status; a 4xx/5xx is a result, not an error).
public struct HTTPResult: Hashable, Sendable, HTTPHeaderLookup {
    public var status: Int
    /// Headers of the final response, names lower-cased, multi-valued headers repeated.
    public var headers: [HTTPHeader]
    public var body: [UInt8]
    public var totalMilliseconds: Int

    public init(status: Int, headers: [HTTPHeader], body: [UInt8], totalMilliseconds: Int) {
        self.status = status
        self.headers = headers
        self.body = body
        self.totalMilliseconds = totalMilliseconds
    }

    /// The body decoded as UTF-8 (invalid bytes repaired).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// No complete HTTP answer: libcurl failed (connect refused, reset, timeout, write error…).
public struct TransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The CURLcode.
    public var code: Int32
    public var message: String
    /// True when the request may have reached the server: the connection was established and the request was
    /// (being) written, so the server may have acted on it. False only when it surely never left (DNS failure,
    /// connect refused or timed out, TLS handshake failure, bad URL).
    public var requestSent: Bool
    public var elapsedMilliseconds: Int

    public init(code: Int32, message: String, requestSent: Bool, elapsedMilliseconds: Int = 0) {
        self.code = code
        self.message = message
        self.requestSent = requestSent
        self.elapsedMilliseconds = elapsedMilliseconds
    }

    public var description: String {
        "curl error \(code): \(message)\(requestSent ? " (request may have been sent)" : " (request not sent)")"
    }

    /// CURLE_OPERATION_TIMEDOUT.
    public var isTimeout: Bool { code == 28 }
}

/// The result of `CurlClient.download`. Returned whenever the server answered; only a transfer that got no
/// answer at all throws.
public struct DownloadOutcome: Hashable, Sendable, HTTPHeaderLookup {
    public var status: Int
    public var headers: [HTTPHeader]
    /// The offset asked for with `Range: bytes=N-` and honoured (206). 0 when the file was empty, or when the
    /// server ignored the Range (200) and the file was truncated and rewritten from the start.
    public var resumedFrom: Int64
    /// Bytes in the file after the transfer.
    public var bytesOnDisk: Int64
    /// The full size the server announced: the `Content-Range` total of a 206 (or 416), the `Content-Length`
    /// of a 200.
    public var expectedBytes: Int64?
    /// The body of a non-2xx answer (kept in memory, capped at 64 KiB, never written to the file).
    public var errorBody: [UInt8]
    /// Set when the transfer broke after the answer began (e.g. CURLE_PARTIAL_FILE, a reset, a stall); the bytes
    /// received so far are on disk, so a later call resumes.
    public var interrupted: TransportError?
    public var totalMilliseconds: Int
    /// The sha256 of the file's whole content (all `bytesOnDisk` bytes), computed while the body was written: the
    /// bytes already in the file are hashed first when the transfer resumes them (206), then each new chunk as it
    /// arrives. Nil when no body went to the file, the transfer broke, or the file's earlier bytes could not be
    /// read; the file must then be hashed from disk.
    public var sha256: [UInt8]?

    public init(status: Int, headers: [HTTPHeader], resumedFrom: Int64, bytesOnDisk: Int64, expectedBytes: Int64?,
                errorBody: [UInt8], interrupted: TransportError?, totalMilliseconds: Int, sha256: [UInt8]? = nil) {
        self.status = status
        self.headers = headers
        self.resumedFrom = resumedFrom
        self.bytesOnDisk = bytesOnDisk
        self.expectedBytes = expectedBytes
        self.errorBody = errorBody
        self.interrupted = interrupted
        self.totalMilliseconds = totalMilliseconds
        self.sha256 = sha256
    }

    /// The file holds the whole resource: a 200/206 (or a 416 whose total equals the bytes already on disk) that
    /// was not interrupted and whose size on disk equals the announced size (when one was announced).
    public var isComplete: Bool {
        guard interrupted == nil, (200..<300).contains(status) || status == 416 else { return false }
        guard let expectedBytes else { return status != 416 }
        return expectedBytes == bytesOnDisk
    }
}
