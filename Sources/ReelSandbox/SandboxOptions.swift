import Foundation

/// Everything `reel-sandbox` can be told. Durations are sandbox seconds (seconds at time scale 1) unless noted.
public struct SandboxOptions: Sendable {
    /// One provider account: the API keys that act for it. Limits count per (account, model) and queries per
    /// account (reference §1.8); an account sees only its own tasks.
    public struct Account: Sendable, Hashable {
        public var name: String
        public var keys: [String]

        public init(name: String, keys: [String]) {
            self.name = name
            self.keys = keys
        }

        /// Parses `NAME=KEY[,KEY…]`.
        public static func parse(_ text: String) -> Account? {
            guard let eq = text.firstIndex(of: "=") else { return nil }
            let name = String(text[..<eq]).trimmingCharacters(in: .whitespaces)
            let keys = text[text.index(after: eq)...].split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !name.isEmpty, !keys.isEmpty else { return nil }
            return Account(name: name, keys: keys)
        }
    }

    /// The account of `--api-key` keys, and of every `sk-` key when no key is configured.
    public static let defaultAccount = "default"

    /// What a create does when the (account, model) pool already has `concurrency` tasks PENDING or RUNNING.
    public enum Overflow: String, Sendable, CaseIterable {
        /// 429 `Throttling` "Requests rate limit exceeded…".
        case throttle
        /// Accept and keep the task PENDING until a slot frees.
        case queue
    }

    /// What a create does with a `size` outside the ten allowed strings.
    public enum BadSize: String, Sendable, CaseIterable {
        /// 400 InvalidParameter at create.
        case reject
        /// Accept, then FAILED InvalidParameter "The size is not match …" (the doc's example).
        case fail
    }

    /// Sandbox seconds per real second: 100 makes a 60 s render take 0.6 s.
    public var timeScale: Double = 1
    /// Run time of each task is drawn uniformly from this range (sandbox seconds).
    public var runTime: ClosedRange<Double> = 60...300
    /// When set, run time is a function of the job instead (`--run-time-model`, `RenderTimeModel`).
    public var runTimeModel: RenderTimeModel?
    /// Time from admission to RUNNING (sandbox seconds).
    public var queueDelay: Double = 2
    /// Tasks PENDING or RUNNING at once per (account, model) (reference §1.8: "each model has an independent
    /// rate limit").
    public var concurrency: Int = 5
    /// Creates per real second per (account, model).
    public var submitRPS: Int = 5
    /// Queries (task, list, cancel; gateway status) per real second per account.
    public var queryQPS: Int = 20
    public var overflow: Overflow = .throttle
    public var badSize: BadSize = .reject
    /// Keys of the account named `defaultAccount` (the one-account shorthand). With neither these nor `accounts`,
    /// any key that starts with `sk-` is accepted for that account. Keys starting with `sk-arrears` get 400 Arrearage.
    public var apiKeys: [String] = []
    /// Further accounts, each with its own pools, query budget and tasks.
    public var accounts: [Account] = []
    /// Lifetime of result URLs and of task ids (sandbox seconds).
    public var urlTTL: Double = 24 * 3600
    public var taskTTL: Double = 24 * 3600
    /// Where generated results and uploads live; nil makes a fresh temporary directory.
    public var dataDirectory: String?
    /// Seeds run times and fault probabilities; nil seeds from the system generator.
    public var seed: UInt64?
    public var faults: FaultScenario = FaultScenario()
    /// The zone, in hours east of UTC, in which the list's `start_time`/`end_time` (`YYYYMMDDhhmmss`) are read.
    /// The documents do not state it; UTC+8 (Beijing) is the assumption.
    public var listTimeZoneOffsetHours: Double = 8
    /// Adds fields the documented list rows do not have (`prompt`, `submit_time`, `scheduled_time`, `code`,
    /// `message`). A non-documented convenience for humans and tools; off by default.
    public var listExtras = false
    /// Seconds on a monotonic clock for the per-second rate windows; nil uses the real clock. Tests freeze it
    /// so that "more than N per second" does not depend on how busy the machine is.
    public var rateClock: (@Sendable () -> Double)?
    /// Largest accepted request body (uploads included).
    public var maxBodyBytes: Int = 120 << 20

    public init() {}

    /// Parses `MIN..MAX` (or a single number) in seconds.
    public static func parseRange(_ text: String) -> ClosedRange<Double>? {
        let parts = text.components(separatedBy: "..")
        if parts.count == 1, let v = Double(parts[0]), v >= 0 { return v...v }
        guard parts.count == 2, let lo = Double(parts[0]), let hi = Double(parts[1]), lo >= 0, lo <= hi else {
            return nil
        }
        return lo...hi
    }
}
