import Foundation

// The pure verdicts the lifecycle decides with: whom a failed render blames, whether a refused create counted as
// an attempt, whether a batch's budget admits one more job, and how long delivery waits before trying again.
extension JobLifecycle {
    /// Whom a render the provider ended FAILED blames. A failed render is not billed: InternalError and the like
    /// are the provider's (retried with backoff, a new task); anything the request itself caused, or the account,
    /// fails the job.
    public static func renderFailureBlame(code: String) -> Blame {
        ProviderFailure.isPermanentCode(code) || ProviderFailure.isAccountCode(code) ? .jobPermanent : .provider
    }

    /// A refusal that says nothing about the job (throttling, an account problem) is not an attempt.
    public static func refusalCountsAsAttempt(_ blame: Blame) -> Bool {
        blame != .throttled && blame != .account
    }

    /// States whose jobs will be billed if their task succeeds but carry no recorded cost yet (the cost is
    /// recorded when the task is seen SUCCEEDED, as the job moves to `downloading`).
    public static let budgetCommittedStates: Set<JobState> = [.submitting, .pending, .running, .inDoubt]

    /// Why one more job of a batch would overrun its budget, or nil when spent + committed + this job's estimate
    /// fits. A batch whose money cannot be estimated (no rate for some model/resolution pair) cannot be checked,
    /// which counts as an overrun.
    public static func budgetOverrun(spent: Double, committed: Double?, estimate: Double?, budget: Double) -> String? {
        guard let committed, let estimate else {
            return "budget: [pricing] has no rate for some of the batch's model/resolution pairs, so its budget $\(budget) cannot be checked"
        }
        if spent + committed + estimate <= budget + 1e-9 { return nil }
        return String(format: "budget: spent $%.2f + committed $%.2f + this job $%.2f would exceed the batch's budget $%.2f",
                      spent, committed, estimate, budget)
    }

    /// The job's latest move (the last of `history`) was an operator release of a budget hold: that admits this
    /// one submission whatever the budget says.
    public static func releasedFromBudgetHold(_ history: [(from: JobState?, to: JobState, cause: String)]) -> Bool {
        guard history.count >= 2 else { return false }
        let last = history[history.count - 1], hold = history[history.count - 2]
        return last.from == .held && last.to == .queued && last.cause == Cause.operatorRelease
            && hold.to == .held && hold.cause.hasPrefix("budget")
    }

    /// The pause before delivery retry `n` (1-based): exponential from 1 s, capped at 60 s, both bounded by the
    /// `[retry]` delays (so a configuration that retries in milliseconds also delivers again in milliseconds).
    public static func deliveryRetryPause(_ n: Int, baseDelay: Double, maxDelay: Double) -> Double {
        let first = min(1, baseDelay)
        return min(60, maxDelay, first * pow(2, Double(max(0, n - 1))))
    }

    /// Causes other parts read back from a job's history.
    public enum Cause {
        public static let operatorRelease = "operator release"
    }

    /// Why delivery is waiting for the output filesystem starts with this, in the job's `reason`.
    public static let storageReasonPrefix = "waiting for the output filesystem: "
}
