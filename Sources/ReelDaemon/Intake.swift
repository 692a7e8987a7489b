import Foundation
import Glibc
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
    /// Names the watcher reported complete (renamed in, or closed after writing) and not yet taken.
    private var hinted: Set<String> = []
    private var hintScanPending = false

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
        let overdue = settling.filter { now - (settlingSince[$0] ?? now) >= Self.maxSettleSeconds || hinted.contains($0) }
        hinted.subtract(result.candidates)
        hinted.subtract(overdue)
        hinted.formIntersection(settling)
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
        return (await takeNow(result.candidates + overdue), rescan)
    }

    /// Processes watcher hints. Hints are collected for a moment and then one scan takes every hinted file
    /// together with everything else that has settled, so a burst of renames is taken in chunks (see `takeNow`),
    /// not one scan per file. A hinted name was renamed in or closed after writing, so it is complete and exempt
    /// from the settle wait.
    @discardableResult
    public func take(_ names: [String]) async -> Int {
        hinted.formUnion(names)
        guard !hintScanPending else { return 0 }
        hintScanPending = true
        try? await Task.sleep(for: .milliseconds(20))
        hintScanPending = false
        return await scan(reason: "hint").handled
    }

    /// Takes the named files in chunks of up to `chunkSize`: each file is read and validated, the chunk's good
    /// manifests are committed in one store transaction, then removed from `incoming/` with one directory fsync
    /// (a file leaves `incoming/` only after its jobs are committed; a crash in between re-reads it, and its content
    /// hash makes that a no-op).
    private func takeNow(_ names: [String]) async -> Int {
        var handled = 0
        var index = names.startIndex
        while index < names.endIndex {
            let chunk = names[index..<min(index + Self.chunkSize, names.endIndex)]
            index = chunk.endIndex
            var ready: [Checked] = []
            for name in chunk {
                switch await check(name) {
                case .ready(let checked): ready.append(checked)
                case .rejected: handled += 1
                case .skipped: break
                }
            }
            let (accepted, added, rejected) = await commit(ready)
            handled += rejected
            committedInThisProcess += accepted.count
            await TestHooks.holdIntakeBeforeUnlinkIfAsked(committed: committedInThisProcess, logger: logger)
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

    static let chunkSize = 64
    /// Manifests committed by this process (for the debug-only intake hold in `TestHooks`).
    private var committedInThisProcess = 0

    /// A manifest that was read and passed validation, waiting for its commit.
    struct Checked {
        var name: String
        var file: SpoolFile
        var report: ManifestReport
        var batch: String
        var settings: BatchSettings
        var log: Logger
    }

    enum Check {
        case ready(Checked)
        case rejected
        case skipped
    }

    /// Reads and validates one file; a bad one is moved to `rejected/` here.
    private func check(_ name: String) async -> Check {
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
            reject(name, batch: nil, issues: [refusal.issue], log: log)
            return .rejected
        }
        // Validated here on the actor: only local references need the (async) probe, which leaves the actor.
        let analysis = ManifestValidator.analyze(file.bytes, now: clock.now())
        let report = analysis.references.contains(where: { if case .path = $0.source { true } else { false } })
            ? await ReferenceCheck.inspect(analysis.report, references: analysis.references)
            : analysis.report
        guard report.isAccepted, let first = report.jobs.first, let batch = report.batch else {
            reject(name, batch: report.batch, issues: report.issues, log: log)
            return .rejected
        }
        let settings = BatchSettings(priority: first.priority, deadline: first.deadline, budgetUSD: first.budgetUSD)
        return .ready(Checked(name: name, file: file, report: report, batch: batch, settings: settings, log: log))
    }

    /// Commits the checked manifests in one store transaction. Returns the files to remove from `incoming/`, the
    /// new jobs, and how many files were rejected (conflicts with stored jobs).
    private func commit(_ ready: [Checked]) async -> (accepted: [SpoolFile], added: [JobKey], rejected: Int) {
        guard !ready.isEmpty else { return ([], [], 0) }
        let outcomes: [Result<IngestOutcome, any Error>]
        do {
            outcomes = try await store.ingest(ready.map {
                ManifestIngest(manifestSHA256: $0.file.sha256, fileName: $0.name, batch: $0.batch,
                               settings: $0.settings, jobs: $0.report.jobs)
            }, now: clock.now())
        } catch {
            logger.error("cannot commit the manifests' jobs; will try again",
                         metadata: ["error": "\(error)", "files": "\(ready.count)"])
            return ([], [], 0)
        }
        var accepted: [SpoolFile] = []
        var added: [JobKey] = []
        var rejected = 0
        for (c, outcome) in zip(ready, outcomes) {
            let log = c.log
            switch outcome {
            case .success(.alreadyIngested):
                log.info("manifest already ingested (same content); removing it from incoming/")
                accepted.append(c.file)
            case .success(.accepted(let new, let unchanged)):
                for warning in c.report.warnings {
                    log.notice("manifest warning: \(warning.message)", metadata: ["pointer": "\(warning.pointer)"])
                }
                log.info("manifest accepted", metadata: ["batch": "\(c.batch)", "added": "\(new.count)",
                                                         "unchanged": "\(unchanged.count)"])
                accepted.append(c.file)
                added += new
            case .success(.rejected(let conflicts)):
                let issues = conflicts.map { conflict -> ManifestIssue in
                    let index = c.report.jobs.firstIndex { $0.key == conflict.key } ?? 0
                    return ManifestIssue(.error, "/jobs/\(index)/id", conflict.message, hint: conflict.existingState.isTerminal
                                         ? "submit the job under a new id (job ids are never reused)"
                                         : "to replace it, cancel it (`reelctl cancel \(conflict.key)`) and submit the job under a new id")
                }
                reject(c.name, batch: c.batch, issues: issues + c.report.warnings, log: log)
                rejected += 1
            case .failure(let error):
                log.error("cannot commit the manifest's jobs; will try again", metadata: ["error": "\(error)"])
            }
        }
        return (accepted, added, rejected)
    }

    private func reject(_ name: String, batch: String?, issues: [ManifestIssue], log: Logger) {
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
