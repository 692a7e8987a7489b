import Foundation
import Logging
import ReelCore
import ReelOutput
import ReelStore

// Batch budgets (`budget_usd`). Before a job's create call is committed, the batch's money so far plus this job
// must fit the budget:
//
//     spent (recorded cost of every job whose task SUCCEEDED: delivered, being delivered, or billed but never
//            delivered — failed QC, expired, cancelled during delivery)
//   + committed (estimates of jobs submitting, rendering or in doubt: billed if they succeed)
//   + this job's estimate                                   ≤ budget_usd
//
// Otherwise the job and every other queued or retrying job of the batch are `held` with hold reason `budget`.
// `reelctl release JOB` admits that one job's next submission whatever the budget says (the operator accepts the
// overrun); its batch-mates stay held until released one by one. Checks of one batch run one at a time, so two
// concurrent submissions cannot both squeeze into the last dollars.
extension Engine {
    /// States whose jobs will be billed if their task succeeds but carry no recorded cost yet (the cost is
    /// recorded when the task is seen SUCCEEDED, as the job moves to `downloading`).
    static let committedStates: Set<JobState> = [.submitting, .pending, .running, .inDoubt]

    /// Runs `begin` (the write-ahead of a create call) only if the job fits its batch's budget; otherwise holds the
    /// batch's remaining jobs and returns nil, as `begin` does when the job is no longer submittable.
    func withinBudget<T>(_ row: JobRow, begin: () async throws -> T?) async throws -> T? {
        let batch = row.key.batch
        // A store that cannot be read fails the check (nothing is sent): no budget is skipped for want of a read.
        guard try await store.batch(batch)?.settings.budgetUSD != nil else { return try await begin() }
        await acquireBudgetTurn(batch)
        defer { releaseBudgetTurn(batch) }
        guard let summary = try await store.batch(batch), let budget = summary.settings.budgetUSD else {
            return try await begin()
        }
        let pricing = options.pricing
        let spent = Cost.rounded(summary.counts.costUSD)
        let committed = summary.counts.estimatedUSD(in: Self.committedStates, pricing: pricing).map(Cost.rounded)
        let estimate = Cost.estimate(spec: row.spec, pricing: pricing)
        let verdict: String?
        if let committed, let estimate {
            verdict = spent + committed + estimate <= budget + 1e-9 ? nil : String(
                format: "budget: spent $%.2f + committed $%.2f + this job $%.2f would exceed the batch's budget $%.2f",
                spent, committed, estimate, budget)
        } else {
            verdict = "budget: [pricing] has no rate for some of the batch's model/resolution pairs, so its budget $\(budget) cannot be checked"
        }
        guard let verdict else { return try await begin() }
        if try await releasedFromBudgetHold(row.key) {
            logger.notice("over budget, but released by the operator: submitting",
                          metadata: ["job_id": "\(row.key)", "detail": "\(verdict)"])
            return try await begin()
        }
        await holdForBudget(batch, verdict: verdict)
        return nil
    }

    /// The job's latest move was an operator release of a budget hold: that admits this one submission.
    private func releasedFromBudgetHold(_ key: JobKey) async throws -> Bool {
        let history = try await store.transitions(of: key)
        guard history.count >= 2 else { return false }
        let last = history[history.count - 1], hold = history[history.count - 2]
        return last.from == .held && last.to == .queued && last.cause == "operator release"
            && hold.to == .held && hold.cause.hasPrefix("budget")
    }

    /// Holds every queued or retrying job of the batch, with the verdict as the reason.
    private func holdForBudget(_ batch: String, verdict: String) async {
        let reason = "\(verdict); raise budget_usd or `reelctl release` a job to accept the overrun"
        var held: [JobKey] = []
        for state in [JobState.queued, .retrying] {
            var cursor: String?
            repeat {
                guard let page = await readStore("the batch's jobs to hold", {
                    try await store.listJobs(state: state, batch: batch, limit: 500, after: cursor)
                }) else { break }
                for row in page.rows {
                    let moved = await record(row.key, to: .held, from: [.queued, .retrying], cause: verdict) {
                        $0.holdReason = "budget"
                        $0.reason = reason
                        $0.nextAttemptAt = nil
                    }
                    if moved { held.append(row.key) }
                }
                cursor = page.nextCursor
            } while cursor != nil
        }
        for key in held { handle(.removed(key)) }
        guard !held.isEmpty else { return }
        logger.warning("batch held: its budget would be exceeded",
                       metadata: ["batch": "\(batch)", "jobs": "\(held.count)", "detail": "\(verdict)"])
        publish(.jobsChanged(held))
    }

    private func acquireBudgetTurn(_ batch: String) async {
        guard budgetTurns[batch] != nil else {
            budgetTurns[batch] = []
            return
        }
        await withCheckedContinuation { budgetTurns[batch, default: []].append($0) }
    }

    /// Hands the batch's turn to the next waiter, or frees it.
    private func releaseBudgetTurn(_ batch: String) {
        guard var waiters = budgetTurns[batch], !waiters.isEmpty else {
            budgetTurns[batch] = nil
            return
        }
        let next = waiters.removeFirst()
        budgetTurns[batch] = waiters
        next.resume()
    }
}
