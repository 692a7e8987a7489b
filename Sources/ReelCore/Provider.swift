/// The provider's task states (reference §1.5).
public enum TaskStatus: String, Sendable, Codable, CaseIterable {
    case pending = "PENDING"
    case running = "RUNNING"
    case succeeded = "SUCCEEDED"
    case failed = "FAILED"
    case canceled = "CANCELED"
    case unknown = "UNKNOWN"

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .canceled || self == .unknown }
}

/// A render as sent to the provider's create call.
public struct RenderRequest: Hashable, Sendable, Codable {
    public var model: RenderModel
    public var prompt: String
    public var negativePrompt: String?
    /// http(s) URLs, or `oss://` keys from the upload API (then the create call carries
    /// `X-DashScope-OssResourceResolve: enable`).
    public var referenceURLs: [String]
    public var size: FrameSize
    public var durationSeconds: Int
    public var shotType: ShotType?
    public var watermark: Bool?
    public var seed: Int?
    public var audio: Bool?
    /// A key naming this one submission durably, for providers that deduplicate creates on it (the AI Gateway's
    /// `idempotency-key`, reference §2.1): the same key always means the same render, so a create whose answer
    /// was lost is simply sent again with it. It must be stored before the create is sent and reused for every
    /// re-send of that submission (after a 5xx, a reset or a crash), and be new for a new render of the job (after
    /// a FAILED task or an operator retry). DashScope has no such key (reference §1.4) and ignores it.
    public var idempotencyKey: String?

    public init(model: RenderModel, prompt: String, negativePrompt: String? = nil, referenceURLs: [String],
                size: FrameSize, durationSeconds: Int, shotType: ShotType? = nil, watermark: Bool? = nil,
                seed: Int? = nil, audio: Bool? = nil, idempotencyKey: String? = nil) {
        self.idempotencyKey = idempotencyKey
        self.model = model
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.referenceURLs = referenceURLs
        self.size = size
        self.durationSeconds = durationSeconds
        self.shotType = shotType
        self.watermark = watermark
        self.seed = seed
        self.audio = audio
    }

    public var usesOSSReferences: Bool { referenceURLs.contains { $0.hasPrefix("oss://") } }
}

/// `usage` of a SUCCEEDED r2v task (reference §1.6). Numbers sometimes arrive as strings; the client normalises.
public struct TaskUsage: Hashable, Sendable, Codable {
    /// Billed seconds: input video + output.
    public var duration: Double?
    public var inputVideoDuration: Double?
    public var outputVideoDuration: Double?
    public var size: String?
    public var sr: Int?
    public var videoCount: Int?

    public init(duration: Double? = nil, inputVideoDuration: Double? = nil, outputVideoDuration: Double? = nil,
                size: String? = nil, sr: Int? = nil, videoCount: Int? = nil) {
        self.duration = duration
        self.inputVideoDuration = inputVideoDuration
        self.outputVideoDuration = outputVideoDuration
        self.size = size
        self.sr = sr
        self.videoCount = videoCount
    }
}

/// What a query says about one task.
public struct TaskSnapshot: Hashable, Sendable, Codable {
    public var taskID: String
    public var status: TaskStatus
    public var videoURL: String?
    public var code: String?
    public var message: String?
    /// Provider times as given (`YYYY-MM-DD HH:mm:ss.SSS`, no zone).
    public var submitTime: String?
    public var scheduledTime: String?
    public var endTime: String?
    public var usage: TaskUsage?
    public var requestID: String?
    /// `orig_prompt` of a query answer: the prompt the task was created with, when the provider echoes it.
    public var origPrompt: String?
    /// When `videoURL` stops working, when the provider says so (the AI Gateway's `expiresAt`, reference §2.1);
    /// nil means the DashScope rule, 24 hours (reference §1.6).
    public var resultExpiresAt: Timestamp?

