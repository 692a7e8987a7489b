import Crypto
import Foundation
import Logging
import ReelCore
import ReelOutput
import ReelStore
import Synchronization

// The engine's provider exchanges. Each runs in a child task, records one attempt row per exchange, moves the
// job in the store by compare-and-set, and reports back to the scheduler as an event.
extension Engine {
    // MARK: Submit (write-ahead: the intent is committed before the create call, the task id the moment it returns)

    /// Sends one create call for the job and tells its lifecycle how it ended; the lifecycle decides what that
    /// means (task committed, refused, in doubt, not sent).
    func submit(_ key: JobKey) async {
        let found: JobRow?
        do {
            found = try await store.job(key)
        } catch {
            // Nothing was sent; the scheduler offered the job, so it is queued or retrying.
            logger.error("cannot read the job to submit it", metadata: ["job_id": "\(key)", "error": "\(error)"])
            var life = JobLifecycle(key: key, state: .queued, policy: lifecyclePolicy)
            await execute(life.handle(.submit(.notSent("state store: \(error)")), now: clock.now()), for: key)
            return
        }
        guard let row = found, [.queued, .retrying].contains(row.state) else {
            var life = JobLifecycle(key: key, state: found?.state ?? .queued, policy: lifecyclePolicy)
            await execute(life.handle(.submit(.notSubmittable), now: clock.now()), for: key)
            return
        }
        let request: RenderRequest
        do {
            request = try await renderRequest(for: row)
        } catch let failure as ProviderFailure {
            await recordExchange(key, failure.exchange)
            var life = lifecycle(row)
            await execute(life.handle(.submit(.uploadFailed(failure.blame, retryAfter: failure.retryAfter,
                                                            message: "\(failure)")), now: clock.now()), for: key)
            return
        } catch is CancellationError {
            // Stopping while a reference upload waited for the state store: nothing was sent.
            var life = lifecycle(row)
            await execute(life.handle(.submit(.notSent("stopping")), now: clock.now()), for: key)
            return
        } catch {
            var life = lifecycle(row)
            await execute(life.handle(.submit(.uploadBroken("\(error)")), now: clock.now()), for: key)
            return
        }
        let fingerprint = Self.fingerprint(request)
        let intent = SubmissionIntent()
        var log = logger
        log[metadataKey: "job_id"] = "\(key)"
        let outcome: SubmitOutcome
        do {
            // The in-doubt window opens inside `beforeSend`, which the client runs on the transfer thread right
            // before the request goes out (after any wait for a free connection slot): from that commit until
            // the task id is committed, a crash leaves `submitting`, which the next start turns into `in_doubt`
            // and reconciles instead of resubmitting. A crash before it leaves the job `queued`: nothing was sent.
            let created = try await api.createTask(request) { [self] in
                try await openSubmission(row, fingerprint: fingerprint, intent: intent)
                await handle(.createSent(key, at: clock.now()))   // the create window counts from the send
            }
            await recordExchange(key, created.exchange)
            var life = lifecycle(row, as: .submitting)
            // The in-doubt window closes with the lifecycle's `commitTask`, once the store takes it (a refused write
            // waits, see `durably`; if reeld stops first, the job is still `submitting` and the next start
            // reconciles it).
            await execute(life.handle(.submit(.created(taskID: created.taskID, status: created.status,
                                                       attempt: intent.attempt ?? 0)),
                                      now: clock.now()), for: key)
            return
        } catch let refusal as SubmissionNotOpened {
            // Nothing was sent.
            switch refusal {
            case .notSubmittable:
                outcome = .notSubmittable
            case .store(let error):
                // The write-ahead was refused, so nothing was sent: the engine is degraded (no creates) until the
                // store takes writes again, and the job is offered again then, with no attempt counted.
                storeWrite("record a create's write-ahead", failed: error, job: key)
                outcome = .notSent("the state store refused the create's write-ahead: \(error)")
            }
        } catch let failure as ProviderFailure where intent.attempt != nil {
            await recordExchange(key, failure.exchange)
            outcome = failure.blame == .ambiguous
                ? .ambiguous(retryAfter: failure.retryAfter, message: failure.message, detail: "\(failure)")
                : .refused(failure.blame, retryAfter: failure.retryAfter, message: failure.message,
                           detail: failure.description)
        } catch where intent.attempt == nil {
            // The request never left (cancelled while waiting for a transfer thread, or not encodable): the job is
            // still where it was, with no intent recorded.
            log.notice("create call not sent", metadata: ["error": "\(error)"])
            outcome = .notSent("create not sent: \(error)")
        } catch {
            // Not a classified provider failure (should not happen): the lifecycle treats it as ambiguous.
            outcome = .unclassified("\(error)")
        }
        var life = lifecycle(row, as: intent.attempt == nil ? row.state : .submitting)
        await execute(life.handle(.submit(outcome), now: clock.now()), for: key)
    }

