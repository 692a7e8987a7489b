import Foundation
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import Synchronization

/// The Vercel AI Gateway's asynchronous video jobs (reference §2, §2.1) on the sandbox's one task engine: a start
/// is translated into the DashScope create it stands for (the `@ai-sdk/alibaba` mapping of §2), checked by the same
/// rules, and admitted into the same (account, model) pools with the same faults; a job is a task the gateway
/// protocol created, and only that protocol and its account see it.
///
/// From the documents: the paths, the headers (`ai-model-id`), the body fields, 202 `{operation: {gatewayJobId}}`,
/// the four statuses, `videos[]` and `asyncJob.result.expiresAt` on completion, an expired asset as `completed`
/// with an empty `videos[]`, and deduplication on `idempotency-key`. Inferred (docs/sandbox.md says which): every
/// error body (the SSE error event's shape), where `expiresAt` sits and its format, the `error` object of a failed
/// job, 404 for an unknown job, the scope and lifetime of a key, and the limits (DashScope's, per account).
extension Sandbox {
    public static let gatewayStartPath = "/v4/ai/video-model/start"
    public static let gatewayStatusPath = "/v4/ai/video-model/status"

    /// An error body in the shape of the SSE error event `{type: 'error', message, errorType, statusCode, param}`.
    static func gatewayError(_ status: HTTPResponseStatus, _ errorType: String, _ message: String,
                             retryAfter: Double? = nil) -> HTTPResponse {
        var headers = HTTPHeaders()
        if let retryAfter { headers.add(name: "Retry-After", value: "\(Int(retryAfter.rounded(.up)))") }
        return gatewayJSON(gatewayErrorObject(status, errorType, message), status: status, headers: headers)
    }

    static func gatewayErrorObject(_ status: HTTPResponseStatus, _ errorType: String, _ message: String) -> [String: Any] {
        ["type": "error", "message": message, "errorType": errorType, "statusCode": Int(status.code), "param": NSNull()]
    }

