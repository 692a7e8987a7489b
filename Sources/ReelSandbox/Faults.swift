import Foundation
import ReelCore

/// Every fault the sandbox can inject (reference §4.4). This one table feeds the parser, `--help`, the docs and
/// `GET /__sandbox/faults`. Any fault also fires for a task whose prompt contains `__FAULT:<name>__`.
public enum FaultName: String, Sendable, Codable, CaseIterable {
    // Every API call (DashScope and gateway; not result downloads).
    case callError = "call_error"
    // Create call.
    case createThrottle = "create_throttle"
    case createError = "create_error"
    case createErrorAfterCreate = "create_error_after_create"
    case createReset = "create_reset"
    case createResetAfterCreate = "create_reset_after_create"
    case createDelay = "create_delay"
    case inputInspection = "input_inspection"
    case createIPInfringement = "create_ip_infringement"
    // Query call.
    case queryThrottle = "query_throttle"
    case query503 = "query_503"
    case query504 = "query_504"
    case queryReset = "query_reset"
    case malformedNoOutput = "malformed_no_output"
    case malformedNoTaskID = "malformed_no_task_id"
    case malformedStatus = "malformed_status"
    case malformedUsageStrings = "malformed_usage_strings"
    // Task outcome, decided when the task is created.
    case outputInspection = "output_inspection"
    case ipInfringement = "ip_infringement"
    case failInternal = "fail_internal"
    case failInvalidParameter = "fail_invalid_parameter"
    case unknownAfterRunning = "unknown"
    case spontaneousCancel = "spontaneous_cancel"
    case slowQueue = "slow_queue"
    case wrongSize = "wrong_size"
    case wrongDuration = "wrong_duration"
    // Result download.
    case slowDownload = "slow_download"
    case truncatedDownload = "truncated_download"
    case expiredURL = "expired_url"
    case deletedURL = "deleted_url"
    case wrongContentType = "wrong_content_type"
    // Task-list call (`GET /api/v1/tasks`).
    case list404 = "list_404"
    case list500 = "list_500"
    // Task-list rows, decided per task when it is created.
    case listMalformedRow = "list_malformed_row"
    case listLate = "list_late"
    case listOmit = "list_omit"

    public enum Phase: String, Sendable {
        /// `call` faults answer any API call; `list` faults answer a whole list call; `row` faults change how one
        /// task shows in every list.
        case call, create, query, outcome, download, list, row
    }

    public var phase: Phase {
        switch self {
        case .callError: .call
        case .createThrottle, .createError, .createErrorAfterCreate, .createReset, .createResetAfterCreate,
             .createDelay, .inputInspection, .createIPInfringement: .create
        case .queryThrottle, .query503, .query504, .queryReset, .malformedNoOutput, .malformedNoTaskID,
             .malformedStatus, .malformedUsageStrings: .query
        case .outputInspection, .ipInfringement, .failInternal, .failInvalidParameter, .unknownAfterRunning,
             .spontaneousCancel, .slowQueue, .wrongSize, .wrongDuration: .outcome
        case .slowDownload, .truncatedDownload, .expiredURL, .deletedURL, .wrongContentType: .download
        case .list404, .list500: .list
        case .listMalformedRow, .listLate, .listOmit: .row
        }
    }

