import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ReelCore
import ReelHTTPServer
import ReelProtocol

/// The `/v1` control API: routing, authorisation, errors, JSON/NDJSON/SSE encodings.
public struct ControlAPI: Sendable {
    let backend: any ControlBackend
    let authorizer: Authorizer
    let logger: Logger
    /// Seconds between SSE keep-alive comments.
    let keepAliveInterval: Double
    /// Connections held at once and how long idle or slow clients are waited for.
    let limits: HTTPServer.Limits

    /// The control socket's default limits: a few hundred clients at once (reelctl, dashboards, `watch`), idle
    /// ones closed after a minute, a request that is not complete after 10 s cut.
    public static let defaultLimits = HTTPServer.Limits(maxConnections: 256, idleTimeout: .seconds(60),
                                                        requestTimeout: .seconds(10))

    /// `defaultLimits` with another connection cap (`[control] max_connections`).
    public static func limits(maxConnections: Int) -> HTTPServer.Limits {
        var limits = defaultLimits
        limits.maxConnections = max(1, maxConnections)
        return limits
    }

    public init(backend: any ControlBackend, authorizer: Authorizer, logger: Logger, keepAliveInterval: Double = 15,
                limits: HTTPServer.Limits = ControlAPI.defaultLimits) {
        self.backend = backend
        self.authorizer = authorizer
        self.logger = logger
        self.keepAliveInterval = keepAliveInterval
        self.limits = limits
    }

