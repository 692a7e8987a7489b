import Foundation
import Logging
import ReelCore
import ReelCurl

/// The DashScope (Alibaba Model Studio) video-synthesis API over libcurl: `RenderAPI` for wan2.6 r2v.
///
/// Every call is one exchange (two for `uploadFile`); failures are thrown as `ProviderFailure` carrying the
/// `Exchange`, the provider's code/message/request id, `Retry-After`, and whether the request may have reached the
/// provider. Task cancellation propagates as `CancellationError`. The API key is sent only in the
/// `Authorization` header of DashScope calls (never to the upload or result hosts) and is redacted from every
/// message, log line and description.
public struct DashScopeClient: RenderAPI, CustomStringConvertible {
    /// Per-call limits, in seconds.
    public struct Timeouts: Hashable, Sendable {
        public var connect: Double
        /// create, query, cancel, list, getPolicy.
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

    public let baseURL: String
    public let timeouts: Timeouts
    private let key: APIKey
    private let workspace: String?
    private let curl: CurlClient
    private let logger: Logger

    /// - Parameters:
    ///   - baseURL: e.g. `https://dashscope-intl.aliyuncs.com` (the `/api/v1/...` paths are appended).
    ///   - apiKey: the DashScope key (`sk-...`).
    ///   - workspace: sent as `X-DashScope-WorkSpace` when set.
    public init(baseURL: String, apiKey: String, workspace: String? = nil, curl: CurlClient,
                timeouts: Timeouts = Timeouts(), logger: Logger = Logger(label: "reel.provider")) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        key = APIKey(apiKey)
        self.workspace = workspace
        self.curl = curl
        self.timeouts = timeouts
        self.logger = logger
    }

    public var description: String { "DashScopeClient(\(baseURL), key: \(key))" }

    // MARK: RenderAPI

    public func createTask(_ request: RenderRequest) async throws -> CreatedTask {
        try await createTask(request, beforeSend: nil)
    }

    public func createTask(_ request: RenderRequest,
                           beforeSend: @escaping @Sendable () async throws -> Void) async throws -> CreatedTask {
        try await createTask(request, beforeSend: Optional(beforeSend))
    }

    private func createTask(_ request: RenderRequest,
                            beforeSend: (@Sendable () async throws -> Void)?) async throws -> CreatedTask {
        var headers = [HTTPHeader("X-DashScope-Async", "enable"), HTTPHeader("Content-Type", "application/json")]
        if request.usesOSSReferences { headers.append(HTTPHeader("X-DashScope-OssResourceResolve", "enable")) }
        let body = try Self.encoder.encode(CreateBody(request))
        let result = try await call(.create, "POST", "/api/v1/services/aigc/video-generation/video-synthesis",
                                    headers: headers, body: Array(body), beforeSend: beforeSend)
        let output = try field(result, .create, "output") { $0["output"]?.object }
        let taskID = try field(result, .create, "output.task_id") { _ in output["task_id"]?.string?.nilIfEmpty }
        let status = output["task_status"]?.string.flatMap(TaskStatus.init(rawValue:)) ?? .pending
        return CreatedTask(taskID: taskID, status: status, exchange: result.exchange)
    }

    public func queryTask(_ taskID: String) async throws -> (TaskSnapshot, Exchange) {
        let result = try await call(.query, "GET", "/api/v1/tasks/\(try pathSegment(taskID, .query))")
        let output = try field(result, .query, "output") { $0["output"]?.object }
        let snapshot = try snapshot(JSONValue.object(output), result: result, kind: .query,
                                    statusKey: "task_status", requestID: result.requestID)
        guard snapshot.taskID == taskID else {
            throw malformed(result, .query, "output.task_id is \"\(snapshot.taskID)\", asked for \"\(taskID)\"")
        }
        return (snapshot, result.exchange)
    }

    public func cancelTask(_ taskID: String) async throws -> Exchange {
        let result = try await call(.cancel, "POST", "/api/v1/tasks/\(try pathSegment(taskID, .cancel))/cancel",
                                    body: [])
        return result.exchange
    }

