import Foundation
import ReelCore
import Synchronization

/// A `RenderAPI` that answers from a script, in process: the provider for engine tests that need no network and
/// no sandbox process. Creates, renders and downloads follow queues the test fills beforehand; every call is kept
/// in `calls` so a test can assert what reached "the provider".
///
/// Answers follow the reference: a create answers with a task id and the request id (§1.4); a failed HTTP call
/// carries `code`, `message` and `request_id` (§1.7); task-list rows carry the request id of the create call that
/// made the task (§1.9); a SUCCEEDED query carries the result URL and usage (§1.5, §1.6).
public final class ScriptedRenderAPI: RenderAPI {
    /// What the next create call does.
    public enum CreateOutcome: Sendable {
        /// The task is created; the call answers with its id and this status.
        case created(TaskStatus)
        /// The provider refuses: no task exists (e.g. HTTP 429 `Throttling.RateQuota`).
        case refused(httpStatus: Int, code: String, message: String, retryAfter: Double?)
        /// The task is created but the call fails with an HTTP 5xx that carries the create's request id: the client
        /// cannot tell whether a task exists.
        case createdButAnswerLost(httpStatus: Int)
    }

    /// How a created task's queries answer, one status per query (the last one repeats).
    public struct Render: Sendable {
        public var statuses: [TaskStatus]
        /// `output.code` / `output.message` of a FAILED task.
        public var failure: (code: String, message: String)?

        public init(statuses: [TaskStatus], failure: (code: String, message: String)? = nil) {
            self.statuses = statuses
            self.failure = failure
        }

        /// RUNNING, then SUCCEEDED.
        public static let succeeds = Render(statuses: [.running, .succeeded])

        public static func fails(code: String, message: String) -> Render {
            Render(statuses: [.running, .failed], failure: (code, message))
        }
    }

    /// One call as received.
    public enum Call: Sendable, Equatable {
        case create(requestID: String, model: RenderModel)
        case query(taskID: String)
        case list
        case cancel(taskID: String)
        case upload(path: String)
        case download(url: String)
    }

    private struct RemoteTask {
        var id: String
        var model: RenderModel
        var requestID: String
        var createdAt: Timestamp
        var durationSeconds: Int
        var render: Render
        var queries = 0
        var status: TaskStatus = .pending
    }

    private struct State {
        var creates: [CreateOutcome] = []
        var renders: [Render] = []
        var tasks: [String: RemoteTask] = [:]
        var order: [String] = []
        var calls: [Call] = []
        var requests = 0
    }

    private let state = Mutex(State())
    private let resultFile: String
    private let clock: any WallClock

    /// `resultFile` is what every download delivers; `clock` stamps the tasks' `gmt_create`.
    public init(resultFile: String, clock: any WallClock) {
        self.resultFile = resultFile
        self.clock = clock
    }

    /// Queues outcomes for the next create calls; once used up, creates succeed with PENDING.
    public func script(creates: [CreateOutcome]) { state.withLock { $0.creates += creates } }

    /// Queues renders for the next tasks created; once used up, renders succeed.
    public func script(renders: [Render]) { state.withLock { $0.renders += renders } }

    public var calls: [Call] { state.withLock { $0.calls } }

    /// Create calls received (whatever their outcome).
    public var createCalls: Int { calls.filter { if case .create = $0 { true } else { false } }.count }