    /// One line for `--help` and the docs.
    public var summary: String {
        switch self {
        case .callError: "any API call: 500 InternalError (with `account`: one account down)"
        case .createThrottle: "create: 429 Throttling.RateQuota (Retry-After only with retry_after)"
        case .createError: "create: 500 InternalError, no task created"
        case .createErrorAfterCreate: "create: 500 InternalError, but the task was created and runs"
        case .createReset: "create: connection reset, no task created"
        case .createResetAfterCreate: "create: connection reset after the task was created"
        case .createDelay: "create: answer only after `seconds` (real time, default 5)"
        case .inputInspection: "create: 400 DataInspectionFailed (input)"
        case .createIPInfringement: "create: 400 IPInfringementSuspect"
        case .queryThrottle: "query: 429 Throttling.RateQuota (Retry-After only with retry_after)"
        case .query503: "query: 503 ServiceUnavailable"
        case .query504: "query: 504 gateway timeout"
        case .queryReset: "query: connection reset"
        case .malformedNoOutput: "query: 200 without `output`"
        case .malformedNoTaskID: "query: 200 without `output.task_id`"
        case .malformedStatus: "query: 200 with task_status SUSPENDED"
        case .malformedUsageStrings: "query: 200 SUCCEEDED with usage numbers as strings"
        case .outputInspection: "task: FAILED DataInspectionFailed (output) after RUNNING"
        case .ipInfringement: "task: FAILED IPInfringementSuspect after RUNNING"
        case .failInternal: "task: FAILED InternalError after RUNNING"
        case .failInvalidParameter: "task: FAILED InvalidParameter (size mismatch) after RUNNING"
        case .unknownAfterRunning: "task: UNKNOWN after RUNNING"
        case .spontaneousCancel: "task: CANCELED while PENDING without a cancel call"
        case .slowQueue: "task: PENDING for `seconds` (sandbox time, default 3600) before RUNNING"
        case .wrongSize: "task: SUCCEEDED, but the MP4 is 640x360"
        case .wrongDuration: "task: SUCCEEDED, but the MP4 is 1 s longer than asked"
        case .slowDownload: "download: throttled to `bytes_per_second` (default 50000)"
        case .truncatedDownload: "download: full Content-Length, half the bytes, then close"
        case .expiredURL: "download: 403 AccessDenied 'Request has expired.' (OSS XML)"
        case .deletedURL: "download: 404 NoSuchKey (OSS XML)"
        case .wrongContentType: "download: Content-Type application/octet-stream"
        case .list404: "list: 404 NotFound, as if the endpoint did not exist (rules only)"
        case .list500: "list: 500 InternalError (rules only)"
        case .listMalformedRow: "list row: the task's row is broken (no status / numeric task_id / status PAUSED, by creation order)"
        case .listLate: "list row: the task is listed only `seconds` (sandbox time, default 60) after its create"
        case .listOmit: "list row: the task is never listed"
        }
    }

    /// The prompt marker that always selects this fault.
    public var marker: String { "__FAULT:\(rawValue)__" }

    /// The table as text, for `--help` and docs.
    public static var helpTable: String {
        allCases.map { "  \($0.rawValue.padding(toLength: 26, withPad: " ", startingAt: 0)) \($0.summary)" }
            .joined(separator: "\n")
    }
}

/// One fault selection rule. With none of `count`, `probability` or `marker` it fires every time.
public struct FaultRule: Sendable, Codable, Hashable {
    public var fault: FaultName
    /// Fire on the next N matching requests, then stop.
    public var count: Int?
    /// Fire with this probability (0...1), drawn from the seeded generator.
    public var probability: Double?
    /// Fire only for prompts containing this text (besides the built-in `__FAULT:<name>__`).
    public var marker: String?
    /// Only for this model.
    public var model: String?
    /// Only for requests of this account (downloads: tasks of this account).
    public var account: String?
    /// Seconds for `Retry-After` (throttle faults).
    public var retryAfter: Double?
    /// Seconds for `create_delay` (real), `slow_queue` and `list_late` (sandbox time).
    public var seconds: Double?
    /// For `slow_download`.
    public var bytesPerSecond: Int?

    public init(fault: FaultName, count: Int? = nil, probability: Double? = nil, marker: String? = nil,
                model: String? = nil, account: String? = nil, retryAfter: Double? = nil, seconds: Double? = nil,
                bytesPerSecond: Int? = nil) {
        self.fault = fault
        self.account = account
        self.count = count
        self.probability = probability
        self.marker = marker
        self.model = model
        self.retryAfter = retryAfter
        self.seconds = seconds
        self.bytesPerSecond = bytesPerSecond
    }

