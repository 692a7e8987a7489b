import Foundation
import Logging
import ReelCore
import ReelStore

// List polling: one `GET /api/v1/tasks` answers for every running task (docs/scheduler.md, "Polling").
extension Engine {
    /// How far before the oldest covered submission the list's time window starts: the provider stamps
    /// `submit_time` before our create call returns, on its own clock.
    static let listWindowMargin: Double = 120

    /// Runs one task-list query covering `tasks` and reports each one's status (`.listed`), or `.listFailed`.
    /// The scheduler hears first (a freed slot is refilled at once), then PENDING → RUNNING is recorded in the
    /// store; an ended task is left to its own query, which brings the result (`video_url`, usage, failure code)
    /// the list does not carry.
    func pollList(_ tasks: [ListedTask]) async {
        guard let oldest = tasks.map(\.submittedAt).min() else { return }
        let models = Set(tasks.map(\.model))
        let query = TaskListQuery(startTime: oldest - Self.listWindowMargin, model: models.count == 1 ? models.first : nil,
                                  pageNumber: 1, pageSize: 100)
        do {
            let (page, exchange) = try await api.listTasks(query)
            let now = clock.now()
            let byID = Dictionary(page.tasks.map { ($0.taskID, $0.status) }, uniquingKeysWith: { a, _ in a })
            var statuses: [JobKey: TaskStatus] = [:]
            for task in tasks { statuses[task.key] = byID[task.taskID] }
            // The scheduler first: a slot the list shows free is refilled before any store round trip.
            handle(.listed(statuses))
            // One exchange, one attempt row: kept with the first covered job.
            try? await store.recordAttempt(tasks[0].key, exchange, now: now)
            for task in tasks where statuses[task.key] == .running && task.lastStatus == .pending {
                if (try? await store.transition(task.key, from: [.pending], to: .running, cause: "provider: RUNNING",
                                                now: now)) == true {
                    publish(.jobsChanged([task.key]))
                }
            }
        } catch let failure as ProviderFailure {
            try? await store.recordAttempt(tasks[0].key, failure.exchange, now: clock.now())
            if failure.blame == .jobPermanent {
                logger.warning("the provider refused the task-list query; polling each task on its own until reload",
                               metadata: ["error": "\(failure)"])
            }
            handle(.listFailed(failure.blame, retryAfter: failure.retryAfter))
        } catch {
            handle(.listFailed(.provider, retryAfter: nil))
        }
    }
}
