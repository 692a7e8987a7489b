/// Every decision about one job's life, as a value: the daemon's engine feeds it what happened (a create call's
/// end, a provider observation, a reconciliation verdict, a download, verify or QC outcome, a budget check, an
/// operator action) and carries out the effects it returns (moves over `JobTransitions`, scheduler events, the
/// next I/O step). It performs no I/O and reads no clock but `now`.
///
/// `state` is where the job was when the engine last read it, advanced by the moves this value asked for; the
/// store's compare-and-set is the judge of where it really is. An event that does not apply to the job's state
/// returns `.ignored` (or an operator refusal) and never a move the table forbids.
public struct JobLifecycle: Sendable, Equatable {
    public struct Policy: Sendable, Equatable {
        /// `[in_doubt] resubmit`: resubmit an in-doubt job when reconciliation saw no task.
        public var resubmitInDoubt: Bool
        /// Fetches of a result before delivery gives up (storage waits do not count).
        public var downloadAttempts: Int
        /// `[retry]` delays, which bound delivery's pauses too.
        public var retryBaseDelay: Double
        public var retryMaxDelay: Double
        public var pricing: PricingTable

        public init(resubmitInDoubt: Bool, downloadAttempts: Int = 4, retryBaseDelay: Double = 15,
                    retryMaxDelay: Double = 900, pricing: PricingTable) {
            self.resubmitInDoubt = resubmitInDoubt
            self.downloadAttempts = downloadAttempts
            self.retryBaseDelay = retryBaseDelay
            self.retryMaxDelay = retryMaxDelay
            self.pricing = pricing
        }
    }

    /// What the decisions read of the job besides its state.
    public struct Facts: Sendable, Equatable {
        public var spec: JobSpec?
        public var taskID: String?
        public var submittedAt: Timestamp?
        public var videoURL: String?
        public var urlExpiresAt: Timestamp?
        public var usage: TaskUsage?
        public var costUSD: Double?
        /// Why the job is where it is (`reason`), as stored.
        public var reason: String?

        public init(spec: JobSpec? = nil, taskID: String? = nil, submittedAt: Timestamp? = nil, videoURL: String? = nil,
                    urlExpiresAt: Timestamp? = nil, usage: TaskUsage? = nil, costUSD: Double? = nil,
                    reason: String? = nil) {
            self.spec = spec
            self.taskID = taskID
            self.submittedAt = submittedAt
            self.videoURL = videoURL
            self.urlExpiresAt = urlExpiresAt
            self.usage = usage
            self.costUSD = costUSD
            self.reason = reason
        }
    }

    /// One delivery's counters.
    public struct DeliveryProgress: Sendable, Equatable {
        public var fetches = 0
        public var qcFailures = 0
        public var storagePauses = 0
        /// A refused result URL came back unchanged and was tried once more.
        public var sameURLRetried = false
        /// The output filesystem refused a write: what, and the error.
        public var stalled: (what: String, error: String)?
        /// Delivery waited for the output filesystem and no whole download has been written since.
        public var waitingForStorage = false

        public static func == (a: Self, b: Self) -> Bool {
            a.fetches == b.fetches && a.qcFailures == b.qcFailures && a.storagePauses == b.storagePauses
                && a.sameURLRetried == b.sameURLRetried && a.waitingForStorage == b.waitingForStorage
                && a.stalled?.what == b.stalled?.what
                && a.stalled?.error == b.stalled?.error
        }
    }

    public let key: JobKey
    public private(set) var state: JobState
    public var facts: Facts
    public var policy: Policy
    public private(set) var delivery = DeliveryProgress()

    public init(key: JobKey, state: JobState, facts: Facts = Facts(), policy: Policy) {
        self.key = key
        self.state = state
        self.facts = facts
        self.policy = policy
    }

