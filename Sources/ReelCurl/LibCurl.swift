// The only Swift file in Reel that calls libcurl (curl_* and the ccurl_* setopt shims of CCurl).
// Everything here runs on a CurlClient worker thread: an easy handle never leaves the thread that created it.
import CCurl
import Crypto
import Glibc
import ReelPosix

/// `curl_global_init` runs exactly once, before the first easy handle (a global `let` is initialised once,
/// thread-safely, on first use).
private let curlGlobalInitCode: Int32 = value(ccurl_global_init_default())

private func value(_ code: CURLcode) -> Int32 { Int32(truncatingIfNeeded: code.rawValue) }

/// The libcurl version string, e.g. `libcurl/7.88.1 OpenSSL/3.0.15 …`.
public var libcurlVersion: String { String(cString: curl_version()) }

/// One easy handle, owned by one worker thread for its whole life. Reused across transfers (after
/// `curl_easy_reset`, which keeps the connection cache), so polling reuses connections.
final class EasyHandle {
    fileprivate let raw: UnsafeMutableRawPointer
    fileprivate let errorBuffer: UnsafeMutablePointer<CChar>

    init() {
        precondition(curlGlobalInitCode == 0, "curl_global_init failed with CURLcode \(curlGlobalInitCode)")
        guard let raw = curl_easy_init() else { fatalError("curl_easy_init returned NULL (out of memory)") }
        self.raw = raw
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE))
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE))
    }

    deinit {
        curl_easy_cleanup(raw)
        errorBuffer.deallocate()
    }
}

/// Codes after which the request surely never left this machine.
private let neverSentCodes: Set<Int32> = [
    1,  // UNSUPPORTED_PROTOCOL
    2,  // FAILED_INIT
    3,  // URL_MALFORMAT
    5,  // COULDNT_RESOLVE_PROXY
    6,  // COULDNT_RESOLVE_HOST
    7,  // COULDNT_CONNECT
    35,  // SSL_CONNECT_ERROR
    43,  // BAD_FUNCTION_ARGUMENT
    48,  // UNKNOWN_OPTION
    60,  // PEER_FAILED_VERIFICATION
]
private let abortedByCallback: Int32 = 42
private let writeErrorCode: Int32 = 23
private let weirdReplyCode: Int32 = 8
private let errorBodyCap = 64 << 10

/// Callback context of one transfer, reached from C through `Unmanaged` (never retained by curl).
private final class TransferState {
    let handle: UnsafeMutableRawPointer
    let cancel: CancelFlag
    var headers: [HTTPHeader] = []
    var sawResponse = false
    /// The blank line that ends the (last) response head arrived.
    var headEnded = false
    var body: [UInt8] = []
    var bodyLimit: Int
    /// Download mode: past the cap, the (error) body is dropped rather than failing the transfer.
    var dropOverflow = false
    var overflowed = false
    // Download mode only.
    var fd: Int32 = -1
    var resumeOffset: Int64 = 0
    var decided = false
    var toFile = false
    var failure: String?
    /// The sha256 of the file's content so far, once `decide()` sent the body to the file: the resumed prefix,
    /// then every chunk written. Nil when the prefix could not be read back.
    var hasher: SHA256?
    /// How many bytes `hasher` has taken (prefix included).
    var hashedBytes: Int64 = 0

    init(handle: UnsafeMutableRawPointer, cancel: CancelFlag, bodyLimit: Int) {
        self.handle = handle
        self.cancel = cancel
        self.bodyLimit = bodyLimit
    }

    var status: Int {
        var code = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        return code
    }

    /// Called before the first body byte of a download (and after the transfer if no body came): a 2xx goes to
    /// the file; a 200 that ignored our Range restarts the file from zero; a 206 must start where we asked.
    func decide() {
        guard !decided else { return }
        decided = true
        let status = self.status
        guard (200..<300).contains(status) else { return }
        if status == 206 {
            let start = contentRange(headers.last { $0.name == "content-range" }?.value)?.start
            if start != resumeOffset {
                failure = "server resumed at byte \(start.map(String.init) ?? "?"), not \(resumeOffset); file reset"
                resumeOffset = 0
                restart()
                return
            }
        } else if resumeOffset > 0 {
            resumeOffset = 0
            restart()
            guard failure == nil else { return }  // appending to a file that was not emptied would corrupt it
        }
        toFile = true
        hasher = hashPrefix()
    }

