import Foundation
import ReelCore
import TOMLKit

/// Everything `reel.toml` can say (`examples/reel.toml` documents every key).
public struct ReelConfig: Sendable, Equatable {
    public struct Paths: Sendable, Equatable {
        public var spool = "/var/spool/reel"
        public var output = "/srv/reel/output"
        /// Holds `reel.sqlite3`. Default: `$STATE_DIRECTORY`, else /var/lib/reel.
        public var state = "/var/lib/reel"
        /// Ignored under socket activation.
        public var socket = "/run/reel/reel.sock"
    }

    public struct Provider: Sendable, Equatable {
        public var kind = "dashscope"
        public var baseURL = "https://dashscope-intl.aliyuncs.com"
        public var apiKeyFile: String?
        public var requestTimeout: Double = 60
        public var downloadTimeout: Double = 600
    }

    public struct Retry: Sendable, Equatable {
        public var maxAttempts = 5
        public var baseDelay: Double = 15
        public var maxDelay: Double = 900
    }

    public struct Intake: Sendable, Equatable {
        public var maxManifestBytes = 4 * 1024 * 1024
        public var rescanInterval: Double = 60
    }

    public struct Hooks: Sendable, Equatable {
        /// argv of a command run (without a shell) when a batch ends.
        public var onBatchComplete: [String] = []
        public var timeout: Double = 60
        public var webhookURL: String?
        public var webhookSecretFile: String?
    }

    public struct Control: Sendable, Equatable {
        /// Members of this group may mutate (cancel, retry, pause…) besides root and the daemon's own user.
        public var adminGroup: String?
        public var socketMode: Int = 0o660
        /// Connections the control socket holds at once; at the cap, the longest-idle one makes room.
        public var maxConnections: Int = 256
    }

    /// `[polling]`: when to query running tasks before the scheduler has learned real run times.
    public struct Polling: Sendable, Equatable {
        /// Expected render time of a task nobody has seen finish yet (seconds), e.g. 60...300.
        public var expectedRunTime: ClosedRange<Double>?
        public var minInterval: Double?
        public var maxInterval: Double?
        public var overdueInterval: Double?
        /// While work waits for a slot, polls near the expected finish are at most this far apart (nil = off):
        /// a late detection is then idle paid capacity. Trades polls for slot utilisation; see docs/scheduler.md.
        public var latencyCapWhileQueued: Double?
        /// Poll running tasks with one task-list query for all of them (default true); false: one query per task.
        public var taskList: Bool?
        /// With the task list: the probability that some task has finished since the last list at which the next
        /// one goes out (default 0.85), inside the per-task caps.
        public var listMassStep: Double?

        /// Overrides the scheduler's defaults with what the file sets.
        public func apply(to policy: inout PollPolicy) {
            if let expectedRunTime { policy.priorRunTime = expectedRunTime }
            if let minInterval { policy.minInterval = minInterval }
            if let maxInterval { policy.maxInterval = maxInterval }
            if let overdueInterval { policy.overdueInterval = overdueInterval }
            if let latencyCapWhileQueued { policy.latencyCapWhileQueued = latencyCapWhileQueued }
            if let taskList { policy.useTaskList = taskList }
            if let listMassStep { policy.listMassStep = listMassStep }
        }
    }

    public var paths = Paths()
    public var polling = Polling()
    public var provider = Provider()
    public var limits = SchedulerLimitsConfig()
    public var retry = Retry()
    public var intake = Intake()
    public var pricing = PricingTable()
    public var hooks = Hooks()
    public var control = Control()
    /// Resubmit in-doubt jobs automatically instead of waiting for `reelctl resolve` (speed over cost).
    public var resubmitInDoubt = false
    /// How late the provider's task list may show a newly created task: reconciliation concludes "no task seen"
    /// only after this long from the create call (`[in_doubt] list_lag`).
    public var inDoubtListLag: Double = 60
    /// How long a young task answering UNKNOWN is queried again before its job goes in doubt
    /// (`[in_doubt] unknown_grace`).
    public var unknownGrace: Double = 600
    /// Finished jobs and their history are pruned after this many seconds (0 = keep forever).
    public var retention: Double = 30 * 86400
    public var logLevel = "info"

    public init() {}