    public mutating func handle(_ event: LifecycleEvent, now: Timestamp) -> [LifecycleEffect] {
        var out: [LifecycleEffect] = []
        switch event {
        case .submit(let outcome): submitted(outcome, into: &out)
        case .observed(let snapshot): observed(snapshot, now: now, into: &out)
        case .taskVanished(let taskID, let reason):
            guard [.pending, .running].contains(state) else { return ignore(event) }
            move(to: .inDoubt, cause: reason, JobChanges(reason: "in doubt: \(reason)"), guarding: true, into: &out)
            out.append(.log(.warning, "task vanished at the provider; job is in doubt, reconciling",
                            ["task_id": taskID]))
            out.append(.reconcile)
        case .retryScheduled(let at, let reason):
            let changes = JobChanges(reason: .some(reason), nextAttemptAt: .some(at))
            if state == .retrying {
                out.append(.update(ifIn: [.retrying], changes))
            } else if [.queued, .submitting].contains(state) {
                move(to: .retrying, cause: reason, changes, into: &out)
            } else {
                return ignore(event)
            }
        case .attemptsExhausted(let reason):
            guard !state.isTerminal else { return ignore(event) }
            end(.failed, reason: reason, into: &out)
        case .resultWindowPassed(let reason):
            guard !state.isTerminal, JobTransitions.allows(state, .expired) else { return ignore(event) }
            end(.expired, reason: reason, into: &out)
        case .reconciled(let verdict):
            guard state == .inDoubt else { return ignore(event) }
            reconciled(verdict, into: &out)
        case .deliveryStarted:
            guard [.downloading, .verifying].contains(state) else { return ignore(event) }
            delivery = DeliveryProgress()
            if state == .verifying { move(to: .downloading, cause: "restart: verify again", into: &out) }
            nextFetch(into: &out)
        case .fetched(let outcome):
            guard state == .downloading else { return ignore(event) }
            fetched(outcome, now: now, into: &out)
        case .resultQueried(let answer):
            guard state == .downloading else { return ignore(event) }
            resultQueried(answer, into: &out)
        case .verified(let outcome):
            guard state == .verifying else { return ignore(event) }
            verified(outcome, into: &out)
        case .budgetChecked(let overrun, let released):
            guard [.queued, .retrying].contains(state) else { return ignore(event) }
            if let overrun {
                if released {
                    out.append(.log(.notice, "over budget, but released by the operator: submitting", ["detail": overrun]))
                    out.append(.beginSubmission)
                } else {
                    out.append(.holdBatch(verdict: overrun))
                }
            } else {
                out.append(.beginSubmission)
            }
        case .budgetHold(let verdict):
            guard [.queued, .retrying].contains(state) else { return ignore(event) }
            let reason = "\(verdict); raise budget_usd or `reelctl release` a job to accept the overrun"
            let changes = JobChanges(reason: .some(reason), holdReason: .some("budget"), nextAttemptAt: .some(nil))
            move(to: .held, cause: verdict, changes, guarding: true, into: &out)
            out.append(.scheduler(.removed(key)))
        case .operatorAction(let action):
            operate(action, into: &out)
        case .adoptionChecked(let taskID, let check):
            guard state == .inDoubt else { return [.answer(.refused(.notInDoubt(state)))] }
            switch check {
            case .ownedBy(let owner):
                out.append(.answer(.refused(.taskOwnedBy(taskID: taskID, owner: owner))))
            case .queryFailed(let error):
                out.append(.answer(.refused(.cannotQuery(taskID: taskID, error: error))))
            case .known(.unknown):
                out.append(.answer(.refused(.taskUnknown(taskID))))
            case .known(let status):
                out.append(.adopt(taskID: taskID, how: "operator: reelctl resolve --adopt"))
                out.append(.answer(.adopted(taskID: taskID, status: status)))
            }
        }
        return out
    }

    // MARK: - Building blocks

    private func ignore(_ event: LifecycleEvent) -> [LifecycleEffect] {
        [.ignored("\(Self.name(of: event)) does not apply to a job that is \(state.rawValue)")]
    }

    /// A move from the current state; the table is consulted first, so a forbidden move is never asked for.
    private mutating func move(to next: JobState, cause: String, _ changes: JobChanges = .none, guarding: Bool = false,
                               into out: inout [LifecycleEffect]) {
        precondition(JobTransitions.allows(state, next), "lifecycle asked for \(state.rawValue) -> \(next.rawValue)")
        out.append(.move(JobMove(from: [state], to: next, cause: cause, changes: changes, guarding: guarding)))
        state = next
    }