    /// The write-ahead of a create call, run by the provider client on the transfer thread just before the request
    /// is sent: commits `submitting` (attempt + 1, fingerprint, `create_started_at`; fsynced) inside the batch's
    /// budget check. Throws `SubmissionNotOpened` (and then nothing is sent) when the job is no longer submittable,
    /// its budget holds it, or the store refuses the write.
    private func openSubmission(_ row: JobRow, fingerprint: String, intent: SubmissionIntent) async throws {
        await TestHooks.holdCreateIfAsked(.beforeIntent, key: row.key, logger: logger)
        let opened: Int?
        do {
            // A batch with a budget holds this job instead when it would overrun (EngineBudget.swift).
            opened = try await withinBudget(row) {
                try await store.beginSubmission(row.key, expectedFrom: [.queued, .retrying], fingerprint: fingerprint,
                                                now: clock.now())
            }
        } catch {
            throw SubmissionNotOpened.store(error)
        }
        guard let opened else { throw SubmissionNotOpened.notSubmittable }
        intent.attempt = opened
        await TestHooks.holdCreateIfAsked(.afterIntent, key: row.key, logger: logger)
    }

    /// The provider request for a job: local references uploaded (once per file content and validity window).
    func renderRequest(for row: JobRow) async throws -> RenderRequest {
        var urls: [String] = []
        for reference in row.spec.references {
            switch reference.source {
            case .url(let url):
                urls.append(url)
            case .path(let path):
                urls.append(try await upload(path: path, sha256: reference.sha256, model: row.spec.model, key: row.key))
            }
        }
        let spec = row.spec
        return RenderRequest(model: spec.model, prompt: spec.prompt, negativePrompt: spec.negativePrompt,
                             referenceURLs: urls, size: spec.frameSize, durationSeconds: spec.durationSeconds,
                             shotType: spec.shotType, watermark: spec.watermark, seed: spec.seed, audio: spec.audio)
    }

    /// Uploads a local reference once per content and validity window: the store caches finished uploads, and
    /// concurrent submissions of jobs sharing a file wait for the one upload in flight.
    private func upload(path: String, sha256 known: String?, model: RenderModel, key: JobKey) async throws -> String {
        let digest: String
        if let known { digest = known } else { digest = try await Self.sha256(ofFile: path) }
        let slot = "\(model.rawValue)/\(digest)"
        if uploadsInFlight[slot] != nil {
            return try await withCheckedContinuation { uploadsInFlight[slot, default: []].append($0) }.get()
        }
        // Registered before the first suspension: a job arriving while this upload runs waits for its result.
        uploadsInFlight[slot] = []
        let result: Result<String, any Error>
        do {
            result = .success(try await uploadOnce(path: path, digest: digest, model: model, key: key))
        } catch {
            result = .failure(error)
        }
        for waiter in uploadsInFlight.removeValue(forKey: slot) ?? [] { waiter.resume(returning: result) }
        return try result.get()
    }

