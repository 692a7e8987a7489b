import ReelCore
import Testing

/// The in-doubt decision on the rows the documented task list gives (task id, status, model, gmt_create,
/// request_id; no prompt).
@Suite("Reconciliation of in-doubt jobs")
struct ReconciliationTests {
    static let size = FrameSize(width: 1920, height: 1080)

    static func job(_ id: String, prompt: String = "p", model: RenderModel = .r2v, at: Timestamp = 1000,
                    requestIDs: Set<String> = [], known: String? = nil) -> Reconciliation.Job {
        Reconciliation.Job(key: jk("b/\(id)"), model: model, prompt: prompt, size: size, durationSeconds: 5,
                           createStartedAt: at, requestIDs: requestIDs, knownTaskID: known)
    }

    static func row(_ task: String, at: Timestamp? = 1001, request: String? = nil, model: String? = "wan2.6-r2v",
                    status: TaskStatus = .running) -> TaskListRow {
        TaskListRow(taskID: task, status: status, model: model, createdAt: at, requestID: request)
    }

    static func succeeded(_ task: String, prompt: String?, seconds: Double = 5) -> TaskSnapshot {
        TaskSnapshot(taskID: task, status: .succeeded, videoURL: "https://r/x.mp4",
                     usage: TaskUsage(outputVideoDuration: seconds, size: "1920*1080"), origPrompt: prompt)
    }

    func decide(_ job: Reconciliation.Job, _ rows: [TaskListRow], owners: [String: JobKey] = [:],
                competitors: [Reconciliation.Job] = [], followed: [String: TaskSnapshot] = [:],
                now: Timestamp = 1100) -> Reconciliation.Verdict {
        Reconciliation.decide(job, rows: rows, owners: owners, competitors: competitors, followed: followed, now: now,
                              listLag: 60)
    }

    @Test func theCreateRequestIDWinsOverEverythingElse() {
        let a = Self.job("a", requestIDs: ["req-a"])
        let rivals = [Self.job("b"), Self.job("c")]
        let rows = [Self.row("t1", request: "req-x"), Self.row("t2", request: "req-a"), Self.row("t3")]
        guard case .adopt(let task, let how) = decide(a, rows, competitors: rivals) else {
            Issue.record("expected an adoption")
            return
        }
        #expect(task == "t2" && how.contains("request_id"))
        // Another job's row is never adopted, even with the right request id.
        #expect(decide(a, rows, owners: ["t2": jk("b/other")], competitors: rivals) != .adopt(taskID: "t2", how: ""))
    }

    @Test func aUniqueCandidateIsAdoptedOnlyWhenNoOtherJobOfTheModelIsInDoubt() {
        let a = Self.job("a")
        let rows = [Self.row("t1"), Self.row("owned"), Self.row("flash", model: "wan2.6-r2v-flash"),
                    Self.row("old", at: 1000 - 121), Self.row("late", at: 1000 + 181)]
        let owners = ["owned": jk("b/z")]
        #expect(decide(a, rows, owners: owners) == .adopt(taskID: "t1", how: "the only unowned wan2.6-r2v task created in the create call's window, and no other job of that model in doubt"))
        // A rival of the same model in the same window: the results must decide.
        #expect(decide(a, rows, owners: owners, competitors: [Self.job("b")]) == .follow(["t1"]))
        // A rival of the other model does not compete.
        if case .adopt = decide(a, rows, owners: owners, competitors: [Self.job("f", model: .r2vFlash)]) {} else {
            Issue.record("a flash job does not compete for an r2v task")
        }
        // A rival whose request id claims the row: the row is not a candidate for this job.
        let claimed = decide(a, [Self.row("t1", request: "req-b")], competitors: [Self.job("b", requestIDs: ["req-b"])],
                             now: 1030)
        guard case .wait = claimed else {
            Issue.record("expected to wait out the list's lag, got \(claimed)")
            return
        }
    }

    @Test func noTaskIsConcludedOnlyAfterTheListLagAndSaysWhatWasSeen() {
        let a = Self.job("a", at: 1000)
        guard case .wait(let until, let seen) = decide(a, [], now: 1030) else {
            Issue.record("expected to wait")
            return
        }
        #expect(until == 1060 && seen.contains("no unowned wan2.6-r2v task"))
        guard case .noTaskSeen(let summary) = decide(a, [Self.row("other", at: 500)], now: 1061) else {
            Issue.record("expected no task seen")
            return
        }
        #expect(summary.contains("1 listed row(s) in the window, none a candidate"))
    }