    /// Ends the job in a terminal `target` from wherever it is (the compare-and-set accepts every state that may
    /// end there), says so, and looks whether its batch is complete.
    private mutating func end(_ target: JobState, reason: String, into out: inout [LifecycleEffect]) {
        out.append(.move(JobMove(from: JobTransitions.endableStates(into: target), to: target, cause: reason,
                                 changes: JobChanges(reason: .some(reason)))))
        out.append(.log(.notice, "job \(target.rawValue): \(reason)", [:]))
        out.append(.checkBatchEnd)
        state = target
    }

    // MARK: - Submission

    private mutating func submitted(_ outcome: SubmitOutcome, into out: inout [LifecycleEffect]) {
        switch outcome {
        case .created(let taskID, let status, let attempt):
            guard state == .submitting else { out = ignore(.submit(outcome)); return }
            out.append(.commitTask(taskID: taskID, status: status))
            out.append(.log(.info, "submitted", ["task_id": taskID, "attempt": "\(attempt)"]))
            out.append(.scheduler(.submitted(key, taskID: taskID)))
            state = status == .running ? .running : .pending
            facts.taskID = taskID
        case .refused(let blame, let retryAfter, let message, let detail):
            guard state == .submitting else { out = ignore(.submit(outcome)); return }
            // The provider answered: no task exists. The job waits in `retrying` while the scheduler decides
            // (backoff, throttle hold, or failure).
            out.append(.refuseSubmission(countsAsAttempt: Self.refusalCountsAsAttempt(blame), reason: message))
            out.append(blame == .throttled ? .log(.info, "create throttled", ["error": detail])
                                           : .log(.notice, "create refused", ["error": detail]))
            out.append(.scheduler(.submitFailed(key, blame, retryAfter: retryAfter, message: detail)))
            state = .retrying
        case .ambiguous(let retryAfter, let message, let detail):
            guard state == .submitting else { out = ignore(.submit(outcome)); return }
            move(to: .inDoubt, cause: "create outcome unknown: \(detail)",
                 JobChanges(reason: .some("create outcome unknown: \(message)")), into: &out)
            out.append(.log(.warning, "create call outcome unknown; job is in doubt, reconciling", ["error": detail]))
            out.append(.scheduler(.submitFailed(key, .ambiguous, retryAfter: retryAfter, message: message)))
            out.append(.reconcile)
        case .unclassified(let error):
            guard state == .submitting else { out = ignore(.submit(outcome)); return }
            move(to: .inDoubt, cause: "create error: \(error)", into: &out)
            out.append(.scheduler(.submitFailed(key, .ambiguous, retryAfter: nil, message: error)))
            out.append(.reconcile)
        case .notSent(let why):
            guard [.queued, .retrying].contains(state) else { out = ignore(.submit(outcome)); return }
            // A local reason (the store, shutdown): no attempt is counted and the breaker is untouched.
            out.append(.scheduler(.createNotSent(key, reason: why)))
        case .notSubmittable:
            out.append(.scheduler(.removed(key)))
        case .uploadFailed(let blame, let retryAfter, let message):
            guard [.queued, .retrying].contains(state) else { out = ignore(.submit(outcome)); return }
            // An upload creates no render task: its outcome is never ambiguous.
            out.append(.scheduler(.submitFailed(key, blame == .ambiguous ? .provider : blame, retryAfter: retryAfter,
                                                message: "upload: \(message)")))
        case .uploadBroken(let error):
            guard !state.isTerminal else { out = ignore(.submit(outcome)); return }
            end(.failed, reason: "reference upload failed: \(error)", into: &out)
            out.append(.scheduler(.removed(key)))
        }
    }

    // MARK: - Provider observations