    /// The settings a SIGHUP may change; anything else needs a restart.
    public func reloadableDifferences(to new: ReelConfig) -> (reloadable: [String], needRestart: [String]) {
        var reloadable: [String] = []
        var restart: [String] = []
        if limits != new.limits { reloadable.append("limits") }
        if polling != new.polling { reloadable.append("polling") }
        if retry != new.retry { reloadable.append("retry") }
        if pricing != new.pricing { reloadable.append("pricing") }
        if hooks != new.hooks { reloadable.append("hooks") }
        if logLevel != new.logLevel { reloadable.append("log.level") }
        if resubmitInDoubt != new.resubmitInDoubt { reloadable.append("in_doubt.resubmit") }
        if inDoubtListLag != new.inDoubtListLag { reloadable.append("in_doubt.list_lag") }
        if unknownGrace != new.unknownGrace { reloadable.append("in_doubt.unknown_grace") }
        if retention != new.retention { reloadable.append("retention") }
        if paths != new.paths { restart.append("paths") }
        if provider != new.provider { restart.append("provider") }
        if intake != new.intake { restart.append("intake") }
        if control != new.control { restart.append("control") }
        return (reloadable, restart)
    }
}

/// The account's limits as configured (`[limits]`). Render slots and creates are limited per model (each model's
/// pool, `[limits.models."…"]`, by default the provider's 5 and 5/s); queries per account. The top-level
/// `concurrency` and `submit_per_second` are optional caps across all models: a configuration written for one
/// account-wide pool (`concurrency = 5`, `submit_per_second = 5`) therefore still runs at most 5 renders and
/// 5 creates per second in total, as it did.
public struct SchedulerLimitsConfig: Sendable, Equatable {
    /// Optional overall cap on renders across models.
    public var concurrency: Int?
    /// Optional overall cap on creates per second across models.
    public var submitPerSecond: Double?
    public var queryPerSecond = 20.0
    /// Per model: what its `[limits.models."…"]` table sets (unset keys keep the provider's default).
    public var models: [RenderModel: ModelLimits] = [:]

    public struct ModelLimits: Sendable, Equatable {
        public var concurrency: Int?
        public var submitPerSecond: Double?

        public init(concurrency: Int? = nil, submitPerSecond: Double? = nil) {
            self.concurrency = concurrency
            self.submitPerSecond = submitPerSecond
        }
    }

    public init() {}
}

/// Every problem found in a configuration file, each naming the key and the fix.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var problems: [String]

    public init(problems: [String]) { self.problems = problems }

    public var description: String { problems.joined(separator: "\n") }
}

