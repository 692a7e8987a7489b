import Foundation
import Logging
import ReelCore
import ReelCurl

/// The Vercel AI Gateway's asynchronous video jobs over libcurl (reference §2, §2.1): `RenderAPI` for
/// `alibaba/wan-v2.6-r2v` and `alibaba/wan-v2.6-r2v-flash`.
///
/// `createTask` is the start call (`POST {base}/video-model/start`), with `RenderRequest.idempotencyKey` as the
/// `idempotency-key` header: the gateway deduplicates starts on it (reference §2.1), so a start whose answer was
/// lost (5xx, reset, timeout) is retryable with the same key, never in doubt. `queryTask` is the status call
/// (`POST {base}/video-model/status`). The gateway documents no task list, no cancel and no upload: those calls
/// throw `ProviderFailure.unsupported` without sending anything.
///
/// What the documents leave open is read tolerantly: the error body (the SSE error event's
/// `{type: 'error', message, errorType, statusCode}` or `{error: {message, type, code}}`), where `expiresAt` sits
/// (`providerMetadata.gateway.asyncJob.result`, `asyncJob.result` or top level) and its format (RFC 3339, or epoch
/// seconds or milliseconds), an unknown job (404, read as UNKNOWN). The key goes only in the `Authorization`
/// header of gateway calls and is redacted from every message.
public struct AIGatewayClient: RenderAPI, CustomStringConvertible {
    public typealias Timeouts = ProviderTimeouts

    public let baseURL: String
    private let transport: ProviderTransport