    private mutating func observed(_ snapshot: TaskSnapshot, now: Timestamp, into out: inout [LifecycleEffect]) {
        if state == .cancelled {
            // Cancelled while rendering: keep the slot accounting right, discard the result.
            out.append(.scheduler(.polled(key, snapshot.status)))
            return
        }
        let rendering = [.pending, .running].contains(state)
        switch snapshot.status {
        case .pending:
            out.append(.scheduler(.polled(key, .pending)))
        case .running:
            if state == .pending { move(to: .running, cause: "provider: RUNNING", into: &out) }
            out.append(.scheduler(.polled(key, .running)))
        case .succeeded:
            guard let url = snapshot.videoURL else {
                out.append(.scheduler(.pollFailed(key, .provider, retryAfter: nil)))
                return
            }
            // Learn from the provider's own clock (end − submit), not from when we happened to notice.
            if let spec = facts.spec,
               let runTime = ProviderTime.seconds(from: snapshot.submitTime, to: snapshot.endTime)
                   ?? facts.submittedAt.map({ now - $0 }) {
                out.append(.scheduler(.observedRunTime(model: spec.model, resolution: spec.resolution,
                                                       durationSeconds: spec.durationSeconds,
                                                       referenceVideoSeconds: spec.referenceVideoSeconds,
                                                       seconds: runTime)))
                out.append(.recordRunTime(model: spec.model, resolution: spec.resolution,
                                          durationSeconds: spec.durationSeconds, seconds: runTime))
            }
            if rendering {
                // Billed from this moment, delivered or not; an earlier billed attempt (an operator retry) stays
                // counted.
                var changes = JobChanges()
                changes.videoURL = url
                changes.urlExpiresAt = now + ProviderLimits.resultLifetimeSeconds
                changes.usage = .some(snapshot.usage)
                changes.addedCostUSD = facts.spec.flatMap { Cost.billed(usage: snapshot.usage, spec: $0, pricing: policy.pricing) }
                move(to: .downloading, cause: "provider: SUCCEEDED", changes, into: &out)
                facts.videoURL = url
                facts.urlExpiresAt = changes.urlExpiresAt
            }
            out.append(.scheduler(.polled(key, .succeeded)))
        case .failed:
            let code = snapshot.code ?? "Unknown"
            let reason = "provider FAILED the render: \(code): \(snapshot.message ?? "")"
            let blame = Self.renderFailureBlame(code: code)
            if blame == .provider, rendering {
                move(to: .retrying, cause: reason, JobChanges(reason: .some(reason)), into: &out)
            }
            out.append(.scheduler(.renderFailed(key, blame, message: reason)))
        case .canceled:
            if rendering {
                let reason = "the provider reports the task CANCELED (not requested by Reel)"
                move(to: .failed, cause: reason, JobChanges(reason: .some(reason)), into: &out)
            }
            out.append(.scheduler(.polled(key, .canceled)))
            out.append(.checkBatchEnd)
        case .unknown:
            // Expired, or lost for now by the provider: the scheduler tells (`.expire` / `.vanished`), by the
            // task's age and how long it has answered UNKNOWN.
            out.append(.scheduler(.polled(key, .unknown)))
        }
    }

    // MARK: - In doubt

    private mutating func reconciled(_ verdict: Reconciliation.Verdict, into out: inout [LifecycleEffect]) {
        switch verdict {
        case .adopt(let taskID, let how):
            out.append(.adopt(taskID: taskID, how: how))
        case .follow(let ids):
            out.append(.queryCandidates(ids))
        case .wait(let until, let seen):
            out.append(.update(ifIn: [.inDoubt], JobChanges(reason: .some("in doubt: \(seen)"))))
            out.append(.waitUntil(until))
        case .noTaskSeen(let seen):
            if policy.resubmitInDoubt {
                move(to: .queued, cause: "in doubt, \(seen): resubmitting ([in_doubt] resubmit = true)",
                     JobChanges(reason: .some(nil)), guarding: true, into: &out)
                out.append(.log(.notice, "in-doubt job resubmitted: no task seen", ["detail": seen]))
                out.append(.scheduler(.released(key)))
                out.append(.enqueue(freshAttempts: false))
            } else {
                needsOperator("in doubt: \(seen); no task was seen, but the list is not proof: resolve with "
                              + "`reelctl resolve \(key) --resubmit` (may pay twice if a task exists), "
                              + "`--adopt TASK` or `--fail`", into: &out)
            }
        case .needsOperator(let summary):
            needsOperator("in doubt: \(summary); resolve with `reelctl resolve \(key) --adopt TASK | --resubmit | --fail`",
                          into: &out)
        }
    }

    private func needsOperator(_ reason: String, into out: inout [LifecycleEffect]) {
        out.append(.update(ifIn: [.inDoubt], JobChanges(reason: .some(reason))))
        out.append(.log(.warning, "in-doubt job needs an operator", ["detail": reason]))
        out.append(.scheduler(.inDoubtNeedsOperator(key)))
    }