    /// A hasher holding the file's first `resumeOffset` bytes (the part a 206 continues), read back through the
    /// transfer's descriptor; nil when they cannot all be read.
    private func hashPrefix() -> SHA256? {
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: Int64 = 0
        while offset < resumeOffset {
            let want = Int(min(Int64(buffer.count), resumeOffset - offset))
            // A failed read leaves the digest out (nil), never a wrong one.
            guard let n = try? buffer.withUnsafeMutableBytes({ b in
                try Posix.pread(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[..<want]), at: off_t(offset), path: "")
            }), n > 0 else { return nil }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            offset += Int64(n)
        }
        hashedBytes = offset
        return hasher
    }

    /// Empties the file so the download starts over; a failure fails the transfer as a write error.
    private func restart() {
        do throws(PosixError) {
            try Posix.truncate(fd, to: 0, path: "")
        } catch {
            failure = "write to file failed: \(error.reason)"
        }
    }

    /// Returns the number of bytes taken; anything else makes curl fail with CURLE_WRITE_ERROR.
    func take(_ ptr: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        if fd >= 0 {
            decide()
            if failure != nil { return 0 }
            if toFile {
                do throws(PosixError) {
                    try Posix.writeAll(fd, UnsafeRawBufferPointer(start: ptr, count: count), path: "")
                } catch {
                    failure = "write to file failed: \(error.reason)"
                    return 0
                }
                if hasher != nil {
                    hasher!.update(bufferPointer: UnsafeRawBufferPointer(start: ptr, count: count))
                    hashedBytes += Int64(count)
                }
                return count
            }
        }
        if body.count + count > bodyLimit {
            overflowed = true
            if dropOverflow { return count }
            failure = "response body larger than \(bodyLimit) bytes"
            return 0
        }
        ptr.withMemoryRebound(to: UInt8.self, capacity: count) {
            body.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
        }
        return count
    }

    func takeHeaderLine(_ ptr: UnsafeMutablePointer<CChar>, _ count: Int) {
        let line = ptr.withMemoryRebound(to: UInt8.self, capacity: count) {
            String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self)
        }
        if line.hasPrefix("HTTP/") {  // a new response (after a redirect or a 100 Continue): start over
            headers.removeAll()
            sawResponse = true
            headEnded = false
            return
        }
        if line == "\r\n" || line == "\n" {
            headEnded = true
            return
        }
        guard let colon = line.firstIndex(of: ":") else { return }
        let name = line[..<colon].trimmingWhitespace().lowercased()
        let value = line[line.index(after: colon)...].trimmingWhitespace()
        if !name.isEmpty { headers.append(HTTPHeader(name, value)) }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        // "\r\n" is one Character, so test whitespace-ness rather than single characters.
        guard let first = firstIndex(where: { !$0.isWhitespace }), let last = lastIndex(where: { !$0.isWhitespace }) else {
            return ""
        }
        return String(self[first...last])
    }
}

/// Parses `bytes S-E/T` or `bytes */T`.
func contentRange(_ value: String?) -> (start: Int64?, total: Int64?)? {
    guard let value, value.lowercased().hasPrefix("bytes ") else { return nil }
    let rest = value.dropFirst(6)
    let parts = rest.split(separator: "/", maxSplits: 1)
    guard parts.count == 2 else { return nil }
    let start = parts[0].split(separator: "-").first.flatMap { Int64($0.trimmingWhitespace()) }
    return (start, Int64(parts[1].trimmingWhitespace()))
}

private struct SetupError: Error {
    var code: Int32
    var message: String
}