extension ReelConfig {
    /// Reads and checks a TOML file. Throws `ConfigError` listing every problem.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws -> ReelConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(problems: ["\(path): cannot read the configuration file (does it exist and is it readable?)"])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(problems: ["\(path): not UTF-8 text"])
        }
        return try parse(text, origin: path, environment: environment)
    }

    /// Parses TOML text. Unknown keys are errors: a typo must not silently change how paid renders run.
    public static func parse(_ text: String, origin: String = "reel.toml",
                             environment: [String: String] = [:]) throws -> ReelConfig {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError(problems: ["\(origin): TOML syntax error: \(error.description) (\(error.source))"])
        }
        let reader = ConfigReader(origin: origin)
        var config = ReelConfig()
        if let state = environment["STATE_DIRECTORY"], !state.isEmpty {
            config.paths.state = String(state.split(separator: ":").first ?? Substring(state))
        }
        reader.allow(root, ["paths", "provider", "limits", "retry", "intake", "pricing", "hooks", "control",
                            "in_doubt", "retention", "log", "polling"], at: "")

        if let t = reader.table(root, "paths") {
            reader.allow(t, ["spool", "output", "state", "socket"], at: "paths")
            reader.absolutePath(t, "spool", "paths") { config.paths.spool = $0 }
            reader.absolutePath(t, "output", "paths") { config.paths.output = $0 }
            reader.absolutePath(t, "state", "paths") { config.paths.state = $0 }
            reader.absolutePath(t, "socket", "paths") { config.paths.socket = $0 }
        }
        if let t = reader.table(root, "provider") {
            reader.allow(t, ["kind", "base_url", "api_key_file", "request_timeout", "download_timeout"], at: "provider")
            reader.string(t, "kind", "provider") { kind in
                if ["dashscope", "sandbox"].contains(kind) { config.provider.kind = kind } else {
                    reader.problem("provider.kind", "must be \"dashscope\" or \"sandbox\" (got \"\(kind)\")")
                }
            }
            reader.string(t, "base_url", "provider") { url in
                if url.hasPrefix("http://") || url.hasPrefix("https://") {
                    config.provider.baseURL = url.hasSuffix("/") ? String(url.dropLast()) : url
                } else {
                    reader.problem("provider.base_url", "must start with https:// (or http:// for a local sandbox), got \"\(url)\"")
                }
            }
            reader.absolutePath(t, "api_key_file", "provider") { config.provider.apiKeyFile = $0 }
            reader.duration(t, "request_timeout", "provider", 1...3600) { config.provider.requestTimeout = $0 }
            reader.duration(t, "download_timeout", "provider", 1...86400) { config.provider.downloadTimeout = $0 }
        }
        if let t = reader.table(root, "limits") {
            reader.allow(t, ["concurrency", "submit_per_second", "query_per_second", "models"], at: "limits")
            reader.int(t, "concurrency", "limits", 1...1000) { config.limits.concurrency = $0 }
            reader.number(t, "submit_per_second", "limits", 0.01...1000) { config.limits.submitPerSecond = $0 }
            reader.number(t, "query_per_second", "limits", 0.01...10000) { config.limits.queryPerSecond = $0 }
            if let models = reader.table(t, "models", at: "limits") {
                for key in models.keys {
                    guard let model = RenderModel(rawValue: key) else {
                        reader.problem("limits.models.\(key)", "unknown model; use one of \(RenderModel.allCases.map(\.rawValue).joined(separator: ", "))")
                        continue
                    }
                    let path = "limits.models.\"\(key)\""
                    var pool = SchedulerLimitsConfig.ModelLimits()
                    if let table = models[key]?.table {
                        reader.allow(table, ["concurrency", "submit_per_second"], at: path)
                        reader.int(table, "concurrency", path, 1...1000) { pool.concurrency = $0 }
                        reader.number(table, "submit_per_second", path, 0.01...1000) { pool.submitPerSecond = $0 }
                    } else {
                        // The older form `"wan2.6-r2v" = 3` sets the model's render slots.
                        reader.int(models, key, "limits.models", 1...1000) { pool.concurrency = $0 }
                    }
                    config.limits.models[model] = pool
                }
            }
        }
        if let t = reader.table(root, "polling") {
            reader.allow(t, ["expected_run_time", "min_interval", "max_interval", "overdue_interval",
                            "latency_cap_while_queued", "task_list", "list_mass_step"], at: "polling")
            reader.string(t, "expected_run_time", "polling") { text in
                let parts = text.components(separatedBy: "..")
                if parts.count == 2, let lo = ReelConfig.parseDuration(parts[0]), let hi = ReelConfig.parseDuration(parts[1]),
                   lo > 0, lo <= hi {
                    config.polling.expectedRunTime = lo...hi
                } else {
                    reader.problem("polling.expected_run_time", "must be a range like \"60s..300s\" (shortest..longest render)")
                }
            }
            reader.duration(t, "min_interval", "polling", 0.01...3600) { config.polling.minInterval = $0 }
            reader.duration(t, "max_interval", "polling", 0.1...3600) { config.polling.maxInterval = $0 }
            reader.duration(t, "overdue_interval", "polling", 0.01...3600) { config.polling.overdueInterval = $0 }
            reader.duration(t, "latency_cap_while_queued", "polling", 0.01...3600) {
                config.polling.latencyCapWhileQueued = $0
            }
            if let v = t["task_list"] {
                if let b = v.bool { config.polling.taskList = b } else { reader.problem("polling.task_list", "must be true or false") }
            }
            reader.number(t, "list_mass_step", "polling", 0.01...1) { config.polling.listMassStep = $0 }
        }
        if let t = reader.table(root, "retry") {
            reader.allow(t, ["max_attempts", "base_delay", "max_delay"], at: "retry")
            reader.int(t, "max_attempts", "retry", 1...100) { config.retry.maxAttempts = $0 }
            reader.duration(t, "base_delay", "retry", 0.001...86400) { config.retry.baseDelay = $0 }
            reader.duration(t, "max_delay", "retry", 0.001...(7 * 86400)) { config.retry.maxDelay = $0 }
            if config.retry.maxDelay < config.retry.baseDelay {
                reader.problem("retry.max_delay", "must not be shorter than retry.base_delay")
            }
        }
        if let t = reader.table(root, "intake") {
            reader.allow(t, ["max_manifest_bytes", "rescan_interval"], at: "intake")
            reader.int(t, "max_manifest_bytes", "intake", 1024...(256 * 1024 * 1024)) { config.intake.maxManifestBytes = $0 }
            reader.duration(t, "rescan_interval", "intake", 0.05...86400) { config.intake.rescanInterval = $0 }
        }
        if let t = reader.table(root, "pricing") {
            for modelName in t.keys {
                guard let model = RenderModel(rawValue: modelName) else {
                    reader.problem("pricing.\"\(modelName)\"", "unknown model; use one of \(RenderModel.allCases.map(\.rawValue).joined(separator: ", "))")
                    continue
                }
                guard let rates = reader.table(t, modelName, at: "pricing") else { continue }
                for resName in rates.keys {
                    guard let resolution = Resolution(rawValue: resName) else {
                        reader.problem("pricing.\"\(modelName)\".\(resName)", "unknown resolution; use 720p or 1080p")
                        continue
                    }
                    reader.number(rates, resName, "pricing.\"\(modelName)\"", 0...1000) {
                        config.pricing.set(model, resolution, $0)
                    }
                }
            }
        }
        if let t = reader.table(root, "hooks") {
            reader.allow(t, ["on_batch_complete", "timeout", "webhook_url", "webhook_secret_file"], at: "hooks")
            if let value = t["on_batch_complete"] {
                if let array = value.array, array.allSatisfy({ $0.string != nil }), !array.isEmpty,
                   let argv0 = array.first?.string, argv0.hasPrefix("/") {
                    config.hooks.onBatchComplete = array.compactMap(\.string)
                } else {
                    reader.problem("hooks.on_batch_complete", "must be an argv array whose first item is an absolute path, e.g. [\"/usr/local/bin/notify\", \"--batch\"] (it runs without a shell)")
                }
            }
            reader.duration(t, "timeout", "hooks", 0.1...3600) { config.hooks.timeout = $0 }
            reader.string(t, "webhook_url", "hooks") { url in
                if url.hasPrefix("http://") || url.hasPrefix("https://") { config.hooks.webhookURL = url } else {
                    reader.problem("hooks.webhook_url", "must be an http(s) URL")
                }
            }
            reader.absolutePath(t, "webhook_secret_file", "hooks") { config.hooks.webhookSecretFile = $0 }
        }
        if let t = reader.table(root, "control") {
            reader.allow(t, ["admin_group", "socket_mode", "max_connections"], at: "control")
            reader.int(t, "max_connections", "control", 1...65536) { config.control.maxConnections = $0 }
            reader.string(t, "admin_group", "control") { config.control.adminGroup = $0 }
            reader.string(t, "socket_mode", "control") { mode in
                if let m = Int(mode, radix: 8), (0...0o777).contains(m) { config.control.socketMode = m } else {
                    reader.problem("control.socket_mode", "must be an octal string like \"0660\"")
                }
            }
        }
        if let t = reader.table(root, "in_doubt") {
            reader.allow(t, ["resubmit", "list_lag", "unknown_grace"], at: "in_doubt")
            if let v = t["resubmit"] {
                if let b = v.bool { config.resubmitInDoubt = b } else { reader.problem("in_doubt.resubmit", "must be true or false") }
            }
            reader.duration(t, "list_lag", "in_doubt", 0...86400) { config.inDoubtListLag = $0 }
            reader.duration(t, "unknown_grace", "in_doubt", 0...(12 * 3600)) { config.unknownGrace = $0 }
        }
        if let t = reader.table(root, "retention") {
            reader.allow(t, ["finished_jobs"], at: "retention")
            reader.duration(t, "finished_jobs", "retention", 0...(3650 * 86400)) { config.retention = $0 }
        }
        if let t = reader.table(root, "log") {
            reader.allow(t, ["level"], at: "log")
            reader.string(t, "level", "log") { level in
                let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
                if levels.contains(level) { config.logLevel = level } else {
                    reader.problem("log.level", "must be one of \(levels.joined(separator: ", "))")
                }
            }
        }
        if config.paths.spool == config.paths.output {
            reader.problem("paths.output", "must differ from paths.spool")
        }
        if !reader.problems.isEmpty { throw ConfigError(problems: reader.problems) }
        return config
    }

    /// Parses durations such as `"15s"`, `"15m"`, `"2h"`, `"30d"`, `"250ms"`, or a bare number of seconds.
    public static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        for (suffix, factor) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            if let v = Double(number), v >= 0, !(suffix == "m" && trimmed.hasSuffix("ms")) { return v * factor }
        }
        return Double(trimmed).flatMap { $0 >= 0 ? $0 : nil }
    }
}