    private func uploadOnce(path: String, digest: String, model: RenderModel, key: JobKey) async throws -> String {
        if let cached = try await store.cachedUpload(sha256: digest, model: model, validAt: clock.now()) {
            return cached
        }
        let (url, exchange) = try await api.uploadFile(path: path, model: model)
        let now = clock.now()
        await recordExchange(key, exchange)
        // Temporary uploads live about 48 h; reuse them for 24 h to stay well inside that.
        guard await durably("cache an upload", job: key, {
            try await store.saveUpload(sha256: digest, model: model, ossURL: url, uploadedAt: now, expiresAt: now + 24 * 3600)
        }) != nil else { throw CancellationError() }
        logger.info("uploaded local reference", metadata: ["job_id": "\(key)", "sha256": "\(digest)"])
        return url
    }

    static func fingerprint(_ request: RenderRequest) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(request)) ?? Data()
        return Hex.string(SHA256.hash(data: data))
    }

    /// Local references' digests, each file version read once, off the engine actor and the cooperative pool.
    static let referenceDigests = FileDigests()

    static func sha256(ofFile path: String) async throws -> String {
        do {
            return try await referenceDigests.sha256(ofFile: path)
        } catch {
            throw ProviderFailure(exchange: Exchange(kind: .upload, httpStatus: 0, durationMilliseconds: 0,
                                                     transportError: "\(error)"),
                                  code: "LocalFileUnreadable", message: "cannot read local reference \(path): \(error)")
        }
    }

    // MARK: Reconcile an in-doubt job through the task-list API

    /// Settles an in-doubt job by what the provider shows (`Reconciliation.decide`, in the core): adopts its task,
    /// follows candidates to their end, waits out the list's lag, and only then resubmits (`[in_doubt] resubmit`)
    /// or asks an operator. The job keeps its render slot meanwhile. Runs until the job is settled or leaves
    /// `in_doubt`; a failing list is retried with backoff (the job's reason says so). Cancelled at shutdown.
    func reconcile(_ key: JobKey) async {
        var followed: [String: TaskSnapshot] = [:]
        var listFailures = 0
        while !Task.isCancelled {
            let row: JobRow
            do {
                guard let current = try await store.job(key), current.state == .inDoubt else { return }
                row = current
            } catch {
                logger.error("reconcile: cannot read the job", metadata: ["job_id": "\(key)", "error": "\(error)"])
                if await pause(seconds: 5) { continue } else { return }
            }
            let verdict: Reconciliation.Verdict
            do {
                let job = try await reconciliationFacts(row)
                let competitors = try await store.jobs(in: [.inDoubt]).filter { $0.key != key && $0.spec.model == row.spec.model }
                var others: [Reconciliation.Job] = []
                for other in competitors { others.append(try await reconciliationFacts(other)) }
                let rows = try await listWindow(key, model: row.spec.model, around: job.createStartedAt)
                listFailures = 0
                let owners = try await store.jobsOwningTasks(rows.map(\.taskID))
                verdict = Reconciliation.decide(job, rows: rows, owners: owners, competitors: others,
                                                followed: followed, now: clock.now(), listLag: options.listLag,
                                                pollAgain: min(15, options.limits.polling.maxInterval))
            } catch {
                listFailures += 1
                let delay = min(60, pow(2, Double(min(listFailures, 6))))
                await noteInDoubt(key, "in doubt: the task list cannot be read (\(error)); trying again in \(Int(delay)) s")
                if await pause(seconds: delay) { continue } else { return }
            }
            var life = lifecycle(row)
            let steps = await execute(life.handle(.reconciled(verdict), now: clock.now()), for: key)
            switch steps.refused ? nil : steps.next.first {
            case .queryCandidates(let ids)?:
                var unanswered = 0
                for id in ids {
                    do {
                        // Only an answer counts: UNKNOWN says the provider does not know the candidate.
                        let (snapshot, exchange) = try await api.queryTask(id)
                        await recordExchange(key, exchange)
                        followed[id] = snapshot
                    } catch let failure as ProviderFailure {
                        // No answer is no evidence: the candidate is asked again, never dropped for it.
                        await recordExchange(key, failure.exchange)
                        unanswered += 1
                    } catch {
                        return
                    }
                }
                if unanswered > 0 {
                    await noteInDoubt(key, "in doubt: \(unanswered) candidate task(s) could not be queried; asking again")
                    if await !pause(seconds: 2) { return }
                }
            case .waitUntil(let until)?:
                // Candidates still rendering are queried again when it is time to look.
                followed = followed.filter { $0.value.status.isTerminal }
                if await pause(seconds: max(1, until - clock.now())) { continue } else { return }
            default:
                // Settled: adopted, resubmitted, or left to an operator.
                return
            }
        }
    }

    /// The job as reconciliation sees it: its create window and the request ids its create calls answered with.
    private func reconciliationFacts(_ row: JobRow) async throws -> Reconciliation.Job {
        let started = row.createStartedAt ?? row.updatedAt
        let requestIDs = try await store.attempts(of: row.key)
            .filter { $0.exchange.kind == .create && $0.at >= started - 1 }
            .compactMap(\.exchange.requestID)
        return Reconciliation.Job(key: row.key, model: row.spec.model, prompt: row.spec.prompt, size: row.spec.frameSize,
                                  durationSeconds: row.spec.durationSeconds, createStartedAt: started,
                                  requestIDs: Set(requestIDs), knownTaskID: row.taskID)
    }

    /// Every task-list row of `model` around a create call, all pages (at most 20).
    private func listWindow(_ key: JobKey, model: RenderModel, around started: Timestamp) async throws -> [TaskListRow] {
        var query = TaskListQuery(startTime: started - Reconciliation.windowBefore,
                                  endTime: max(clock.now(), started + Reconciliation.windowAfter) + 60,
                                  model: model, pageNumber: 1, pageSize: 100)
        var rows: [TaskListRow] = []
        while true {
            do {
                let (page, exchange) = try await api.listTasks(query)
                await recordExchange(key, exchange)
                rows += page.rows
                guard page.hasMore(after: query), query.pageNumber < 20 else { return rows }
                query.pageNumber += 1
            } catch let failure as ProviderFailure {
                await recordExchange(key, failure.exchange)
                throw failure
            }
        }
    }

    /// Records a provider exchange in the job's history (durably: a refused write waits, see `durably`).
    func recordExchange(_ key: JobKey?, _ exchange: Exchange) async {
        await durably("record a provider exchange", job: key) {
            try await store.recordAttempt(key, exchange, now: clock.now())
        }
    }

    /// Keeps a finished render's run time for the scheduler's model (durably).
    func recordRunTimeSample(_ runClass: RunTimeClass, seconds: Double, now: Timestamp) async {
        await durably("record a run-time sample", job: nil) {
            try await store.recordRunTime(runClass, seconds: seconds, now: now)
        }
    }

    /// Sleeps `seconds`; false when cancelled (shutdown).
    private func pause(seconds: Double) async -> Bool {
        do {
            try await Task.sleep(for: .seconds(seconds))
            return true
        } catch {
            return false
        }
    }

    /// Sets an in-doubt job's reason to what reconciliation saw, when it changed (durably).
    private func noteInDoubt(_ key: JobKey, _ reason: String) async {
        let changed = await durably("record an in-doubt reason", job: key) {
            try await store.update(key, ifIn: [.inDoubt], now: clock.now(), {
                if $0.reason != reason { $0.reason = reason }
            })
        }
        if changed == true { publish(.jobsChanged([key])) }
    }

    /// Adopts `taskID` for an in-doubt job: commits it as the job's task (durably) and hands it to the scheduler
    /// to poll.
    func adopt(_ key: JobKey, taskID: String, how: String) async {
        let now = clock.now()
        guard await durably("adopt a task", job: key, {
            try await store.commitTaskID(key, taskID: taskID, status: .pending, now: now, how: how)
        }) == true else { return }
        logger.notice("adopted task", metadata: ["job_id": "\(key)", "task_id": "\(taskID)", "how": "\(how)"])
        publish(.jobsChanged([key]))
        if let row = await readStore("job \(key)", { try await store.job(key) }) { attachAdopted(row, taskID: taskID) }
    }

    // MARK: Poll

    func poll(_ key: JobKey, taskID: String) async {
        do {
            let (snapshot, exchange) = try await api.queryTask(taskID)
            let now = clock.now()
            await recordExchange(key, exchange)
            await observe(key, snapshot: snapshot, now: now)
        } catch let failure as ProviderFailure {
            await recordExchange(key, failure.exchange)
            handle(.pollFailed(key, failure.blame, retryAfter: failure.retryAfter))
        } catch {
            handle(.pollFailed(key, .provider, retryAfter: nil))
        }
    }

    /// Tells the job's lifecycle what a query saw.
    private func observe(_ key: JobKey, snapshot: TaskSnapshot, now: Timestamp) async {
        guard let row = await readStore("job \(key)", { try await store.job(key) }) else { return }
        var life = lifecycle(row)
        await execute(life.handle(.observed(snapshot), now: now), for: key)
    }

    /// A young task kept answering UNKNOWN: the job goes in doubt with the true reason and is reconciled (its
    /// task may come back in the list); it is never marked expired early nor resubmitted blindly.
    func taskVanished(_ key: JobKey, taskID: String, reason: String) async {
        guard let row = await readStore("job \(key)", { try await store.job(key) }) else { return }
        var life = lifecycle(row)
        await execute(life.handle(.taskVanished(taskID: taskID, reason: reason), now: clock.now()), for: key)
    }

    // MARK: Cancel at the provider

    func cancelRemote(_ key: JobKey, taskID: String) async {
        do {
            let exchange = try await api.cancelTask(taskID)
            await recordExchange(key, exchange)
            handle(.released(key))
        } catch let failure as ProviderFailure {
            await recordExchange(key, failure.exchange)
            logger.notice("remote cancel refused (task already running?); the result will be discarded",
                          metadata: ["job_id": "\(key)", "error": "\(failure)"])
            handle(.polled(key, .running))
        } catch {
            handle(.polled(key, .running))
        }
    }
}

