import Foundation
import ReelCore
import Testing

/// `JobLifecycle` on a manual clock: every state × event pair, the verdicts, and the sequences the crash test
/// drives through a real daemon.
@Suite("Job lifecycle")
struct JobLifecycleTests {
    static let key = jk("b/j")
    static let spec = JobSpec(key: key, model: .r2v, resolution: .p1080, aspectRatio: .landscape, durationSeconds: 5,
                              prompt: "p", references: [])
    static let pricing: PricingTable = {
        var p = PricingTable()
        p.set(.r2v, .p1080, 0.15)
        return p
    }()
    static let policy = JobLifecycle.Policy(resubmitInDoubt: false, downloadAttempts: 4, retryBaseDelay: 15,
                                            retryMaxDelay: 900, pricing: pricing)
    static let facts = JobLifecycle.Facts(spec: spec, taskID: "t1", submittedAt: 1000, videoURL: "https://r/1.mp4",
                                          urlExpiresAt: 1000 + 86_400)

    static func lifecycle(_ state: JobState, policy: JobLifecycle.Policy = policy,
                          facts: JobLifecycle.Facts = facts) -> JobLifecycle {
        JobLifecycle(key: key, state: state, facts: facts, policy: policy)
    }

    static func snapshot(_ status: TaskStatus, url: String? = nil, code: String? = nil) -> TaskSnapshot {
        TaskSnapshot(taskID: "t1", status: status, videoURL: url, code: code, message: "m",
                     submitTime: "2026-01-01 00:00:00.000", endTime: "2026-01-01 00:01:30.000",
                     usage: TaskUsage(outputVideoDuration: 5, size: "1920*1080"))
    }

    // MARK: Every state × event

    /// One event and what it does in each state: the states where it applies (anything else is ignored or
    /// refused) and the state it leaves the job in where it moves it.
    struct Row: CustomStringConvertible {
        var event: LifecycleEvent
        var applies: Set<JobState>
        var moves: [JobState: JobState] = [:]
        var description: String { "\(event)" }
    }

    static let all = Set(JobState.allCases)
    static let open = Set(JobState.allCases.filter { !$0.isTerminal })
    static let rendering: Set<JobState> = [.pending, .running]