/// Runs transfers on an `EasyHandle`. Stateless: everything a transfer needs is passed in.
enum Curl {
    /// A request whose whole answer is kept in memory.
    static func perform(_ spec: HTTPRequestSpec, userAgent: String, on easy: EasyHandle,
                        cancel: CancelFlag) -> Result<HTTPResult, any Error> {
        let state = TransferState(handle: easy.raw, cancel: cancel, bodyLimit: spec.maxResponseBytes)
        let (code, elapsed) = execute(spec, range: nil, userAgent: userAgent, easy: easy, state: state)
        if code == 0 && !state.headEnded {
            // libcurl takes a connection closed inside the head as an answer with no body.
            return .failure(TransportError(code: weirdReplyCode, message: "the connection closed inside the answer's head",
                                           requestSent: true, elapsedMilliseconds: elapsed))
        }
        if code == 0 {
            return .success(HTTPResult(status: state.status, headers: state.headers, body: state.body,
                                       totalMilliseconds: elapsed))
        }
        if code == abortedByCallback && cancel.isCancelled { return .failure(CancellationError()) }
        return .failure(transportError(code, easy: easy, state: state, elapsed: elapsed))
    }

    /// A download streamed into `path` (opened O_APPEND; resumed with a Range from its current size).
    static func download(_ spec: HTTPRequestSpec, to path: String, userAgent: String, on easy: EasyHandle,
                         cancel: CancelFlag) -> Result<DownloadOutcome, any Error> {
        // Read-write: a resumed transfer reads the bytes already there back into the running sha256.
        let fd: Int32
        do throws(PosixError) {
            fd = try Posix.open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        } catch {
            return .failure(TransportError(code: writeErrorCode, message: "cannot open \(path): \(error.reason)",
                                           requestSent: false))
        }
        defer { close(fd) }
        let state = TransferState(handle: easy.raw, cancel: cancel, bodyLimit: errorBodyCap)
        state.fd = fd
        state.dropOverflow = true
        state.resumeOffset = fileSize(fd)
        let range = state.resumeOffset > 0 ? "\(state.resumeOffset)-" : nil
        let (code, elapsed) = execute(spec, range: range, userAgent: userAgent, easy: easy, state: state)
        if code == abortedByCallback && cancel.isCancelled { return .failure(CancellationError()) }
        let status = state.status
        guard state.sawResponse, status > 0 else {
            return .failure(transportError(code, easy: easy, state: state, elapsed: elapsed))
        }
        if code == 0 { state.decide() }  // a 2xx without body still resets an ignored Range
        let expected: Int64? = switch status {
        case 206, 416: contentRange(state.headers.last { $0.name == "content-range" }?.value)?.total
        case 200..<300: state.headers.last { $0.name == "content-length" }.flatMap { Int64($0.value) }
        default: nil
        }
        if status == 416, let total = expected, total != fileSize(fd) {
            // The file is not a prefix of this resource: start over next time. Should emptying it fail, the next
            // attempt gets this 416 again and tries again.
            try? Posix.truncate(fd, to: 0, path: path)
        }
        let bytesOnDisk = fileSize(fd)
        // Only a digest of exactly what the file holds is worth handing on.
        let whole = code == 0 && state.toFile && state.failure == nil && state.hashedBytes == bytesOnDisk
        return .success(DownloadOutcome(
            status: status, headers: state.headers, resumedFrom: status == 206 ? state.resumeOffset : 0,
            bytesOnDisk: bytesOnDisk, expectedBytes: expected, errorBody: state.toFile ? [] : state.body,
            interrupted: code == 0 ? nil : transportError(code, easy: easy, state: state, elapsed: elapsed),
            totalMilliseconds: elapsed, sha256: whole ? state.hasher.map { Array($0.finalize()) } : nil))
    }

    private static func fileSize(_ fd: Int32) -> Int64 {
        (try? Posix.fstat(fd, path: "")).map { Int64($0.st_size) } ?? 0
    }