    /// One page of `GET /api/v1/tasks` (reference §1.9). The list is an optimisation over `queryTask`, and its
    /// details are thinly documented, so the page is read tolerantly: each row on its own (`status` or
    /// `task_status`; times as epoch milliseconds, numeric strings or `YYYY-MM-DD hh:mm:ss.SSS`; unknown fields
    /// ignored), a row that cannot be read is skipped and counted, never the page. The window is sent widened for
    /// the filter's undocumented zone (`ProviderTime.listWindow`); callers filter on `createdAt` themselves.
    public func listTasks(_ query: TaskListQuery) async throws -> (TaskListPage, Exchange) {
        var items = [("page_no", String(query.pageNumber)), ("page_size", String(query.pageSize))]
        if query.startTime != nil || query.endTime != nil {
            let to = query.endTime ?? Date().timeIntervalSince1970
            let window = ProviderTime.listWindow(from: query.startTime ?? to - ProviderTime.listWindowLimit, to: to)
            items.append(("start_time", ProviderTime.formatCompact(window.start)))
            items.append(("end_time", ProviderTime.formatCompact(window.end)))
        }
        if let m = query.model { items.append(("model_name", m.rawValue)) }
        if let s = query.status { items.append(("status", s.rawValue)) }
        let result = try await call(.list, "GET", "/api/v1/tasks?" + Self.queryString(items))
        let body = result.json?["data"]?.array != nil ? result.json : result.json?["output"]
        let data = try field(result, .list, "data") { _ in body?["data"]?.array }
        var rows: [TaskListRow] = []
        var skipped = 0
        for item in data {
            if let row = Self.listRow(item) { rows.append(row) } else { skipped += 1 }
        }
        if skipped > 0 {
            logger.notice("task list rows skipped: unreadable", metadata: ["skipped": "\(skipped)", "read": "\(rows.count)"])
        }
        let total = body?["total"]?.int ?? (rows.count + skipped)
        return (TaskListPage(rows: rows, skippedRows: skipped, total: total, totalPages: body?["total_page"]?.int),
                result.exchange)
    }

    /// One list row, or nil when it has no task id or no known status.
    static func listRow(_ item: JSONValue) -> TaskListRow? {
        guard item.object != nil, let taskID = item["task_id"]?.string, !taskID.isEmpty,
              let raw = (item["status"] ?? item["task_status"])?.string,
              let status = TaskStatus(rawValue: raw.uppercased()) else { return nil }
        func time(_ name: String) -> Timestamp? {
            guard let value = item[name] else { return nil }
            if let ms = value.double { return ms / 1000 }
            return value.string.flatMap(ProviderTime.parse)
        }
        return TaskListRow(taskID: taskID, status: status, model: item["model_name"]?.string,
                           createdAt: time("gmt_create") ?? time("submit_time"), startedAt: time("start_time"),
                           endedAt: time("end_time"), requestID: item["request_id"]?.string)
    }