    enum CodingKeys: String, CodingKey {
        case fault, count, probability, marker, model, account
        case retryAfter = "retry_after"
        case seconds
        case bytesPerSecond = "bytes_per_second"
    }
}

/// The scenario file and the body of `POST /__sandbox/faults`: `{"rules": [...]}`.
public struct FaultScenario: Sendable, Codable, Hashable {
    public var rules: [FaultRule]

    public init(rules: [FaultRule] = []) { self.rules = rules }

    /// Parses a scenario, naming the bad field and the known fault names on error.
    public static func parse(_ data: Data) throws -> FaultScenario {
        do {
            let scenario = try JSONDecoder().decode(FaultScenario.self, from: data)
            for (i, rule) in scenario.rules.enumerated() {
                if let p = rule.probability, !(0...1).contains(p) {
                    throw FaultScenarioError(description: "rules[\(i)].probability must be within 0...1, got \(p)")
                }
                if let c = rule.count, c < 0 {
                    throw FaultScenarioError(description: "rules[\(i)].count must be >= 0, got \(c)")
                }
            }
            return scenario
        } catch let error as FaultScenarioError {
            throw error
        } catch DecodingError.dataCorrupted(let context) where context.codingPath.last?.stringValue == "fault" {
            throw FaultScenarioError(description: "\(pathText(context.codingPath)): unknown fault; use one of: "
                + FaultName.allCases.map(\.rawValue).joined(separator: ", "))
        } catch let DecodingError.keyNotFound(key, context) {
            throw FaultScenarioError(description: "\(pathText(context.codingPath + [key])) is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw FaultScenarioError(description: "\(pathText(context.codingPath)): wrong type")
        } catch {
            throw FaultScenarioError(description: "fault scenario is not JSON of the form {\"rules\": [...]}: \(error)")
        }
    }

    private static func pathText(_ path: [any CodingKey]) -> String {
        path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: ["."])
    }
}

public struct FaultScenarioError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// A fault that fired, with the parameters of the rule that selected it.
public struct FiredFault: Sendable, Hashable {
    public var name: FaultName
    public var rule: FaultRule?
}

/// The rules in force, evaluated in order; counts are consumed as rules fire. Not thread-safe: lives in the
/// sandbox state under its lock.
struct FaultBook {
    var rules: [FaultRule] = []

    /// The faults of `phase` that fire for a request of `account` about `prompt`/`model`: every prompt marker, then the
    /// first matching rule (plus any `create_delay` rule before it). In the `row` phase every matching rule
    /// fires, since a task's row can be both late and broken.
    mutating func fire(_ phase: FaultName.Phase, prompt: String?, model: String?, account: String?,
                       random: inout SplitMix64) -> [FiredFault] {
        var fired: [FiredFault] = []
        if let prompt, prompt.contains("__FAULT:") {
            for name in FaultName.allCases where name.phase == phase && prompt.contains(name.marker) {
                fired.append(FiredFault(name: name, rule: nil))
            }
        }
        guard !rules.isEmpty else { return fired }
        for i in rules.indices where rules[i].fault.phase == phase {
            let rule = rules[i]
            if fired.contains(where: { $0.name == rule.fault }) { continue }
            if let m = rule.model, m != model { continue }
            if let a = rule.account, a != account { continue }
            if let marker = rule.marker, !(prompt ?? "").contains(marker) { continue }
            if let c = rule.count, c <= 0 { continue }
            if let p = rule.probability, random.unit() >= p { continue }
            if let c = rule.count { rules[i].count = c - 1 }
            fired.append(FiredFault(name: rule.fault, rule: rule))
            // One rule answers a request (a delay may come on top), so later rules keep their counts.
            if rule.fault != .createDelay, phase != .row { break }
        }
        return fired
    }
}
