import Crypto
import Foundation
import ReelCore
import ReelMedia

/// The numbers a batch-end hook receives.
public struct BatchSummary: Sendable, Hashable, Codable {
    public var batch: String
    public var jobs: Int
    public var succeeded: Int
    /// Failed plus expired jobs (no video delivered, not by the operator's choice).
    public var failed: Int
    public var cancelled: Int
    public var costUsd: Double

    public init(batch: String, jobs: Int, succeeded: Int, failed: Int, cancelled: Int, costUSD: Double) {
        self.batch = batch
        self.jobs = jobs
        self.succeeded = succeeded
        self.failed = failed
        self.cancelled = cancelled
        costUsd = costUSD
    }

    public init(_ manifest: BatchManifest) {
        self.init(batch: manifest.batch, jobs: manifest.totals.jobs, succeeded: manifest.totals.succeeded,
                  failed: manifest.totals.failed + manifest.totals.expired, cancelled: manifest.totals.cancelled,
                  costUSD: manifest.totalCostUsd)
    }
}

/// What a hook run did, for the job log and `reelctl batch`.
public struct HookResult: Sendable, Hashable, Codable {
    public var command: [String]
    /// The exit status; nil when the command could not be started or was killed.
    public var exitStatus: Int32?
    public var timedOut: Bool
    public var durationSeconds: Double
    /// The last 2 KiB of the command's stderr.
    public var stderrTail: String
    /// Why the command could not be run or finish, if so.
    public var error: String?

    public var succeeded: Bool { exitStatus == 0 }
}

/// `on_batch_complete`: a command run when a batch ends.
public enum BatchHook {
    /// Environment variables never passed on to a hook (secrets of the daemon).
    public static let withheldEnvironment: Set<String> = ["DASHSCOPE_API_KEY", "CREDENTIALS_DIRECTORY",
                                                          "REEL_WEBHOOK_SECRET"]
    static let stderrTailBytes = 2048

    /// Runs `command` (argv; `command[0]` is a path or a name looked up on `PATH`) without a shell, with the
    /// daemon's environment minus secrets plus `REEL_BATCH`, `REEL_BATCH_DIR`, `REEL_BATCH_JSON`,
    /// `REEL_JOBS_TOTAL`, `REEL_JOBS_SUCCEEDED`, `REEL_JOBS_FAILED`, `REEL_JOBS_CANCELLED`, `REEL_COST_USD`.
    /// The command is killed (SIGKILL) after `timeout` seconds. Never throws: the outcome is in the result.
    ///
    /// The kill reaches the command itself, not processes it forks; a hook that spawns long-lived children
    /// should `exec` its last step.
    public static func run(command: [String], batchPath: String, summary: BatchSummary,
                           timeout: Double) async -> HookResult {
        let start = ContinuousClock.now
        func result(_ status: Int32?, timedOut: Bool = false, stderr: [UInt8] = [], error: String? = nil) -> HookResult {
            let d = ContinuousClock.now - start
            let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
            return HookResult(command: command, exitStatus: status, timedOut: timedOut, durationSeconds: seconds,
                              stderrTail: String(decoding: stderr.suffix(stderrTailBytes), as: UTF8.self), error: error)
        }
        guard let first = command.first, !first.isEmpty else {
            return result(nil, error: "on_batch_complete is empty: give a command as a list, e.g. [\"/usr/local/bin/notify\", \"--batch\"]")
        }
        guard let executable = first.contains("/") ? first : which(first) else {
            return result(nil, error: "on_batch_complete: \(first) not found on PATH; give an absolute path")
        }
        var env = ProcessInfo.processInfo.environment.filter { !withheldEnvironment.contains($0.key) }
        env["REEL_BATCH"] = summary.batch
        env["REEL_BATCH_DIR"] = batchPath
        env["REEL_BATCH_JSON"] = "\(batchPath)/batch.json"
        env["REEL_JOBS_TOTAL"] = String(summary.jobs)
        env["REEL_JOBS_SUCCEEDED"] = String(summary.succeeded)
        env["REEL_JOBS_FAILED"] = String(summary.failed)
        env["REEL_JOBS_CANCELLED"] = String(summary.cancelled)
        env["REEL_COST_USD"] = String(format: "%.6f", summary.costUsd)
        do {
            let out = try await runProcess(executable, Array(command.dropFirst()), environment: env, timeout: timeout)
            return result(out.status, stderr: out.stderr,
                          error: out.status == 0 ? nil : "on_batch_complete exited with status \(out.status)")
        } catch {
            let text = "\(error)"
            let killed = text.contains("killed after")
            return result(nil, timedOut: killed,
                          error: killed ? "on_batch_complete killed after the \(timeout) s timeout" : text)
        }
    }
}