    public func uploadFile(path: String, model: RenderModel) async throws -> (String, Exchange) {
        let filename = (path as NSString).lastPathComponent
        guard !filename.isEmpty, FileManager.default.isReadableFile(atPath: path) else {
            let exchange = Exchange(kind: .upload, httpStatus: 0, durationMilliseconds: 0)
            throw ProviderFailure(exchange: exchange, code: "InvalidParameter.LocalFile",
                                  message: "cannot read the reference file \(path); check the path and permissions")
        }
        let policyResult = try await call(.upload, "GET", "/api/v1/uploads?"
                                          + Self.queryString([("action", "getPolicy"), ("model", model.rawValue)]))
        let policy = try field(policyResult, .upload, "output") { $0["output"]?.object }
        func text(_ name: String) throws -> String {
            try field(policyResult, .upload, "output.\(name)") { _ in policy[name]?.string?.nilIfEmpty }
        }
        let key = try text("upload_dir") + "/" + filename
        let contentType = Self.contentType(ofFile: filename)
        let form: [FormPart] = [
            .field(name: "OSSAccessKeyId", value: try text("oss_access_key_id")),
            .field(name: "Signature", value: try text("signature")),
            .field(name: "policy", value: try text("policy")),
            .field(name: "key", value: key),
            .field(name: "x-oss-object-acl", value: try text("x_oss_object_acl")),
            .field(name: "x-oss-forbid-overwrite", value: try text("x_oss_forbid_overwrite")),
            .field(name: "success_action_status", value: "200"),
            .field(name: "x-oss-content-type", value: contentType),
            .file(name: "file", path: path, filename: filename, contentType: contentType),
        ]
        // The upload host is OSS, not DashScope: no Authorization header goes there.
        let spec = HTTPRequestSpec(method: "POST", url: try text("upload_host"), form: form,
                                   timeout: timeouts.upload, connectTimeout: timeouts.connect,
                                   lowSpeed: LowSpeedLimit(bytesPerSecond: 1024, seconds: 30))
        let upload = try await exchange(.upload, spec)
        guard (200..<300).contains(upload.http.status) else { throw ossFailure(upload) }
        var exchange = upload.exchange
        exchange.durationMilliseconds += policyResult.exchange.durationMilliseconds
        exchange.requestID = exchange.requestID ?? policyResult.requestID
        return ("oss://" + key, exchange)
    }