/// Why `Engine.openSubmission` refused to let a create call go out.
enum SubmissionNotOpened: Error {
    /// The job moved meanwhile (cancelled, held, budget) or is not in `queued`/`retrying`.
    case notSubmittable
    /// The write-ahead could not be committed.
    case store(any Error)
}

/// The attempt number of a create call's write-ahead once committed, shared between the transfer thread's
/// `beforeSend` and the engine task awaiting the call. A lock-protected owner of one optional value.
final class SubmissionIntent: Sendable {
    private let value = Mutex<Int?>(nil)
    var attempt: Int? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

extension TestHooks {
    enum CreatePoint: String {
        case beforeIntent = "before-intent"
        case afterIntent = "after-intent"
    }

    #if DEBUG
    /// `REEL_TEST_HOLD_CREATE=<point>:<marker>`: a create call of a job whose id contains `<marker>` stops for
    /// good on its transfer thread at `<point>`: `before-intent` (a free thread, nothing committed yet: where a
    /// call that waited for a thread would be) or `after-intent` (`submitting` committed, nothing sent: the
    /// in-doubt window is open). A test SIGKILLs reeld there and checks what the restart makes of the job.
    private static let holdCreate: (point: String, marker: String)? = {
        guard let text = ProcessInfo.processInfo.environment["REEL_TEST_HOLD_CREATE"],
              let colon = text.firstIndex(of: ":") else { return nil }
        return (String(text[..<colon]), String(text[text.index(after: colon)...]))
    }()
    #endif

    /// Holds the create of a matching job forever at `point` (debug builds with `REEL_TEST_HOLD_CREATE` only).
    static func holdCreateIfAsked(_ point: CreatePoint, key: JobKey, logger: Logger) async {
        #if DEBUG
        guard let hold = holdCreate, hold.point == point.rawValue, key.id.contains(hold.marker) else { return }
        logger.notice("test hook: create call holding", metadata: ["job_id": "\(key)", "point": "\(point.rawValue)"])
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(1)) }
        #endif
    }
}