    // MARK: - Delivery

    /// The next fetch after a pause for the output filesystem if it refused a write, or the end of the attempts.
    private mutating func nextFetch(into out: inout [LifecycleEffect]) {
        if let refusal = delivery.stalled {
            // Not a failed fetch: the job says why while delivery waits, then tries again.
            delivery.stalled = nil
            delivery.storagePauses += 1
            delivery.waitingForStorage = true
            out.append(.waitForStorage(what: refusal.what, error: refusal.error,
                                       seconds: retryPause(delivery.storagePauses)))
        } else if delivery.fetches >= policy.downloadAttempts {
            giveUp(.failed, reason: "download did not complete after \(policy.downloadAttempts) attempts", into: &out)
            return
        } else {
            delivery.fetches += 1
        }
        guard facts.videoURL != nil else {
            giveUp(.failed, reason: "SUCCEEDED task without a result URL", into: &out)
            return
        }
        out.append(.fetch)
    }

    private func retryPause(_ n: Int) -> Double {
        Self.deliveryRetryPause(n, baseDelay: policy.retryBaseDelay, maxDelay: policy.retryMaxDelay)
    }

    /// Ends a delivery without publishing: the hidden partial is removed first, then the terminal state recorded.
    /// In that order a crash in between leaves the job `downloading` (it is fetched again after the restart) rather
    /// than a terminal job with a `.<id>.mp4.part` nobody will ever clean up.
    private mutating func giveUp(_ target: JobState, reason: String, into out: inout [LifecycleEffect]) {
        out.append(.discardPartial)
        end(target, reason: reason, into: &out)
    }

    private mutating func stall(_ what: String, _ error: String, into out: inout [LifecycleEffect]) {
        delivery.stalled = (what, error)
        nextFetch(into: &out)
    }

    private mutating func fetched(_ outcome: FetchOutcome, now: Timestamp, into out: inout [LifecycleEffect]) {
        switch outcome {
        case .folderRefused(true, let error):
            stall("cannot create the batch folder", error, into: &out)
        case .folderRefused(false, let error):
            giveUp(.failed, reason: "output path refused: \(error)", into: &out)
        case .complete:
            // A wait for the output filesystem (this delivery's, or one a restart interrupted) is over.
            if delivery.waitingForStorage || facts.reason?.hasPrefix(Self.storageReasonPrefix) == true {
                out.append(.storageRecovered)
                delivery.waitingForStorage = false
                facts.reason = nil
            }
            move(to: .verifying, cause: "downloaded", into: &out)
            out.append(.verify)
        case .incomplete(let trouble?, _, _), .failed(let trouble?, _):
            // The disk refused the bytes, not the network.
            stall("cannot write the download", trouble, into: &out)
        case .incomplete(nil, let bytes, let expected):
            out.append(.log(.notice, "download incomplete, resuming", ["bytes": "\(bytes)", "expected": "\(expected ?? -1)"]))
            nextFetch(into: &out)
        case .failed(nil, let error):
            out.append(.log(.notice, "download failed, retrying", ["error": error]))
            out.append(.pause(seconds: retryPause(delivery.fetches)))
            nextFetch(into: &out)
        case .urlRefused:
            // Ask the provider again (a fresh URL while the task lives), else the job expired.
            if let expires = facts.urlExpiresAt, now > expires {
                giveUp(.expired, reason: "the result's 24-hour window passed before it was downloaded: billed but lost",
                       into: &out)
            } else if facts.taskID == nil {
                out.append(.ignored("the result URL was refused and the job has no task to ask again"))
            } else {
                out.append(.queryResult)
            }
        }
    }