/// Collects problems while reading a TOML document, so `--check-config` can list them all at once.
private final class ConfigReader {
    let origin: String
    var problems: [String] = []

    init(origin: String) { self.origin = origin }

    func problem(_ key: String, _ message: String) {
        problems.append("\(origin): \(key): \(message)")
    }

    func allow(_ table: TOMLTable, _ keys: [String], at path: String) {
        for key in table.keys where !keys.contains(key) {
            let full = path.isEmpty ? key : "\(path).\(key)"
            let suggestion = keys.min { editDistance($0, key) < editDistance($1, key) }
            let hint = suggestion.map { editDistance($0, key) <= 2 ? " (did you mean \"\($0)\"?)" : "" } ?? ""
            problem(full, "unknown key\(hint); known keys here: \(keys.joined(separator: ", "))")
        }
    }

    func table(_ parent: TOMLTable, _ key: String, at path: String = "") -> TOMLTable? {
        guard let v = parent[key] else { return nil }
        guard let t = v.table else {
            problem(path.isEmpty ? key : "\(path).\(key)", "must be a table ([\(key)])")
            return nil
        }
        return t
    }

    func string(_ t: TOMLTable, _ key: String, _ path: String, _ set: (String) -> Void) {
        guard let v = t[key] else { return }
        if let s = v.string { set(s) } else { problem("\(path).\(key)", "must be a string") }
    }

