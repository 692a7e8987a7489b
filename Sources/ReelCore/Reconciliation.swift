/// Settling an in-doubt job: did its create call make a task at the provider, and which one?
///
/// Pure decision over what the daemon saw: the job's create call(s), the task list's rows (reference §1.9: task id,
/// status, model, `gmt_create`, and the create's `request_id` — no prompt), which tasks other jobs own, the other
/// in-doubt jobs that compete for the same rows, and the single-task queries of candidates (`orig_prompt`,
/// `usage`; reference §1.5). The rules, strongest first:
///
/// 1. a row whose task id the job already had (a task the provider lost for a while, listed again and not
///    UNKNOWN) or whose `request_id` equals
///    a request id one of the job's create calls answered with is the job's task;
/// 2. otherwise the candidates are unowned rows of the job's model created in the job's create window, less rows
///    that rule 1 gives to another in-doubt job; exactly one candidate and no other in-doubt job of that model
///    whose window holds it: that task;
/// 3. k jobs and several candidates: the candidates are queried until they end, and a SUCCEEDED task whose
///    `orig_prompt` (and `usage` size and duration) fits this job and no other in-doubt job is this job's; a
///    candidate made from another prompt, or ended without success (unbilled), is not this job's;
/// 4. no candidate: only after the list-lag window (the list may show a new task late) is "no task seen" concluded,
///    and the daemon resubmits only then (never while a candidate exists), or asks an operator.
public enum Reconciliation {
    /// How far before the create call started a task's `gmt_create` may be (the provider's clock against ours)…
    public static let windowBefore: Double = 120
    /// …and after (the call may take up to its timeout to arrive, plus the clocks' difference).
    public static let windowAfter: Double = 180

    /// What the daemon knows of one in-doubt job.
    public struct Job: Sendable, Equatable {
        public var key: JobKey
        public var model: RenderModel
        public var prompt: String
        public var size: FrameSize
        public var durationSeconds: Int
        /// When the (last) create call started, our clock.
        public var createStartedAt: Timestamp
        /// Request ids the job's create calls answered with (a 500's body, a timeout has none).
        public var requestIDs: Set<String>
        /// The task id the job had before the provider stopped knowing it, if any.
        public var knownTaskID: String?

        public init(key: JobKey, model: RenderModel, prompt: String, size: FrameSize, durationSeconds: Int,
                    createStartedAt: Timestamp, requestIDs: Set<String> = [], knownTaskID: String? = nil) {
            self.key = key
            self.model = model
            self.prompt = prompt
            self.size = size
            self.durationSeconds = durationSeconds
            self.createStartedAt = createStartedAt
            self.requestIDs = requestIDs
            self.knownTaskID = knownTaskID
        }

        func windowHolds(_ created: Timestamp?) -> Bool {
            guard let created else { return true }   // a row without a time cannot be ruled out
            return created >= createStartedAt - Reconciliation.windowBefore
                && created <= createStartedAt + Reconciliation.windowAfter
        }

        func fits(_ task: TaskSnapshot) -> Bool? {
            guard let orig = task.origPrompt else { return nil }
            // The provider truncates long prompts (1,500 characters for wan2.6-r2v).
            guard orig == prompt || (orig.count >= 100 && prompt.hasPrefix(orig)) else { return false }
            if let usage = task.usage {
                if let size = usage.size, size != self.size.providerString { return false }
                if let out = usage.outputVideoDuration, Int(out.rounded()) != durationSeconds { return false }
            }
            return true
        }
    }

    public enum Verdict: Sendable, Equatable {
        /// The job's task; `how` says by which rule, for the job's history.
        case adopt(taskID: String, how: String)
        /// Query these candidates (their `orig_prompt` and `usage` decide), then decide again.
        case follow([String])
        /// Look again at `until`; `seen` says what was seen so far.
        case wait(until: Timestamp, seen: String)
        /// After the list-lag window the list shows no candidate: no task was seen. The only verdict after which a
        /// resubmission may follow.
        case noTaskSeen(String)
        /// The evidence cannot single out a task: an operator decides (`reelctl resolve`).
        case needsOperator(String)
    }