    /// The provider may answer a re-query with the same URL (a stable link whose window has not passed by our
    /// clock): that is tried once more, since a one-off 403 must not lose a paid render.
    private mutating func resultQueried(_ answer: ResultQuery, into out: inout [LifecycleEffect]) {
        switch answer {
        case .answered(.succeeded, let url?) where url != facts.videoURL || !delivery.sameURLRetried:
            let same = url == facts.videoURL
            delivery.sameURLRetried = delivery.sameURLRetried || same
            // Recorded either way, so the job's history shows why the download was tried again.
            var changes = JobChanges()
            changes.videoURL = url
            move(to: .downloading, cause: same
                    ? "result URL refused; re-queried: unchanged and inside its window, trying it once more"
                    : "result URL refused; re-queried: fresh result URL", changes, into: &out)
            facts.videoURL = url
            nextFetch(into: &out)
        case .answered(let status, _):
            let why = status == .succeeded ? "refused again with the same URL" : "provider says \(status.rawValue)"
            giveUp(.expired, reason: "result URL expired (\(why)); billed but lost", into: &out)
        case .failed(let error):
            giveUp(.expired, reason: "result URL expired and the task could not be queried again: \(error); billed but lost",
                   into: &out)
        }
    }

    private mutating func verified(_ outcome: VerifyOutcome, into out: inout [LifecycleEffect]) {
        switch outcome {
        case .delivered(let path, let sha256, let bytes, let cost):
            var changes = JobChanges(reason: .some(nil))
            changes.outputPath = path
            changes.outputSHA256 = sha256
            changes.resultBytes = bytes
            // Recorded at SUCCEEDED; a row from before that was recorded lacks it.
            changes.costUSD = .some(cost ?? facts.spec.flatMap { Cost.billed(usage: facts.usage, spec: $0, pricing: policy.pricing) })
            move(to: .succeeded, cause: "delivered", changes, into: &out)
            out.append(.log(.info, "delivered", ["path": path, "sha256": sha256]))
            out.append(.scheduler(.released(key)))
            out.append(.checkBatchEnd)
        case .qcFailed(let reason):
            delivery.qcFailures += 1
            if delivery.qcFailures >= 2 {
                giveUp(.failed, reason: reason, into: &out)
                return
            }
            out.append(.log(.warning, "result failed QC, downloading again once", ["reason": reason]))
            move(to: .downloading, cause: reason, into: &out)
            nextFetch(into: &out)
        case .sizeMismatch(let expected, let actual):
            out.append(.log(.notice, "download size mismatch, fetching again", ["expected": "\(expected)", "actual": "\(actual)"]))
            move(to: .downloading, cause: "size mismatch", into: &out)
            nextFetch(into: &out)
        case .storageRefused(let error):
            // Nothing visible was left; retry after a pause, never fail for it.
            move(to: .downloading, cause: "storage: \(error)", into: &out)
            stall("cannot write the result", error, into: &out)
        case .broken(let error):
            giveUp(.failed, reason: "delivery failed: \(error)", into: &out)
        }
    }

    // MARK: - Operator actions

