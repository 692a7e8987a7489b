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

    func submit(_ key: JobKey) async {
        let found: JobRow?
        do {
            found = try await store.job(key)
        } catch {
            // Nothing was sent: the scheduler offers the job again after a backoff.
            logger.error("cannot read the job to submit it", metadata: ["job_id": "\(key)", "error": "\(error)"])
            handle(.submitFailed(key, .provider, retryAfter: nil, message: "state store: \(error)"))
            return
        }
        guard let row = found, [.queued, .retrying].contains(row.state) else {
            handle(.removed(key))
            return
        }
        let request: RenderRequest
        do {
            request = try await renderRequest(for: row)
        } catch let failure as ProviderFailure {
            await recordExchange(key, failure.exchange)
            handle(.submitFailed(key, failure.blame == .ambiguous ? .provider : failure.blame,
                                 retryAfter: failure.retryAfter, message: "upload: \(failure)"))
            return
        } catch {
            await finish(key, .failed, reason: "reference upload failed: \(error)")
            handle(.removed(key))
            return
        }
        let fingerprint = Self.fingerprint(request)
        let intent = SubmissionIntent()
        var log = logger
        log[metadataKey: "job_id"] = "\(key)"
        do {
            // The in-doubt window opens inside `beforeSend`, which the client runs on the transfer thread right
            // before the request goes out (after any wait for a free connection slot): from that commit until
            // commitTaskID, a crash leaves `submitting`, which the next start turns into `in_doubt` and reconciles
            // instead of resubmitting. A crash before it leaves the job `queued`: nothing was sent.
            let created = try await api.createTask(request) { [self] in
                try await openSubmission(row, fingerprint: fingerprint, intent: intent)
                await handle(.createSent(key, at: clock.now()))   // the create window counts from the send
            }
            let now = clock.now()
            await recordExchange(key, created.exchange)
            // The in-doubt window closes here.
            try await store.commitTaskID(key, taskID: created.taskID, status: created.status, now: now)
            log.info("submitted", metadata: ["task_id": "\(created.taskID)", "attempt": "\(intent.attempt ?? 0)"])
            publish(.jobsChanged([key]))
            handle(.submitted(key, taskID: created.taskID))
        } catch let refusal as SubmissionNotOpened {
            // Nothing was sent.
            switch refusal {
            case .notSubmittable:
                handle(.removed(key))
            case .store(let error):
                log.error("cannot record submission intent", metadata: ["error": "\(error)"])
                handle(.submitFailed(key, .provider, retryAfter: nil, message: "store: \(error)"))
            }
        } catch let failure as ProviderFailure where intent.attempt != nil {
            let now = clock.now()
            await recordExchange(key, failure.exchange)
            if failure.blame == .ambiguous {
                await record(key, to: .inDoubt, from: [.submitting], cause: "create outcome unknown: \(failure)") {
                    $0.reason = "create outcome unknown: \(failure.message)"
                }
                log.warning("create call outcome unknown; job is in doubt, reconciling", metadata: ["error": "\(failure)"])
                publish(.jobsChanged([key]))
                handle(.submitFailed(key, .ambiguous, retryAfter: failure.retryAfter, message: failure.message))
                spawnReconcile(key)
            } else {
                // The provider answered: no task exists. The job waits in `retrying` while the scheduler decides
                // (backoff, throttle hold, or failure). A throttle or an account refusal is not an attempt: the
                // create's attempt number is given back.
                let countsAsAttempt = failure.blame != .throttled && failure.blame != .account
                do {
                    try await store.refuseSubmission(key, countsAsAttempt: countsAsAttempt, reason: failure.message,
                                                     now: now)
                } catch {
                    log.error("cannot record a refused create", metadata: ["error": "\(error)"])
                }
                if failure.blame == .throttled {
                    log.info("create throttled", metadata: ["error": "\(failure)"])
                } else {
                    log.notice("create refused", metadata: ["error": "\(failure)"])
                }
                handle(.submitFailed(key, failure.blame, retryAfter: failure.retryAfter, message: failure.description))
            }
        } catch where intent.attempt == nil {
            // The request never left (cancelled while waiting for a transfer thread, or not encodable): the job is
            // still where it was, with no intent recorded.
            log.notice("create call not sent", metadata: ["error": "\(error)"])
            handle(.submitFailed(key, .provider, retryAfter: nil, message: "create not sent: \(error)"))
        } catch {
            // Not a classified provider failure (should not happen): treat as ambiguous, never resubmit blindly.
            await record(key, to: .inDoubt, from: [.submitting], cause: "create error: \(error)")
            handle(.submitFailed(key, .ambiguous, retryAfter: nil, message: "\(error)"))
            spawnReconcile(key)
        }
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
            throw SubmissionNotOpened.store("\(error)")
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
        if let running = uploadsInFlight[slot] { return try await running.value }
        // Registered before the first suspension: a job arriving while the cache is consulted joins this task.
        let task = Task { [api, store, clock, logger] () throws -> String in
            if let cached = try await store.cachedUpload(sha256: digest, model: model, validAt: clock.now()) {
                return cached
            }
            let (url, exchange) = try await api.uploadFile(path: path, model: model)
            let now = clock.now()
            do {
                try await store.recordAttempt(key, exchange, now: now)
            } catch {
                logger.error("cannot record a provider exchange", metadata: ["job_id": "\(key)", "error": "\(error)"])
            }
            // Temporary uploads live about 48 h; reuse them for 24 h to stay well inside that.
            try await store.saveUpload(sha256: digest, model: model, ossURL: url, uploadedAt: now, expiresAt: now + 24 * 3600)
            logger.info("uploaded local reference", metadata: ["job_id": "\(key)", "sha256": "\(digest)"])
            return url
        }
        uploadsInFlight[slot] = task
        defer { uploadsInFlight[slot] = nil }
        return try await task.value
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
            switch verdict {
            case .adopt(let taskID, let how):
                await adopt(key, taskID: taskID, how: how)
                return
            case .follow(let ids):
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
            case .wait(let until, let seen):
                await noteInDoubt(key, "in doubt: \(seen)")
                // Candidates still rendering are queried again when it is time to look.
                followed = followed.filter { $0.value.status.isTerminal }
                if await pause(seconds: max(1, until - clock.now())) { continue } else { return }
            case .noTaskSeen(let seen):
                if options.resubmitInDoubt {
                    await resubmitInDoubt(key, because: seen)
                } else {
                    await needsOperator(key, "in doubt: \(seen); no task was seen, but the list is not proof: resolve with "
                                        + "`reelctl resolve \(key) --resubmit` (may pay twice if a task exists), "
                                        + "`--adopt TASK` or `--fail`")
                }
                return
            case .needsOperator(let summary):
                await needsOperator(key, "in doubt: \(summary); resolve with `reelctl resolve \(key) --adopt TASK | "
                                    + "--resubmit | --fail`")
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

    /// Records a provider exchange in the job's history; a store that cannot write is logged, never fatal here.
    func recordExchange(_ key: JobKey?, _ exchange: Exchange) async {
        do {
            try await store.recordAttempt(key, exchange, now: clock.now())
        } catch {
            logger.error("cannot record a provider exchange", metadata: ["job_id": "\(key.map(\.description) ?? "-")",
                                                                         "error": "\(error)"])
        }
    }

    /// Keeps a finished render's run time for the scheduler's model; a store that cannot write is logged.
    private func recordRunTimeSample(_ runClass: RunTimeClass, seconds: Double, now: Timestamp) async {
        do {
            try await store.recordRunTime(runClass, seconds: seconds, now: now)
        } catch {
            logger.error("cannot record a run-time sample", metadata: ["error": "\(error)"])
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

    /// Sets an in-doubt job's reason to what reconciliation saw, when it changed.
    private func noteInDoubt(_ key: JobKey, _ reason: String) async {
        do {
            if try await store.update(key, ifIn: [.inDoubt], now: clock.now(), {
                if $0.reason != reason { $0.reason = reason }
            }) {
                publish(.jobsChanged([key]))
            }
        } catch {
            logger.error("cannot record an in-doubt reason", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
    }

    private func needsOperator(_ key: JobKey, _ reason: String) async {
        await noteInDoubt(key, reason)
        logger.warning("in-doubt job needs an operator", metadata: ["job_id": "\(key)", "detail": "\(reason)"])
        handle(.inDoubtNeedsOperator(key))
    }

    private func resubmitInDoubt(_ key: JobKey, because seen: String) async {
        do {
            guard try await store.transition(key, from: [.inDoubt], to: .queued,
                                             cause: "in doubt, \(seen): resubmitting ([in_doubt] resubmit = true)",
                                             now: clock.now(), update: { $0.reason = nil }) else { return }
        } catch {
            logger.error("cannot requeue an in-doubt job", metadata: ["job_id": "\(key)", "error": "\(error)"])
            return
        }
        logger.notice("in-doubt job resubmitted: no task seen", metadata: ["job_id": "\(key)", "detail": "\(seen)"])
        handle(.released(key))
        do {
            if let again = try await store.job(key) { handle(.enqueued(schedulerJob(again))) }
        } catch {
            logger.error("cannot read a requeued job", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
        publish(.jobsChanged([key]))
    }

    /// Adopts `taskID` for an in-doubt job: commits it as the job's task and hands it to the scheduler to poll.
    func adopt(_ key: JobKey, taskID: String, how: String) async {
        let now = clock.now()
        do {
            guard try await store.commitTaskID(key, taskID: taskID, status: .pending, now: now, how: how) else { return }
            logger.notice("adopted task", metadata: ["job_id": "\(key)", "task_id": "\(taskID)", "how": "\(how)"])
            publish(.jobsChanged([key]))
            if let row = try await store.job(key) { attachAdopted(row, taskID: taskID) }
        } catch {
            logger.error("cannot adopt task", metadata: ["job_id": "\(key)", "task_id": "\(taskID)", "error": "\(error)"])
        }
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

    private func observe(_ key: JobKey, snapshot: TaskSnapshot, now: Timestamp) async {
        guard let row = await readStore("job \(key)", { try await store.job(key) }) else { return }
        if row.state == .cancelled {
            // Cancelled while rendering: keep the slot accounting right, discard the result.
            handle(.polled(key, snapshot.status))
            return
        }
        switch snapshot.status {
        case .pending:
            handle(.polled(key, .pending))
        case .running:
            if row.state == .pending {
                await record(key, to: .running, from: [.pending], cause: "provider: RUNNING")
                publish(.jobsChanged([key]))
            }
            handle(.polled(key, .running))
        case .succeeded:
            guard let url = snapshot.videoURL else {
                handle(.pollFailed(key, .provider, retryAfter: nil))
                return
            }
            // Learn from the provider's own clock (end − submit), not from when we happened to notice.
            let runTime = ProviderTime.seconds(from: snapshot.submitTime, to: snapshot.endTime)
                ?? row.submittedAt.map { now - $0 }
            if let runTime {
                handle(.observedRunTime(model: row.spec.model, resolution: row.spec.resolution,
                                        durationSeconds: row.spec.durationSeconds,
                                        referenceVideoSeconds: row.spec.referenceVideoSeconds, seconds: runTime))
                await recordRunTimeSample(RunTimeClass(model: row.spec.model, resolution: row.spec.resolution,
                                                            durationSeconds: row.spec.durationSeconds),
                                               seconds: runTime, now: now)
            }
            // Billed from this moment, delivered or not; an earlier billed attempt (an operator retry) stays counted.
            let billed = billedCost(row.spec, usage: snapshot.usage)
            await record(key, to: .downloading, from: [.pending, .running], cause: "provider: SUCCEEDED") { job in
                job.videoURL = url
                job.urlExpiresAt = now + ProviderLimits.resultLifetimeSeconds
                job.usage = snapshot.usage
                if let billed { job.costUSD = Cost.rounded((job.costUSD ?? 0) + billed) }
            }
            publish(.jobsChanged([key]))
            handle(.polled(key, .succeeded))
        case .failed:
            let code = snapshot.code ?? "Unknown"
            let reason = "provider FAILED the render: \(code): \(snapshot.message ?? "")"
            // A failed render is not billed: InternalError and the like are retried with backoff; anything the
            // request itself caused fails the job.
            let blame: Blame = ProviderFailure.isPermanentCode(code) || ProviderFailure.isAccountCode(code)
                ? .jobPermanent : .provider
            if blame == .provider {
                await record(key, to: .retrying, from: [.pending, .running], cause: reason) {
                    $0.reason = reason
                }
            }
            handle(.renderFailed(key, blame, message: reason))
            publish(.jobsChanged([key]))
        case .canceled:
            let reason = "the provider reports the task CANCELED (not requested by Reel)"
            await record(key, to: .failed, from: [.pending, .running], cause: reason) {
                $0.reason = reason
            }
            handle(.polled(key, .canceled))
            publish(.jobsChanged([key]))
            await checkBatchEnd(key.batch)
        case .unknown:
            // Expired, or lost for now by the provider: the scheduler tells (`.expire` / `.vanished`), by the
            // task's age and how long it has answered UNKNOWN.
            handle(.polled(key, .unknown))
        }
    }

    /// A young task kept answering UNKNOWN: the job goes in doubt with the true reason and is reconciled (its
    /// task may come back in the list); it is never marked expired early nor resubmitted blindly.
    func taskVanished(_ key: JobKey, taskID: String, reason: String) async {
        do {
            guard try await store.transition(key, from: [.pending, .running], to: .inDoubt, cause: reason,
                                             now: clock.now(), update: { $0.reason = "in doubt: \(reason)" }) else {
                return
            }
        } catch {
            logger.error("cannot record a vanished task", metadata: ["job_id": "\(key)", "error": "\(error)"])
            return
        }
        logger.warning("task vanished at the provider; job is in doubt, reconciling",
                       metadata: ["job_id": "\(key)", "task_id": "\(taskID)"])
        publish(.jobsChanged([key]))
        spawnReconcile(key)
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
    case store(String)
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
