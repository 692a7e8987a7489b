import Foundation
import ReelCore

// The /v1 control API's wire types, shared by reeld and reelctl. JSON keys are snake_case;
// times are RFC 3339 strings in UTC; money is USD as a number. Additive changes only within /v1.

/// `GET /v1/status`.
public struct StatusResponse: Codable, Sendable, Equatable {
    public struct Provider: Codable, Sendable, Equatable {
        /// `ok`, `throttled`, `breaker_open`, `account_blocked`.
        public var health: String
        public var detail: String?
        /// Render slots the account may fill: the model pools' sum, inside the optional overall cap.
        public var concurrency_limit: Int
        /// The cap in force (≤ the limit) after throttling.
        public var concurrency_cap: Int
        public var slots_in_use: Int
        public var throttles: Int
        public var creates: Int
        public var polls: Int
        /// Task queries, task lists and cancels per second (per account).
        public var query_per_second: Double?
        /// One limit pool per model (the provider limits slots and creates per model).
        public var pools: [Pool]?

        public struct Pool: Codable, Sendable, Equatable {
            public var model: String
            public var concurrency_limit: Int
            public var concurrency_cap: Int
            public var slots_in_use: Int
            public var queued: Int
            public var submit_per_second: Double
            public var throttles: Int
            /// While throttled: no create of this model before this time.
            public var throttled_until: String?

            public init(model: String, concurrency_limit: Int, concurrency_cap: Int, slots_in_use: Int, queued: Int,
                        submit_per_second: Double, throttles: Int, throttled_until: String?) {
                self.model = model
                self.concurrency_limit = concurrency_limit
                self.concurrency_cap = concurrency_cap
                self.slots_in_use = slots_in_use
                self.queued = queued
                self.submit_per_second = submit_per_second
                self.throttles = throttles
                self.throttled_until = throttled_until
            }
        }

        public init(health: String, detail: String?, concurrency_limit: Int, concurrency_cap: Int,
                    slots_in_use: Int, throttles: Int, creates: Int, polls: Int, query_per_second: Double? = nil,
                    pools: [Pool]? = nil) {
            self.health = health
            self.detail = detail
            self.concurrency_limit = concurrency_limit
            self.concurrency_cap = concurrency_cap
            self.slots_in_use = slots_in_use
            self.throttles = throttles
            self.creates = creates
            self.polls = polls
            self.query_per_second = query_per_second
            self.pools = pools
        }
    }

    public var version: String
    public var pid: Int32
    public var started_at: String
    public var uptime_s: Double
    /// `running`, `paused`, `draining`.
    public var mode: String
    public var jobs: [String: Int]
    public var total_jobs: Int
    public var batches: Int
    public var provider: Provider
    /// Whether delivery can write to the output filesystem.
    public struct Storage: Codable, Sendable, Equatable {
        /// `ok`, or `waiting` while deliveries wait for the output filesystem (full, read-only, failing, or out
        /// of file descriptors); they resume by themselves once it accepts writes again.
        public var health: String
        /// Jobs whose delivery is waiting for the output filesystem.
        public var waiting_jobs: Int
        /// The latest refusal, e.g. `No space left on device (/srv/reel/output/b)`.
        public var detail: String?

        public init(health: String = "ok", waiting_jobs: Int = 0, detail: String? = nil) {
            self.health = health
            self.waiting_jobs = waiting_jobs
            self.detail = detail
        }
    }

    /// Money billed so far: the cost of every job whose task SUCCEEDED, delivered or not.
    public var spend_usd: Double
    /// The part of `spend_usd` billed for jobs that ended without a delivered file (`failed` after QC,
    /// `expired`, `cancelled` during delivery), and how many such jobs.
    public var billed_not_delivered_usd: Double
    public var billed_not_delivered_jobs: Int
    public var storage: Storage
    /// Things an operator must look at: in-doubt jobs, expired (billed but lost) results, deadlines at risk,
    /// deliveries waiting for the output filesystem.
    public var warnings: [String]

