import Foundation
import Logging
import ReelCore
import ReelCurl

/// Per-call limits of a provider client, in seconds.
public struct ProviderTimeouts: Hashable, Sendable {
    public var connect: Double
    /// API calls (DashScope create, query, cancel, list, getPolicy; gateway start and status).
    public var api: Double
    /// The form upload of one reference file.
    public var upload: Double
    /// One result download (stalls under 1 KiB/s for 30 s abort sooner).
    public var download: Double

    public init(connect: Double = 10, api: Double = 30, upload: Double = 300, download: Double = 1800) {
        self.connect = connect
        self.api = api
        self.upload = upload
        self.download = download
    }
}

/// What the provider clients share: libcurl, the per-call limits, the key (redacted from every message) and the
/// logger; the result download, transport failures and the exchange log line.
struct ProviderTransport: Sendable {
    let curl: CurlClient
    let timeouts: ProviderTimeouts
    let key: APIKey
    let logger: Logger

    /// Downloads a result URL into `path`, resuming with `Range` from the bytes already there. The URL is a
    /// signed object URL: no key goes there.
    func download(url: String, to path: String) async throws -> DownloadResult {
        let outcome: DownloadOutcome
        do {
            outcome = try await curl.download(url: url, to: path, timeout: timeouts.download,
                                              connectTimeout: timeouts.connect)
        } catch let error as TransportError {
            throw transportFailure(.download, error)
        }
        let requestID = outcome.header("x-oss-request-id")
        var exchange = Exchange(kind: .download, httpStatus: outcome.status, requestID: requestID,
                                durationMilliseconds: outcome.totalMilliseconds,
                                transportError: outcome.interrupted.map { redact($0.description) })
        guard (200..<300).contains(outcome.status) || outcome.status == 416 else {
            let oss = DashScopeClient.ossError(outcome.errorBody)
            exchange.providerCode = oss.code
            exchange.requestID = requestID ?? oss.requestID
            let expired = outcome.status == 403 && (oss.message ?? "").lowercased().contains("expired")
            let message = expired ? "result URL expired"
                : outcome.status == 404 ? "result no longer exists at the URL"
                : oss.message ?? "download failed"
            throw ProviderFailure(exchange: exchange, code: oss.code, message: redact(message),
                                  retryAfter: DashScopeClient.retryAfter(outcome.header("retry-after")))
        }
        if let interrupted = outcome.interrupted, outcome.expectedBytes == nil {
            // Without an announced size a broken transfer cannot be told from a finished one.
            throw ProviderFailure(exchange: exchange, code: nil,
                                  message: redact("download interrupted, size unknown: \(interrupted.message)"),
                                  requestMayHaveArrived: true)
        }
        logExchange(exchange)
        return DownloadResult(bytesOnDisk: outcome.bytesOnDisk, expectedBytes: outcome.expectedBytes,
                              exchange: exchange,
                              digest: outcome.sha256.map { ContentDigest(sha256: Hex.string($0), bytes: outcome.bytesOnDisk) })
    }

    func transportFailure(_ kind: Exchange.Kind, _ error: TransportError, repeatable: Bool = false) -> ProviderFailure {
        let message = redact(error.message)
        let exchange = Exchange(kind: kind, httpStatus: 0, durationMilliseconds: error.elapsedMilliseconds,
                                transportError: message)
        logExchange(exchange)
        return ProviderFailure(exchange: exchange, code: nil, message: "transport error (curl \(error.code)): \(message)",
                               requestMayHaveArrived: error.requestSent, repeatable: repeatable)
    }

    func logExchange(_ exchange: Exchange) {
        logger.debug("provider exchange", metadata: [
            "kind": "\(exchange.kind.rawValue)", "status": "\(exchange.httpStatus)",
            "code": "\(exchange.providerCode ?? "-")", "request_id": "\(exchange.requestID ?? "-")",
            "ms": "\(exchange.durationMilliseconds)",
        ])
    }

    func redact(_ text: String) -> String { key.redact(text) }
}

extension ProviderFailure {
    /// A result download refused because the signed URL expired (403) or the object is gone (404): the daemon
    /// should re-query the task for a fresh URL, and past the 24-hour window mark the job expired. Not an
    /// account problem, whatever `blame` says about an OSS `AccessDenied`.
    public var isResultURLGone: Bool {
        exchange.kind == .download && (exchange.httpStatus == 403 || exchange.httpStatus == 404)
    }
}

/// The API key, kept out of descriptions, reflection and dumps.
final class APIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    let value: String

    init(_ value: String) { self.value = value }

    var description: String { "<redacted>" }
    var debugDescription: String { "<redacted>" }
    var customMirror: Mirror { Mirror(self, children: []) }

    /// Replaces any occurrence of the key in `text` (servers sometimes echo what they were sent).
    func redact(_ text: String) -> String {
        value.count < 4 ? text : text.replacingOccurrences(of: value, with: "<redacted>")
    }
}