    public func createTask(_ request: RenderRequest) async throws -> CreatedTask {
        let now = clock.now()
        return try state.withLock { s throws -> CreatedTask in
            s.requests += 1
            let requestID = "req-\(s.requests)"
            s.calls.append(.create(requestID: requestID, model: request.model))
            let outcome = s.creates.isEmpty ? .created(.pending) : s.creates.removeFirst()
            func makeTask() -> String {
                let id = "task-\(s.order.count + 1)"
                let render = s.renders.isEmpty ? .succeeds : s.renders.removeFirst()
                s.tasks[id] = RemoteTask(id: id, model: request.model, requestID: requestID, createdAt: now,
                                         durationSeconds: request.durationSeconds, render: render)
                s.order.append(id)
                return id
            }
            switch outcome {
            case .created(let status):
                let id = makeTask()
                s.tasks[id]?.status = status
                return CreatedTask(taskID: id, status: status, exchange: Self.exchange(.create, requestID: requestID))
            case .refused(let http, let code, let message, let retryAfter):
                throw ProviderFailure(exchange: Self.exchange(.create, http, code: code, requestID: requestID),
                                      code: code, message: message, retryAfter: retryAfter)
            case .createdButAnswerLost(let http):
                _ = makeTask()
                let exchange = Self.exchange(.create, http, code: "InternalError", requestID: requestID)
                throw ProviderFailure(exchange: exchange, code: "InternalError", message: "An internal error has occurred",
                                      requestMayHaveArrived: true)
            }
        }
    }

    public func queryTask(_ taskID: String) async throws -> (TaskSnapshot, Exchange) {
        state.withLock { s in
            s.requests += 1
            let requestID = "req-\(s.requests)"
            s.calls.append(.query(taskID: taskID))
            guard var task = s.tasks[taskID] else {
                return (TaskSnapshot(taskID: taskID, status: .unknown, requestID: requestID),
                        Self.exchange(.query, requestID: requestID))
            }
            let status = task.render.statuses[min(task.queries, task.render.statuses.count - 1)]
            task.queries += 1
            task.status = status
            s.tasks[taskID] = task
            var snapshot = TaskSnapshot(taskID: taskID, status: status, requestID: requestID)
            switch status {
            case .succeeded:
                snapshot.videoURL = "https://results.example.com/\(taskID).mp4?Expires=1"
                let seconds = Double(task.durationSeconds)
                snapshot.usage = TaskUsage(duration: seconds, outputVideoDuration: seconds, videoCount: 1)
            case .failed:
                snapshot.code = task.render.failure?.code
                snapshot.message = task.render.failure?.message
            default:
                break
            }
            return (snapshot, Self.exchange(.query, requestID: requestID))
        }
    }

    public func cancelTask(_ taskID: String) async throws -> Exchange {
        state.withLock { s in
            s.calls.append(.cancel(taskID: taskID))
            if s.tasks[taskID]?.status == .pending { s.tasks[taskID]?.status = .canceled }
        }
        return Self.exchange(.cancel)
    }

    public func listTasks(_ query: TaskListQuery) async throws -> (TaskListPage, Exchange) {
        let rows = state.withLock { s in
            s.calls.append(.list)
            return s.order.compactMap { s.tasks[$0] }.filter { query.model == nil || $0.model == query.model }.map {
                TaskListRow(taskID: $0.id, status: $0.status, model: $0.model.rawValue, createdAt: $0.createdAt,
                            requestID: $0.requestID)
            }
        }
        return (TaskListPage(rows: rows, total: rows.count, totalPages: 1), Self.exchange(.list))
    }

    public func uploadFile(path: String, model: RenderModel) async throws -> (String, Exchange) {
        state.withLock { $0.calls.append(.upload(path: path)) }
        let exchange = Self.exchange(.upload, 400, code: "InvalidParameter")
        throw ProviderFailure(exchange: exchange, code: "InvalidParameter", message: "uploads are not scripted")
    }

    /// Writes the result file to `path` whole, as a download that completed would.
    public func download(url: String, to path: String) async throws -> DownloadResult {
        state.withLock { $0.calls.append(.download(url: url)) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: resultFile))
        try bytes.write(to: URL(fileURLWithPath: path))
        return DownloadResult(bytesOnDisk: Int64(bytes.count), expectedBytes: Int64(bytes.count),
                              exchange: Self.exchange(.download))
    }

    private static func exchange(_ kind: Exchange.Kind, _ http: Int = 200, code: String? = nil,
                                 requestID: String? = nil) -> Exchange {
        Exchange(kind: kind, httpStatus: http, providerCode: code, requestID: requestID, durationMilliseconds: 1)
    }
}