    private static func transportError(_ code: Int32, easy: EasyHandle, state: TransferState,
                                       elapsed: Int) -> TransportError {
        var message = String(cString: easy.errorBuffer)
        if message.isEmpty { message = String(cString: curl_easy_strerror(CURLcode(rawValue: .init(code)))) }
        if let failure = state.failure { message += " (\(failure))" }
        return TransportError(code: code, message: message, requestSent: requestMayHaveBeenSent(code, easy, state),
                              elapsedMilliseconds: elapsed)
    }

    /// The request may have reached the server once the connection was up and the request was being written:
    /// libcurl stamps the pre-transfer time right before sending, and counts request bytes as they go out.
    private static func requestMayHaveBeenSent(_ code: Int32, _ easy: EasyHandle, _ state: TransferState) -> Bool {
        if state.sawResponse { return true }
        if neverSentCodes.contains(code) { return false }
        var pretransfer: curl_off_t = 0
        var requestSize = 0
        var uploaded: curl_off_t = 0
        _ = ccurl_getinfo_off_t(easy.raw, CURLINFO_PRETRANSFER_TIME_T, &pretransfer)
        _ = ccurl_getinfo_long(easy.raw, CURLINFO_REQUEST_SIZE, &requestSize)
        _ = ccurl_getinfo_off_t(easy.raw, CURLINFO_SIZE_UPLOAD_T, &uploaded)
        return pretransfer > 0 || requestSize > 0 || uploaded > 0
    }

