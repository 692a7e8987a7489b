import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import ReelMedia
import Synchronization

/// A faithful local DashScope video-synthesis server (reference §1, §4): create, query, cancel, list, uploads,
/// a signed result host, account limits, a scaled virtual clock, fault injection and a request journal.
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
            return getPolicy(request)
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
        default:
            break
        }
        if path.hasPrefix("/api/v1/tasks/") {
            let rest = path.dropFirst("/api/v1/tasks/".count)
            if m == .POST, rest.hasSuffix("/cancel") {
                let id = String(rest.dropLast("/cancel".count))
                entry.taskID = id
                return cancel(request, id: id)
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

    /// 401/400 for a missing, unknown or in-arrears key; nil when the key is good.
    func authFailure(_ request: HTTPRequest) -> HTTPResponse? {
        guard let key = Self.apiKey(request) else {
            return Self.error(.unauthorized, "InvalidApiKey", "No API-key provided.")
        }
        let known = options.apiKeys.isEmpty ? key.hasPrefix("sk-") : options.apiKeys.contains(key)
        guard known else { return Self.error(.unauthorized, "InvalidApiKey", "Invalid API-key provided.") }
        if key.hasPrefix("sk-arrears") {
            return Self.error(.badRequest, "Arrearage",
                              "Access denied, plesase make sure your account is in good standing.")
        }
        return nil
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