    public init(version: String, pid: Int32, started_at: String, uptime_s: Double, mode: String,
                jobs: [String: Int], total_jobs: Int, batches: Int, provider: Provider, spend_usd: Double,
                billed_not_delivered_usd: Double = 0, billed_not_delivered_jobs: Int = 0, storage: Storage = Storage(),
                warnings: [String]) {
        self.billed_not_delivered_usd = billed_not_delivered_usd
        self.billed_not_delivered_jobs = billed_not_delivered_jobs
        self.storage = storage
        self.version = version
        self.pid = pid
        self.started_at = started_at
        self.uptime_s = uptime_s
        self.mode = mode
        self.jobs = jobs
        self.total_jobs = total_jobs
        self.batches = batches
        self.provider = provider
        self.spend_usd = spend_usd
        self.warnings = warnings
    }
}

/// A p50/p90 wall-clock range.
public struct ETAView: Codable, Sendable, Equatable {
    public var p50: String
    public var p90: String

    public init(p50: String, p90: String) {
        self.p50 = p50
        self.p90 = p90
    }
}

/// One job in listings.
public struct JobView: Codable, Sendable, Equatable {
    public var job: String
    public var batch: String
    public var id: String
    public var state: String
    public var priority: String
    public var model: String
    public var resolution: String
    public var aspect_ratio: String
    public var duration_s: Int
    public var attempt: Int
    public var task_id: String?
    public var reason: String?
    public var created_at: String
    public var updated_at: String
    public var output: String?
    public var sha256: String?
    public var cost_usd: Double?
    public var estimated_cost_usd: Double?
    public var deadline: String?
    public var eta: ETAView?

    public init(job: String, batch: String, id: String, state: String, priority: String, model: String,
                resolution: String, aspect_ratio: String, duration_s: Int, attempt: Int, task_id: String?,
                reason: String?, created_at: String, updated_at: String, output: String?, sha256: String?,
                cost_usd: Double?, estimated_cost_usd: Double?, deadline: String?, eta: ETAView?) {
        self.job = job
        self.batch = batch
        self.id = id
        self.state = state
        self.priority = priority
        self.model = model
        self.resolution = resolution
        self.aspect_ratio = aspect_ratio
        self.duration_s = duration_s
        self.attempt = attempt
        self.task_id = task_id
        self.reason = reason
        self.created_at = created_at
        self.updated_at = updated_at
        self.output = output
        self.sha256 = sha256
        self.cost_usd = cost_usd
        self.estimated_cost_usd = estimated_cost_usd
        self.deadline = deadline
        self.eta = eta
    }
}

/// `GET /v1/jobs/{batch}/{id}`: the job, its history, and every provider exchange.
public struct JobDetail: Codable, Sendable, Equatable {
    public struct Transition: Codable, Sendable, Equatable {
        public var from: String?
        public var to: String
        public var cause: String
        public var at: String

        public init(from: String?, to: String, cause: String, at: String) {
            self.from = from
            self.to = to
            self.cause = cause
            self.at = at
        }
    }

    public struct Attempt: Codable, Sendable, Equatable {
        public var kind: String
        public var http_status: Int
        public var code: String?
        public var request_id: String?
        public var duration_ms: Int
        public var error: String?
        public var at: String

        public init(kind: String, http_status: Int, code: String?, request_id: String?, duration_ms: Int,
                    error: String?, at: String) {
            self.kind = kind
            self.http_status = http_status
            self.code = code
            self.request_id = request_id
            self.duration_ms = duration_ms
            self.error = error
            self.at = at
        }
    }

    public var job: JobView
    public var prompt: String
    public var references: [String]
    public var task_ids: [String]
    public var transitions: [Transition]
    public var attempts: [Attempt]

    public init(job: JobView, prompt: String, references: [String], task_ids: [String], transitions: [Transition],
                attempts: [Attempt]) {
        self.job = job
        self.prompt = prompt
        self.references = references
        self.task_ids = task_ids
        self.transitions = transitions
        self.attempts = attempts
    }
}

