import ArgumentParser
import Foundation
import Logging
import ReelHTTPServer
import ReelSandbox
import ServiceLifecycle
import UnixSignals

@main
struct ReelSandboxMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reel-sandbox",
        abstract: "A faithful local DashScope (Wan 2.6 r2v) and AI Gateway server that renders real MP4s and injects faults.",
        discussion: """
            Prints "listening on http://HOST:PORT" as its first line. Point clients at http://HOST:PORT/api/v1 \
            (the dashscope SDK: DASHSCOPE_HTTP_BASE_URL), AI Gateway clients at http://HOST:PORT/v4/ai \
            (video-model/start, video-model/status). Durations are sandbox seconds (seconds at time scale 1) \
            unless noted. Test endpoints: /__sandbox/faults (GET, POST append, PUT replace, DELETE), \
            /__sandbox/requests?since=SEQ, /__sandbox/clock (GET, POST {"advance_s": N}), /__sandbox/stats, \
            /__sandbox/tasks, /__sandbox/gateway/starts.

            Faults (select in a rule {"fault": NAME, "count": N | "probability": P | "marker": TEXT, \
            "retry_after": S, "seconds": S, "bytes_per_second": B, "model": M, "account": A}, or put __FAULT:NAME__ in a prompt; \
            list_malformed_row, list_late and list_omit are decided when a task is created; list_404 and list_500 \
            answer one list call and are selected by rules only):
            \(FaultName.helpTable)
            """)

    @Option(help: "Address to listen on: HOST:PORT (port 0 picks one), or unix:PATH.")
    var listen = "127.0.0.1:0"

    @Option(help: "Sandbox seconds per real second (100 makes a 60 s render take 0.6 s).")
    var timeScale = 1.0

    @Option(help: "Run time of a task, drawn uniformly from MIN..MAX sandbox seconds (or one number).")
    var runTime = "60..300"

    @Flag(help: "Run time as a function of the job (model, resolution, duration, reference-video seconds) plus noise, instead of --run-time (see docs/sandbox.md).")
    var runTimeModel = false

    @Option(help: "Sandbox seconds from admission to RUNNING.")
    var queueDelay = 2.0

    @Option(help: "Tasks one account may have PENDING or RUNNING at once, per model.")
    var concurrency = 5

    @Option(help: "Creates per real second per account and model before 429 Throttling.RateQuota.")
    var submitRps = 5

    @Option(help: "Queries (task, list, cancel, gateway status) per real second per account before 429.")
    var queryQps = 20

    @Option(help: "When an (account, model) pool is at its concurrency: throttle (429 Throttling) or queue (accept, stay PENDING).")
    var overflow = "throttle"

    @Option(help: "A size outside the ten allowed: reject (400 at create) or fail (accept, then FAILED InvalidParameter).")
    var badSize = "reject"

    @Option(help: "JSON fault scenario {\"rules\": [...]} to start with.")
    var faults: String?

    @Option(help: "An accepted API key of the account \"default\" (repeatable). Without any --api-key or --account, every key starting with sk- is accepted for that account. Keys starting with sk-arrears get 400 Arrearage.")
    var apiKey: [String] = []

    @Option(help: "An account and its keys, NAME=KEY[,KEY...] (repeatable): each account has its own per-model pools, its own query budget, and sees only its own tasks.")
    var account: [String] = []

    @Option(help: "Lifetime of result URLs, sandbox seconds (then 403 AccessDenied 'Request has expired.').")
    var urlTtl = 86400.0

    @Option(help: "Lifetime of task ids, sandbox seconds (then queries answer UNKNOWN).")
    var taskTtl = 86400.0

    @Option(help: "Directory for generated results and uploads (default: a fresh temporary directory).")
    var data: String?

    @Option(help: "Seed for run times and fault probabilities (default: random).")
    var seed: UInt64?

    @Option(help: "Hours east of UTC in which the task list reads start_time/end_time (YYYYMMDDhhmmss); the documents do not state the zone.")
    var listTimeZoneOffset = 8.0

    @Flag(help: "Non-documented convenience: add prompt, submit_time, scheduled_time, code and message to task-list rows (off: only the documented fields).")
    var listExtras = false

    func validate() throws {
        guard timeScale > 0 else { throw ValidationError("--time-scale must be > 0, e.g. --time-scale 100") }
        guard SandboxOptions.parseRange(runTime) != nil else {
            throw ValidationError("--run-time must be MIN..MAX seconds with 0 <= MIN <= MAX, e.g. --run-time 60..300")
        }
        guard SandboxOptions.Overflow(rawValue: overflow) != nil else {
            throw ValidationError("--overflow must be throttle or queue")
        }
        guard SandboxOptions.BadSize(rawValue: badSize) != nil else {
            throw ValidationError("--bad-size must be reject or fail")
        }
        guard (-14...14).contains(listTimeZoneOffset) else {
            throw ValidationError("--list-time-zone-offset must be hours within -14...14, e.g. 8 for UTC+8")
        }
        var names: Set<String> = []
        var keys: Set<String> = Set(apiKey)
        for text in account {
            guard let parsed = SandboxOptions.Account.parse(text) else {
                throw ValidationError("--account must be NAME=KEY[,KEY...], got \(text)")
            }
            guard names.insert(parsed.name).inserted else { throw ValidationError("--account \(parsed.name) is given twice") }
            for key in parsed.keys {
                guard keys.insert(key).inserted else {
                    throw ValidationError("--account \(parsed.name): a key may belong to one account only")
                }
            }
        }
        if !apiKey.isEmpty, names.contains(SandboxOptions.defaultAccount) {
            throw ValidationError("--api-key keys belong to the account \"\(SandboxOptions.defaultAccount)\"; "
                + "give them in --account \(SandboxOptions.defaultAccount)=... instead")
        }
        guard concurrency > 0, submitRps > 0, queryQps > 0 else {
            throw ValidationError("--concurrency, --submit-rps and --query-qps must be > 0")
        }
        _ = try binding()
    }

    func binding() throws -> HTTPServer.Binding {
        if listen.hasPrefix("unix:") { return .unixSocket(path: String(listen.dropFirst(5))) }
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw ValidationError("--listen must be HOST:PORT (e.g. 127.0.0.1:0) or unix:PATH, got \(listen)")
        }
        return .tcp(host: String(listen[..<colon]).trimmingCharacters(in: ["[", "]"]), port: port)
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "reel-sandbox")
        logger.logLevel = .info
        var options = SandboxOptions()
        options.timeScale = timeScale
        options.runTime = SandboxOptions.parseRange(runTime)!
        if runTimeModel { options.runTimeModel = RenderTimeModel() }
        options.queueDelay = queueDelay
        options.concurrency = concurrency
        options.submitRPS = submitRps
        options.queryQPS = queryQps
        options.overflow = SandboxOptions.Overflow(rawValue: overflow)!
        options.badSize = SandboxOptions.BadSize(rawValue: badSize)!
        options.apiKeys = apiKey
        options.accounts = account.compactMap(SandboxOptions.Account.parse)
        options.urlTTL = urlTtl
        options.taskTTL = taskTtl
        options.dataDirectory = data
        options.seed = seed
        options.listTimeZoneOffsetHours = listTimeZoneOffset
        options.listExtras = listExtras
        if let faults {
            guard let bytes = FileManager.default.contents(atPath: faults) else {
                throw ValidationError("--faults: cannot read \(faults)")
            }
            do {
                options.faults = try FaultScenario.parse(bytes)
            } catch {
                throw ValidationError("--faults \(faults): \(error)")
            }
        }
        let sandbox = try Sandbox(options: options, logger: logger)
        let service = SandboxService(sandbox: sandbox, binding: try binding())
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint],
                                                      logger: logger))
        try await group.run()
    }
}

struct SandboxService: Service {
    let sandbox: Sandbox
    let binding: HTTPServer.Binding

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await sandbox.run(on: binding) { address in
                    // Unbuffered write(2): the first stdout line must reach a pipe at once.
                    FileHandle.standardOutput.write(Data("listening on \(address)\n".utf8))
                }
            }
        } catch is CancellationError {
            // SIGTERM/SIGINT: a clean stop.
        }
    }
}
