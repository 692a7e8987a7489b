import ReelCore
import ReelProtocol

/// What the control API needs from the daemon. `ReelDaemon` implements it over the store and the engine.
public protocol ControlBackend: Sendable {
    func status() async throws -> StatusResponse
    func jobs(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws -> JobPage
    /// The same page as JSON (`GET /v1/jobs`); a backend may answer repeated identical reads from a cache.
    func jobsJSON(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws -> [UInt8]
    func job(_ key: JobKey) async throws -> JobDetail?
    func perform(_ action: JobAction, on key: JobKey) async throws -> ActionResult
    func batches() async throws -> BatchList
    func batch(_ name: String) async throws -> BatchView?
    func perform(_ action: BatchAction, onBatch name: String) async throws -> ActionResult
    func perform(_ action: GlobalAction) async throws -> ActionResult
    /// Prometheus text exposition format.
    func metrics() async throws -> String
    /// Live changes for `GET /v1/events`, a few at a time; read until the client goes away.
    func events(batch: String?) async -> any AsyncSequence<[ControlEvent], Never> & Sendable
}

extension ControlBackend {
    public func jobsJSON(state: JobState?, batch: String?, limit: Int, cursor: String?) async throws -> [UInt8] {
        try await jobs(state: state, batch: batch, limit: limit, cursor: cursor).wireJSON()
    }
}

public enum JobAction: Sendable, Equatable {
    case cancel, retry, hold, release
    case resolve(ResolveRequest)

    public var name: String {
        switch self {
        case .cancel: "cancel"
        case .retry: "retry"
        case .hold: "hold"
        case .release: "release"
        case .resolve: "resolve"
        }
    }
}

public enum BatchAction: String, Sendable, Equatable, CaseIterable {
    case pause, resume, cancel
}

public enum GlobalAction: String, Sendable, Equatable, CaseIterable {
    case pause, resume, drain, reload
}

/// One server-sent event: `event: <kind>` and a JSON `data:` line.
public struct ControlEvent: Sendable, Equatable {
    /// `job`, `batch`, `status`.
    public var kind: String
    public var json: [UInt8]

    public init(kind: String, json: [UInt8]) {
        self.kind = kind
        self.json = json
    }
}

/// A refusal the API turns into a status code and an `ErrorBody`.
public struct ControlError: Error, Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case notFound, conflict, badRequest, forbidden, unavailable
    }

    public var kind: Kind
    public var body: ErrorBody
    /// The methods the path does allow, sent as `Allow` with a 405 (`method_not_allowed`).
    public var allowedMethods: [String] = []

    public init(_ kind: Kind, code: String, message: String, hint: String? = nil) {
        self.kind = kind
        self.body = ErrorBody(code: code, message: message, hint: hint)
    }
}