    public init(taskID: String, status: TaskStatus, videoURL: String? = nil, code: String? = nil,
                message: String? = nil, submitTime: String? = nil, scheduledTime: String? = nil,
                endTime: String? = nil, usage: TaskUsage? = nil, requestID: String? = nil, origPrompt: String? = nil,
                resultExpiresAt: Timestamp? = nil) {
        self.origPrompt = origPrompt
        self.resultExpiresAt = resultExpiresAt
        self.taskID = taskID
        self.status = status
        self.videoURL = videoURL
        self.code = code
        self.message = message
        self.submitTime = submitTime
        self.scheduledTime = scheduledTime
        self.endTime = endTime
        self.usage = usage
        self.requestID = requestID
    }
}

/// One HTTP exchange with the provider, as recorded in the attempts table.
public struct Exchange: Hashable, Sendable, Codable {
    public enum Kind: String, Sendable, Codable {
        case create, query, cancel, list, upload, download
    }

    public var kind: Kind
    /// 0 when no HTTP status was received (transport error).
    public var httpStatus: Int
    public var providerCode: String?
    public var requestID: String?
    public var durationMilliseconds: Int
    /// libcurl's error text for transport failures.
    public var transportError: String?

    public init(kind: Kind, httpStatus: Int, providerCode: String? = nil, requestID: String? = nil,
                durationMilliseconds: Int, transportError: String? = nil) {
        self.kind = kind
        self.httpStatus = httpStatus
        self.providerCode = providerCode
        self.requestID = requestID
        self.durationMilliseconds = durationMilliseconds
        self.transportError = transportError
    }
}

/// Who is to blame for a failed exchange, which decides what the scheduler does next.
public enum Blame: String, Sendable, Codable {
    /// The request itself is wrong or refused (InvalidParameter, DataInspectionFailed…): fail the job, no retry.
    case jobPermanent
    /// The account is out of capacity (Throttling): shrink concurrency, retry later.
    case throttled
    /// The provider is unwell (5xx, resets): trip the breaker, retry later.
    case provider
    /// The account or key is unusable (InvalidApiKey, Arrearage): stop submitting everything.
    case account
    /// A create call whose outcome is unknown (timeout, 500, reset after sending): the job is in doubt.
    case ambiguous
}

/// A failed provider exchange, classified.
public struct ProviderFailure: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    public var exchange: Exchange
    public var code: String?
    public var message: String
    /// Seconds, from a `Retry-After` header when present.
    public var retryAfter: Double?
    /// True when the request may have reached the provider (bytes were sent and no definite answer came back).
    public var requestMayHaveArrived: Bool
    /// True when the request carried an idempotency key the provider deduplicates on (`RenderRequest.idempotencyKey`):
    /// sending it again cannot make a second task, so a create with no definite answer is retried with the same
    /// key, never left in doubt.
    public var repeatable: Bool

    public init(exchange: Exchange, code: String?, message: String, retryAfter: Double? = nil,
                requestMayHaveArrived: Bool = false, repeatable: Bool = false) {
        self.repeatable = repeatable
        self.exchange = exchange
        self.code = code
        self.message = message
        self.retryAfter = retryAfter
        self.requestMayHaveArrived = requestMayHaveArrived
    }

    public var description: String {
        let status = exchange.httpStatus == 0 ? "no response" : "HTTP \(exchange.httpStatus)"
        return "\(exchange.kind.rawValue): \(status)\(code.map { " \($0)" } ?? ""): \(message)"
    }

    /// Provider codes that no retry can fix: DashScope's (reference §1.7) and the AI Gateway's error types
    /// (`invalid_request_error`, `model_not_found`).
    public static func isPermanentCode(_ code: String) -> Bool {
        let permanentPrefixes = ["InvalidParameter", "DataInspectionFailed", "IPInfringementSuspect", "InvalidURL",
                                 "BadRequest", "ModelNotFound", "InvalidVideo", "InvalidImage",
                                 "invalid_request_error", "model_not_found", unsupportedCode]
        return permanentPrefixes.contains { code == $0 || code.hasPrefix($0 + ".") }
    }

    public static func isAccountCode(_ code: String) -> Bool {
        ["InvalidApiKey", "Arrearage", "AccessDenied", "Workspace.AccessDenied", "Model.AccessDenied",
         "authentication_error"].contains(code)
    }

    /// DashScope's `Throttling…` codes and the AI Gateway's `rate_limit_exceeded` (reference §1.7, §2).
    public static func isThrottlingCode(_ code: String) -> Bool {
        code.hasPrefix("Throttling") || code == "rate_limit_exceeded"
    }

    /// The code of a call the provider's protocol does not have (the AI Gateway documents no task list, no
    /// cancel and no upload): refused by the client without sending anything.
    public static let unsupportedCode = "Unsupported"

    /// A call the provider's protocol does not have; nothing was sent.
    public static func unsupported(_ kind: Exchange.Kind, _ message: String) -> ProviderFailure {
        ProviderFailure(exchange: Exchange(kind: kind, httpStatus: 0, providerCode: unsupportedCode,
                                           durationMilliseconds: 0),
                        code: unsupportedCode, message: message)
    }

    public var blame: Blame {
        if let code {
            if Self.isThrottlingCode(code) { return .throttled }
            if Self.isAccountCode(code) { return .account }
            if Self.isPermanentCode(code) { return .jobPermanent }
        }
        if exchange.httpStatus == 429 { return .throttled }
        if exchange.kind == .create {
            // 5xx, a transport error after sending, or a 2xx without a usable task id: a task may exist. With an
            // idempotency key, asking again answers that task instead of making another: retry, not in doubt.
            if exchange.httpStatus >= 500 || (exchange.httpStatus < 400 && requestMayHaveArrived) {
                return repeatable ? .provider : .ambiguous
            }
        }
        if exchange.httpStatus == 401 || exchange.httpStatus == 403 { return .account }
        if exchange.httpStatus >= 400 && exchange.httpStatus < 500 { return .jobPermanent }
        return .provider
    }
}

