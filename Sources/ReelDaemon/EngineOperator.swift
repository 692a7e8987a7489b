import Foundation
import ReelControl
import ReelCore
import ReelStore

// Operator controls (reelctl / the control API). What an action does to a job is the job's `JobLifecycle`'s
// decision; the engine carries it out and answers with a domain outcome, which `DaemonBackend` words.
extension Engine {
    func operate(_ action: OperatorAction, on key: JobKey) async -> OperatorOutcome {
        do {
            return try await operateOrThrow(action, on: key)
        } catch {
            // An operator action the state store could not record: nothing changed, and the operator is told why.
            return .refused(.storeRefused("\(error)"))
        }
    }

    private func operateOrThrow(_ action: OperatorAction, on key: JobKey) async throws -> OperatorOutcome {
        guard let row = try await store.job(key) else { return .refused(.noSuchJob) }
        var life = lifecycle(row)
        var steps = try await executeStrictly(life.handle(.operatorAction(action), now: clock.now()), for: key)
        if case .checkAdoptable(let taskID)? = steps.next.first {
            let check: AdoptionCheck
            if let owner = try await store.jobsOwningTasks([taskID])[taskID], owner != key {
                check = .ownedBy(owner)
            } else {
                do {
                    let (snapshot, exchange) = try await api.queryTask(taskID)
                    await recordExchange(key, exchange)
                    check = .known(snapshot.status)
                } catch {
                    check = .queryFailed("\(error)")
                }
            }
            steps = try await executeStrictly(life.handle(.adoptionChecked(taskID: taskID, check), now: clock.now()),
                                              for: key)
        }
        if !steps.refused {
            for case .answer(let outcome) in steps.next { return outcome }
        }
        return .refused(.changedMeanwhile)
    }

    func operate(_ action: BatchAction, onBatch name: String) async -> OperatorOutcome {
        switch action {
        case .pause, .resume:
            let paused = action == .pause
            do {
                _ = try await store.updateBatch(name) { $0.paused = paused }
            } catch {
                return .refused(.storeRefused("\(error)"))
            }
            handle(paused ? .pause(batch: name) : .resume(batch: name))
            return paused ? .batchPaused(name) : .batchResumed(name)
        case .cancel:
            var cursor: String?
            var cancelled = 0
            var refused: [String] = []
            repeat {
                let page: ReelStore.JobPage
                do {
                    page = try await store.listJobs(batch: name, limit: 500, after: cursor)
                } catch {
                    refused.append("the rest: the state store cannot be read: \(error)")
                    break
                }
                for row in page.rows where !row.state.isTerminal {
                    let outcome = await operate(.cancel, on: row.key)
                    if outcome.ok { cancelled += 1 } else { refused.append("\(row.key.id): \(outcome.text(job: row.key))") }
                }
                cursor = page.nextCursor
            } while cursor != nil
            return .batchCancelled(name, cancelled: cancelled, refused: refused)
        }
    }

    func operate(_ action: GlobalAction) async -> OperatorOutcome {
        switch action {
        case .pause:
            do { try await store.setSetting("paused", to: "1") } catch { return .refused(.storeRefused("\(error)")) }
            handle(.pause(batch: nil))
            return .paused
        case .resume:
            do { try await store.setSetting("paused", to: nil) } catch { return .refused(.storeRefused("\(error)")) }
            handle(.resume(batch: nil))
            return .resumed
        case .drain:
            handle(.drain)
            return .draining
        case .reload:
            return .refused(.reloadIsTheDaemons)
        }
    }
}