    /// - Parameters:
    ///   - baseURL: e.g. `https://ai-gateway.vercel.sh/v4/ai` (`/video-model/start` and `/status` are appended).
    ///   - apiKey: the AI Gateway API key.
    public init(baseURL: String, apiKey: String, curl: CurlClient, timeouts: Timeouts = Timeouts(),
                logger: Logger = Logger(label: "reel.provider.ai-gateway")) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        transport = ProviderTransport(curl: curl, timeouts: timeouts, key: APIKey(apiKey), logger: logger)
    }

    public var description: String { "AIGatewayClient(\(baseURL), key: \(transport.key))" }

    public var supportsTaskList: Bool { false }
    public var supportsCancel: Bool { false }
    public var deduplicatesCreates: Bool { true }

    // MARK: RenderAPI

    public func createTask(_ request: RenderRequest) async throws -> CreatedTask {
        try await start(request, beforeSend: nil)
    }

    public func createTask(_ request: RenderRequest,
                           beforeSend: @escaping @Sendable () async throws -> Void) async throws -> CreatedTask {
        try await start(request, beforeSend: beforeSend)
    }

    private func start(_ request: RenderRequest,
                       beforeSend: (@Sendable () async throws -> Void)?) async throws -> CreatedTask {
        var headers = [HTTPHeader("ai-model-id", request.model.gatewayModelID)]
        if let key = request.idempotencyKey { headers.append(HTTPHeader("idempotency-key", key)) }
        let body = try Self.encoder.encode(StartBody(request))
        let answer = try await call(.create, "/video-model/start", headers: headers, body: Array(body),
                                    repeatable: request.idempotencyKey != nil, beforeSend: beforeSend)
        guard let jobID = answer.json?["operation"]?["gatewayJobId"]?.string?.nilIfEmpty else {
            throw malformed(answer, .create, "missing operation.gatewayJobId", repeatable: request.idempotencyKey != nil)
        }
        return CreatedTask(taskID: jobID, status: .pending, exchange: answer.exchange)
    }

    /// The status call. `pending` → PENDING (the gateway does not tell queued from running), `completed` with a
    /// video → SUCCEEDED, `completed` with no video → UNKNOWN (the asset expired, as a DashScope task past its
    /// 24 hours), `error` → FAILED with the error type as the code, `cancelled` → CANCELED, 404 → UNKNOWN.
    public func queryTask(_ taskID: String) async throws -> (TaskSnapshot, Exchange) {
        guard !taskID.isEmpty else {
            throw ProviderFailure(exchange: Exchange(kind: .query, httpStatus: 0, durationMilliseconds: 0),
                                  code: "InvalidParameter.TaskID", message: "the job id is empty")
        }
        let body = try Self.encoder.encode(["operation": ["gatewayJobId": taskID]])
        let answer: Answer
        do {
            answer = try await call(.query, "/video-model/status", body: Array(body))
        } catch let failure as ProviderFailure where failure.exchange.httpStatus == 404 {
            return (TaskSnapshot(taskID: taskID, status: .unknown, code: failure.code,
                                 message: "the gateway does not know the job: \(failure.message)",
                                 requestID: failure.exchange.requestID), failure.exchange)
        }
        guard let json = answer.json, let raw = json["status"]?.string else {
            throw malformed(answer, .query, "missing status")
        }
        let asyncJob = json["providerMetadata"]?["gateway"]?["asyncJob"] ?? json["asyncJob"]
        let expiresAt = Self.timestamp(asyncJob?["result"]?["expiresAt"] ?? json["expiresAt"])
        var snapshot = TaskSnapshot(taskID: taskID, status: .pending, requestID: answer.requestID,
                                    resultExpiresAt: expiresAt)
        switch raw.lowercased() {
        case "pending":
            break
        case "completed":
            let url = json["videos"]?.array?.lazy.compactMap { video in
                video["type"]?.string == "url" ? video["url"]?.string?.nilIfEmpty : nil
            }.first
            if let url {
                snapshot.status = .succeeded
                snapshot.videoURL = url
            } else {
                // A long-finished job whose asset expired (reference §2.1).
                snapshot.status = .unknown
                snapshot.message = "the job completed, but its video has expired"
            }
        case "error":
            let error = json["error"]
            snapshot.status = .failed
            snapshot.code = (error?["errorType"] ?? error?["type"] ?? error?["code"] ?? json["errorType"])?.string
                ?? Self.jobErrorCode
            snapshot.message = (error?["message"] ?? json["message"])?.string.map(transport.redact)
                ?? "the gateway reports the job failed"
        case "cancelled", "canceled":
            snapshot.status = .canceled
        default:
            throw malformed(answer, .query, "unknown status \"\(raw)\"")
        }
        return (snapshot, answer.exchange)
    }

    /// The gateway documents no cancel (reference §2.1).
    public func cancelTask(_ taskID: String) async throws -> Exchange {
        throw ProviderFailure.unsupported(.cancel, "the AI Gateway has no cancel call; the job runs to its end")
    }

    /// The gateway documents no job list (reference §2.1); a start is settled by repeating it with its key.
    public func listTasks(_ query: TaskListQuery) async throws -> (TaskListPage, Exchange) {
        throw ProviderFailure.unsupported(.list, "the AI Gateway has no job list; ask again with the start's idempotency key")
    }

    /// The gateway documents no upload: references go by URL (`inputReferences`, reference §2).
    public func uploadFile(path: String, model: RenderModel) async throws -> (String, Exchange) {
        throw ProviderFailure.unsupported(.upload, "the AI Gateway takes references by URL only; "
            + "give \((path as NSString).lastPathComponent) an http(s) URL instead of a local path")
    }

    public func download(url: String, to path: String) async throws -> DownloadResult {
        try await transport.download(url: url, to: path)
    }

    // MARK: Exchanges

    private struct Answer {
        var exchange: Exchange
        var json: JSONValue?
        var requestID: String? { exchange.requestID }
    }

    /// Sends a gateway call (with the key and the gateway client's headers, reference §2) and throws unless it
    /// answered 2xx with a JSON object.
    private func call(_ kind: Exchange.Kind, _ path: String, headers: [HTTPHeader] = [], body: [UInt8],
                      repeatable: Bool = false,
                      beforeSend: (@Sendable () async throws -> Void)? = nil) async throws -> Answer {
        let all = [
            HTTPHeader("Authorization", "Bearer \(transport.key.value)"), HTTPHeader("Accept", "application/json"),
            HTTPHeader("Content-Type", "application/json"), HTTPHeader("ai-gateway-protocol-version", "0.0.1"),
            HTTPHeader("ai-gateway-auth-method", "api-key"), HTTPHeader("ai-video-model-specification-version", "4"),
        ] + headers
        let spec = HTTPRequestSpec(method: "POST", url: baseURL + path, headers: all, body: body,
                                   timeout: transport.timeouts.api, connectTimeout: transport.timeouts.connect)
        let http: HTTPResult
        do {
            http = try await transport.curl.perform(spec, beforeSend: beforeSend)
        } catch let error as TransportError {
            throw transport.transportFailure(kind, error, repeatable: repeatable)
        }
        let json = JSONValue.parse(http.body)
        let ok = (200..<300).contains(http.status)
        let error = Self.errorFields(json)
        let exchange = Exchange(kind: kind, httpStatus: http.status, providerCode: ok ? nil : error.code,
                                requestID: http.header("x-vercel-id") ?? http.header("x-request-id"),
                                durationMilliseconds: http.totalMilliseconds)
        transport.logExchange(exchange)
        let answer = Answer(exchange: exchange, json: json)
        guard ok else {
            let message = error.message ?? "HTTP \(http.status): \(DashScopeClient.excerpt(http.bodyText))"
            throw ProviderFailure(exchange: exchange, code: error.code, message: transport.redact(message),
                                  retryAfter: DashScopeClient.retryAfter(http.header("retry-after")),
                                  requestMayHaveArrived: http.status >= 500, repeatable: repeatable)
        }
        guard json?.object != nil else {
            throw malformed(answer, kind, "the body is not a JSON object: \(DashScopeClient.excerpt(http.bodyText))",
                            repeatable: repeatable)
        }
        return answer
    }

    /// The error type and message of an error body: the SSE error event's shape, or `{error: {message, type, code}}`.
    static func errorFields(_ json: JSONValue?) -> (code: String?, message: String?) {
        let nested = json?["error"]?.object != nil ? json?["error"] : nil
        let code = (json?["errorType"] ?? nested?["type"] ?? nested?["code"])?.string?.nilIfEmpty
        let message = (json?["message"] ?? nested?["message"])?.string?.nilIfEmpty
        return (code, message)
    }

    /// A 2xx whose body lacks what the protocol promises: blamed on the provider; a start's may have made a job.
    private func malformed(_ answer: Answer, _ kind: Exchange.Kind, _ detail: String,
                           repeatable: Bool = false) -> ProviderFailure {
        var exchange = answer.exchange
        exchange.providerCode = DashScopeClient.malformedCode
        return ProviderFailure(exchange: exchange, code: DashScopeClient.malformedCode,
                               message: transport.redact("malformed \(kind.rawValue) response: \(detail)"),
                               requestMayHaveArrived: true, repeatable: repeatable)
    }

    // MARK: Wire helpers

    /// `TaskSnapshot.code` of a job in `error` whose answer names no error type.
    public static let jobErrorCode = "GatewayJobError"

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// An RFC 3339 time, or epoch seconds or milliseconds.
    static func timestamp(_ value: JSONValue?) -> Timestamp? {
        guard let value else { return nil }
        if let text = value.string, let t = RFC3339.parse(text) { return t }
        guard let n = value.double, n > 0 else { return nil }
        return n > 1e11 ? n / 1000 : n
    }

    /// The start body (reference §2): `n` 1; references in order as `inputReferences` (character1, character2, …);
    /// `resolution` `"WxH"`; `duration`; `seed` whenever set, 0 included (the gateway SDK drops 0, reference §2.1);
    /// `generateAudio`; negative prompt, shot type and watermark as `providerOptions.alibaba.*` (reference §2).
    struct StartBody: Encodable {
        struct Reference: Encodable {
            var type = "url"
            var url: String
        }

        struct Alibaba: Encodable {
            var negativePrompt: String?
            var shotType: String?
            var watermark: Bool?

            var isEmpty: Bool { negativePrompt == nil && shotType == nil && watermark == nil }
        }

        struct ProviderOptions: Encodable {
            var alibaba: Alibaba
        }

        var prompt: String
        var n = 1
        var resolution: String
        var duration: Int
        var seed: Int?
        var generateAudio: Bool?
        var inputReferences: [Reference]
        var providerOptions: ProviderOptions?

        init(_ r: RenderRequest) {
            prompt = r.prompt
            resolution = "\(r.size.width)x\(r.size.height)"
            duration = r.durationSeconds
            seed = r.seed
            generateAudio = r.audio
            inputReferences = r.referenceURLs.map { Reference(url: $0) }
            let alibaba = Alibaba(negativePrompt: r.negativePrompt, shotType: r.shotType?.rawValue, watermark: r.watermark)
            providerOptions = alibaba.isEmpty ? nil : ProviderOptions(alibaba: alibaba)
        }
    }
}