    public func download(url: String, to path: String) async throws -> DownloadResult {
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
            let oss = Self.ossError(outcome.errorBody)
            exchange.providerCode = oss.code
            exchange.requestID = requestID ?? oss.requestID
            let expired = outcome.status == 403 && (oss.message ?? "").lowercased().contains("expired")
            let message = expired ? "result URL expired"
                : outcome.status == 404 ? "result no longer exists at the URL"
                : oss.message ?? "download failed"
            throw ProviderFailure(exchange: exchange, code: oss.code, message: redact(message),
                                  retryAfter: Self.retryAfter(outcome.header("retry-after")))
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

    // MARK: Exchanges

    /// One HTTP answer and the exchange it makes.
    private struct Answer {
        var http: HTTPResult
        var exchange: Exchange
        var json: JSONValue?
        var requestID: String? { exchange.requestID }
    }

    /// Sends a DashScope API call (with the key) and throws unless it answered 2xx with a JSON body.
    private func call(_ kind: Exchange.Kind, _ method: String, _ path: String, headers: [HTTPHeader] = [],
                      body: [UInt8]? = nil,
                      beforeSend: (@Sendable () async throws -> Void)? = nil) async throws -> Answer {
        var all = [HTTPHeader("Authorization", "Bearer \(key.value)"), HTTPHeader("Accept", "application/json")]
        if let workspace { all.append(HTTPHeader("X-DashScope-WorkSpace", workspace)) }
        let spec = HTTPRequestSpec(method: method, url: baseURL + path, headers: all + headers, body: body,
                                   timeout: timeouts.api, connectTimeout: timeouts.connect)
        let answer = try await exchange(kind, spec, beforeSend: beforeSend)
        guard (200..<300).contains(answer.http.status) else {
            let json = answer.json
            let message = json?["message"]?.string ?? json?["msg"]?.string
                ?? "HTTP \(answer.http.status): \(Self.excerpt(answer.http.bodyText))"
            throw ProviderFailure(exchange: answer.exchange, code: answer.exchange.providerCode, message: redact(message),
                                  retryAfter: Self.retryAfter(answer.http.header("retry-after")),
                                  requestMayHaveArrived: answer.http.status >= 500)
        }
        guard answer.json?.object != nil else {
            throw malformed(answer, kind, "the body is not a JSON object: \(Self.excerpt(answer.http.bodyText))")
        }
        return answer
    }

    /// Performs one request and turns transport errors into `ProviderFailure`.
    /// `beforeSend` errors pass through unchanged (nothing was sent).
    private func exchange(_ kind: Exchange.Kind, _ spec: HTTPRequestSpec,
                          beforeSend: (@Sendable () async throws -> Void)? = nil) async throws -> Answer {
        let http: HTTPResult
        do {
            http = try await curl.perform(spec, beforeSend: beforeSend)
        } catch let error as TransportError {
            throw transportFailure(kind, error)
        }
        let json = JSONValue.parse(http.body)
        let exchange = Exchange(kind: kind, httpStatus: http.status,
                                providerCode: (200..<300).contains(http.status) ? nil : json?["code"]?.string,
                                requestID: json?["request_id"]?.string ?? http.header("x-oss-request-id"),
                                durationMilliseconds: http.totalMilliseconds)
        logExchange(exchange)
        return Answer(http: http, exchange: exchange, json: json)
    }

    private func transportFailure(_ kind: Exchange.Kind, _ error: TransportError) -> ProviderFailure {
        let message = redact(error.message)
        let exchange = Exchange(kind: kind, httpStatus: 0, durationMilliseconds: error.elapsedMilliseconds,
                                transportError: message)
        logExchange(exchange)
        return ProviderFailure(exchange: exchange, code: nil, message: "transport error (curl \(error.code)): \(message)",
                               requestMayHaveArrived: error.requestSent)
    }

    /// A 2xx whose body lacks what the protocol promises: blamed on the provider. A malformed create answer may
    /// still have created a task, so it counts as having arrived.
    private func malformed(_ answer: Answer, _ kind: Exchange.Kind, _ detail: String) -> ProviderFailure {
        var exchange = answer.exchange
        exchange.providerCode = Self.malformedCode
        return ProviderFailure(exchange: exchange, code: Self.malformedCode,
                               message: redact("malformed \(kind.rawValue) response: \(detail)"),
                               requestMayHaveArrived: true)
    }

    private func field<T>(_ answer: Answer, _ kind: Exchange.Kind, _ name: String,
                          _ read: (JSONValue) -> T?) throws -> T {
        guard let json = answer.json, let value = read(json) else {
            throw malformed(answer, kind, "missing or invalid \(name)")
        }
        return value
    }

    private func ossFailure(_ answer: Answer) -> ProviderFailure {
        let oss = Self.ossError(answer.http.body)
        var exchange = answer.exchange
        exchange.providerCode = oss.code
        exchange.requestID = exchange.requestID ?? oss.requestID
        return ProviderFailure(exchange: exchange, code: oss.code,
                               message: redact(oss.message ?? "HTTP \(answer.http.status): upload refused"))
    }

    /// A task object of a query (`output`) or of a list row.
    private func snapshot(_ task: JSONValue, result: Answer, kind: Exchange.Kind, statusKey: String,
                          requestID: String?) throws -> TaskSnapshot {
        guard let taskID = task["task_id"]?.string?.nilIfEmpty else {
            throw malformed(result, kind, "missing task_id")
        }
        guard let rawStatus = task[statusKey]?.string else {
            throw malformed(result, kind, "task \(taskID) has no \(statusKey)")
        }
        guard let status = TaskStatus(rawValue: rawStatus) else {
            throw malformed(result, kind, "task \(taskID) has unknown \(statusKey) \"\(rawStatus)\"")
        }
        let videoURL = task["video_url"]?.string?.nilIfEmpty
        if kind == .query, status == .succeeded, videoURL == nil {
            throw malformed(result, kind, "task \(taskID) SUCCEEDED without video_url")
        }
        let usage = result.json?["usage"].flatMap { u -> TaskUsage? in
            guard kind == .query, u.object != nil else { return nil }
            return TaskUsage(duration: u["duration"]?.double,
                             inputVideoDuration: u["input_video_duration"]?.double,
                             outputVideoDuration: (u["output_video_duration"] ?? u["video_duration"])?.double,
                             size: u["size"]?.string ?? u["video_ratio"]?.string,
                             sr: u["SR"]?.int, videoCount: u["video_count"]?.int)
        }
        return TaskSnapshot(taskID: taskID, status: status, videoURL: videoURL, code: task["code"]?.string,
                            message: task["message"]?.string.map(redact), submitTime: task["submit_time"]?.string,
                            scheduledTime: task["scheduled_time"]?.string, endTime: task["end_time"]?.string,
                            usage: usage, requestID: requestID, origPrompt: task["orig_prompt"]?.string)
    }

    private func pathSegment(_ taskID: String, _ kind: Exchange.Kind) throws -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        guard !taskID.isEmpty, let escaped = taskID.addingPercentEncoding(withAllowedCharacters: allowed) else {
            throw ProviderFailure(exchange: Exchange(kind: kind, httpStatus: 0, durationMilliseconds: 0),
                                  code: "InvalidParameter.TaskID", message: "the task id is empty")
        }
        return escaped
    }

