import Foundation
import ReelCurl
import ReelProtocol

/// Exit codes of spec §8.
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
    let curl = CurlClient(threads: 1, userAgent: "reelctl/1")

    /// Sends one request; a non-2xx answer becomes a `CLIError` carrying the daemon's message and hint.
    func call(_ method: String, _ path: String, body: [UInt8]? = nil, accept: String = "application/json",
              timeout: Double = 30) async throws -> [UInt8] {
        var headers = [HTTPHeader("Accept", accept)]
        if body != nil { headers.append(HTTPHeader("Content-Type", "application/json")) }
        let spec = HTTPRequestSpec(method: method, url: "http://reel\(path)", headers: headers, body: body,
                                   timeout: timeout, connectTimeout: 5, unixSocketPath: socket,
                                   maxResponseBytes: 1 << 30)
        let result: HTTPResult
        do {
            result = try await curl.perform(spec)
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
        return result.body
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
