import Dispatch
import Foundation
import Glibc
import Logging
import ReelCore
import ReelMedia
import ReelPosix
import ReelProtocol
import ReelSpool
import ReelStore
import Synchronization

/// Spool intake: every manifest in `incoming/` is read safely, validated (every problem, with JSON pointers),
/// its local references probed, and its jobs committed in one transaction before the file leaves `incoming/`.
/// Bad files move to `rejected/` with a report. A crash anywhere re-ingests idempotently (keyed by content hash).
public actor Intake {
    let spool: SpoolDirectory
    let clock: any WallClock
    let logger: Logger
    /// The commit half of a pass; it runs beside the actor so the next chunk is checked meanwhile.
    let committer: Committer
    /// Names skipped for a reason worth one log line (not every rescan).
    private var reportedSkips: Set<String> = []
    /// Passes asked for later (a hint pass, a settle rescan, files the unlinker left), run by `run()`.
    private let requests = AsyncStream<Request>.makeStream()

    enum Request: Sendable {
        /// A pass for the hinted names, a moment later (so a burst of renames is listed together).
        case hintPass
        /// A rescan once files left to settle may have settled.
        case settleScan
        /// Names the unlinker found still present after their removal (renamed in under a pending name).
        case take([String])
    }

    public init(spool: SpoolDirectory, store: any JobStore, engine: Engine, clock: any WallClock, logger: Logger) {
        self.spool = spool
        self.clock = clock
        self.logger = logger
        committer = Committer(spool: spool, store: store, engine: engine, clock: clock, logger: logger)
        let requests = self.requests.continuation
        committer.unlinker.whenBatchDone { left in
            guard !left.isEmpty else { return }
            requests.yield(.take(left))
        }
    }

    /// Runs the passes asked for meanwhile (see `Request`) until cancelled; owned by the intake service.
    public func run() async {
        let requests = self.requests.stream
        await withDiscardingTaskGroup { group in
            for await request in requests {
                switch request {
                case .hintPass:
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(20))
                        await self.hintPass()
                    }
                case .settleScan:
                    group.addTask {
                        guard (try? await Task.sleep(for: .milliseconds(Int(Self.settleSeconds * 1000) + 100))) != nil
                        else { return }
                        await self.scan(reason: "settle")
                    }
                case .take(let names):
                    group.addTask { await self.unlinked(left: names) }
                }
            }
        }
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
    /// Names the watcher saw created or written in place and not closed since (no IN_CLOSE_WRITE yet), with when
    /// that was last seen: their writer still has them open, so no pass takes them, however long it pauses
    /// between writes, until the close (a `take` hint) or until they have been quiet for `maxWritingSeconds`.
    private var writing: [String: Timestamp] = [:]
    /// A file still open for writing that has seen no write for this long is taken anyway (a writer that died
    /// with the file open, or writes that inotify reports without a close); the read's own before/after check
    /// still refuses a file that changes while it is read.
    static let maxWritingSeconds = 60.0
    /// A hint pass is scheduled and has not listed the directory yet: later hints ride along with it.
    private var hintPassScheduled = false
    /// One pass (list, then take) at a time: two overlapping passes would read the same files twice.
    private var passRunning = false
    private var passWaiters: [CheckedContinuation<Void, Never>] = []
    /// Called after each of the unlinker's batches with the names that still held an entry once they stopped
    /// being pending: a file renamed in under a pending name (which passes skipped) gets a pass of its own.
    private func unlinked(left: [String]) {
        if !left.isEmpty { take(left) }
    }

    /// True when every committed file handed to the unlinker so far has left `incoming/` (or failed to).
    public nonisolated var removalsDone: Bool { committer.unlinker.isIdle }

    /// Takes every candidate currently in `incoming/` that has settled. Returns how many files were ingested or
    /// rejected, and `rescan`: some were left to settle and the caller should scan again after `settleSeconds`.
    @discardableResult
    public func scan(reason: String) async -> (handled: Int, rescan: Bool) {
        await beginPass()
        defer { endPass() }
        return await scanLocked(reason: reason)
    }

    /// Processes watcher hints without waiting for the work: the hinted names are noted and one pass, started a
    /// moment later (so a burst of renames is listed together), takes every hinted file together with everything
    /// else that has settled, in chunks (see `takeNow`). Hints that arrive while a pass is under way are taken by
    /// the next pass, which lists the directory again; a hint for a file already taken costs nothing more. A
    /// hinted name was renamed in or closed after writing, so it is complete and exempt from the settle wait.
    public func take(_ names: [String]) {
        for name in names { writing[name] = nil }
        hinted.formUnion(names)
        guard !hintPassScheduled else { return }
        hintPassScheduled = true
        requests.continuation.yield(.hintPass)
    }

    /// Notes a watcher's `.writing` hint: `name` is being written in place and is left alone until its writer
    /// closes it (see `writing`).
    public func writing(_ name: String) {
        writing[name] = clock.now()
    }

    private func hintPass() async {
        await beginPass()
        defer { endPass() }
        hintPassScheduled = false  // from here on, a new hint may need a new listing
        if await scanLocked(reason: "hint").rescan {
            // Files left to settle (not hinted yet, e.g. their hints are still queued or were lost in an inotify
            // overflow) are looked at again once they may have settled, as the service does for its rescans.
            requests.continuation.yield(.settleScan)
        }
    }

    private func beginPass() async {
        while passRunning { await withCheckedContinuation { passWaiters.append($0) } }
        passRunning = true
    }

    private func endPass() {
        passRunning = false
        if !passWaiters.isEmpty { passWaiters.removeFirst().resume() }
    }

    private func scanLocked(reason: String) async -> (handled: Int, rescan: Bool) {
        let result: SpoolScan
        let now = clock.now()
        let spool = spool
        do {
            // Spool I/O runs on the file threads, never on the actor (which would park a cooperative thread).
            result = try await BlockingThreads.files.run { try spool.scan(settledBefore: now - Self.settleSeconds) }
        } catch {
            logger.error("cannot scan the spool", metadata: ["error": "\(error)", "reason": "\(reason)"])
            return (0, false)
        }
        // Committed files still waiting for the unlinker are not read again (they may look "settling" too: a
        // hinted file is taken at once, and a rescan may list it within its 2 s).
        let unlinker = committer.unlinker
        // Files their writers still hold open are not taken; the note is dropped for names no longer listed.
        let listed = Set(result.candidates).union(result.skipped.lazy.filter { $0.reason == .settling }.map(\.name))
        writing = writing.filter { listed.contains($0.key) && now - $0.value < Self.maxWritingSeconds }
        let stillOpen = writing.keys
        let candidates = result.candidates.filter { !unlinker.isPending($0) && !stillOpen.contains($0) }
        let settling = result.skipped.filter {
            $0.reason == .settling && !unlinker.isPending($0.name) && !stillOpen.contains($0.name)
        }.map(\.name)
        settlingSince = settling.reduce(into: [:]) { $0[$1] = settlingSince[$1] ?? now }
        let overdue = settling.filter { now - (settlingSince[$0] ?? now) >= Self.maxSettleSeconds || hinted.contains($0) }
        hinted.subtract(candidates)
        hinted.subtract(overdue)
        hinted.formIntersection(settling)
        for skip in result.skipped where skip.reason == .nameNotUTF8 {
            let report = Self.report(file: skip.name, batch: nil, issues: [
                ManifestIssue(.error, "", "the file name is not valid UTF-8",
                              hint: "name spool files with UTF-8 names ending in .json")], now: clock.now())
            do {
                _ = try await BlockingThreads.files.run { try spool.reject(rawName: skip.rawName, report: report) }
                logger.warning("rejected a spool file with a non-UTF-8 name", metadata: ["file": "\(skip.name)"])
            } catch {
                // Left in incoming/ and tried again by the next pass.
                logger.error("cannot reject a spool file with a non-UTF-8 name",
                             metadata: ["file": "\(skip.name)", "error": "\(error)"])
            }
        }
        for skip in result.skipped where skip.reason == .notJSON && !reportedSkips.contains(skip.name) {
            reportedSkips.insert(skip.name)
            logger.notice("ignoring a spool file that is not *.json", metadata: ["file": "\(skip.name)"])
        }
        let rescan = (settling.count > overdue.count || !stillOpen.isEmpty) && settleRescanDue.map { now >= $0 } != false
        if rescan { settleRescanDue = now + Self.settleSeconds }
        return (await takeNow(candidates + overdue), rescan)
    }

    /// The first chunk of a pass is small, so a lone file or a small drop is committed at once.
    static let firstChunk = 64
    /// A chunk grows at most to twice the previous one, and never past this.
    static let maxChunk = 4096

    /// Takes the named files in chunks, group-commit style: while one chunk is committed beside the actor
    /// (`Committer.commit`: one durable store transaction, then the files are handed to the `Unlinker` and the
    /// engine is told), the actor reads and validates the next files, and the next chunk is whatever was checked by
    /// the time the commit is done (at least `firstChunk` files, at most twice the previous chunk and `maxChunk`).
    /// A slow fsync thus makes chunks bigger instead of making every file wait for it. One commit at a time, in
    /// order. The unlinks trail behind the commits; a file leaves `incoming/` only after its jobs are committed,
    /// and a crash in between re-reads it, which its content hash makes a no-op.
    private func takeNow(_ names: [String]) async -> Int {
        var handled = 0
        var index = names.startIndex
        var ready: [Checked] = []
        while true {
            while index < names.endIndex, ready.count < Self.firstChunk {
                handled += await check(names[index], into: &ready)
                index += 1
            }
            guard !ready.isEmpty else { break }
            let (committer, chunk, before) = (committer, ready, committedInThisProcess)
            ready = []
            let done = CommitDone()
            async let committing = committer.commit(chunk, committedBefore: before, done: done)
            let limit = min(Self.maxChunk, 2 * chunk.count)
            while index < names.endIndex, ready.count < limit, !done.isSet {
                handled += await check(names[index], into: &ready)
                index += 1
            }
            let outcome = await committing
            committedInThisProcess += outcome.committed
            handled += outcome.handled
        }
        return handled
    }

    /// Set by the committer when its chunk is done (committed, handed to the unlinker, enqueued): the next chunk
    /// stops growing.
    final class CommitDone: Sendable {
        private let flag = Atomic<Bool>(false)
        var isSet: Bool { flag.load(ordering: .acquiring) }
        func set() { flag.store(true, ordering: .releasing) }
    }

    /// Manifests committed by this process (for the debug-only intake hold in `TestHooks`).
    private var committedInThisProcess = 0

    /// A manifest that was read and passed validation, waiting for its commit.
    struct Checked: Sendable {
        var name: String
        var file: SpoolFile
        var report: ManifestReport
        var batch: String
        var settings: BatchSettings
    }

    /// Checks one file: appends it to `ready` if it may be committed; returns 1 if it was rejected, else 0.
    private func check(_ name: String, into ready: inout [Checked]) async -> Int {
        switch await check(name) {
        case .ready(let checked):
            ready.append(checked)
            return 0
        case .rejected: return 1
        case .skipped: return 0
        }
    }

    enum Check {
        case ready(Checked)
        case rejected
        case skipped
    }

    /// Reads and validates one file; a bad one is moved to `rejected/` here.
    private func check(_ name: String) async -> Check {
        let file: SpoolFile
        let spool = spool
        switch await BlockingThreads.files.run({ spool.read(name) }) {
        case .ok(let f):
            file = f
        case .vanished:
            return .skipped
        case .notReady(let reason):
            logger.debug("spool file not ready", metadata: ["file": "\(name)", "reason": "\(reason)"])
            return .skipped
        case .reject(let refusal):
            if refusal.linkToRemove != nil {
                await committer.discard(name, refusal: refusal)
            } else {
                await committer.reject(name, batch: nil, issues: [refusal.issue])
            }
            return .rejected
        }
        // A report quotes the byte where a JSON syntax error is; a file that is not even meant to be JSON (it does
        // not open with `{`) is refused without quoting any of its content.
        guard file.bytes.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "{") else {
            await committer.reject(name, batch: nil, issues: [Self.notAManifest])
            return .rejected
        }
        // Validated here on the actor: only local references need the (async) probe, which leaves the actor.
        let analysis = ManifestValidator.analyze(file.bytes, now: clock.now())
        let report = analysis.references.contains(where: { if case .path = $0.source { true } else { false } })
            ? await ReferenceCheck.inspect(analysis.report, references: analysis.references)
            : analysis.report
        guard report.isAccepted, let first = report.jobs.first, let batch = report.batch else {
            await committer.reject(name, batch: report.batch, issues: report.issues)
            return .rejected
        }
        let settings = BatchSettings(priority: first.priority, deadline: first.deadline, budgetUSD: first.budgetUSD)
        var taken = file
        taken.bytes = []  // only the hash, name and inode are needed from here on: a chunk of 4,096 stays small
        return .ready(Checked(name: name, file: taken, report: report, batch: batch, settings: settings))
    }

    /// The one issue of a file that does not start like a JSON manifest.
    static let notAManifest = ManifestIssue(
        .error, "", "it is not a JSON manifest: a manifest is a JSON object, starting with '{'",
        hint: "write { \"manifest_version\": 1, \"batch\": \"NAME\", \"jobs\": [ … ] } (see `reelctl validate`)")

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

    /// The commit half of intake: stateless, so it runs off the actor while the actor checks the next chunk.
    struct Committer: Sendable {
        let spool: SpoolDirectory
        let store: any JobStore
        let engine: Engine
        let clock: any WallClock
        let logger: Logger
        /// Removes committed files from `incoming/`, behind the commits.
        let unlinker: Unlinker

        init(spool: SpoolDirectory, store: any JobStore, engine: Engine, clock: any WallClock, logger: Logger) {
            self.spool = spool
            self.store = store
            self.engine = engine
            self.clock = clock
            self.logger = logger
            unlinker = Unlinker(spool: spool, logger: logger)
        }

        /// Commits the checked manifests in one durable store transaction (fsynced before it returns), rejects
        /// files whose jobs conflict with stored ones, hands the committed files to the unlinker (which removes
        /// them from `incoming/` later), hands the new jobs to the engine and then sets `done`. Returns how many
        /// manifests were committed (new or already known) and how many files were handled (committed or rejected).
        func commit(_ ready: [Checked], committedBefore: Int, done: CommitDone) async -> (committed: Int, handled: Int) {
            defer { done.set() }
            guard !ready.isEmpty else { return (0, 0) }
            let start = ContinuousClock.now
            let now = clock.now()
            let outcomes: [Result<IngestOutcome, any Error>]
            do {
                outcomes = try await store.ingest(ready.map {
                    ManifestIngest(manifestSHA256: $0.file.sha256, fileName: $0.name, batch: $0.batch,
                                   settings: $0.settings, jobs: $0.report.jobs)
                }, now: now)
            } catch {
                // The files stay in incoming/ and are read again by the next pass; the engine shows the store's
                // refusal as its degraded state meanwhile.
                logger.error("cannot commit the manifests' jobs; will try again",
                             metadata: ["error": "\(error)", "files": "\(ready.count)"])
                if !(error is CancellationError) { await engine.storeWrite("commit manifests", failed: error) }
                return (0, 0)
            }
            await engine.storeWrite("commit manifests", failed: nil)
            let committedIn = ContinuousClock.now - start
            var accepted: [SpoolFile] = []
            var added: [JobSpec] = []
            var known = 0
            var unchangedJobs = 0
            var rejected = 0
            for (c, outcome) in zip(ready, outcomes) {
                switch outcome {
                case .success(.alreadyIngested):
                    logger.info("manifest already ingested (same content); removing it from incoming/",
                                metadata: ["file": "\(c.name)"])
                    accepted.append(c.file)
                    known += 1
                case .success(.accepted(let new, let unchanged)):
                    for warning in c.report.warnings {
                        logger.notice("manifest warning: \(warning.message)",
                                      metadata: ["file": "\(c.name)", "pointer": "\(warning.pointer)"])
                    }
                    logger.debug("manifest accepted", metadata: ["file": "\(c.name)", "batch": "\(c.batch)",
                                                                 "added": "\(new.count)",
                                                                 "unchanged": "\(unchanged.count)"])
                    accepted.append(c.file)
                    if new.count == c.report.jobs.count {
                        added += c.report.jobs
                    } else {
                        let newKeys = Set(new)
                        added += c.report.jobs.filter { newKeys.contains($0.key) }
                    }
                    unchangedJobs += unchanged.count
                case .success(.rejected(let conflicts)):
                    let issues = conflicts.map { conflict -> ManifestIssue in
                        let index = c.report.jobs.firstIndex { $0.key == conflict.key } ?? 0
                        return ManifestIssue(.error, "/jobs/\(index)/id", conflict.message,
                                             hint: conflict.existingState.isTerminal
                                                ? "submit the job under a new id (job ids are never reused)"
                                                : "to replace it, cancel it (`reelctl cancel \(conflict.key)`) and "
                                                    + "submit the job under a new id")
                    }
                    await reject(c.name, batch: c.batch, issues: issues + c.report.warnings)
                    rejected += 1
                case .failure(let error):
                    logger.error("cannot commit the manifest's jobs; will try again",
                                 metadata: ["file": "\(c.name)", "error": "\(error)"])
                }
            }
            await TestHooks.holdIntakeBeforeUnlinkIfAsked(committed: committedBefore + accepted.count, logger: logger)
            // Only now, with the jobs durably committed, may the files go. The unlinks are not waited for: freeing
            // a file whose blocks were fsynced costs ~2.6 ms on this machine's ext4 under load (docs/benchmarks.md),
            // 10x the commit per file. If reeld dies before they are done, the files are read again and their
            // content hash makes that a no-op.
            unlinker.hand(accepted)
            if !added.isEmpty { await engine.enqueue(added, createdAt: now) }
            logger.info("manifests committed", metadata: [
                "files": "\(ready.count)", "new_jobs": "\(added.count)", "unchanged_jobs": "\(unchangedJobs)",
                "already_ingested": "\(known)", "rejected": "\(rejected)",
                "commit_ms": "\(String(format: "%.1f", committedIn / .milliseconds(1)))"])
            return (accepted.count, accepted.count + rejected)
        }

        /// Removes a refused hard link from `incoming/` (never moved: that would keep a second name for the
        /// linked file in the spool) and writes only its report; logs it.
        func discard(_ name: String, refusal: SpoolRefusal) async {
            let report = Intake.report(file: name, batch: nil, issues: [refusal.issue], now: clock.now())
            let spool = spool
            do {
                let reportName = try await BlockingThreads.files.run { try spool.discard(name, refusal: refusal, report: report) }
                logger.warning("spool entry refused and removed", metadata: [
                    "file": "\(name)", "first": "\(refusal.issue.description)",
                    "report": "\(reportName.map { "rejected/\($0)" } ?? "-")"])
            } catch {
                logger.error("cannot remove a refused spool entry", metadata: ["file": "\(name)", "error": "\(error)"])
            }
        }

        /// Moves a refused entry to `rejected/` beside its report, and logs it (one warning line per file).
        func reject(_ name: String, batch: String?, issues: [ManifestIssue]) async {
            let report = Intake.report(file: name, batch: batch, issues: issues, now: clock.now())
            let spool = spool
            do {
                let where_ = try await BlockingThreads.files.run { try spool.reject(name, report: report) }
                logger.warning("manifest rejected", metadata: [
                    "file": "\(name)",
                    "errors": "\(issues.filter { $0.severity == .error }.count)",
                    "first": "\(issues.first.map(\.description) ?? "")",
                    "report": "\(where_.map { "rejected/\($0.report)" } ?? "-")"])
            } catch {
                logger.error("cannot move a rejected manifest", metadata: ["file": "\(name)", "error": "\(error)"])
            }
        }
    }

    /// Removes committed files from `incoming/` on its own serial queue (off Swift's cooperative pool), in batches,
    /// behind the commits, so the next commit does not wait for them. Names handed to it stay *pending* until their
    /// unlink was tried: intake does not read a pending name again. No directory fsync: if a power loss undoes an
    /// unlink, the file is read again and recognised by its content hash.
    final class Unlinker: Sendable {
        private struct State {
            var queue: [SpoolFile] = []
            var pending: Set<String> = []
            var draining = false
            var batchDone: (@Sendable (_ left: [String]) -> Void)?
        }

        /// Files per batch: how often intake hears which names were forgotten.
        static let batch = 256
        private let spool: SpoolDirectory
        private let logger: Logger
        private let state = Mutex(State())
        /// Unlinks run on the low-priority cleanup thread: they trail the commits by design.
        private let io = BlockingThreads.cleanup

        init(spool: SpoolDirectory, logger: Logger) {
            self.spool = spool
            self.logger = logger
        }

        /// Sets what runs after each batch (on the unlinker's queue), with the names that still held an entry
        /// right after they stopped being pending (another file was renamed in over the committed one). A file renamed in after that moment finds its name not pending and is taken normally.
        func whenBatchDone(_ body: @escaping @Sendable (_ left: [String]) -> Void) {
            state.withLock { $0.batchDone = body }
        }

        /// True when every file handed over so far has had its unlink tried.
        var isIdle: Bool { state.withLock { !$0.draining && $0.queue.isEmpty } }

        /// True while `name` was handed over and its unlink not yet tried.
        func isPending(_ name: String) -> Bool { state.withLock { $0.pending.contains(name) } }

        /// Queues committed files for removal; returns at once.
        func hand(_ files: [SpoolFile]) {
            guard !files.isEmpty else { return }
            let start = state.withLock { s -> Bool in
                for file in files { s.pending.insert(file.name) }
                s.queue += files
                guard !s.draining else { return false }
                s.draining = true
                return true
            }
            if start { io.async { self.drain() } }
        }

        private func drain() {
            while true {
                let next = state.withLock { s -> (files: [SpoolFile], done: (@Sendable ([String]) -> Void)?)? in
                    guard !s.queue.isEmpty else {
                        s.draining = false
                        return nil
                    }
                    let files = Array(s.queue.prefix(Self.batch))
                    s.queue.removeFirst(files.count)
                    return (files, s.batchDone)
                }
                guard let (files, done) = next else { return }
                TestHooks.holdUnlinkIfAsked(logger: logger)
                let start = ContinuousClock.now
                var left: [String] = []
                var failed = 0
                for file in files {
                    var tried = true
                    do {
                        try spool.accept([file], syncDirectory: false)
                    } catch {
                        tried = false
                        // The jobs are committed; the file stays and is recognised by hash at the next rescan (not
                        // re-taken at once: the unlink would most likely fail again).
                        if failed == 0 {
                            logger.error("cannot remove an ingested manifest from incoming/",
                                         metadata: ["file": "\(file.name)", "error": "\(error)"])
                        }
                        failed += 1
                    }
                    state.withLock { _ = $0.pending.remove(file.name) }
                    // Looked at only after the name stopped being pending, so no new file can slip between.
                    if tried, (try? Posix.lstat(spool.layout.incoming + "/" + file.name)) != nil { left.append(file.name) }
                }
                logger.debug("ingested manifests removed from incoming/", metadata: [
                    "files": "\(files.count)", "failed": "\(failed)", "left": "\(left.count)",
                    "unlink_ms": "\(String(format: "%.1f", (ContinuousClock.now - start) / .milliseconds(1)))"])
                done?(left)
            }
        }
    }
}