    static let table: [Row] = [
        Row(event: .submit(.created(taskID: "t2", status: .pending, attempt: 1)), applies: [.submitting],
            moves: [.submitting: .pending]),
        Row(event: .submit(.created(taskID: "t2", status: .running, attempt: 1)), applies: [.submitting],
            moves: [.submitting: .running]),
        Row(event: .submit(.refused(.throttled, retryAfter: 2, message: "m", detail: "d")), applies: [.submitting],
            moves: [.submitting: .retrying]),
        Row(event: .submit(.refused(.jobPermanent, retryAfter: nil, message: "m", detail: "d")),
            applies: [.submitting], moves: [.submitting: .retrying]),
        Row(event: .submit(.ambiguous(retryAfter: nil, message: "m", detail: "d")), applies: [.submitting],
            moves: [.submitting: .inDoubt]),
        Row(event: .submit(.unclassified("e")), applies: [.submitting], moves: [.submitting: .inDoubt]),
        Row(event: .submit(.notSent("n")), applies: [.queued, .retrying]),
        Row(event: .submit(.notSubmittable), applies: all),
        Row(event: .submit(.uploadFailed(.ambiguous, retryAfter: nil, message: "m")), applies: [.queued, .retrying]),
        Row(event: .submit(.uploadBroken("e")), applies: open,
            moves: Dictionary(uniqueKeysWithValues: open.map { ($0, .failed) })),
        Row(event: .observed(snapshot(.pending)), applies: all),
        Row(event: .observed(snapshot(.running)), applies: all, moves: [.pending: .running]),
        Row(event: .observed(snapshot(.succeeded, url: "https://r/2.mp4")), applies: all,
            moves: [.pending: .downloading, .running: .downloading]),
        Row(event: .observed(snapshot(.succeeded)), applies: all),
        Row(event: .observed(snapshot(.failed, code: "InternalError")), applies: all,
            moves: [.pending: .retrying, .running: .retrying]),
        Row(event: .observed(snapshot(.failed, code: "InvalidParameter")), applies: all),
        Row(event: .observed(snapshot(.canceled)), applies: all, moves: [.pending: .failed, .running: .failed]),
        Row(event: .observed(snapshot(.unknown)), applies: all),
        Row(event: .taskVanished(taskID: "t1", reason: "r"), applies: rendering,
            moves: [.pending: .inDoubt, .running: .inDoubt]),
        Row(event: .retryScheduled(at: 2000, reason: "r"), applies: [.queued, .submitting, .retrying],
            moves: [.queued: .retrying, .submitting: .retrying]),
        Row(event: .attemptsExhausted("r"), applies: open,
            moves: Dictionary(uniqueKeysWithValues: open.map { ($0, .failed) })),
        Row(event: .resultWindowPassed("r"), applies: [.pending, .running, .downloading, .verifying],
            moves: [.pending: .expired, .running: .expired, .downloading: .expired, .verifying: .expired]),
        Row(event: .reconciled(.adopt(taskID: "t2", how: "h")), applies: [.inDoubt]),
        Row(event: .reconciled(.follow(["t2"])), applies: [.inDoubt]),
        Row(event: .reconciled(.wait(until: 2000, seen: "s")), applies: [.inDoubt]),
        Row(event: .reconciled(.noTaskSeen("s")), applies: [.inDoubt]),
        Row(event: .reconciled(.needsOperator("s")), applies: [.inDoubt]),
        Row(event: .deliveryStarted, applies: [.downloading, .verifying], moves: [.verifying: .downloading]),
        Row(event: .fetched(.complete), applies: [.downloading], moves: [.downloading: .verifying]),
        Row(event: .fetched(.incomplete(storageTrouble: nil, bytes: 1, expected: 2)), applies: [.downloading]),
        Row(event: .fetched(.incomplete(storageTrouble: "ENOSPC", bytes: 1, expected: 2)), applies: [.downloading]),
        Row(event: .fetched(.failed(storageTrouble: nil, error: "e")), applies: [.downloading]),
        Row(event: .fetched(.failed(storageTrouble: "EROFS", error: "e")), applies: [.downloading]),
        Row(event: .fetched(.folderRefused(retryable: true, error: "e")), applies: [.downloading]),
        Row(event: .fetched(.folderRefused(retryable: false, error: "e")), applies: [.downloading],
            moves: [.downloading: .failed]),
        Row(event: .fetched(.urlRefused), applies: [.downloading]),
        Row(event: .resultQueried(.answered(.succeeded, videoURL: "https://r/3.mp4")), applies: [.downloading],
            moves: [.downloading: .downloading]),
        Row(event: .resultQueried(.answered(.unknown, videoURL: nil)), applies: [.downloading],
            moves: [.downloading: .expired]),
        Row(event: .resultQueried(.failed("e")), applies: [.downloading], moves: [.downloading: .expired]),
        Row(event: .verified(.delivered(path: "/o/j.mp4", sha256: "ab", bytes: 9, costUSD: 0.75)), applies: [.verifying],
            moves: [.verifying: .succeeded]),
        Row(event: .verified(.qcFailed("q")), applies: [.verifying], moves: [.verifying: .downloading]),
        Row(event: .verified(.sizeMismatch(expected: 2, actual: 1)), applies: [.verifying],
            moves: [.verifying: .downloading]),
        Row(event: .verified(.storageRefused("ENOSPC")), applies: [.verifying], moves: [.verifying: .downloading]),
        Row(event: .verified(.broken("e")), applies: [.verifying], moves: [.verifying: .failed]),
        Row(event: .budgetChecked(overrun: nil, releasedByOperator: false), applies: [.queued, .retrying]),
        Row(event: .budgetChecked(overrun: "o", releasedByOperator: false), applies: [.queued, .retrying]),
        Row(event: .budgetChecked(overrun: "o", releasedByOperator: true), applies: [.queued, .retrying]),
        Row(event: .budgetHold(verdict: "o"), applies: [.queued, .retrying], moves: [.queued: .held, .retrying: .held]),
        Row(event: .operatorAction(.cancel), applies: [.queued, .retrying, .held, .inDoubt, .pending, .running],
            moves: [.queued: .cancelled, .retrying: .cancelled, .held: .cancelled, .inDoubt: .cancelled,
                    .pending: .cancelled, .running: .cancelled]),
        Row(event: .operatorAction(.retry), applies: [.failed, .cancelled, .expired],
            moves: [.failed: .queued, .cancelled: .queued, .expired: .queued]),
        Row(event: .operatorAction(.hold), applies: [.queued, .retrying], moves: [.queued: .held, .retrying: .held]),
        Row(event: .operatorAction(.release), applies: [.held], moves: [.held: .queued]),
        Row(event: .operatorAction(.resolveAdopt(taskID: "t2")), applies: [.inDoubt]),
        Row(event: .operatorAction(.resolveAdopt(taskID: nil)), applies: []),
        Row(event: .operatorAction(.resolveResubmit), applies: [.inDoubt], moves: [.inDoubt: .queued]),
        Row(event: .operatorAction(.resolveFail), applies: [.inDoubt], moves: [.inDoubt: .failed]),
        Row(event: .adoptionChecked(taskID: "t2", .known(.running)), applies: [.inDoubt]),
        Row(event: .adoptionChecked(taskID: "t2", .known(.unknown)), applies: []),
        Row(event: .adoptionChecked(taskID: "t2", .ownedBy(jk("b/other"))), applies: []),
        Row(event: .adoptionChecked(taskID: "t2", .queryFailed("e")), applies: []),
    ]

