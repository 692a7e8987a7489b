import Foundation
import Logging
import ReelCore
import ReelMedia
import ReelProtocol
import ReelSpool
import ReelStore

/// Spool intake: every manifest in `incoming/` is read safely, validated (every problem, with JSON pointers),
/// its local references probed, and its jobs committed in one transaction before the file leaves `incoming/`.
/// Bad files move to `rejected/` with a report. A crash anywhere re-ingests idempotently (keyed by content hash).
public actor Intake {
    let spool: SpoolDirectory
    let store: Store
    let engine: Engine
    let clock: any WallClock
    let logger: Logger
    /// Names skipped for a reason worth one log line (not every rescan).
    private var reportedSkips: Set<String> = []

    public init(spool: SpoolDirectory, store: Store, engine: Engine, clock: any WallClock, logger: Logger) {
        self.spool = spool
        self.store = store
        self.engine = engine
        self.clock = clock
        self.logger = logger
    }

    /// A scan leaves files modified less than this long ago alone: their writer may still be writing them in
    /// place. Files renamed in or closed after writing come with a watcher hint and are taken at once.
    public static let settleSeconds = 2.0
    /// A name still settling after this long (a writer that never stops, an mtime in the future) is taken anyway;
    /// the read's own before/after check still refuses a file that changes while it is read.
    static let maxSettleSeconds = 60.0
    /// When each name was first seen settling.
    private var settlingSince: [String: Timestamp] = [:]
    /// Until when a rescan for settling files is already owed (one at a time).
    private var settleRescanDue: Timestamp?

    /// Takes every candidate currently in `incoming/` that has settled. Returns how many files were ingested or
    /// rejected, and `rescan`: some were left to settle and the caller should scan again after `settleSeconds`.
    @discardableResult
    public func scan(reason: String) async -> (handled: Int, rescan: Bool) {
        let result: SpoolScan
        let now = clock.now()
        do {
            result = try spool.scan(settledBefore: now - Self.settleSeconds)
        } catch {
            logger.error("cannot scan the spool", metadata: ["error": "\(error)", "reason": "\(reason)"])
            return (0, false)
        }
        let settling = result.skipped.filter { $0.reason == .settling }.map(\.name)
        settlingSince = settling.reduce(into: [:]) { $0[$1] = settlingSince[$1] ?? now }
        let overdue = settling.filter { now - (settlingSince[$0] ?? now) >= Self.maxSettleSeconds }
        for skip in result.skipped where skip.reason == .nameNotUTF8 {
            let report = Self.report(file: skip.name, batch: nil, issues: [
                ManifestIssue(.error, "", "the file name is not valid UTF-8",
                              hint: "name spool files with UTF-8 names ending in .json")], now: clock.now())
            _ = try? spool.reject(rawName: skip.rawName, report: report)
            logger.warning("rejected a spool file with a non-UTF-8 name", metadata: ["file": "\(skip.name)"])
        }
        for skip in result.skipped where skip.reason == .notJSON && !reportedSkips.contains(skip.name) {
            reportedSkips.insert(skip.name)
            logger.notice("ignoring a spool file that is not *.json", metadata: ["file": "\(skip.name)"])
        }
        let rescan = settling.count > overdue.count && settleRescanDue.map { now >= $0 } != false
        if rescan { settleRescanDue = now + Self.settleSeconds }
        return (await take(result.candidates + overdue), rescan)
    }

    /// Processes the named files (from watcher hints or a scan), accepting committed ones in bulk (one directory
    /// fsync per chunk).
    @discardableResult
    public func take(_ names: [String]) async -> Int {
        var handled = 0
        var index = names.startIndex
        while index < names.endIndex {
            let chunk = names[index..<min(index + 64, names.endIndex)]
            index = chunk.endIndex
            var accepted: [String] = []
            var added: [JobKey] = []
            for name in chunk {
                switch await ingest(name) {
                case .committed(let keys):
                    accepted.append(name)
                    added += keys
                case .rejected:
                    handled += 1
                case .skipped:
                    break
                }
            }
            if !accepted.isEmpty {
                do {
                    _ = try spool.accept(accepted)
                    handled += accepted.count
                } catch {
                    // The jobs are committed; the files stay and are recognised by hash on the next pass.
                    logger.error("cannot remove ingested manifests from incoming/", metadata: ["error": "\(error)"])
                }
            }
            if !added.isEmpty { await engine.enqueue(added) }
        }
        return handled
    }

    enum Outcome {
        case committed([JobKey])
        case rejected
        case skipped
    }

    private func ingest(_ name: String) async -> Outcome {
        var log = logger
        log[metadataKey: "file"] = "\(name)"
        let file: SpoolFile
        switch spool.read(name) {
        case .ok(let f):
            file = f
        case .vanished:
            return .skipped
        case .notReady(let reason):
            log.debug("spool file not ready", metadata: ["reason": "\(reason)"])
            return .skipped
        case .reject(let refusal):
            return reject(name, batch: nil, issues: [refusal.issue], log: log)
        }
        let now = clock.now()
        let report = await ReferenceCheck.validate(file.bytes, now: now)
        guard report.isAccepted, let first = report.jobs.first, let batch = report.batch else {
            return reject(name, batch: report.batch, issues: report.issues, log: log)
        }
        let settings = BatchSettings(priority: first.priority, deadline: first.deadline, budgetUSD: first.budgetUSD)
        do {
            switch try await store.ingest(manifestSHA256: file.sha256, fileName: name, batch: batch, settings: settings,
                                          jobs: report.jobs, now: now) {
            case .alreadyIngested:
                log.info("manifest already ingested (same content); removing it from incoming/")
                return .committed([])
            case .accepted(let added, let unchanged):
                for warning in report.warnings {
                    log.notice("manifest warning: \(warning.message)", metadata: ["pointer": "\(warning.pointer)"])
                }
                log.info("manifest accepted", metadata: ["batch": "\(batch)", "added": "\(added.count)",
                                                         "unchanged": "\(unchanged.count)"])
                return .committed(added)
            case .rejected(let conflicts):
                let issues = conflicts.map { c -> ManifestIssue in
                    let index = report.jobs.firstIndex { $0.key == c.key } ?? 0
                    return ManifestIssue(.error, "/jobs/\(index)/id", c.message, hint: c.existingState.isTerminal
                                         ? "submit the job under a new id (job ids are never reused)"
                                         : "to replace it, cancel it (`reelctl cancel \(c.key)`) and submit the job under a new id")
                }
                return reject(name, batch: batch, issues: issues + report.warnings, log: log)
            }
        } catch {
            log.error("cannot commit the manifest's jobs; will try again", metadata: ["error": "\(error)"])
            return .skipped
        }
    }

    private func reject(_ name: String, batch: String?, issues: [ManifestIssue], log: Logger) -> Outcome {
        let report = Self.report(file: name, batch: batch, issues: issues, now: clock.now())
        do {
            let where_ = try spool.reject(name, report: report)
            log.warning("manifest rejected", metadata: [
                "errors": "\(issues.filter { $0.severity == .error }.count)",
                "first": "\(issues.first.map(\.description) ?? "")",
                "report": "\(where_.map { "rejected/\($0.report)" } ?? "-")"])
        } catch {
            log.error("cannot move a rejected manifest", metadata: ["error": "\(error)"])
        }
        return .rejected
    }

    /// `rejected/NAME.error.json`: every problem with its JSON pointer and a hint.
    static func report(file: String, batch: String?, issues: [ManifestIssue], now: Timestamp) -> [UInt8] {
        struct Report: Encodable {
            var file: String
            var batch: String?
            var rejected_at: String
            var errors: Int
            var warnings: Int
            var issues: [ManifestIssue]
        }
        let r = Report(file: file, batch: batch, rejected_at: Wire.time(now),
                       errors: issues.filter { $0.severity == .error }.count,
                       warnings: issues.filter { $0.severity == .warning }.count, issues: issues)
        return Array((try? Wire.encoder(pretty: true).encode(r)) ?? Data()) + [UInt8(ascii: "\n")]
    }
}