    /// Serves the API on `binding` until the calling task is cancelled.
    public func run(on binding: HTTPServer.Binding, onBound: @Sendable (String) -> Void = { _ in }) async throws {
        let server = HTTPServer(logger: logger, maxBodyBytes: 1 << 20, limits: limits) { request in
            await self.handle(request)
        }
        try await server.run(on: binding, onBound: onBound)
    }

    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        do {
            return try await route(request)
        } catch let error as ControlError {
            return Self.error(error)
        } catch {
            logger.error("control request failed", metadata: ["path": "\(request.path)", "error": "\(error)"])
            return Self.error(ControlError(.unavailable, code: "internal", message: "\(error)"))
        }
    }

    private func route(_ request: HTTPRequest) async throws -> HTTPResponse {
        let parts = request.pathSegments
        guard parts.first == "v1" else {
            throw ControlError(.notFound, code: "not_found", message: "no such endpoint: \(request.path)",
                               hint: "the API lives under /v1; see GET /v1/openapi.json")
        }
        let rest = Array(parts.dropFirst())
        let isGet = request.method == .GET || request.method == .HEAD
        let isPost = request.method == .POST

        switch (rest.count, rest.first) {
        case (1, "status"):
            try allow(isGet, request, "GET")
            return .jsonBytes(try await backend.status().wireJSON())
        case (1, "metrics"):
            try allow(isGet, request, "GET")
            return .text(try await backend.metrics(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case (1, "openapi.json"):
            try allow(isGet, request, "GET")
            return .jsonBytes(OpenAPIDocument.bytes)
        case (1, "events"):
            try allow(isGet, request, "GET")
            return await events(batch: request.query["batch"])
        case (1, "jobs"):
            try allow(isGet, request, "GET")
            return try await jobs(request)
        case (3, "jobs"):
            try allow(isGet, request, "GET")
            let key = try jobKey(rest[1], rest[2])
            guard let detail = try await backend.job(key) else { throw Self.noJob(key) }
            return .json(detail)
        case (4, "jobs"):
            try allow(isPost, request, "POST")
            let key = try jobKey(rest[1], rest[2])
            try authorize(request)
            let action: JobAction
            switch rest[3] {
            case "cancel": action = .cancel
            case "retry": action = .retry
            case "hold": action = .hold
            case "release": action = .release
            case "resolve":
                guard let body = try? request.decodeJSON(ResolveRequest.self),
                      ["adopt", "resubmit", "fail"].contains(body.action),
                      body.action != "adopt" || !(body.task_id ?? "").isEmpty else {
                    throw ControlError(.badRequest, code: "bad_request",
                                       message: "resolve needs a JSON body {\"action\": \"adopt\"|\"resubmit\"|\"fail\", \"task_id\": …}",
                                       hint: "adopt needs task_id: reelctl resolve BATCH/ID --adopt TASK")
                }
                action = .resolve(body)
            default:
                throw ControlError(.notFound, code: "not_found", message: "unknown job action \(rest[3])",
                                   hint: "actions: cancel, retry, hold, release, resolve")
            }
            return try await result(backend.perform(action, on: key))
        case (1, "batches"):
            try allow(isGet, request, "GET")
            return .json(try await backend.batches())
        case (2, "batches"):
            try allow(isGet, request, "GET")
            guard let view = try await backend.batch(rest[1]) else {
                throw ControlError(.notFound, code: "no_such_batch", message: "no batch named \(rest[1])",
                                   hint: "list batches with `reelctl batches`")
            }
            return .json(view)
        case (3, "batches"):
            try allow(isPost, request, "POST")
            guard let action = BatchAction(rawValue: rest[2]) else {
                throw ControlError(.notFound, code: "not_found", message: "unknown batch action \(rest[2])",
                                   hint: "actions: pause, resume, cancel")
            }
            try authorize(request)
            return try await result(backend.perform(action, onBatch: rest[1]))
        case (1, let verb?) where GlobalAction(rawValue: verb) != nil:
            try allow(isPost, request, "POST")
            try authorize(request)
            return try await result(backend.perform(GlobalAction(rawValue: verb)!))
        default:
            throw ControlError(.notFound, code: "not_found", message: "no such endpoint: \(request.path)",
                               hint: "see GET /v1/openapi.json")
        }
    }

    private func allow(_ ok: Bool, _ request: HTTPRequest, _ method: String) throws {
        guard ok else {
            var error = ControlError(.badRequest, code: "method_not_allowed",
                                     message: "\(request.method.rawValue) is not allowed on \(request.path); use \(method)")
            error.allowedMethods = method == "GET" ? ["GET", "HEAD"] : [method]
            throw error
        }
    }

    private func authorize(_ request: HTTPRequest) throws {
        if let reason = authorizer.refusalToMutate(request.peer) {
            throw ControlError(.forbidden, code: "forbidden", message: reason,
                               hint: "run as root or the reel user, or add the user to the admin group ([control] admin_group)")
        }
    }

    private func jobKey(_ batch: String, _ id: String) throws -> JobKey {
        guard Identifier.isValid(batch), Identifier.isValid(id) else {
            throw ControlError(.badRequest, code: "bad_job", message: "\(batch)/\(id) is not a job address",
                               hint: "jobs are addressed as BATCH/ID, each \(Identifier.syntax)")
        }
        return JobKey(batch: batch, id: id)
    }

    private func jobs(_ request: HTTPRequest) async throws -> HTTPResponse {
        let state: JobState?
        if let s = request.query["state"] {
            guard let parsed = JobState(rawValue: s) else {
                throw ControlError(.badRequest, code: "bad_state", message: "unknown state \(s)",
                                   hint: "states: \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            state = parsed
        } else {
            state = nil
        }
        let batch = request.query["batch"]
        if let batch, !Identifier.isValid(batch) {
            throw ControlError(.badRequest, code: "bad_batch", message: "\(batch) is not a batch name",
                               hint: "batch names match \(Identifier.syntax)")
        }
        let cursor = request.query["cursor"].flatMap { $0.isEmpty ? nil : $0 }
        let accept = request.headers["accept"].joined(separator: ",")
        if accept.contains("application/x-ndjson") {
            return ndjson(state: state, batch: batch, cursor: cursor)
        }
        var limit = 100
        if let l = request.query["limit"] {
            guard let n = Int(l), (1...1000).contains(n) else {
                throw ControlError(.badRequest, code: "bad_limit", message: "limit must be a whole number 1...1000",
                                   hint: "page through larger listings with cursor, or ask for NDJSON")
            }
            limit = n
        }
        return .jsonBytes(try await backend.jobsJSON(state: state, batch: batch, limit: limit, cursor: cursor))
    }

    /// Every matching job, one JSON object per line, streamed page by page.
    private func ndjson(state: JobState?, batch: String?, cursor: String?) -> HTTPResponse {
        let backend = self.backend
        return HTTPResponse(status: .ok, headers: ["Content-Type": "application/x-ndjson"], body: .stream { writer in
            var next = cursor
            repeat {
                let page = try await backend.jobs(state: state, batch: batch, limit: 1000, cursor: next)
                var chunk: [UInt8] = []
                for job in page.jobs {
                    chunk += job.wireJSON()
                    chunk.append(UInt8(ascii: "\n"))
                }
                try await writer.write(chunk)
                next = page.next_cursor
            } while next != nil
        })
    }

    private func events(batch: String?) async -> HTTPResponse {
        let stream = await backend.events(batch: batch)
        let interval = keepAliveInterval
        return HTTPResponse(status: .ok, headers: ["Content-Type": "text/event-stream", "Cache-Control": "no-cache"],
                            body: .stream { writer in
            try await writer.write(": reel events\n\n")
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    while !Task.isCancelled {
                        try await Task.sleep(for: .seconds(interval))
                        try await writer.write(": keep-alive\n\n")
                    }
                }
                group.addTask {
                    for await events in stream {
                        for event in events {
                            var frame = Array("event: \(event.kind)\ndata: ".utf8)
                            frame += event.json
                            frame += Array("\n\n".utf8)
                            try await writer.write(frame)
                        }
                    }
                }
                // Either side ending (client gone: a write throws; stream finished) ends the response.
                try await group.next()
                group.cancelAll()
            }
        })
    }

    private func result(_ r: ActionResult) -> HTTPResponse {
        .json(r, status: r.ok ? .ok : .conflict)
    }

    static func noJob(_ key: JobKey) -> ControlError {
        ControlError(.notFound, code: "no_such_job", message: "no job \(key)",
                     hint: "list jobs with `reelctl jobs --batch \(key.batch)`")
    }

    static func error(_ e: ControlError) -> HTTPResponse {
        let status: HTTPResponseStatus = switch e.kind {
        case .notFound: .notFound
        case .conflict: .conflict
        case .badRequest: e.body.error.code == "method_not_allowed" ? .methodNotAllowed : .badRequest
        case .forbidden: .forbidden
        case .unavailable: .serviceUnavailable
        }
        var headers: HTTPHeaders = [:]
        if !e.allowedMethods.isEmpty { headers.add(name: "Allow", value: e.allowedMethods.joined(separator: ", ")) }
        return .json(e.body, status: status, headers: headers)
    }
}
