import Foundation
import ReelControl
import ReelCore
import ReelProtocol
import ReelStore

// Operator controls (reelctl / the control API). Each answers with what it did, or why it could not.
extension Engine {
    func operate(_ action: JobAction, on key: JobKey) async -> ActionResult {
        do {
            return try await operateOrThrow(action, on: key)
        } catch {
            return Self.storeRefused(error)
        }
    }

    /// An operator action the state store could not record: nothing changed, and the operator is told why.
    static func storeRefused(_ error: any Error) -> ActionResult {
        ActionResult(ok: false, message: "the state store could not record this, nothing changed: \(error)")
    }

    private func operateOrThrow(_ action: JobAction, on key: JobKey) async throws -> ActionResult {
        guard let row = try await store.job(key) else { return ActionResult(ok: false, message: "no job \(key)") }
        let now = clock.now()
        func move(_ from: Set<JobState>, _ to: JobState, _ cause: String,
                  _ update: @escaping @Sendable (inout JobRow) -> Void = { _ in }) async throws -> Bool {
            try await store.transition(key, from: from, to: to, cause: cause, now: now, update: update)
        }
        switch action {
        case .cancel:
            switch row.state {
            case .queued, .retrying, .held, .inDoubt:
                guard try await move([row.state], .cancelled, "operator cancel", { $0.reason = "cancelled by operator" }) else { break }
                handle(.cancel(key))
                if row.state == .inDoubt { handle(.released(key)) }
                publish(.jobsChanged([key]))
                await checkBatchEnd(key.batch)
                return ActionResult(ok: true, message: "cancelled")
            case .pending:
                let reason = "cancelled by operator; the PENDING task is being cancelled at the provider"
                guard try await move([.pending], .cancelled, "operator cancel", { $0.reason = reason }) else { break }
                handle(.cancel(key))
                publish(.jobsChanged([key]))
                await checkBatchEnd(key.batch)
                return ActionResult(ok: true, message: "cancelled; remote cancel of task \(row.taskID ?? "?") requested")
            case .running:
                let reason = "cancelled by operator while rendering: the provider cannot stop a RUNNING task, so it finishes (and is billed) and its result is discarded"
                guard try await move([.running], .cancelled, "operator cancel", { $0.reason = reason }) else { break }
                handle(.cancel(key))
                publish(.jobsChanged([key]))
                await checkBatchEnd(key.batch)
                return ActionResult(ok: true, message: reason)
            case .submitting:
                return ActionResult(ok: false, message: "a create call for \(key) is in flight; cancel again in a moment")
            case .downloading, .verifying:
                return ActionResult(ok: false, message: "\(key) is already rendered and paid for; it is being delivered")
            case .succeeded, .failed, .cancelled, .expired:
                return ActionResult(ok: false, message: "\(key) is already \(row.state.rawValue)")
            }
            return ActionResult(ok: false, message: "\(key) changed state meanwhile; look again with `reelctl show \(key)`")
        case .retry:
            guard [.failed, .cancelled, .expired].contains(row.state) else {
                return ActionResult(ok: false, message: "only failed, cancelled or expired jobs can be retried; \(key) is \(row.state.rawValue)")
            }
            guard try await move([row.state], .queued, "operator retry", { $0.reason = nil; $0.nextAttemptAt = nil }) else { break }
            completedBatches.remove(key.batch)
            if let fresh = try await store.job(key) {
                var job = schedulerJob(fresh)
                job.attempts = 0
                handle(.enqueued(job))
            }
            publish(.jobsChanged([key]))
            return ActionResult(ok: true, message: "queued again")
        case .hold:
            guard [.queued, .retrying].contains(row.state) else {
                return ActionResult(ok: false, message: "only queued or retrying jobs can be held; \(key) is \(row.state.rawValue)")
            }
            guard try await move([row.state], .held, "operator hold", { $0.holdReason = "operator" }) else { break }
            handle(.removed(key))
            publish(.jobsChanged([key]))
            return ActionResult(ok: true, message: "held until `reelctl release \(key)`")
        case .release:
            guard row.state == .held else {
                return ActionResult(ok: false, message: "\(key) is not held (it is \(row.state.rawValue))")
            }
            guard try await move([.held], .queued, "operator release", { $0.holdReason = nil; $0.reason = nil }) else { break }
            if let fresh = try await store.job(key) { handle(.enqueued(schedulerJob(fresh))) }
            publish(.jobsChanged([key]))
            return ActionResult(ok: true, message: "released")
        case .resolve(let request):
            guard row.state == .inDoubt else {
                return ActionResult(ok: false, message: "\(key) is not in doubt (it is \(row.state.rawValue)); nothing to resolve")
            }
            switch request.action {
            case "adopt":
                guard let taskID = request.task_id else { return ActionResult(ok: false, message: "adopt needs a task id") }
                if let owner = try await store.jobsOwningTasks([taskID])[taskID], owner != key {
                    return ActionResult(ok: false, message: "task \(taskID) already belongs to \(owner)")
                }
                do {
                    let (snapshot, exchange) = try await api.queryTask(taskID)
                    await recordExchange(key, exchange)
                    guard snapshot.status != .unknown else {
                        return ActionResult(ok: false, message: "the provider does not know task \(taskID) (UNKNOWN)")
                    }
                    await adopt(key, taskID: taskID, how: "operator: reelctl resolve --adopt")
                    return ActionResult(ok: true, message: "adopted task \(taskID) (\(snapshot.status.rawValue))")
                } catch {
                    return ActionResult(ok: false, message: "cannot query task \(taskID): \(error)")
                }
            case "resubmit":
                guard try await move([.inDoubt], .queued, "operator resolve: resubmit", { $0.reason = nil }) else { break }
                handle(.released(key))
                if let fresh = try await store.job(key) { handle(.enqueued(schedulerJob(fresh))) }
                publish(.jobsChanged([key]))
                return ActionResult(ok: true, message: "queued for a new create call (if the first one arrived, both are billed)")
            default:
                guard try await move([.inDoubt], .failed, "operator resolve: fail", { $0.reason = "in doubt; failed by operator" }) else { break }
                handle(.released(key))
                publish(.jobsChanged([key]))
                await checkBatchEnd(key.batch)
                return ActionResult(ok: true, message: "failed")
            }
        }
        return ActionResult(ok: false, message: "\(key) changed state meanwhile; look again with `reelctl show \(key)`")
    }