/// Filter of the provider's task-list API (reference §1.9).
public struct TaskListQuery: Hashable, Sendable {
    /// The window to ask for, seconds since 1970 UTC. The client sends it widened for the undocumented zone of the
    /// filter (`ProviderTime.listWindow`); callers filter rows on `gmtCreate` themselves.
    public var startTime: Double?
    public var endTime: Double?
    public var model: RenderModel?
    public var status: TaskStatus?
    public var pageNumber: Int
    public var pageSize: Int

    public init(startTime: Double? = nil, endTime: Double? = nil, model: RenderModel? = nil,
                status: TaskStatus? = nil, pageNumber: Int = 1, pageSize: Int = 50) {
        self.startTime = startTime
        self.endTime = endTime
        self.model = model
        self.status = status
        self.pageNumber = pageNumber
        self.pageSize = pageSize
    }
}

/// One row of the task list, as documented (reference §1.9): no prompt, no result, no usage.
public struct TaskListRow: Hashable, Sendable {
    public var taskID: String
    public var status: TaskStatus
    /// `model_name`, when given.
    public var model: String?
    /// `gmt_create`, seconds since 1970 UTC (the wire gives epoch milliseconds).
    public var createdAt: Timestamp?
    public var startedAt: Timestamp?
    public var endedAt: Timestamp?
    /// The request id of the create call that made the task.
    public var requestID: String?

    public init(taskID: String, status: TaskStatus, model: String? = nil, createdAt: Timestamp? = nil,
                startedAt: Timestamp? = nil, endedAt: Timestamp? = nil, requestID: String? = nil) {
        self.taskID = taskID
        self.status = status
        self.model = model
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.requestID = requestID
    }
}

public struct TaskListPage: Hashable, Sendable {
    public var rows: [TaskListRow]
    /// Rows the client could not read (no task id, an unknown status…): skipped, the rest of the page kept.
    public var skippedRows: Int
    /// `total` as the provider gives it (or the rows seen).
    public var total: Int
    /// `total_page`, when given.
    public var totalPages: Int?

    public init(rows: [TaskListRow], skippedRows: Int = 0, total: Int, totalPages: Int? = nil) {
        self.rows = rows
        self.skippedRows = skippedRows
        self.total = total
        self.totalPages = totalPages
    }