    /// Configures the handle from scratch, performs, and frees what the transfer allocated.
    /// Returns the CURLcode and the elapsed milliseconds.
    private static func execute(_ spec: HTTPRequestSpec, range: String?, userAgent: String, easy: EasyHandle,
                                state: TransferState) -> (Int32, Int) {
        let h = easy.raw
        curl_easy_reset(h)
        easy.errorBuffer[0] = 0
        var headerList: UnsafeMutablePointer<curl_slist>?
        var mime: OpaquePointer?
        defer {
            curl_slist_free_all(headerList)
            curl_mime_free(mime)
        }
        let start = ContinuousClock.now
        let elapsed = { () -> Int in
            let d = ContinuousClock.now - start
            return Int(d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000)
        }
        do {
            func check(_ code: CURLcode, _ what: @autoclosure () -> String) throws {
                let v = value(code)
                if v != 0 { throw SetupError(code: v, message: "\(what()): \(String(cString: curl_easy_strerror(code)))") }
            }
            func set(_ option: CURLoption, _ v: Int) throws { try check(ccurl_setopt_long(h, option, v), "\(option)") }
            func set(_ option: CURLoption, _ v: String) throws {
                try check(ccurl_setopt_string(h, option, v), "\(option)")
            }
            try set(CURLOPT_NOSIGNAL, 1)
            try check(ccurl_setopt_pointer(h, CURLOPT_ERRORBUFFER, easy.errorBuffer), "error buffer")
            try set(CURLOPT_URL, spec.url)
            try set(CURLOPT_PROTOCOLS_STR, "http,https")
            try set(CURLOPT_USERAGENT, userAgent)
            try set(CURLOPT_TCP_KEEPALIVE, 1)
            try set(CURLOPT_CONNECTTIMEOUT_MS, Int(spec.connectTimeout * 1000))
            if spec.timeout > 0 { try set(CURLOPT_TIMEOUT_MS, Int(spec.timeout * 1000)) }
            if let low = spec.lowSpeed {
                try set(CURLOPT_LOW_SPEED_LIMIT, low.bytesPerSecond)
                try set(CURLOPT_LOW_SPEED_TIME, low.seconds)
            }
            if let socket = spec.unixSocketPath { try set(CURLOPT_UNIX_SOCKET_PATH, socket) }
            if spec.followRedirects {
                try set(CURLOPT_FOLLOWLOCATION, 1)
                try set(CURLOPT_MAXREDIRS, 5)
                try set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
            }
            if let range { try set(CURLOPT_RANGE, range) }

            let method = spec.method.uppercased()
            switch method {
            case "GET": try set(CURLOPT_HTTPGET, 1)
            case "HEAD": try set(CURLOPT_NOBODY, 1)
            case "POST": try set(CURLOPT_POST, 1)
            default: try set(CURLOPT_CUSTOMREQUEST, method)
            }
            if !["GET", "HEAD", "PUT", "DELETE", "OPTIONS"].contains(method) {
                // libcurl silently re-sends a request whose *reused* connection died before any answer. For a
                // non-idempotent call (a create) that would be a second paid task, so never reuse one for it.
                try set(CURLOPT_FRESH_CONNECT, 1)
            }
            let sendsBody = method == "POST" || spec.body != nil || spec.form != nil
            if let form = spec.form {
                guard spec.body == nil else { throw SetupError(code: 43, message: "both body and form given") }
                mime = curl_mime_init(h)
                for part in form {
                    let p = curl_mime_addpart(mime)
                    switch part {
                    case .field(let name, let value):
                        try check(curl_mime_name(p, name), "form field name")
                        try check(curl_mime_data(p, value, value.utf8.count), "form field \(name)")
                    case .file(let name, let path, let filename, let contentType):
                        try check(curl_mime_name(p, name), "form file name")
                        try check(curl_mime_filedata(p, path), "form file \(path)")
                        try check(curl_mime_filename(p, filename), "form file name")
                        try check(curl_mime_type(p, contentType), "form file type")
                    }
                }
                try check(ccurl_setopt_pointer(h, CURLOPT_MIMEPOST, UnsafeMutableRawPointer(mime)), "form")
            } else if sendsBody {
                // COPYPOSTFIELDS copies: the Swift buffer need not outlive this call (POSTFIELDS would dangle).
                let body = spec.body ?? []
                try check(ccurl_setopt_off_t(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)), "body size")
                try body.withUnsafeBytes { raw in
                    var empty: UInt8 = 0
                    let pointer = raw.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
                    try withUnsafeMutablePointer(to: &empty) { fallback in
                        try check(ccurl_setopt_pointer(h, CURLOPT_COPYPOSTFIELDS, pointer ?? UnsafeMutableRawPointer(fallback)),
                                  "body")
                    }
                }
            }

            var lines = spec.headers.map { "\($0.name): \($0.value)" }
            if sendsBody { lines.append("Expect:") }  // no 100-continue round trip
            for line in lines {
                guard !line.utf8.contains(where: { $0 == 13 || $0 == 10 }) else {
                    throw SetupError(code: 43, message: "header contains a line break")
                }
                headerList = curl_slist_append(headerList, line)
            }
            if headerList != nil { try check(ccurl_setopt_slist(h, CURLOPT_HTTPHEADER, headerList), "headers") }

            let context = Unmanaged.passUnretained(state).toOpaque()
            try check(ccurl_setopt_pointer(h, CURLOPT_WRITEDATA, context), "write data")
            try check(ccurl_setopt_write_function(h) { ptr, size, count, context in
                let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
                guard let ptr else { return size * count }
                return state.take(ptr, size * count)
            }, "write function")
            try check(ccurl_setopt_pointer(h, CURLOPT_HEADERDATA, context), "header data")
            try check(ccurl_setopt_header_function(h) { ptr, size, count, context in
                let state = Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue()
                if let ptr { state.takeHeaderLine(ptr, size * count) }
                return size * count
            }, "header function")
            try set(CURLOPT_NOPROGRESS, 0)
            try check(ccurl_setopt_pointer(h, CURLOPT_XFERINFODATA, context), "progress data")
            try check(ccurl_setopt_xferinfo_function(h) { context, _, _, _, _ in
                Unmanaged<TransferState>.fromOpaque(context!).takeUnretainedValue().cancel.isCancelled ? 1 : 0
            }, "progress function")
        } catch let error as SetupError {
            state.failure = error.message
            return (error.code, elapsed())
        } catch {
            return (43, elapsed())
        }
        let code = withExtendedLifetime(state) { value(curl_easy_perform(h)) }
        return (code, elapsed())
    }
}
