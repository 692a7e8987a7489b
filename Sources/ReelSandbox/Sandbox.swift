import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import ReelMedia
import Synchronization

/// A faithful local DashScope video-synthesis server (reference §1, §4): create, query, cancel, list, uploads,
/// a signed result host, limits per (account, model) for several accounts, a scaled virtual clock, fault
/// injection and a request journal; and the AI Gateway's asynchronous video jobs (reference §2.1) on the same
/// task engine.
public final class Sandbox: Sendable {
    public let options: SandboxOptions
    /// Where results and uploads are stored.
    public let dataDirectory: String
    let logger: Logger
    let state: Mutex<SandboxState>
    let media: ResultMedia
    let startInstant = ContinuousClock.now
    let startWall = Date().timeIntervalSince1970
    let urlSecret = UUID().uuidString

    public static let createPath = "/api/v1/services/aigc/video-generation/video-synthesis"
    static let resultPrefix = "/oss/dashscope-result-sandbox/"
    static let uploadPath = "/oss/dashscope-instant"

    public init(options: SandboxOptions, logger: Logger) throws {
        self.options = options
        self.logger = logger
        let dir = options.dataDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("reel-sandbox-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/uploads", withIntermediateDirectories: true)
        dataDirectory = dir
        media = ResultMedia(directory: dir)
        var s = SandboxState(seed: options.seed ?? UInt64.random(in: 0...UInt64.max))
        s.faults.rules = options.faults.rules
        state = Mutex(s)
    }

    /// Serves on `binding` until the task is cancelled.
    public func run(on binding: HTTPServer.Binding, onBound: @Sendable (String) -> Void) async throws {
        let server = HTTPServer(logger: logger, maxBodyBytes: options.maxBodyBytes) { await self.handle($0) }
        try await server.run(on: binding, onBound: onBound)
    }

    // MARK: clocks

    /// Real monotonic seconds since start.
    func realElapsed() -> Double {
        let d = ContinuousClock.now - startInstant
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// Sandbox time: scaled seconds since start plus what `/__sandbox/clock` added.
    func sandboxNow(_ s: borrowing SandboxState) -> Double { realElapsed() * options.timeScale + s.advanced }

    /// Wall-clock unix time shown for sandbox time `t`.
    func wallTime(_ t: Double) -> Double { startWall + t / options.timeScale }

    // MARK: entry point

    /// Answers one request and records it in the journal.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let started = ContinuousClock.now
        var entry = JournalEntry(time: Date().timeIntervalSince1970, method: "\(request.method)", path: request.path)
        let response = await route(request, &entry)
        if entry.path.hasPrefix("/__sandbox/") { return response }
        let d = ContinuousClock.now - started
        entry.durationMs = (Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18) * 1000
        entry.status = response.resetsConnection ? 0 : Int(response.status.code)
        state.withLock { $0.record(entry) }
        return response
    }

    private func route(_ request: HTTPRequest, _ entry: inout JournalEntry) async -> HTTPResponse {
        let path = request.path
        let m = request.method
        switch (m, path) {
        case (.POST, Self.createPath):
            return await create(request, &entry)
        case (.GET, "/api/v1/tasks"), (.GET, "/api/v1/tasks/"):
            return list(request, &entry)
        case (.GET, "/api/v1/uploads"):
            return getPolicy(request, &entry)
        case (.POST, Self.gatewayStartPath):
            return await gatewayStart(request, &entry)
        case (.POST, Self.gatewayStatusPath):
            return gatewayStatus(request, &entry)
        case (.POST, Self.uploadPath), (.POST, Self.uploadPath + "/"):
            return await upload(request)
        case (_, "/__sandbox/faults"):
            return faultsEndpoint(request)
        case (.GET, "/__sandbox/requests"):
            return journalEndpoint(request)
        case (_, "/__sandbox/clock"):
            return clockEndpoint(request)
        case (.GET, "/__sandbox/stats"):
            return statsEndpoint()
        case (.GET, "/__sandbox/tasks"):
            return tasksEndpoint()
        case (.GET, "/__sandbox/gateway/starts"):
            return gatewayStartsEndpoint()
        default:
            break
        }
        if path.hasPrefix("/api/v1/tasks/") {
            let rest = path.dropFirst("/api/v1/tasks/".count)
            if m == .POST, rest.hasSuffix("/cancel") {
                let id = String(rest.dropLast("/cancel".count))
                entry.taskID = id
                return cancel(request, id: id, &entry)
            }
            if m == .GET, !rest.contains("/") {
                entry.taskID = String(rest)
                return query(request, id: String(rest), &entry)
            }
        }
        if (m == .GET || m == .HEAD), path.hasPrefix(Self.resultPrefix), path.hasSuffix(".mp4") {
            let id = String(path.dropFirst(Self.resultPrefix.count).dropLast(4))
            entry.taskID = id
            return await download(request, id: id, &entry)
        }
        return Self.notFound(path)
    }

    // MARK: responses

    static func requestID() -> String { UUID().uuidString.lowercased() }

