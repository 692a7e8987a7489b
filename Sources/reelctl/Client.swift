import Foundation
import ReelCore
import ReelCurl
import ReelProtocol

/// reelctl's exit codes: 0 ok, 1 operation failed, 2 usage, 69 daemon unreachable.
enum Exit {
    static let ok: Int32 = 0
    static let failed: Int32 = 1
    static let usage: Int32 = 2
    static let unavailable: Int32 = 69
}

/// A failure that ends reelctl with a message and an exit code.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var code: Int32
}

/// HTTP/JSON to reeld over its Unix socket, through libcurl (`CURLOPT_UNIX_SOCKET_PATH`).
struct ControlClient {
    let socket: String
    /// Seconds one answer may take; for a streamed listing, how long it may go without a byte. `REELCTL_TIMEOUT`
    /// overrides the default of 30.
    let timeout: Double

    /// One transfer thread for the whole process, created once and never torn down: the process can exit at any
    /// moment without a libcurl handle being cleaned up on another thread at the same time.
    private static let curl = CurlClient(threads: 1, userAgent: "reelctl/\(ReelVersion.current)")

    init(socket: String, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.socket = socket
        timeout = environment["REELCTL_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 30
    }

    /// Sends one request; a non-2xx answer becomes a `CLIError` carrying the daemon's message and hint. A 2xx
    /// answer is checked before it is returned: JSON must parse, NDJSON (`streaming`) must be whole lines of JSON.
    /// A listing is streamed, so it has no overall time limit, only `timeout` seconds without a byte.
    func call(_ method: String, _ path: String, body: [UInt8]? = nil, accept: String = "application/json",
              streaming: Bool = false) async throws -> [UInt8] {
        var headers = [HTTPHeader("Accept", accept)]
        if body != nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
        let spec = HTTPRequestSpec(method: method, url: "http://reel\(path)", headers: headers, body: body,
                                   timeout: streaming ? 0 : timeout, connectTimeout: min(timeout, 5),
                                   unixSocketPath: socket,
                                   lowSpeed: streaming ? LowSpeedLimit(bytesPerSecond: 1, seconds: max(1, Int(timeout))) : nil,
                                   maxResponseBytes: 1 << 30)
        let result: HTTPResult
        do {
            result = try await Self.curl.perform(spec)
        } catch let error as TransportError {
            throw CLIError(description: unreachable(error), code: Exit.unavailable)
        }
        guard (200..<300).contains(result.status) else {
            if let e = try? JSONDecoder().decode(ErrorBody.self, from: Data(result.body)) {
                let hint = e.error.hint.map { "\n  hint: \($0)" } ?? ""
                throw CLIError(description: "\(e.error.message)\(hint)", code: Exit.failed)
            }
            if result.status == 409, let r = try? JSONDecoder().decode(ActionResult.self, from: Data(result.body)) {
                throw CLIError(description: r.message, code: Exit.failed)
            }
            throw CLIError(description: "reeld answered HTTP \(result.status): \(result.bodyText)", code: Exit.failed)
        }
        if streaming {
            try checkNDJSON(result.body, path)
        } else if accept == "application/json" {
            try checkJSON(result.body[...], path)
        }
        return result.body
    }

    private func checkJSON(_ bytes: ArraySlice<UInt8>, _ path: String) throws {
        guard (try? JSONSerialization.jsonObject(with: Data(bytes))) != nil else {
            throw CLIError(description: "reeld's answer to \(path) is not JSON (\(bytes.count) bytes): "
                + String(decoding: bytes.prefix(200), as: UTF8.self), code: Exit.failed)
        }
    }

    /// Every line a JSON value, and the last one ended: a listing cut off mid-line is not passed on as if whole.
    private func checkNDJSON(_ bytes: [UInt8], _ path: String) throws {
        guard bytes.isEmpty || bytes.last == UInt8(ascii: "\n") else {
            throw CLIError(description: "reeld's listing from \(path) ends mid-line (\(bytes.count) bytes): it was cut short",
                           code: Exit.failed)
        }
        for line in bytes.split(separator: UInt8(ascii: "\n")) { try checkJSON(line, path) }
    }

    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        let bytes = try await call("GET", path)
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            throw CLIError(description: "unexpected answer from reeld for \(path): \(error)", code: Exit.failed)
        }
    }

    private func unreachable(_ error: TransportError) -> String {
        var text = "cannot reach reeld at \(socket): \(error.message)"
        if error.requestSent {
            text = "reeld at \(socket) did not answer in full: \(error.message)"
        }
        if access(socket, F_OK) != 0 {
            text += "\n  hint: the socket does not exist; is reeld running (`systemctl status reeld`)? "
                + "Point reelctl elsewhere with --socket PATH or REEL_SOCKET."
        } else if access(socket, W_OK) != 0 {
            text += "\n  hint: permission denied; add your user to the socket's group (reel-clients) and log in again."
        } else {
            text += "\n  hint: the socket exists but nothing answers; check `journalctl -u reeld`."
        }
        return text
    }
}

/// Path segments are identifiers (validated), so no escaping beyond the query string is needed.
func query(_ items: [(String, String?)]) -> String {
    let parts = items.compactMap { k, v -> String? in
        guard let v, !v.isEmpty else { return nil }
        let escaped = v.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(CharacterSet(charactersIn: "&=+"))) ?? v
        return "\(k)=\(escaped)"
    }
    return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
}
