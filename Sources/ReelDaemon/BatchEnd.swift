import Foundation
import Logging
import ReelCore
import ReelCurl
import ReelOutput
import ReelStore

/// What happens when a batch ends: `SHA256SUMS` and `batch.json` in its folder, then the configured hook and
/// webhook. Reloadable (hooks change with SIGHUP).
public actor BatchEndHandler {
    private var hooks: HookSettings
    private let curl: CurlClient
    let logger: Logger

    public struct HookSettings: Sendable, Equatable {
        public var command: [String]
        public var timeout: Double
        public var webhookURL: String?
        public var webhookSecret: [UInt8]

        public init(command: [String] = [], timeout: Double = 60, webhookURL: String? = nil, webhookSecret: [UInt8] = []) {
            self.command = command
            self.timeout = timeout
            self.webhookURL = webhookURL
            self.webhookSecret = webhookSecret
        }
    }

    public init(hooks: HookSettings, curl: CurlClient, logger: Logger) {
        self.hooks = hooks
        self.curl = curl
        self.logger = logger
    }

    public func update(_ hooks: HookSettings) { self.hooks = hooks }

    func batchEnded(_ batch: String, rows: [JobRow], tree: OutputTree, now: Timestamp) async {
        let outcomes = rows.sorted { $0.key.id < $1.key.id }.map { row -> BatchManifest.JobOutcome in
            let delivered = row.outputPath.flatMap { path in
                row.outputSHA256.map { DeliveredFile(path: path, sha256: $0, bytes: row.resultBytes ?? 0,
                                                     probe: MediaProbe(formatName: "mp4", kind: .video, bytes: row.resultBytes ?? 0)) }
            }
            return BatchManifest.JobOutcome(
                id: row.key.id, state: row.state, reason: row.reason, delivered: row.state == .succeeded ? delivered : nil,
                timings: Sidecar.Timings(queued: row.createdAt, submitted: row.submittedAt, finished: row.finishedAt),
                costUSD: row.costUSD)
        }
        let manifest = BatchManifest(batch: batch, jobs: outcomes, generatedAt: now)
        var log = logger
        log[metadataKey: "batch"] = "\(batch)"
        do {
            _ = try tree.prepare(batch)
            let written = try await Delivery(tree: tree).finishBatch(manifest)
            log.notice("batch complete", metadata: ["succeeded": "\(manifest.totals.succeeded)",
                                                    "failed": "\(manifest.totals.failed + manifest.totals.expired)",
                                                    "cost_usd": "\(manifest.totalCostUsd)",
                                                    "manifest": "\(written.manifest.path)"])
            let summary = ReelOutput.BatchSummary(manifest)
            if !hooks.command.isEmpty {
                let result = await BatchHook.run(command: hooks.command, batchPath: try tree.batchDirectory(batch),
                                                 summary: summary, timeout: hooks.timeout)
                if result.succeeded {
                    log.info("on_batch_complete hook ran", metadata: ["seconds": "\(result.durationSeconds)"])
                } else {
                    log.warning("on_batch_complete hook failed", metadata: [
                        "exit": "\(result.exitStatus.map(String.init) ?? "none")", "timed_out": "\(result.timedOut)",
                        "stderr": "\(result.stderrTail)", "error": "\(result.error ?? "")"])
                }
            }
            if let url = hooks.webhookURL {
                let body = try Data(contentsOf: URL(fileURLWithPath: written.manifest.path))
                let hook = Webhook(url: url, secret: hooks.webhookSecret)
                let (delivered, attempts) = await hook.deliver(body: body, transport: CurlWebhook(curl: curl),
                                                               now: { Date().timeIntervalSince1970 },
                                                               sleep: { try await Task.sleep(for: .seconds($0)) })
                if delivered {
                    log.info("webhook delivered", metadata: ["attempts": "\(attempts.count)"])
                } else {
                    log.warning("webhook not delivered", metadata: ["attempts": "\(attempts.count)",
                                                                   "last": "\(attempts.last.map { "\($0.httpStatus) \($0.error ?? "")" } ?? "")"])
                }
            }
        } catch {
            log.error("cannot write the batch manifest", metadata: ["error": "\(error)"])
        }
    }
}

/// The webhook's POST over libcurl.
struct CurlWebhook: WebhookTransport {
    let curl: CurlClient

    func post(url: String, headers: [String: String], body: Data, timeout: Double) async throws -> Int {
        var h = headers.map { HTTPHeader($0.key, $0.value) }
        h.append(HTTPHeader("Content-Type", "application/json"))
        let result = try await curl.perform(HTTPRequestSpec(method: "POST", url: url, headers: h, body: Array(body),
                                                            timeout: timeout))
        return result.status
    }
}
