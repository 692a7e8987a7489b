import Foundation
import ReelCore

/// How a task ends, decided when it is created (faults pick anything but `.succeed(.normal)`).
enum TaskOutcome: Sendable, Hashable {
    enum Media: Sendable, Hashable { case normal, wrongSize, wrongDuration }
    case succeed(Media)
    case fail(code: String, message: String)
    case unknown
}

/// How a task shows in the task list, decided when it is created (the `row` faults).
struct ListRowFaults: Sendable, Hashable {
    /// Never listed.
    var omit = false
    /// Listed only from `createdAt + lateSeconds` on (sandbox seconds).
    var lateSeconds: Double?
    /// The row is broken in one of three ways, picked by the task's creation number.
    var malformed = false
}

/// One (account, model) limit pool (reference §1.8).
struct PoolKey: Sendable, Hashable {
    var account: String
    var model: RenderModel
}

/// The protocol a task was created through; each protocol's query calls see only its own tasks.
enum TaskProtocol: String, Sendable {
    case dashscope
    /// The AI Gateway's asynchronous jobs (reference §2.1).
    case gateway
}

/// What a create asked for besides what the task's engine needs (shown by `/__sandbox/tasks`).
struct RequestedOptions: Sendable, Hashable {
    var negativePrompt: String?
    var references: [String] = []
    var shotType: String?
    var watermark: Bool?
    var seed: Int?
    /// The audio flag as sent (nil when absent).
    var audio: Bool?
}

/// One task as the sandbox keeps it. Its state at any instant follows from these times (sandbox seconds).
struct SandboxTask: Sendable {
    let id: String
    let account: String
    let via: TaskProtocol
    let requested: RequestedOptions
    /// The gateway start's `idempotency-key`, when it had one.
    let idempotencyKey: String?
    /// The `request_id` the create call answered with (or would have, when its connection was reset).
    let requestID: String
    /// The list row's `api_key_id`: a stable number derived from the key that created the task.
    let apiKeyID: String
    /// 1 for the first task created, 2 for the next, ...
    let number: Int
    let model: RenderModel
    let prompt: String
    let size: String
    let frame: FrameSize
    let duration: Int
    let audio: Bool
    let referenceCount: Int
    let billedInputSeconds: Double
    let createdAt: Double
    let queueDelay: Double
    let runTime: Double
    let outcome: TaskOutcome
    let listFaults: ListRowFaults
    /// When the task got one of its pool's slots (nil while queued by `--overflow queue`).
    var admittedAt: Double?
    var canceledAt: Double?

    var pool: PoolKey { PoolKey(account: account, model: model) }
    var runningAt: Double? { admittedAt.map { $0 + queueDelay } }
    var endsAt: Double? { runningAt.map { $0 + runTime } }
    /// When the task stops holding a slot.
    var releasesSlotAt: Double { canceledAt ?? endsAt ?? .infinity }

    func status(at t: Double, taskTTL: Double) -> TaskStatus {
        if t >= createdAt + taskTTL { return .unknown }
        if let c = canceledAt, c <= t { return .canceled }
        guard let running = runningAt, t >= running else { return .pending }
        guard let end = endsAt, t >= end else { return .running }
        switch outcome {
        case .succeed: return .succeeded
        case .fail: return .failed
        case .unknown: return .unknown
        }
    }

    /// When the task began running, if it has by `t` (a task canceled while PENDING never ran).
    func startedAt(by t: Double) -> Double? {
        guard let running = runningAt, running <= t, canceledAt.map({ $0 > running }) ?? true else { return nil }
        return running
    }

    /// When the task reached its terminal state, if it has by `t` (an expired task has no end time to show).
    func endedAt(by t: Double, taskTTL: Double) -> Double? {
        switch status(at: t, taskTTL: taskTTL) {
        case .canceled: canceledAt
        case .succeeded, .failed: endsAt
        case .unknown: t < createdAt + taskTTL ? endsAt : nil
        case .pending, .running: nil
        }
    }

    var resultFrame: FrameSize {
        if case .succeed(.wrongSize) = outcome { return FrameSize(width: 640, height: 360) }
        return frame
    }

    var resultSeconds: Int {
        if case .succeed(.wrongDuration) = outcome { return duration + 1 }
        return duration
    }
}

/// One line of `/__sandbox/requests`.
public struct JournalEntry: Sendable, Codable, Hashable {
    public var seq: Int = 0
    /// Unix seconds (real wall clock).
    public var time: Double = 0
    public var method: String
    public var path: String
    /// 0 when the connection was reset without a reply.
    public var status: Int = 0
    public var taskID: String?
    public var model: String?
    public var durationMs: Double = 0
    /// `reference_urls` or `reference_video_urls`, on creates.
    public var referenceField: String?
    /// Whether a create carried `X-DashScope-OssResourceResolve: enable`.
    public var ossHeader: Bool?
    public var fault: String?
    public var code: String?
    /// The account of the key the request carried (nil when it had no known key, and on result downloads,
    /// which carry none: then the account of the task downloaded).
    public var account: String?
    /// A gateway start's `idempotency-key` header.
    public var idempotencyKey: String?