/// Sends an HTTP POST. `ReelCurl` provides the real one; the daemon passes it to `Webhook.deliver`.
public protocol WebhookTransport: Sendable {
    /// POSTs `body` with `headers` to `url`; returns the HTTP status, throws on a transport failure.
    func post(url: String, headers: [String: String], body: Data, timeout: Double) async throws -> Int
}

/// One webhook POST attempt.
public struct WebhookAttempt: Sendable, Hashable, Codable {
    public var at: UTCTime
    /// 0 when no HTTP status was received.
    public var httpStatus: Int
    public var error: String?
}

/// The optional batch-end webhook: JSON POSTed with an HMAC signature, retried with exponential backoff.
///
/// Headers: `X-Reel-Timestamp: <unix seconds>` and `X-Reel-Signature: sha256=<hex>`, the HMAC-SHA256 with the
/// configured secret of `<timestamp>.<body>`. Binding the timestamp into the MAC lets a receiver reject replays
/// (refuse timestamps older than a few minutes).
public struct Webhook: Sendable {
    public var url: String
    public var secret: [UInt8]
    /// Total tries, at least 1.
    public var attempts: Int
    /// Delay before the second try; doubles each time up to `maxDelay`.
    public var baseDelay: Double
    public var maxDelay: Double
    public var timeout: Double

    public init(url: String, secret: [UInt8], attempts: Int = 5, baseDelay: Double = 2, maxDelay: Double = 300,
                timeout: Double = 30) {
        self.url = url
        self.secret = secret
        self.attempts = max(1, attempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.timeout = timeout
    }

    /// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
    public static func signature(body: Data, secret: [UInt8], timestamp: Int) -> String {
        var message = Data("\(timestamp).".utf8)
        message.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        return "sha256=" + Hex.string(mac)
    }

    /// The headers of a POST of `body` at `timestamp` (seconds since 1970).
    public func headers(body: Data, timestamp: Int) -> [String: String] {
        ["Content-Type": "application/json", "User-Agent": "reel/\(ReelVersion.current)",
         "X-Reel-Timestamp": String(timestamp),
         "X-Reel-Signature": Self.signature(body: body, secret: secret, timestamp: timestamp)]
    }

    /// The delay after failed try number `n` (1-based).
    public func delay(after n: Int) -> Double { min(maxDelay, baseDelay * pow(2, Double(n - 1))) }

    /// POSTs `body` until a 2xx, a permanent 4xx (anything but 408 and 429), or `attempts` tries; each try is
    /// signed afresh. `now` and `sleep` are injected so tests run without waiting.
    public func deliver(body: Data, transport: any WebhookTransport, now: @Sendable () -> Timestamp,
                        sleep: @Sendable (Double) async throws -> Void) async -> (delivered: Bool, attempts: [WebhookAttempt]) {
        var log: [WebhookAttempt] = []
        for n in 1...attempts {
            let t = now()
            do {
                let status = try await transport.post(url: url, headers: headers(body: body, timestamp: Int(t)),
                                                      body: body, timeout: timeout)
                log.append(WebhookAttempt(at: UTCTime(t), httpStatus: status,
                                          error: (200..<300).contains(status) ? nil : "HTTP \(status)"))
                if (200..<300).contains(status) { return (true, log) }
                if (400..<500).contains(status) && status != 408 && status != 429 { return (false, log) }
            } catch {
                log.append(WebhookAttempt(at: UTCTime(t), httpStatus: 0, error: "\(error)"))
            }
            if n < attempts {
                do { try await sleep(delay(after: n)) } catch { return (false, log) }
            }
        }
        return (false, log)
    }
}