    @Test func ambiguousCandidatesAreFollowedAndMatchedOnTheirPrompt() {
        let a = Self.job("a", prompt: "character1 waves")
        let b = Self.job("b", prompt: "character1 bows")
        let rows = [Self.row("t1"), Self.row("t2")]
        #expect(decide(a, rows, competitors: [b]) == .follow(["t1", "t2"]))
        // Still rendering: look again later.
        let rendering = ["t1": TaskSnapshot(taskID: "t1", status: .running),
                         "t2": TaskSnapshot(taskID: "t2", status: .pending)]
        guard case .wait(let until, _) = decide(a, rows, competitors: [b], followed: rendering) else {
            Issue.record("expected to wait for the candidates")
            return
        }
        #expect(until == 1115)
        let done = ["t1": Self.succeeded("t1", prompt: "character1 bows"), "t2": Self.succeeded("t2", prompt: "character1 waves")]
        guard case .adopt(let task, _) = decide(a, rows, competitors: [b], followed: done) else {
            Issue.record("expected an adoption by prompt")
            return
        }
        #expect(task == "t2")
        // Twins (the same prompt, size and duration) cannot be told apart: an operator decides.
        let twin = Self.job("b", prompt: "character1 waves")
        let twins = ["t1": Self.succeeded("t1", prompt: "character1 waves"), "t2": Self.succeeded("t2", prompt: "character1 waves")]
        guard case .needsOperator(let why) = decide(a, rows, competitors: [twin], followed: twins) else {
            Issue.record("expected an operator")
            return
        }
        #expect(why.contains("2 candidate task(s)") && why.contains("2 in-doubt job(s)"))
        // A job whose create made no task, beside jobs whose tasks fit them: after the lag, no task seen.
        let none = Self.job("n", prompt: "character1 sits")
        guard case .noTaskSeen(let seen) = decide(none, rows, competitors: [a, b], followed: done) else {
            Issue.record("tasks that fit other jobs are not this job's")
            return
        }
        #expect(seen.contains("each was made for another job or ended unbilled"))
        // Candidates that failed were not billed: no reason to hold the job for an operator.
        let failed = ["t1": TaskSnapshot(taskID: "t1", status: .failed), "t2": TaskSnapshot(taskID: "t2", status: .canceled)]
        guard case .noTaskSeen = decide(a, rows, competitors: [b], followed: failed) else {
            Issue.record("unbilled candidates are not a reason to wait for an operator")
            return
        }
        // The duration in usage separates otherwise equal prompts.
        let longer = ["t1": Self.succeeded("t1", prompt: "character1 waves", seconds: 10),
                      "t2": Self.succeeded("t2", prompt: "character1 waves")]
        var tenSeconds = twin
        tenSeconds.durationSeconds = 10
        #expect(decide(a, rows, competitors: [tenSeconds], followed: longer)
                == .adopt(taskID: "t2", how: "its result's orig_prompt and usage fit this job alone among 2 in-doubt job(s) and 2 candidate task(s)"))
    }

    @Test func aTaskTheProviderLostIsTakenBackWhenItReappears() {
        let a = Self.job("a", known: "t-lost")
        #expect(decide(a, [Self.row("t-lost", at: 10), Self.row("t1")], owners: ["t-lost": jk("b/a")])
                == .adopt(taskID: "t-lost", how: "the task list shows its task t-lost again"))
        // Listed as UNKNOWN it is not back, and it is no candidate either: nothing else listed, so after the lag
        // no task is seen.
        guard case .noTaskSeen = decide(a, [Self.row("t-lost", at: 1001, status: .unknown)], owners: ["t-lost": jk("b/a")])
        else {
            Issue.record("an UNKNOWN row of the lost task must not be adopted")
            return
        }
    }

    @Test func rowsWithoutATimeAreStillCandidates() {
        let a = Self.job("a")
        if case .adopt(let task, _) = decide(a, [Self.row("t1", at: nil, model: nil)]) {
            #expect(task == "t1")
        } else {
            Issue.record("a row without gmt_create or model cannot be ruled out")
        }
    }
}
