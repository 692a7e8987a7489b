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
    /// Runs `begin` (the write-ahead of a create call) only if the job's lifecycle admits it under its batch's
    /// budget (`JobLifecycle.budgetOverrun`); otherwise holds the batch's remaining jobs and returns nil, as
    /// `begin` does when the job is no longer submittable.
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
        let overrun = JobLifecycle.budgetOverrun(
            spent: Cost.rounded(summary.counts.costUSD),
            committed: summary.counts.estimatedUSD(in: JobLifecycle.budgetCommittedStates, pricing: pricing).map(Cost.rounded),
            estimate: Cost.estimate(spec: row.spec, pricing: pricing), budget: budget)
        let released = overrun == nil ? false : try await releasedFromBudgetHold(row.key)
        var life = lifecycle(row)
        let steps = await execute(life.handle(.budgetChecked(overrun: overrun, releasedByOperator: released),
                                              now: clock.now()), for: row.key)
        switch steps.refused ? nil : steps.next.first {
        case .beginSubmission?:
            return try await begin()
        case .holdBatch(let verdict)?:
            await holdForBudget(batch, verdict: verdict)
            return nil
        default:
            return nil
        }
    }

    /// The job's history says an operator released it from a budget hold as its latest move.
    private func releasedFromBudgetHold(_ key: JobKey) async throws -> Bool {
        JobLifecycle.releasedFromBudgetHold(try await store.transitions(of: key).map { ($0.from, $0.to, $0.cause) })
    }

    /// Holds every queued or retrying job of the batch (each one's lifecycle decides), with the verdict as reason.
    private func holdForBudget(_ batch: String, verdict: String) async {
        var held: [JobKey] = []
        for state in [JobState.queued, .retrying] {
            var cursor: String?
            repeat {
                guard let page = await readStore("the batch's jobs to hold", {
                    try await store.listJobs(state: state, batch: batch, limit: 500, after: cursor)
                }) else { break }
                for row in page.rows {
                    var life = lifecycle(row)
                    let steps = await execute(life.handle(.budgetHold(verdict: verdict), now: clock.now()), for: row.key)
                    if !steps.refused && life.state == .held { held.append(row.key) }
                }
                cursor = page.nextCursor
            } while cursor != nil
        }
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