    private func logExchange(_ exchange: Exchange) {
        logger.debug("provider exchange", metadata: [
            "kind": "\(exchange.kind.rawValue)", "status": "\(exchange.httpStatus)",
            "code": "\(exchange.providerCode ?? "-")", "request_id": "\(exchange.requestID ?? "-")",
            "ms": "\(exchange.durationMilliseconds)",
        ])
    }

    private func redact(_ text: String) -> String { key.redact(text) }

    // MARK: Wire helpers

    /// `ProviderFailure.code` for a 2xx answer that breaks the protocol (missing fields, unknown status).
    public static let malformedCode = "MalformedResponse"

    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    /// The create body of reference §1.3; optional parameters are omitted when unset.
    struct CreateBody: Encodable {
        struct Input: Encodable {
            var prompt: String
            var negativePrompt: String?
            var referenceURLs: [String]
            enum CodingKeys: String, CodingKey {
                case prompt, negativePrompt = "negative_prompt", referenceURLs = "reference_urls"
            }
        }

        struct Parameters: Encodable {
            var size: String
            var duration: Int
            var shotType: String?
            var watermark: Bool?
            var seed: Int?
            var audio: Bool?
            enum CodingKeys: String, CodingKey {
                case size, duration, shotType = "shot_type", watermark, seed, audio
            }
        }

        var model: String
        var input: Input
        var parameters: Parameters

        init(_ r: RenderRequest) {
            model = r.model.rawValue
            input = Input(prompt: r.prompt, negativePrompt: r.negativePrompt, referenceURLs: r.referenceURLs)
            parameters = Parameters(size: r.size.providerString, duration: r.durationSeconds,
                                    shotType: r.shotType?.rawValue, watermark: r.watermark, seed: r.seed,
                                    audio: r.audio)
        }
    }

    static func queryString(_ items: [(String, String)]) -> String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_.~"))
        return items.map { name, value in
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }.joined(separator: "&")
    }

    /// `Retry-After` as seconds: delta-seconds or an HTTP date.
    static func retryAfter(_ value: String?) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        if let seconds = Double(value) { return max(0, seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: value).map { max(0, $0.timeIntervalSinceNow) }
    }

    /// `<Code>`, `<Message>` and `<RequestId>` of an OSS XML error body.
    static func ossError(_ body: [UInt8]) -> (code: String?, message: String?, requestID: String?) {
        let text = String(decoding: body, as: UTF8.self)
        func element(_ name: String) -> String? {
            guard let open = text.range(of: "<\(name)>"),
                  let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex) else { return nil }
            return String(text[open.upperBound..<close.lowerBound]).nilIfEmpty
        }
        return (element("Code"), element("Message"), element("RequestId"))
    }

    static func contentType(ofFile name: String) -> String {
        switch (name as NSString).pathExtension.lowercased() {
        case "mp4": "video/mp4"
        case "mov": "video/quicktime"
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "bmp": "image/bmp"
        case "webp": "image/webp"
        default: "application/octet-stream"
        }
    }

    static func excerpt(_ text: String) -> String {
        let flat = text.replacingOccurrences(of: "\n", with: " ")
        return flat.count > 200 ? String(flat.prefix(200)) + "…" : flat
    }
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
private final class APIKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
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

extension String {
    fileprivate var nilIfEmpty: String? { isEmpty ? nil : self }
}