    private mutating func operate(_ action: OperatorAction, into out: inout [LifecycleEffect]) {
        func refuse(_ why: OperatorRefusal) { out.append(.answer(.refused(why))) }
        switch action {
        case .cancel:
            switch state {
            case .queued, .retrying, .held, .inDoubt:
                let was = state
                move(to: .cancelled, cause: "operator cancel", JobChanges(reason: .some("cancelled by operator")),
                     guarding: true, into: &out)
                out.append(.scheduler(.cancel(key)))
                if was == .inDoubt { out.append(.scheduler(.released(key))) }
                out.append(.checkBatchEnd)
                out.append(.answer(.cancelled))
            case .pending:
                // The scheduler asks the provider to cancel the PENDING task.
                move(to: .cancelled, cause: "operator cancel",
                     JobChanges(reason: .some("cancelled by operator; the PENDING task is being cancelled at the provider")),
                     guarding: true, into: &out)
                out.append(.scheduler(.cancel(key)))
                out.append(.checkBatchEnd)
                out.append(.answer(.cancelRequested(taskID: facts.taskID)))
            case .running:
                move(to: .cancelled, cause: "operator cancel", JobChanges(reason: .some(Self.runningCancelReason)),
                     guarding: true, into: &out)
                out.append(.scheduler(.cancel(key)))
                out.append(.checkBatchEnd)
                out.append(.answer(.cancelledResultDiscarded))
            case .submitting: refuse(.createInFlight)
            case .downloading, .verifying: refuse(.beingDelivered)
            case .succeeded, .failed, .cancelled, .expired: refuse(.alreadyEnded(state))
            }
        case .retry:
            guard [.failed, .cancelled, .expired].contains(state) else { return refuse(.notRetryable(state)) }
            move(to: .queued, cause: "operator retry", JobChanges(reason: .some(nil), nextAttemptAt: .some(nil)),
                 guarding: true, into: &out)
            out.append(.enqueue(freshAttempts: true))
            out.append(.answer(.queuedAgain))
        case .hold:
            guard [.queued, .retrying].contains(state) else { return refuse(.notHoldable(state)) }
            move(to: .held, cause: "operator hold", JobChanges(holdReason: .some("operator")), guarding: true, into: &out)
            out.append(.scheduler(.removed(key)))
            out.append(.answer(.held))
        case .release:
            guard state == .held else { return refuse(.notHeld(state)) }
            move(to: .queued, cause: Self.Cause.operatorRelease, JobChanges(reason: .some(nil), holdReason: .some(nil)),
                 guarding: true, into: &out)
            out.append(.enqueue(freshAttempts: false))
            out.append(.answer(.released))
        case .resolveAdopt(let taskID):
            guard state == .inDoubt else { return refuse(.notInDoubt(state)) }
            guard let taskID else { return refuse(.adoptNeedsTaskID) }
            out.append(.checkAdoptable(taskID: taskID))
        case .resolveResubmit:
            guard state == .inDoubt else { return refuse(.notInDoubt(state)) }
            move(to: .queued, cause: "operator resolve: resubmit", JobChanges(reason: .some(nil)), guarding: true,
                 into: &out)
            out.append(.scheduler(.released(key)))
            out.append(.enqueue(freshAttempts: false))
            out.append(.answer(.resubmitted))
        case .resolveFail:
            guard state == .inDoubt else { return refuse(.notInDoubt(state)) }
            move(to: .failed, cause: "operator resolve: fail", JobChanges(reason: .some("in doubt; failed by operator")),
                 guarding: true, into: &out)
            out.append(.scheduler(.released(key)))
            out.append(.checkBatchEnd)
            out.append(.answer(.failed))
        }
    }

    /// Why a job cancelled while RUNNING still costs money.
    public static let runningCancelReason = "cancelled by operator while rendering: the provider cannot stop a RUNNING task, so it finishes (and is billed) and its result is discarded"

    static func name(of event: LifecycleEvent) -> String {
        switch event {
        case .submit: "a create call's end"
        case .observed(let s): "a provider observation (\(s.status.rawValue))"
        case .taskVanished: "a vanished task"
        case .retryScheduled: "a scheduled retry"
        case .attemptsExhausted: "running out of attempts"
        case .resultWindowPassed: "the end of the result window"
        case .reconciled: "a reconciliation verdict"
        case .deliveryStarted: "a delivery start"
        case .fetched: "a download's end"
        case .resultQueried: "a re-query of the result URL"
        case .verified: "a verification's end"
        case .budgetChecked: "a budget verdict"
        case .budgetHold: "a budget hold"
        case .operatorAction: "an operator action"
        case .adoptionChecked: "an adoption check"
        }
    }
}

/// What happened to a job, as the engine tells its `JobLifecycle`.
public enum LifecycleEvent: Sendable, Equatable {
    case submit(SubmitOutcome)
    /// A query's answer about the job's task.
    case observed(TaskSnapshot)
    /// A young task kept answering UNKNOWN (the scheduler's `.vanished`): the provider lost it for now.
    case taskVanished(taskID: String, reason: String)
    /// The scheduler will offer the job again at `at` (backoff, throttling).
    case retryScheduled(at: Timestamp, reason: String)
    /// The scheduler's `.fail`: the attempt cap, or a permanent refusal.
    case attemptsExhausted(String)
    /// The scheduler's `.expire`: the task's 24-hour window is over.
    case resultWindowPassed(String)
    case reconciled(Reconciliation.Verdict)
    case deliveryStarted
    case fetched(FetchOutcome)
    case resultQueried(ResultQuery)
    case verified(VerifyOutcome)
    /// The budget check before a create call: the overrun (nil when the job fits) and whether the operator's
    /// release of a budget hold admits this submission anyway.
    case budgetChecked(overrun: String?, releasedByOperator: Bool)
    /// A batch-mate overran the budget: this queued or retrying job is held too.
    case budgetHold(verdict: String)
    case operatorAction(OperatorAction)
    case adoptionChecked(taskID: String, AdoptionCheck)
}