    static func json(_ object: [String: Any], status: HTTPResponseStatus = .ok,
                     headers: HTTPHeaders = [:]) -> HTTPResponse {
        var o = object
        if o["request_id"] == nil { o["request_id"] = requestID() }
        let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return .jsonBytes(Array(data), status: status, headers: headers)
    }

    /// The provider's error envelope `{code, message, request_id}`.
    static func error(_ status: HTTPResponseStatus, _ code: String, _ message: String,
                      headers: HTTPHeaders = [:]) -> HTTPResponse {
        json(["code": code, "message": message], status: status, headers: headers)
    }

    static func throttled(_ code: String, retryAfter: Double?) -> HTTPResponse {
        var h = HTTPHeaders()
        if let retryAfter { h.add(name: "Retry-After", value: "\(Int(retryAfter.rounded(.up)))") }
        return error(.tooManyRequests, code, "Requests rate limit exceeded, please try again later.", headers: h)
    }

    static func ossError(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> HTTPResponse {
        let xml = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error>
              <Code>\(code)</Code>
              <Message>\(message)</Message>
              <RequestId>\(requestID().uppercased())</RequestId>
              <HostId>dashscope-result-sandbox.oss-sandbox.aliyuncs.com</HostId>
              <EC>\(code == "AccessDenied" ? "0002-00000069" : "0026-00000001")</EC>
            </Error>

            """
        return .text(xml, status: status, contentType: "application/xml")
    }

    /// Who a request acts for: the account of its key, and the key.
    struct Caller: Sendable {
        var account: String
        var key: String
    }

    /// A refusal in provider-neutral terms; each protocol renders it in its own error shape.
    struct Refusal: Sendable {
        var status: HTTPResponseStatus
        var code: String
        var message: String
        var retryAfter: Double?

        static func internalError() -> Refusal {
            Refusal(status: .internalServerError, code: "InternalError",
                    message: "An internal error has occured, please try again later or contact service support.")
        }

        static func invalid(_ message: String) -> Refusal {
            Refusal(status: .badRequest, code: "InvalidParameter", message: message)
        }

        static func throttled(_ code: String, retryAfter: Double?) -> Refusal {
            Refusal(status: .tooManyRequests, code: code,
                    message: "Requests rate limit exceeded, please try again later.", retryAfter: retryAfter)
        }

        /// The DashScope envelope `{code, message, request_id}`.
        var dashScope: HTTPResponse {
            code.hasPrefix("Throttling") ? Sandbox.throttled(code, retryAfter: retryAfter)
                : Sandbox.error(status, code, message)
        }
    }

    enum Authorization {
        case caller(Caller)
        case refused(Refusal)
    }

    /// The account a key acts for, nil when the key is not accepted.
    func account(forKey key: String) -> String? {
        if let account = options.accounts.first(where: { $0.keys.contains(key) }) { return account.name }
        if options.apiKeys.contains(key) { return SandboxOptions.defaultAccount }
        if options.accounts.isEmpty, options.apiKeys.isEmpty, key.hasPrefix("sk-") { return SandboxOptions.defaultAccount }
        return nil
    }

    /// 401 for a missing or unknown key, 400 Arrearage for an in-arrears one, 500 when a `call_error` fault
    /// fires for the account; otherwise the caller. Notes the account in the journal entry.
    func authorize(_ request: HTTPRequest, _ entry: inout JournalEntry) -> Authorization {
        guard let key = Self.apiKey(request) else {
            return .refused(Refusal(status: .unauthorized, code: "InvalidApiKey", message: "No API-key provided."))
        }
        guard let account = account(forKey: key) else {
            return .refused(Refusal(status: .unauthorized, code: "InvalidApiKey", message: "Invalid API-key provided."))
        }
        entry.account = account
        if key.hasPrefix("sk-arrears") {
            return .refused(Refusal(status: .badRequest, code: "Arrearage",
                                    message: "Access denied, plesase make sure your account is in good standing."))
        }
        let fired: [FiredFault] = state.withLock { s in
            let fired = s.faults.fire(.call, prompt: nil, model: nil, account: account, random: &s.random)
            for f in fired { s.count("fault." + f.name.rawValue) }
            return fired
        }
        if !fired.isEmpty {
            entry.fault = fired.map(\.name.rawValue).joined(separator: ",")
            return .refused(.internalError())
        }
        return .caller(Caller(account: account, key: key))
    }

    /// The bearer key of a request, if it has one.
    static func apiKey(_ request: HTTPRequest) -> String? {
        guard let auth = request.headers.first(name: "authorization"), auth.hasPrefix("Bearer ") else { return nil }
        let key = String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        return key.isEmpty ? nil : key
    }

    /// The answer for a path the sandbox does not serve.
    static func notFound(_ path: String) -> HTTPResponse {
        error(.notFound, "NotFound", "The requested resource \(path) was not found.")
    }

    /// Base URL the client used to reach us (for `video_url` and `upload_host`).
    static func base(_ request: HTTPRequest) -> String {
        "http://" + (request.headers.first(name: "host") ?? "127.0.0.1")
    }
}