/// `GET /v1/jobs`: one page; pass `next_cursor` back as `cursor` for the next.
public struct JobPage: Codable, Sendable, Equatable {
    public var jobs: [JobView]
    public var next_cursor: String?

    public init(jobs: [JobView], next_cursor: String?) {
        self.jobs = jobs
        self.next_cursor = next_cursor
    }
}

/// One batch (`GET /v1/batches`, `GET /v1/batches/{batch}`).
public struct BatchView: Codable, Sendable, Equatable {
    public var batch: String
    public var priority: String
    public var paused: Bool
    public var jobs: [String: Int]
    public var total: Int
    public var done: Int
    /// Money billed so far: every job whose task SUCCEEDED, delivered or not.
    public var cost_usd: Double
    /// The part of `cost_usd` billed for jobs that ended without a delivered file, and how many such jobs.
    public var billed_not_delivered_usd: Double
    public var billed_not_delivered_jobs: Int
    public var estimated_cost_usd: Double?
    public var budget_usd: Double?
    public var deadline: String?
    public var deadline_at_risk: Bool
    public var eta: ETAView?
    public var created_at: String
    public var completed_at: String?

    public init(batch: String, priority: String, paused: Bool, jobs: [String: Int], total: Int, done: Int,
                cost_usd: Double, billed_not_delivered_usd: Double = 0, billed_not_delivered_jobs: Int = 0,
                estimated_cost_usd: Double?, budget_usd: Double?, deadline: String?,
                deadline_at_risk: Bool, eta: ETAView?, created_at: String, completed_at: String?) {
        self.billed_not_delivered_usd = billed_not_delivered_usd
        self.billed_not_delivered_jobs = billed_not_delivered_jobs
        self.batch = batch
        self.priority = priority
        self.paused = paused
        self.jobs = jobs
        self.total = total
        self.done = done
        self.cost_usd = cost_usd
        self.estimated_cost_usd = estimated_cost_usd
        self.budget_usd = budget_usd
        self.deadline = deadline
        self.deadline_at_risk = deadline_at_risk
        self.eta = eta
        self.created_at = created_at
        self.completed_at = completed_at
    }
}

public struct BatchList: Codable, Sendable, Equatable {
    public var batches: [BatchView]

    public init(batches: [BatchView]) { self.batches = batches }
}

/// The answer to a mutation (`POST …/cancel` etc.).
public struct ActionResult: Codable, Sendable, Equatable {
    public var ok: Bool
    public var message: String
    public var job: JobView?

    public init(ok: Bool, message: String, job: JobView? = nil) {
        self.ok = ok
        self.message = message
        self.job = job
    }
}

/// Every non-2xx answer: `{"error": {"code": …, "message": …, "hint": …}}`.
public struct ErrorBody: Codable, Sendable, Equatable, Error {
    public struct Detail: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
        public var hint: String?
    }

    public var error: Detail

    public init(code: String, message: String, hint: String? = nil) {
        error = Detail(code: code, message: message, hint: hint)
    }
}

/// A body for `POST /v1/jobs/{batch}/{id}/resolve`.
public struct ResolveRequest: Codable, Sendable, Equatable {
    /// `adopt` (with `task_id`), `resubmit` or `fail`.
    public var action: String
    public var task_id: String?

    public init(action: String, task_id: String? = nil) {
        self.action = action
        self.task_id = task_id
    }
}

/// Time and JSON conventions of the wire format.
public enum Wire {
    /// RFC 3339 in UTC with milliseconds: `2026-11-25T12:36:53.736Z`.
    public static func time(_ t: Timestamp) -> String { RFC3339.format(t) }

    /// An RFC 3339 date-time (any offset, with or without fractional seconds) as seconds since 1970.
    public static func parseTime(_ s: String) -> Timestamp? { RFC3339.parse(s) }

    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.sortedKeys, .withoutEscapingSlashes, .prettyPrinted] : [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}