    /// - Parameters:
    ///   - rows: task-list rows of the job's window (any model; filtered here), all pages.
    ///   - owners: the job owning each listed task id, where one does.
    ///   - competitors: the other in-doubt jobs.
    ///   - followed: single-task query answers of candidates so far, by task id.
    ///   - listLag: how late the list may show a new task.
    ///   - pollAgain: when to look again while candidates are still rendering.
    public static func decide(_ job: Job, rows: [TaskListRow], owners: [String: JobKey], competitors: [Job],
                              followed: [String: TaskSnapshot], now: Timestamp, listLag: Double,
                              pollAgain: Double = 15) -> Verdict {
        // A task the job had before the provider stopped knowing it is taken back once the list shows it alive.
        if let known = job.knownTaskID, rows.contains(where: { $0.taskID == known && $0.status != .unknown }) {
            return .adopt(taskID: known, how: "the task list shows its task \(known) again")
        }
        // Owned rows are never candidates: another job's tasks, and this job's own earlier ones.
        let free = rows.filter { owners[$0.taskID] == nil }
        if let row = free.first(where: { $0.requestID.map(job.requestIDs.contains) == true }) {
            return .adopt(taskID: row.taskID, how: "the list row's request_id \(row.requestID!) is the create call's")
        }
        let claimed = Set(competitors.flatMap(\.requestIDs))
        let candidates = free.filter { row in
            (row.model == nil || row.model == job.model.rawValue) && job.windowHolds(row.createdAt)
                && !(row.requestID.map(claimed.contains) ?? false)
        }
        let lagEnds = job.createStartedAt + listLag
        if candidates.isEmpty {
            let seen = "the task list shows no unowned \(job.model.rawValue) task created within "
                + "\(Int(windowBefore)) s before to \(Int(windowAfter)) s after the create call"
                + (rows.isEmpty ? "" : " (\(rows.count) listed row(s) in the window, none a candidate)")
            return now < lagEnds ? .wait(until: lagEnds, seen: seen + "; waiting out the list's lag") : .noTaskSeen(seen)
        }
        let rivals = competitors.filter { other in
            other.key != job.key && other.model == job.model && candidates.contains { other.windowHolds($0.createdAt) }
        }
        if candidates.count == 1, rivals.isEmpty {
            let task = candidates[0]
            return .adopt(taskID: task.taskID, how: "the only unowned \(job.model.rawValue) task created in the "
                          + "create call's window, and no other job of that model in doubt")
        }
        // Several jobs or several tasks: the results decide. Follow every candidate to its end.
        let ids = candidates.map(\.taskID)
        let unfollowed = ids.filter { followed[$0] == nil }
        if !unfollowed.isEmpty { return .follow(unfollowed) }
        let group = [job] + rivals
        var running: [String] = []
        var unclear: [String] = []
        var othersOrUnbilled = 0
        for id in ids {
            let task = followed[id]!
            guard task.status == .succeeded else {
                if task.status.isTerminal { othersOrUnbilled += 1 } else { running.append(id) }   // unbilled if ended
                continue
            }
            switch job.fits(task) {
            case false?:
                othersOrUnbilled += 1   // made with another prompt, size or duration: not this job's
            case true?:
                let twins = rivals.filter { $0.fits(task) == true }
                if twins.isEmpty {
                    return .adopt(taskID: id, how: "its result's orig_prompt and usage fit this job alone among "
                                  + "\(group.count) in-doubt job(s) and \(ids.count) candidate task(s)")
                }
                unclear.append(id)
            case nil:
                unclear.append(id)   // no orig_prompt: nothing tells whose it is
            }
        }
        let summary = "\(ids.count) candidate task(s) (\(ids.joined(separator: ", "))) for \(group.count) in-doubt "
            + "job(s) of \(job.model.rawValue)"
        if !running.isEmpty {
            return .wait(until: now + pollAgain, seen: summary + "; waiting for \(running.count) to finish to match "
                         + "its orig_prompt")
        }
        if unclear.isEmpty {
            // Every candidate was made from another prompt (or size, or duration), or ended unbilled.
            let seen = summary + ": each was made for another job or ended unbilled, none is this job's"
            return now < lagEnds ? .wait(until: lagEnds, seen: seen + "; waiting out the list's lag") : .noTaskSeen(seen)
        }
        return .needsOperator(summary + "; \(unclear.count) succeeded task(s) (\(unclear.joined(separator: ", "))) fit "
                              + "this job and another one alike, or carry no orig_prompt to tell")
    }
}
