import Foundation
import Logging
import ReelCore
import ReelStore

// List polling: one `GET /api/v1/tasks` answers for many running tasks (docs/scheduler.md, "Polling"). The list is
// an optimisation over the single-task query, which stays the guaranteed path: a covered task the list does not show
// is queried on its own at once, and a failed list sends every covered task to its own query.
extension Engine {
    /// How far before the oldest covered submission the list's window starts: the provider stamps `gmt_create`
    /// on its own clock, before our create call returned.
    static let listWindowMargin: Double = 120
    /// Pages read per list poll at most (each is one query against the account's 20/s).
    static let listPagesPerPoll = 3

    /// Runs one task-list poll covering `tasks` and reports each shown task's status (`.listed`), or `.listFailed`.
    /// The scheduler hears first (a freed slot is refilled at once), then PENDING → RUNNING is recorded in the
    /// store; an ended task is left to its own query, which brings the result (`video_url`, usage, failure code)
    /// the list does not carry.
    func pollList(_ tasks: [ListedTask]) async {
        guard let oldest = tasks.map(\.submittedAt).min() else { return }
        let models = Set(tasks.map(\.model))
        let now = clock.now()
        var query = TaskListQuery(startTime: oldest - Self.listWindowMargin, endTime: now + Self.listWindowMargin,
                                  model: models.count == 1 ? models.first : nil, pageNumber: 1, pageSize: 100)
        let wanted = Set(tasks.map(\.taskID))
        var seen: [String: TaskStatus] = [:]
        do {
            while true {
                let (page, exchange) = try await api.listTasks(query)
                // One attempt row per page, kept with the first covered job.
                await recordExchange(tasks[0].key, exchange)
                for row in page.rows where wanted.contains(row.taskID) { seen[row.taskID] = seen[row.taskID] ?? row.status }
                guard seen.count < wanted.count, page.hasMore(after: query),
                      query.pageNumber < Self.listPagesPerPoll else { break }
                query.pageNumber += 1
            }
        } catch let failure as ProviderFailure {
            await recordExchange(tasks[0].key, failure.exchange)
            if failure.blame == .jobPermanent {
                logger.warning("the provider refused the task-list query; polling each task on its own for a while",
                               metadata: ["error": "\(failure)"])
            }
            handle(.listFailed(failure.blame, retryAfter: failure.retryAfter, message: failure.description))
            return
        } catch {
            handle(.listFailed(.provider, retryAfter: nil, message: "\(error)"))
            return
        }
        var statuses: [JobKey: TaskStatus] = [:]
        for task in tasks { statuses[task.key] = seen[task.taskID] }
        // The scheduler first: a slot the list shows free is refilled before any store round trip.
        handle(.listed(statuses))
        for task in tasks where statuses[task.key] == .running && task.lastStatus == .pending {
            await record(task.key, to: .running, from: [.pending], cause: "provider: RUNNING")
        }
    }
}