    /// Whether a page after this one may hold more rows.
    public func hasMore(after query: TaskListQuery) -> Bool {
        if let totalPages { return query.pageNumber < totalPages }
        return rows.count + skippedRows >= query.pageSize && query.pageNumber * query.pageSize < total
    }
}

public struct CreatedTask: Hashable, Sendable {
    public var taskID: String
    public var status: TaskStatus
    public var exchange: Exchange

    public init(taskID: String, status: TaskStatus, exchange: Exchange) {
        self.taskID = taskID
        self.status = status
        self.exchange = exchange
    }
}

public struct DownloadResult: Hashable, Sendable {
    /// Bytes now in the file (including those resumed from).
    public var bytesOnDisk: Int64
    /// Total size announced by the server (`Content-Length` or the `Content-Range` total), when known.
    public var expectedBytes: Int64?
    public var exchange: Exchange
    /// The file's content digest, computed while the bytes were written (the resumed part first); nil when the
    /// transfer could not hash the whole file, which must then be hashed from disk.
    public var digest: ContentDigest?

    public init(bytesOnDisk: Int64, expectedBytes: Int64?, exchange: Exchange, digest: ContentDigest? = nil) {
        self.bytesOnDisk = bytesOnDisk
        self.expectedBytes = expectedBytes
        self.exchange = exchange
        self.digest = digest
    }

    public var isComplete: Bool { expectedBytes.map { $0 == bytesOnDisk } ?? true }
}

/// The sha256 of a file's content and how many bytes it covers: valid for the file while it still has exactly
/// that many bytes and nothing rewrote them.
public struct ContentDigest: Hashable, Sendable {
    /// Lowercase hex.
    public var sha256: String
    public var bytes: Int64

    public init(sha256: String, bytes: Int64) {
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// The port the daemon drives; `ReelProvider.DashScopeClient` and `ReelProvider.AIGatewayClient` implement it over
/// libcurl. Every method throws `ProviderFailure` on a failed exchange; a call the provider does not have throws
/// `ProviderFailure.unsupported` without sending anything.
public protocol RenderAPI: Sendable {
    /// Whether `listTasks` exists on this provider (DashScope: yes; the AI Gateway: no, reference §2.1).
    var supportsTaskList: Bool { get }
    /// Whether `cancelTask` exists on this provider.
    var supportsCancel: Bool { get }
    /// Whether `createTask` deduplicates on `RenderRequest.idempotencyKey`, so a create whose answer was lost is
    /// settled by sending it again with the same key (no reconciliation, no in-doubt window).
    var deduplicatesCreates: Bool { get }
    func createTask(_ request: RenderRequest) async throws -> CreatedTask
    /// `createTask` that awaits `beforeSend` right before the request goes out (after any wait for a connection
    /// slot) and sends nothing if it throws, rethrowing its error. The daemon commits its write-ahead intent
    /// there, so the in-doubt window opens as late as possible. The default calls `beforeSend` first.
    func createTask(_ request: RenderRequest,
                    beforeSend: @escaping @Sendable () async throws -> Void) async throws -> CreatedTask
    func queryTask(_ taskID: String) async throws -> (TaskSnapshot, Exchange)
    func cancelTask(_ taskID: String) async throws -> Exchange
    func listTasks(_ query: TaskListQuery) async throws -> (TaskListPage, Exchange)
    /// Uploads a local file through getPolicy + the OSS-style form upload; returns the `oss://` URL.
    func uploadFile(path: String, model: RenderModel) async throws -> (String, Exchange)
    /// Downloads `url` into `path`, resuming with `Range` from the bytes already in the file.
    func download(url: String, to path: String) async throws -> DownloadResult
}

extension RenderAPI {
    public var supportsTaskList: Bool { true }
    public var supportsCancel: Bool { true }
    public var deduplicatesCreates: Bool { false }

    public func createTask(_ request: RenderRequest,
                           beforeSend: @escaping @Sendable () async throws -> Void) async throws -> CreatedTask {
        try await beforeSend()
        return try await createTask(request)
    }
}