    func operate(_ action: BatchAction, onBatch name: String) async -> ActionResult {
        switch action {
        case .pause, .resume:
            let paused = action == .pause
            do {
                _ = try await store.updateBatch(name) { $0.paused = paused }
            } catch {
                return Self.storeRefused(error)
            }
            handle(paused ? .pause(batch: name) : .resume(batch: name))
            return ActionResult(ok: true, message: paused ? "batch \(name) paused: nothing new is submitted; running renders finish"
                                                           : "batch \(name) resumed")
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
                    let r = await operate(.cancel, on: row.key)
                    if r.ok { cancelled += 1 } else { refused.append("\(row.key.id): \(r.message)") }
                }
                cursor = page.nextCursor
            } while cursor != nil
            let extra = refused.isEmpty ? "" : "; not cancelled: " + refused.prefix(5).joined(separator: "; ")
            return ActionResult(ok: refused.isEmpty, message: "cancelled \(cancelled) job(s) of \(name)\(extra)")
        }
    }

    func operate(_ action: GlobalAction) async -> ActionResult {
        switch action {
        case .pause:
            do { try await store.setSetting("paused", to: "1") } catch { return Self.storeRefused(error) }
            handle(.pause(batch: nil))
            return ActionResult(ok: true, message: "paused: nothing new is submitted; running renders finish and are delivered")
        case .resume:
            do { try await store.setSetting("paused", to: nil) } catch { return Self.storeRefused(error) }
            handle(.resume(batch: nil))
            return ActionResult(ok: true, message: "resumed")
        case .drain:
            handle(.drain)
            return ActionResult(ok: true, message: "draining: running renders finish and are delivered; nothing new is submitted until `reelctl resume`")
        case .reload:
            return ActionResult(ok: false, message: "reload is handled by the daemon")
        }
    }
}