    /// Nothing happens: the event is ignored, or the operator is told why not.
    static func isRefusal(_ effects: [LifecycleEffect]) -> Bool {
        effects.allSatisfy {
            switch $0 {
            case .ignored, .answer(.refused): true
            default: false
            }
        }
    }

    @Test(arguments: table)
    func everyStateAgainstEvent(_ row: Row) {
        for state in JobState.allCases {
            var life = Self.lifecycle(state)
            let effects = life.handle(row.event, now: 5000)
            #expect(!effects.isEmpty, "\(state) × \(row.event): no effect at all")
            #expect(Self.isRefusal(effects) == !row.applies.contains(state),
                    "\(state) × \(row.event): \(effects)")
            // Every move asked for is one the table allows, from where the job is.
            var at = state
            for case .move(let move) in effects {
                #expect(move.from.contains(at), "\(state) × \(row.event): moves from \(move.from), job is \(at)")
                #expect(move.from.allSatisfy { JobTransitions.allows($0, move.to) },
                        "\(state) × \(row.event): forbidden move \(move.from) -> \(move.to)")
                at = move.to
            }
            // A commit of a task id is the move the store makes for it.
            for case .commitTask(_, let status) in effects { at = status == .running ? .running : .pending }
            for case .refuseSubmission in effects { at = .retrying }
            #expect(at == (row.moves[state] ?? state), "\(state) × \(row.event): ends \(at)")
            #expect(life.state == at, "\(state) × \(row.event): the value says \(life.state), its moves \(at)")
        }
    }

    @Test func theTableCoversEveryEventKind() {
        let kinds = Set(Self.table.map { JobLifecycleTestsNames.kind($0.event) })
        #expect(kinds == JobLifecycleTestsNames.allKinds)
    }

    @Test func jobStateAndTheTableAgree() {
        for from in JobState.allCases {
            #expect(from.successors == JobTransitions.successors(of: from))
        }
        #expect(JobTransitions.successors(of: .succeeded).isEmpty)
        #expect(JobTransitions.endableStates(into: .expired) == [.pending, .running, .downloading, .verifying])
    }

    // MARK: Verdicts

    @Test func failureBlame() {
        #expect(JobLifecycle.renderFailureBlame(code: "InternalError") == .provider)
        #expect(JobLifecycle.renderFailureBlame(code: "InternalError.Timeout") == .provider)
        #expect(JobLifecycle.renderFailureBlame(code: "DataInspectionFailed") == .jobPermanent)
        #expect(JobLifecycle.renderFailureBlame(code: "InvalidParameter.Size") == .jobPermanent)
        #expect(JobLifecycle.renderFailureBlame(code: "Arrearage") == .jobPermanent)
        #expect(!JobLifecycle.refusalCountsAsAttempt(.throttled))
        #expect(!JobLifecycle.refusalCountsAsAttempt(.account))
        #expect(JobLifecycle.refusalCountsAsAttempt(.jobPermanent))
        #expect(JobLifecycle.refusalCountsAsAttempt(.provider))
    }

    @Test func refusedCreatesGiveTheAttemptBackOnlyForThrottleAndAccount() {
        for (blame, counts) in [(Blame.throttled, false), (.account, false), (.provider, true), (.jobPermanent, true)] {
            var life = Self.lifecycle(.submitting)
            let effects = life.handle(.submit(.refused(blame, retryAfter: nil, message: "m", detail: "d")), now: 1)
            #expect(effects.first == .refuseSubmission(countsAsAttempt: counts, reason: "m"))
            #expect(effects.contains(.scheduler(.submitFailed(Self.key, blame, retryAfter: nil, message: "d"))))
        }
    }

    @Test func budgetVerdict() {
        #expect(JobLifecycle.budgetOverrun(spent: 1, committed: 2, estimate: 0.75, budget: 3.75) == nil)
        #expect(JobLifecycle.budgetOverrun(spent: 1, committed: 2, estimate: 0.76, budget: 3.75)
                == "budget: spent $1.00 + committed $2.00 + this job $0.76 would exceed the batch's budget $3.75")
        #expect(JobLifecycle.budgetOverrun(spent: 0, committed: nil, estimate: 1, budget: 5)?
                    .contains("cannot be checked") == true)
        #expect(JobLifecycle.releasedFromBudgetHold([(.queued, .held, "budget: x"), (.held, .queued, "operator release")]))
        #expect(!JobLifecycle.releasedFromBudgetHold([(.queued, .held, "operator hold"), (.held, .queued, "operator release")]))
        #expect(!JobLifecycle.releasedFromBudgetHold([(.held, .queued, "operator release")]))
        // Released: one submission goes ahead; not released: the batch is held.
        var life = Self.lifecycle(.queued)
        #expect(life.handle(.budgetChecked(overrun: "o", releasedByOperator: true), now: 1).last == .beginSubmission)
        #expect(life.handle(.budgetChecked(overrun: "o", releasedByOperator: false), now: 1) == [.holdBatch(verdict: "o")])
        #expect(life.handle(.budgetChecked(overrun: nil, releasedByOperator: false), now: 1) == [.beginSubmission])
    }

    @Test func deliveryPausesGrowAndStayInsideTheRetryDelays() {
        #expect((1...8).map { JobLifecycle.deliveryRetryPause($0, baseDelay: 15, maxDelay: 900) }
                == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(JobLifecycle.deliveryRetryPause(3, baseDelay: 0.01, maxDelay: 0.02) == 0.02)
    }

    @Test func operatorAnswers() {
        var pending = Self.lifecycle(.pending)
        #expect(pending.handle(.operatorAction(.cancel), now: 1).last == .answer(.cancelRequested(taskID: "t1")))
        var submitting = Self.lifecycle(.submitting)
        #expect(submitting.handle(.operatorAction(.cancel), now: 1) == [.answer(.refused(.createInFlight))])
        var inDoubt = Self.lifecycle(.inDoubt)
        #expect(inDoubt.handle(.operatorAction(.resolveAdopt(taskID: nil)), now: 1) == [.answer(.refused(.adoptNeedsTaskID))])
        #expect(inDoubt.handle(.operatorAction(.resolveAdopt(taskID: "t9")), now: 1) == [.checkAdoptable(taskID: "t9")])
        #expect(inDoubt.handle(.adoptionChecked(taskID: "t9", .known(.succeeded)), now: 1)
                == [.adopt(taskID: "t9", how: "operator: reelctl resolve --adopt"), .answer(.adopted(taskID: "t9", status: .succeeded))])
        var cancelInDoubt = Self.lifecycle(.inDoubt)
        let effects = cancelInDoubt.handle(.operatorAction(.cancel), now: 1)
        #expect(effects.contains(.scheduler(.released(Self.key))))
        guard case .move(let m) = effects.first else { Issue.record("unexpected effects"); return }
        #expect(m.guarding)
    }

    @Test func aSucceededTaskIsBilledAndItsWindowStarts() {
        var life = Self.lifecycle(.running)
        let effects = life.handle(.observed(Self.snapshot(.succeeded, url: "https://r/2.mp4")), now: 5000)
        #expect(effects.contains(.scheduler(.observedRunTime(model: .r2v, resolution: .p1080, durationSeconds: 5,
                                                                referenceVideoSeconds: 0, seconds: 90))))
        #expect(effects.contains(.recordRunTime(model: .r2v, resolution: .p1080, durationSeconds: 5, seconds: 90)))
        guard case .move(let m) = effects.first(where: { if case .move = $0 { true } else { false } }) else {
            Issue.record("unexpected effects"); return
        }
        #expect(m.changes.videoURL == "https://r/2.mp4")
        let window: Timestamp = 5000 + ProviderLimits.resultLifetimeSeconds
        #expect(m.changes.urlExpiresAt == window)
        #expect(m.changes.addedCostUSD == 0.75)
    }

    // MARK: The crash test's sequences

    /// submitting → crash (the store turns `submitting` into `in_doubt` at start) → reconciliation adopts the task
    /// → it renders → delivered.
    @Test func submittingCrashInDoubtAdopt() {
        var now: Timestamp = 1000
        var life = Self.lifecycle(.submitting, facts: JobLifecycle.Facts(spec: Self.spec))
        #expect(JobTransitions.allows(.submitting, .inDoubt))
        // The crash: a new lifecycle from what the store says after `markInterruptedSubmissionsInDoubt`.
        life = Self.lifecycle(.inDoubt, facts: JobLifecycle.Facts(spec: Self.spec))
        now += 5
        let job = Reconciliation.Job(key: Self.key, model: .r2v, prompt: "p", size: Self.spec.frameSize,
                                     durationSeconds: 5, createStartedAt: 1000, requestIDs: ["req-1"], knownTaskID: nil)
        let row = TaskListRow(taskID: "t7", status: .running, model: "wan2.6-r2v", createdAt: 1001, requestID: "req-1")
        let verdict = Reconciliation.decide(job, rows: [row], owners: [:], competitors: [], followed: [:], now: now,
                                            listLag: 60)
        let adopt = life.handle(.reconciled(verdict), now: now)
        guard case .adopt(let task, _) = adopt.first, adopt.count == 1 else { Issue.record("unexpected effects"); return }
        #expect(task == "t7")
        // The store commits the adopted task (`commitTaskID`, in_doubt → pending); polling goes on from there.
        #expect(JobTransitions.allows(.inDoubt, .pending))
        life = Self.lifecycle(.pending, facts: JobLifecycle.Facts(spec: Self.spec, taskID: "t7", submittedAt: now))
        now += 60
        _ = life.handle(.observed(Self.snapshot(.running)), now: now)
        #expect(life.state == .running)
        _ = life.handle(.observed(Self.snapshot(.succeeded, url: "https://r/7.mp4")), now: now)
        #expect(life.state == .downloading)
        #expect(life.handle(.deliveryStarted, now: now) == [.fetch])
        // No storage wait happened: nothing to announce.
        #expect(life.handle(.fetched(.complete), now: now)
                == [.move(JobMove(from: [.downloading], to: .verifying, cause: "downloaded")), .verify])
        let done = life.handle(.verified(.delivered(path: "/o/j.mp4", sha256: "ab", bytes: 9, costUSD: 0.75)), now: now)
        #expect(life.state == .succeeded)
        #expect(done.contains(.scheduler(.released(Self.key))))
        #expect(done.contains(.checkBatchEnd))
    }

    /// An ambiguous create → the list lags (wait) → no task seen → resubmitted (`[in_doubt] resubmit = true`), or
    /// left to an operator when resubmission is off.
    @Test func ambiguousCreateListLagNoTaskSeenResubmit() {
        var now: Timestamp = 1000
        var policy = Self.policy
        policy.resubmitInDoubt = true
        var life = Self.lifecycle(.submitting, policy: policy)
        let first = life.handle(.submit(.ambiguous(retryAfter: nil, message: "timeout", detail: "timeout after 30 s")), now: now)
        #expect(life.state == .inDoubt)
        #expect(first.last == .reconcile)
        #expect(first.contains(.scheduler(.submitFailed(Self.key, .ambiguous, retryAfter: nil, message: "timeout"))))
        let job = Reconciliation.Job(key: Self.key, model: .r2v, prompt: "p", size: Self.spec.frameSize,
                                     durationSeconds: 5, createStartedAt: 1000, requestIDs: [], knownTaskID: nil)
        now += 10
        let early = Reconciliation.decide(job, rows: [], owners: [:], competitors: [], followed: [:], now: now, listLag: 60)
        let waiting = life.handle(.reconciled(early), now: now)
        guard case .waitUntil(let until) = waiting.last else { Issue.record("unexpected effects"); return }
        #expect(until > now)
        #expect(life.state == .inDoubt)
        now = until + 1
        let late = Reconciliation.decide(job, rows: [], owners: [:], competitors: [], followed: [:], now: now, listLag: 60)
        var operatorOnly = life
        operatorOnly.policy.resubmitInDoubt = false
        let resubmit = life.handle(.reconciled(late), now: now)
        #expect(life.state == .queued)
        #expect(resubmit.contains(.scheduler(.released(Self.key))))
        #expect(resubmit.last == .enqueue(freshAttempts: false))
        let ask = operatorOnly.handle(.reconciled(late), now: now)
        #expect(operatorOnly.state == .inDoubt)
        #expect(ask.last == .scheduler(.inDoubtNeedsOperator(Self.key)))
    }

    /// SUCCEEDED → the download fails again and again → the disk fills (storage wait, not an attempt) → delivered;
    /// and the attempts running out fail the job after removing the partial file.
    @Test func succeededDownloadFailsStorageWaitsDelivered() {
        let now: Timestamp = 2000
        var life = Self.lifecycle(.pending)
        _ = life.handle(.observed(Self.snapshot(.succeeded, url: "https://r/2.mp4")), now: now)
        #expect(life.handle(.deliveryStarted, now: now) == [.fetch])
        #expect(life.handle(.fetched(.failed(storageTrouble: nil, error: "reset")), now: now)
                == [.log(.notice, "download failed, retrying", ["error": "reset"]), .pause(seconds: 1), .fetch])
        #expect(life.handle(.fetched(.failed(storageTrouble: nil, error: "reset")), now: now).suffix(2)
                == [.pause(seconds: 2), .fetch])
        #expect(life.delivery.fetches == 3)
        // The disk refuses: a wait, and the fetch does not count.
        #expect(life.handle(.fetched(.incomplete(storageTrouble: "No space left on device", bytes: 5, expected: 9)), now: now)
                == [.waitForStorage(what: "cannot write the download", error: "No space left on device", seconds: 1), .fetch])
        #expect(life.delivery.fetches == 3)
        #expect(life.handle(.fetched(.complete), now: now) == [
            .storageRecovered, .move(JobMove(from: [.downloading], to: .verifying, cause: "downloaded")), .verify])
        // Publishing hits the full disk too: back to downloading, wait again (second pause is longer).
        let refused = life.handle(.verified(.storageRefused("ENOSPC")), now: now)
        #expect(refused.suffix(2) == [.waitForStorage(what: "cannot write the result", error: "ENOSPC", seconds: 2), .fetch])
        #expect(life.state == .downloading)
        #expect(life.handle(.fetched(.complete), now: now).first == .storageRecovered)
        let done = life.handle(.verified(.delivered(path: "/o/j.mp4", sha256: "ab", bytes: 9, costUSD: nil)), now: now)
        guard case .move(let m) = done.first else { Issue.record("unexpected effects"); return }
        #expect(m.to == .succeeded)
        #expect(m.changes.costUSD == 0.75)   // from the pricing table when no cost was recorded
        #expect(m.changes.reason == .some(nil))

        var exhausted = Self.lifecycle(.downloading)
        _ = exhausted.handle(.deliveryStarted, now: now)
        var last: [LifecycleEffect] = []
        for _ in 1...4 { last = exhausted.handle(.fetched(.failed(storageTrouble: nil, error: "reset")), now: now) }
        #expect(exhausted.state == .failed)
        #expect(last.contains(.discardPartial))
        #expect(last.contains(.checkBatchEnd))
        #expect(last.firstIndex(of: .discardPartial)! < last.firstIndex { if case .move = $0 { true } else { false } }!)
    }

    /// A wait a restart interrupted shows in the stored reason: the next whole download ends it.
    @Test func aStorageWaitFromBeforeARestartEndsWithTheNextDownload() {
        var facts = Self.facts
        facts.reason = JobLifecycle.storageReasonPrefix + "cannot write the download: ENOSPC"
        var life = Self.lifecycle(.downloading, facts: facts)
        _ = life.handle(.deliveryStarted, now: 1)
        #expect(life.handle(.fetched(.complete), now: 1).first == .storageRecovered)
    }

    @Test func qcFailsTwiceThenTheJobFails() {
        var life = Self.lifecycle(.verifying)
        _ = life.handle(.deliveryStarted, now: 1)
        _ = life.handle(.fetched(.complete), now: 1)
        let again = life.handle(.verified(.qcFailed("black frames")), now: 1)
        #expect(again.last == .fetch)
        #expect(life.state == .downloading)
        _ = life.handle(.fetched(.complete), now: 1)
        _ = life.handle(.verified(.qcFailed("black frames")), now: 1)
        #expect(life.state == .failed)
    }

    @Test func aRefusedURLIsRefreshedOnceThenTheJobExpires() {
        var life = Self.lifecycle(.downloading)
        _ = life.handle(.deliveryStarted, now: 2000)
        #expect(life.handle(.fetched(.urlRefused), now: 2000) == [.queryResult])
        // The same URL, inside its window: tried once more.
        #expect(life.handle(.resultQueried(.answered(.succeeded, videoURL: "https://r/1.mp4")), now: 2000).last == .fetch)
        _ = life.handle(.fetched(.urlRefused), now: 2000)
        _ = life.handle(.resultQueried(.answered(.succeeded, videoURL: "https://r/1.mp4")), now: 2000)
        #expect(life.state == .expired)
        // Past the 24-hour window, no query at all.
        var late = Self.lifecycle(.downloading)
        _ = late.handle(.deliveryStarted, now: 1000 + 86_401)
        let effects = late.handle(.fetched(.urlRefused), now: 1000 + 86_401)
        #expect(late.state == .expired)
        #expect(!effects.contains(.queryResult))
    }
}

/// The kinds of `LifecycleEvent`, so the table test notices a kind it does not cover.
enum JobLifecycleTestsNames {
    static let allKinds: Set<String> = ["submit", "observed", "taskVanished", "retryScheduled", "attemptsExhausted",
                                        "resultWindowPassed", "reconciled", "deliveryStarted", "fetched",
                                        "resultQueried", "verified", "budgetChecked", "budgetHold", "operatorAction",
                                        "adoptionChecked"]

    static func kind(_ event: LifecycleEvent) -> String {
        switch event {
        case .submit: "submit"
        case .observed: "observed"
        case .taskVanished: "taskVanished"
        case .retryScheduled: "retryScheduled"
        case .attemptsExhausted: "attemptsExhausted"
        case .resultWindowPassed: "resultWindowPassed"
        case .reconciled: "reconciled"
        case .deliveryStarted: "deliveryStarted"
        case .fetched: "fetched"
        case .resultQueried: "resultQueried"
        case .verified: "verified"
        case .budgetChecked: "budgetChecked"
        case .budgetHold: "budgetHold"
        case .operatorAction: "operatorAction"
        case .adoptionChecked: "adoptionChecked"
        }
    }
}
