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
        guard let row = try? await store.job(key), [.queued, .retrying].contains(row.state) else {
            handle(.removed(key))
            return
        }
        let request: RenderRequest
        do {
            request = try await renderRequest(for: row)
        } catch let failure as ProviderFailure {
            try? await store.recordAttempt(key, failure.exchange, now: clock.now())
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
            }
            let now = clock.now()
            try? await store.recordAttempt(key, created.exchange, now: now)
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
            try? await store.recordAttempt(key, failure.exchange, now: now)
            if failure.blame == .ambiguous {
                _ = try? await store.transition(key, from: [.submitting], to: .inDoubt,
                                          cause: "create outcome unknown: \(failure)", now: now) {
                    $0.reason = "create outcome unknown: \(failure.message)"
                }
                log.warning("create call outcome unknown; job is in doubt, reconciling", metadata: ["error": "\(failure)"])
                publish(.jobsChanged([key]))
                handle(.submitFailed(key, .ambiguous, retryAfter: failure.retryAfter, message: failure.message))
                await reconcile(key)
            } else {
                // The provider answered: no task exists. Back to the queue; the scheduler decides retry or fail.
                _ = try? await store.transition(key, from: [.submitting], to: .queued, cause: "create refused: \(failure)",
                                          now: now)
                log.notice("create refused", metadata: ["error": "\(failure)"])
                handle(.submitFailed(key, failure.blame, retryAfter: failure.retryAfter, message: failure.description))
            }
        } catch where intent.attempt == nil {
            // The request never left (cancelled while waiting for a transfer thread, or not encodable): the job is
            // still where it was, with no intent recorded.
            log.notice("create call not sent", metadata: ["error": "\(error)"])
            handle(.submitFailed(key, .provider, retryAfter: nil, message: "create not sent: \(error)"))
        } catch {
            // Not a classified provider failure (should not happen): treat as ambiguous, never resubmit blindly.
            _ = try? await store.transition(key, from: [.submitting], to: .inDoubt, cause: "create error: \(error)",
                                      now: clock.now())
            handle(.submitFailed(key, .ambiguous, retryAfter: nil, message: "\(error)"))
            await reconcile(key)
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
            try? await store.recordAttempt(key, exchange, now: now)
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
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
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

    /// Finds the task an ambiguous create may have made: same model and prompt, created in the window around the
    /// submission, not owned by another job. One match is adopted; anything else waits for an operator
    /// (`reelctl resolve`) unless `[in_doubt] resubmit = true`.
    func reconcile(_ key: JobKey) async {
        for round in 0..<5 {
            guard let row = try? await store.job(key), row.state == .inDoubt else { return }
            let started = row.createStartedAt ?? row.updatedAt
            let query = TaskListQuery(startTime: started - 300, endTime: clock.now() + 300, model: row.spec.model,
                                      pageNumber: 1, pageSize: 100)
            do {
                var matches: [TaskSnapshot] = []
                var page = query
                while true {
                    let (result, exchange) = try await api.listTasks(page)
                    try? await store.recordAttempt(key, exchange, now: clock.now())
                    matches += result.tasks.filter { result.prompts[$0.taskID] == row.spec.prompt }
                    if result.tasks.count < page.pageSize || page.pageNumber * page.pageSize >= result.total { break }
                    page.pageNumber += 1
                }
                let owned = try await store.jobsOwningTasks(matches.map(\.taskID))
                let free = matches.filter { owned[$0.taskID] == nil || owned[$0.taskID] == key }
                if free.count == 1, let task = free.first {
                    await adopt(key, task: task)
                    return
                }
                let summary = free.isEmpty ? "no matching task at the provider"
                    : "\(free.count) matching tasks at the provider (\(free.map(\.taskID).joined(separator: ", ")))"
                if free.isEmpty, options.resubmitInDoubt {
                    _ = try? await store.transition(key, from: [.inDoubt], to: .queued,
                                              cause: "in doubt, \(summary): resubmitting ([in_doubt] resubmit = true)",
                                              now: clock.now())
                    handle(.released(key))
                    if let again = try? await store.job(key) { handle(.enqueued(schedulerJob(again))) }
                    return
                }
                _ = try? await store.update(key, ifIn: [.inDoubt], now: clock.now()) {
                    $0.reason = "in doubt: \(summary); resolve with `reelctl resolve \(key) --adopt TASK | --resubmit | --fail`"
                }
                logger.warning("in-doubt job needs an operator", metadata: ["job_id": "\(key)", "detail": "\(summary)"])
                handle(.released(key))
                publish(.jobsChanged([key]))
                return
            } catch {
                logger.warning("task list failed while reconciling", metadata: ["job_id": "\(key)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(min(60, pow(2, Double(round)))))
            }
        }
        handle(.released(key))
    }

    func adopt(_ key: JobKey, task: TaskSnapshot) async {
        let now = clock.now()
        do {
            guard try await store.commitTaskID(key, taskID: task.taskID, status: task.status == .running ? .running : .pending,
                                               now: now) else { return }
            logger.notice("adopted task", metadata: ["job_id": "\(key)", "task_id": "\(task.taskID)"])
            publish(.jobsChanged([key]))
            if let row = try await store.job(key) { attachAdopted(row, taskID: task.taskID) }
        } catch {
            logger.error("cannot adopt task", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
    }

    // MARK: Poll

    func poll(_ key: JobKey, taskID: String) async {
        do {
            let (snapshot, exchange) = try await api.queryTask(taskID)
            let now = clock.now()
            try? await store.recordAttempt(key, exchange, now: now)
            await observe(key, snapshot: snapshot, now: now)
        } catch let failure as ProviderFailure {
            try? await store.recordAttempt(key, failure.exchange, now: clock.now())
            handle(.pollFailed(key, failure.blame, retryAfter: failure.retryAfter))
        } catch {
            handle(.pollFailed(key, .provider, retryAfter: nil))
        }
    }

    private func observe(_ key: JobKey, snapshot: TaskSnapshot, now: Timestamp) async {
        guard let row = try? await store.job(key) else { return }
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
                _ = try? await store.transition(key, from: [.pending], to: .running, cause: "provider: RUNNING", now: now)
                publish(.jobsChanged([key]))
            }
            handle(.polled(key, .running))
        case .succeeded:
            guard let url = snapshot.videoURL else {
                handle(.pollFailed(key, .provider, retryAfter: nil))
                return
            }
            // Learn from the provider's own clock (end − submit), not from when we happened to notice.
            let runTime = Self.providerSeconds(from: snapshot.submitTime, to: snapshot.endTime)
                ?? row.submittedAt.map { now - $0 }
            if let runTime {
                handle(.observedRunTime(model: row.spec.model, resolution: row.spec.resolution,
                                        durationSeconds: row.spec.durationSeconds, seconds: runTime))
                try? await store.recordRunTime(RunTimeClass(model: row.spec.model, resolution: row.spec.resolution,
                                                            durationSeconds: row.spec.durationSeconds),
                                               seconds: runTime, now: now)
            }
            // Billed from this moment, delivered or not; an earlier billed attempt (an operator retry) stays counted.
            let billed = billedCost(row.spec, usage: snapshot.usage)
            _ = try? await store.transition(key, from: [.pending, .running], to: .downloading, cause: "provider: SUCCEEDED",
                                      now: now) { job in
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
                _ = try? await store.transition(key, from: [.pending, .running], to: .retrying, cause: reason, now: now) {
                    $0.reason = reason
                }
            }
            handle(.renderFailed(key, blame, message: reason))
            publish(.jobsChanged([key]))
        case .canceled:
            let reason = "the provider reports the task CANCELED (not requested by Reel)"
            _ = try? await store.transition(key, from: [.pending, .running], to: .failed, cause: reason, now: now) {
                $0.reason = reason
            }
            handle(.polled(key, .canceled))
            publish(.jobsChanged([key]))
            await checkBatchEnd(key.batch)
        case .unknown:
            // The task id came from the provider, so UNKNOWN means its 24-hour lifetime passed while we were not
            // looking: if it rendered, it was billed and the result is lost.
            let reason = "the provider no longer knows task \(snapshot.taskID) (UNKNOWN: its 24-hour window passed); billed but lost if it rendered"
            _ = try? await store.transition(key, from: [.pending, .running], to: .expired, cause: reason, now: now) {
                $0.reason = reason
            }
            handle(.polled(key, .unknown))
            publish(.jobsChanged([key]))
            await checkBatchEnd(key.batch)
        }
    }

    /// Seconds between two provider times (`YYYY-MM-DD HH:mm:ss.SSS`, one unstated zone for both).
    static func providerSeconds(from start: String?, to end: String?) -> Double? {
        guard let start, let end, let a = providerTime(start), let b = providerTime(end), b >= a else { return nil }
        return b - a
    }

    static func providerTime(_ text: String) -> Double? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "-" || $0 == ":" })
        guard parts.count == 6, let y = Int(parts[0]), let mo = Int(parts[1]), let d = Int(parts[2]),
              let h = Int(parts[3]), let mi = Int(parts[4]), let sec = Double(parts[5]) else { return nil }
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute) = (y, mo, d, h, mi)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: c).map { $0.timeIntervalSince1970 + sec }
    }

    // MARK: Cancel at the provider

    func cancelRemote(_ key: JobKey, taskID: String) async {
        do {
            let exchange = try await api.cancelTask(taskID)
            try? await store.recordAttempt(key, exchange, now: clock.now())
            handle(.released(key))
        } catch let failure as ProviderFailure {
            try? await store.recordAttempt(key, failure.exchange, now: clock.now())
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