    func absolutePath(_ t: TOMLTable, _ key: String, _ path: String, _ set: (String) -> Void) {
        guard let v = t[key] else { return }
        guard let s = v.string, s.hasPrefix("/") else {
            problem("\(path).\(key)", "must be an absolute path string, e.g. \"/var/lib/reel\"")
            return
        }
        set(s)
    }

    func int(_ t: TOMLTable, _ key: String, _ path: String, _ range: ClosedRange<Int>, _ set: (Int) -> Void) {
        guard let v = t[key] else { return }
        guard let i = v.int else {
            problem("\(path).\(key)", "must be a whole number in \(range.lowerBound)...\(range.upperBound)")
            return
        }
        if range.contains(i) { set(i) } else {
            problem("\(path).\(key)", "\(i) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
    }

    func number(_ t: TOMLTable, _ key: String, _ path: String, _ range: ClosedRange<Double>,
                         _ set: (Double) -> Void) {
        guard let v = t[key] else { return }
        guard let d = v.double ?? v.int.map(Double.init) else {
            problem("\(path).\(key)", "must be a number")
            return
        }
        if range.contains(d) { set(d) } else {
            problem("\(path).\(key)", "\(d) is out of range \(range.lowerBound)...\(range.upperBound)")
        }
    }

    func duration(_ t: TOMLTable, _ key: String, _ path: String, _ range: ClosedRange<Double>,
                           _ set: (Double) -> Void) {
        guard let v = t[key] else { return }
        let seconds = v.string.flatMap(ReelConfig.parseDuration) ?? v.int.map(Double.init) ?? v.double
        guard let seconds else {
            problem("\(path).\(key)", "must be a duration like \"15s\", \"15m\", \"2h\", \"30d\" or a number of seconds")
            return
        }
        if range.contains(seconds) { set(seconds) } else {
            problem("\(path).\(key)", "\(seconds) s is out of range \(range.lowerBound)...\(range.upperBound) s")
        }
    }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