    static func gatewayJSON(_ object: [String: Any], status: HTTPResponseStatus = .ok,
                            headers: HTTPHeaders = [:]) -> HTTPResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return .jsonBytes(Array(data), status: status, headers: headers)
    }

    /// The gateway error type of a refusal: the five types of the gateway client's errors.
    static func gatewayErrorType(_ refusal: Refusal) -> String {
        switch refusal.status.code {
        case 401: "authentication_error"
        case 404: "model_not_found"
        case 429: "rate_limit_exceeded"
        case 500...: "internal_server_error"
        default: "invalid_request_error"
        }
    }

    static func gatewayResponse(_ refusal: Refusal) -> HTTPResponse {
        let type = gatewayErrorType(refusal)
        // The provider's code stays visible in the message (the gateway's own wording is not documented).
        let message = type == "authentication_error" || type == "rate_limit_exceeded"
            ? refusal.message : "\(refusal.code): \(refusal.message)"
        return gatewayError(refusal.status, type, message, retryAfter: refusal.retryAfter)
    }

    static func gatewayOperation(_ id: String, status: String, result: [String: Any]? = nil) -> [String: Any] {
        var job: [String: Any] = ["gatewayJobId": id, "status": status]
        job["result"] = result
        return ["operation": ["gatewayJobId": id], "providerMetadata": ["gateway": ["asyncJob": job]]]
    }

    // MARK: start

    func gatewayStart(_ request: HTTPRequest, _ entry: inout JournalEntry) async -> HTTPResponse {
        let caller: Caller
        switch authorize(request, &entry) {
        case .refused(let refusal): return Self.gatewayResponse(refusal)
        case .caller(let c): caller = c
        }
        let key = request.headers.first(name: "idempotency-key")?.trimmingCharacters(in: .whitespaces)
        let idempotencyKey = key?.isEmpty == false ? key : nil
        entry.idempotencyKey = idempotencyKey
        guard let modelID = request.headers.first(name: "ai-model-id"), !modelID.isEmpty else {
            return Self.gatewayError(.badRequest, "invalid_request_error", "The ai-model-id header is required.")
        }
        entry.model = modelID
        guard let model = RenderModel(gatewayModelID: modelID) else {
            return Self.gatewayError(.notFound, "model_not_found", "Model \(modelID) not found.")
        }
        guard let body = try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView)),
              let object = body as? [String: Any] else {
            return Self.gatewayError(.badRequest, "invalid_request_error", "The request body is not a valid JSON object.")
        }
        let create: [String: Any]
        switch Self.dashScopeCreate(gatewayBody: object, model: model) {
        case .failure(let problem):
            return Self.gatewayError(.badRequest, "invalid_request_error", problem.message)
        case .success(let c):
            create = c
        }
        let spec: TaskSpec
        switch parseCreate(create, ossHeader: false, &entry) {
        case .refused(let refusal): return Self.gatewayResponse(refusal)
        case .spec(let s): spec = s
        }
        entry.model = modelID
        entry.referenceField = object["inputReferences"] != nil ? "inputReferences" : "providerOptions.alibaba.referenceUrls"
        switch await admit(spec, caller: caller, via: .gateway, idempotencyKey: idempotencyKey, &entry) {
        case .refused(let refusal):
            return Self.gatewayResponse(refusal)
        case .reset, .createdThenReset:
            return .reset
        case .createdThenFailed(_, let refusal):
            return Self.gatewayResponse(refusal)
        case .created(let task, _):
            return Self.gatewayJSON(Self.gatewayOperation(task.id, status: "pending"), status: .accepted)
        }
    }

    struct GatewayProblem: Error {
        var message: String
    }

    /// The DashScope create body a gateway start stands for (reference §2, the `@ai-sdk/alibaba` mapping):
    /// `inputReferences` (URLs) or `providerOptions.alibaba.referenceUrls` → `input.reference_urls`, `resolution`
    /// `"W x H"` → `parameters.size` `"W*H"`, `duration`, `seed`, `generateAudio` (or `providerOptions.alibaba.audio`)
    /// → `parameters.audio`, `providerOptions.alibaba.{negativePrompt, shotType, watermark, promptExtend}`.
    /// `aspectRatio` and `fps` are ignored, as that provider ignores them.
    static func dashScopeCreate(gatewayBody body: [String: Any], model: RenderModel) -> Result<[String: Any], GatewayProblem> {
        var input: [String: Any] = [:]
        var parameters: [String: Any] = [:]
        input["prompt"] = body["prompt"]
        if let n = body["n"], integer(n) != 1 {
            return .failure(GatewayProblem(message: "n must be 1: a Wan 2.6 task renders one video."))
        }
        let options = (body["providerOptions"] as? [String: Any])?["alibaba"] as? [String: Any] ?? [:]
        if let refs = body["inputReferences"] {
            guard let list = refs as? [Any] else {
                return .failure(GatewayProblem(message: "inputReferences must be an array."))
            }
            var urls: [String] = []
            for (i, item) in list.enumerated() {
                guard let ref = item as? [String: Any], ref["type"] as? String == "url", let url = ref["url"] as? String else {
                    return .failure(GatewayProblem(message:
                        "inputReferences[\(i)] must be {\"type\": \"url\", \"url\": …}; file references are not supported."))
                }
                urls.append(url)
            }
            input["reference_urls"] = urls
        } else if let urls = options["referenceUrls"] {
            input["reference_urls"] = urls
        }
        if let resolution = body["resolution"] {
            let parts = (resolution as? String)?.split(separator: "x").map(String.init) ?? []
            guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
                return .failure(GatewayProblem(message: "resolution must be \"WIDTHxHEIGHT\", e.g. \"1280x720\"."))
            }
            parameters["size"] = "\(w)*\(h)"
        }
        parameters["duration"] = body["duration"]
        parameters["seed"] = body["seed"]
        parameters["audio"] = body["generateAudio"] ?? options["audio"]
        input["negative_prompt"] = options["negativePrompt"]
        parameters["shot_type"] = options["shotType"]
        parameters["watermark"] = options["watermark"]
        parameters["prompt_extend"] = options["promptExtend"]
        return .success(["model": model.rawValue, "input": input, "parameters": parameters])
    }

    // MARK: status

    func gatewayStatus(_ request: HTTPRequest, _ entry: inout JournalEntry) -> HTTPResponse {
        let caller: Caller
        switch authorize(request, &entry) {
        case .refused(let refusal): return Self.gatewayResponse(refusal)
        case .caller(let c): caller = c
        }
        guard let body = try? JSONSerialization.jsonObject(with: Data(request.body.readableBytesView)) as? [String: Any],
              let operation = body["operation"] as? [String: Any],
              let id = operation["gatewayJobId"] as? String, !id.isEmpty else {
            return Self.gatewayError(.badRequest, "invalid_request_error",
                                     "The body must be {\"operation\": {\"gatewayJobId\": …}}.")
        }
        entry.taskID = id
        let realNow = options.rateClock?() ?? realElapsed()
        let base = Self.base(request)
        return state.withLock { s -> HTTPResponse in
            let t = sandboxNow(s)
            s.settle(at: t, concurrency: options.concurrency)
            let (task, fired) = s.queried(id, account: caller.account, via: .gateway, entry: &entry)
            entry.model = task?.model.gatewayModelID
            func has(_ f: FaultName) -> FiredFault? { fired.first { $0.name == f } }
            if let f = has(.queryThrottle) {
                return Self.gatewayResponse(.throttled("Throttling.RateQuota", retryAfter: f.rule?.retryAfter))
            }
            guard SandboxState.admit(&s.recentQueries[caller.account, default: []], now: realNow, limit: options.queryQPS) else {
                s.count("throttled.query_qps")
                return Self.gatewayResponse(.throttled("Throttling.RateQuota", retryAfter: nil))
            }
            s.count("gateway.status")
            if has(.queryReset) != nil { return .reset }
            if has(.query503) != nil {
                return Self.gatewayError(.serviceUnavailable, "internal_server_error", "Service temporarily unavailable.")
            }
            if has(.query504) != nil {
                return .text("<html><body>504 Gateway Time-out</body></html>\n", status: .gatewayTimeout, contentType: "text/html")
            }
            if has(.malformedNoOutput) != nil { return Self.gatewayJSON([:]) }
            guard let task else {
                return Self.gatewayError(.notFound, "not_found", "No job \(id) for this team.")
            }
            var answer: [String: Any]
            // Gateway jobs do not expire into UNKNOWN; a finished job's asset does (reference §2.1).
            switch task.status(at: t, taskTTL: .infinity) {
            case .pending, .running:
                answer = Self.gatewayOperation(task.id, status: "pending")
                answer["status"] = "pending"
            case .succeeded:
                let expiresAt = wallTime((task.endsAt ?? t) + options.urlTTL)
                answer = Self.gatewayOperation(task.id, status: "completed",
                                               result: ["expiresAt": RFC3339.format(expiresAt)])
                answer["status"] = "completed"
                let expired = has(.expiredURL) != nil || t > (task.endsAt ?? .infinity) + options.urlTTL
                answer["videos"] = expired ? [] : [["type": "url", "url": videoURL(task, base: base), "mediaType": "video/mp4"]]
            case .failed:
                answer = Self.gatewayOperation(task.id, status: "error")
                answer["status"] = "error"
                if case .fail(let code, let message) = task.outcome {
                    let status: HTTPResponseStatus = code == "InternalError" ? .internalServerError : .badRequest
                    answer["error"] = Self.gatewayErrorObject(status, status == .badRequest ? "invalid_request_error"
                                                              : "internal_server_error", "\(code): \(message)")
                }
            case .unknown:
                answer = Self.gatewayOperation(task.id, status: "error")
                answer["status"] = "error"
                answer["error"] = Self.gatewayErrorObject(.internalServerError, "internal_server_error",
                                                          "The provider lost the task.")
            case .canceled:
                answer = Self.gatewayOperation(task.id, status: "cancelled")
                answer["status"] = "cancelled"
            }
            if has(.malformedStatus) != nil { answer["status"] = "suspended" }
            return Self.gatewayJSON(answer)
        }
    }
}