    enum CodingKeys: String, CodingKey {
        case seq, time, method, path, status, model, fault, code, account
        case idempotencyKey = "idempotency_key"
        case taskID = "task_id"
        case durationMs = "duration_ms"
        case referenceField = "reference_field"
        case ossHeader = "oss_header"
    }
}

/// An `idempotency-key` as the sandbox scopes it: per account (the documents do not say; a key is the caller's).
struct IdempotencyScope: Sendable, Hashable {
    var account: String
    var key: String
}

/// An uploaded reference (`oss://KEY`).
struct Upload: Sendable {
    let path: String
    let contentType: String
    let videoSeconds: Double?
}

/// Mutable sandbox state, always used under the engine's lock.
struct SandboxState {
    var tasks: [String: SandboxTask] = [:]
    /// Task ids in creation order (list API).
    var order: [String] = []
    /// Tasks created so far (numbers them).
    var createdCount = 0
    /// Accepted tasks waiting for a slot of their pool, in arrival order.
    var queue: [String] = []
    var faults = FaultBook()
    var random: SplitMix64
    var journal: [JournalEntry] = []
    var nextSeq = 1
    /// Real monotonic seconds of recently accepted creates per pool and queries per account (1 s windows).
    var recentCreates: [PoolKey: [Double]] = [:]
    var recentQueries: [String: [Double]] = [:]
    /// Gateway jobs by (account, `idempotency-key`): a repeated start answers the job the first one made.
    var jobsByIdempotencyKey: [IdempotencyScope: String] = [:]
    /// Gateway start calls per (account, `idempotency-key`), answered or not.
    var startsByIdempotencyKey: [IdempotencyScope: Int] = [:]
    /// Seconds added by `POST /__sandbox/clock`.
    var advanced: Double = 0
    var uploads: [String: Upload] = [:]
    var uploadDirs: Set<String> = []
    var counters: [String: Int] = [:]

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    mutating func count(_ name: String, by n: Int = 1) { counters[name, default: 0] += n }

    /// The start of a task query, the same for both protocols: the task if `account` may see it through `via` (an
    /// account sees only its own tasks, and only those of the protocol asking), and the query faults that fire for
    /// it, counted and named in the journal entry.
    mutating func queried(_ id: String, account: String, via: TaskProtocol,
                          entry: inout JournalEntry) -> (task: SandboxTask?, fired: [FiredFault]) {
        let task = tasks[id].flatMap { $0.account == account && $0.via == via ? $0 : nil }
        let fired = faults.fire(.query, prompt: task?.prompt, model: task?.model.rawValue, account: account,
                                random: &random)
        entry.fault = fired.map(\.name.rawValue).joined(separator: ",").nilIfEmpty
        for f in fired { count("fault." + f.name.rawValue) }
        return (task, fired)
    }

    /// Admits queued tasks whose slot in their pool has freed by `t`, at the instant it freed; each pool's queue
    /// is first come, first served, and a full pool holds up no other.
    mutating func settle(at t: Double, concurrency: Int) {
        var blocked: Set<PoolKey> = []
        var i = 0
        while i < queue.count {
            guard let task = tasks[queue[i]], task.canceledAt == nil else {
                queue.remove(at: i)
                continue
            }
            if blocked.contains(task.pool) {
                i += 1
                continue
            }
            let holding = tasks.values.filter { $0.pool == task.pool && $0.admittedAt != nil && $0.releasesSlotAt > task.createdAt }
                .map(\.releasesSlotAt).sorted()
            let freeAt = holding.count < concurrency ? task.createdAt : holding[holding.count - concurrency]
            guard freeAt <= t, freeAt.isFinite else {
                blocked.insert(task.pool)
                i += 1
                continue
            }
            tasks[task.id]?.admittedAt = max(freeAt, task.createdAt)
            queue.remove(at: i)
        }
    }

    /// Tasks holding a slot at `t`, in `pool` or in all pools.
    func active(at t: Double, in pool: PoolKey? = nil) -> Int {
        tasks.values.reduce(0) { n, task in
            guard pool.map({ task.pool == $0 }) ?? true, let admitted = task.admittedAt else { return n }
            return n + (admitted <= t && task.releasesSlotAt > t ? 1 : 0)
        }
    }

    /// Keeps a 1-second window; true (and records `now`) when under `limit`.
    static func admit(_ window: inout [Double], now: Double, limit: Int) -> Bool {
        window.removeAll { $0 <= now - 1 }
        guard window.count < limit else { return false }
        window.append(now)
        return true
    }

    mutating func record(_ entry: JournalEntry) {
        var e = entry
        e.seq = nextSeq
        nextSeq += 1
        journal.append(e)
        if journal.count > 200_000 { journal.removeFirst(50_000) }
    }
}
