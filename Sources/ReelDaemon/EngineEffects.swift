import Foundation
import Logging
import ReelCore
import ReelStore

// The engine as the executor of a job's `JobLifecycle`: it builds the lifecycle from the stored row, feeds it what
// happened, and carries out the effects it returns. The effects that are the caller's next I/O step (fetch,
// verify, a query, a create call, an operator's answer) come back to the caller.
extension Engine {
    var lifecyclePolicy: JobLifecycle.Policy {
        JobLifecycle.Policy(resubmitInDoubt: options.resubmitInDoubt, downloadAttempts: options.downloadAttempts,
                            retryBaseDelay: options.limits.baseDelay, retryMaxDelay: options.limits.maxDelay,
                            pricing: options.pricing)
    }

    /// The job's lifecycle from its stored row; `state` when the engine knows it moved since (the write-ahead of a
    /// create call committed `submitting`).
    func lifecycle(_ row: JobRow, as state: JobState? = nil) -> JobLifecycle {
        JobLifecycle(key: row.key, state: state ?? row.state,
                     facts: JobLifecycle.Facts(spec: row.spec, taskID: row.taskID, submittedAt: row.submittedAt,
                                               videoURL: row.videoURL, urlExpiresAt: row.urlExpiresAt,
                                               usage: row.usage, costUSD: row.costUSD, reason: row.reason),
                     policy: lifecyclePolicy)
    }

    /// What is left for the caller once the generic effects are carried out.
    struct Steps {
        /// The effects the caller performs itself, in order.
        var next: [LifecycleEffect] = []
        /// A guarding move did not happen (the job was not where the lifecycle thought): the rest was skipped.
        var refused = false
    }

    /// Carries out `effects` for `key`. Every write is durable (`durably`): a store that refuses it makes the engine
    /// degraded and the write is tried again until it succeeds; only if the engine stops meanwhile does the write
    /// count as not made (the rest is then skipped).
    @discardableResult
    func execute(_ effects: [LifecycleEffect], for key: JobKey) async -> Steps {
        do {
            return try await carryOut(effects, for: key, strict: false)
        } catch {
            logger.error("cannot carry out the job's next step", metadata: ["job_id": "\(key)", "error": "\(error)"])
            return Steps(refused: true)
        }
    }

    /// Carries out `effects` for `key`; a store that cannot write throws, and nothing after it is done (an
    /// operator is told; a create whose task id cannot be committed is in doubt).
    @discardableResult
    func executeStrictly(_ effects: [LifecycleEffect], for key: JobKey) async throws -> Steps {
        try await carryOut(effects, for: key, strict: true)
    }

    private func carryOut(_ effects: [LifecycleEffect], for key: JobKey, strict: Bool) async throws -> Steps {
        var steps = Steps()
        for effect in effects {
            switch effect {
            case .move(let move):
                let changes = move.changes
                let moved: Bool
                if strict {
                    moved = try await store.transition(key, from: move.from, to: move.to, cause: move.cause,
                                                       now: clock.now(), update: { changes.apply(to: &$0) })
                    if moved { publish(.jobsChanged([key])) }
                } else {
                    moved = await record(key, to: move.to, from: move.from, cause: move.cause) { changes.apply(to: &$0) }
                }
                if !moved && move.guarding {
                    steps.refused = true
                    return steps
                }
            case .update(let states, let changes):
                let write = { [store, clock] in
                    try await store.update(key, ifIn: states, now: clock.now(), { changes.apply(to: &$0) })
                }
                let changed = strict ? try await write() : await durably("record a change of the job", job: key, write)
                if changed == true { publish(.jobsChanged([key])) }
            case .commitTask(let taskID, let status):
                // Closes the in-doubt window.
                let write = { [store, clock] in
                    try await store.commitTaskID(key, taskID: taskID, status: status, now: clock.now())
                }
                if strict {
                    _ = try await write()
                } else if await durably("record the task id", job: key, write) == nil {
                    return Steps(refused: true)
                }
                publish(.jobsChanged([key]))
            case .adopt(let taskID, let how):
                await adopt(key, taskID: taskID, how: how)
            case .refuseSubmission(let countsAsAttempt, let reason):
                let write = { [store, clock] in
                    try await store.refuseSubmission(key, countsAsAttempt: countsAsAttempt, reason: reason,
                                                     now: clock.now())
                }
                if strict {
                    _ = try await write()
                } else if await durably("record a refused create", job: key, write) == nil {
                    return Steps(refused: true)
                }
            case .scheduler(let event):
                handle(event)
            case .enqueue(let freshAttempts):
                if freshAttempts { completedBatches.remove(key.batch) }
                guard let row = await readStore("job \(key)", { try await store.job(key) }) else { break }
                var job = schedulerJob(row)
                if freshAttempts { job.attempts = 0 }
                handle(.enqueued(job))
                publish(.jobsChanged([key]))
            case .reconcile:
                publish(.jobsChanged([key]))
                spawnReconcile(key)
            case .recordRunTime(let model, let resolution, let durationSeconds, let seconds):
                await recordRunTimeSample(RunTimeClass(model: model, resolution: resolution,
                                                       durationSeconds: durationSeconds),
                                          seconds: seconds, now: clock.now())
            case .pause(let seconds):
                try? await Task.sleep(for: .seconds(seconds))
            case .waitForStorage(let what, let error, let seconds):
                await waitForStorage(key, what, error, seconds: seconds)
            case .storageRecovered:
                await storageAcceptsWrites(key)
            case .discardPartial:
                await discardPartial(key)
            case .checkBatchEnd:
                await checkBatchEnd(key.batch)
            case .log(let level, let message, let fields):
                var metadata: Logger.Metadata = ["job_id": "\(key)"]
                for (name, value) in fields { metadata[name] = "\(value)" }
                logger.log(level: level.logging, "\(message)", metadata: metadata)
            case .ignored(let why):
                logger.debug("lifecycle: \(why)", metadata: ["job_id": "\(key)"])
            case .queryCandidates, .waitUntil, .checkAdoptable, .fetch, .verify, .queryResult,
                 .holdBatch, .beginSubmission, .answer:
                steps.next.append(effect)
            }
        }
        return steps
    }
}

extension JobChanges {
    /// Writes these changes into a stored row.
    func apply(to row: inout JobRow) {
        if let reason { row.reason = reason }
        if let holdReason { row.holdReason = holdReason }
        if let nextAttemptAt { row.nextAttemptAt = nextAttemptAt }
        if let videoURL { row.videoURL = videoURL }
        if let urlExpiresAt { row.urlExpiresAt = urlExpiresAt }
        if let usage { row.usage = usage }
        if let addedCostUSD { row.costUSD = Cost.rounded((row.costUSD ?? 0) + addedCostUSD) }
        if let costUSD { row.costUSD = costUSD }
        if let outputPath { row.outputPath = outputPath }
        if let outputSHA256 { row.outputSHA256 = outputSHA256 }
        if let resultBytes { row.resultBytes = resultBytes }
    }
}

extension LifecycleLogLevel {
    var logging: Logger.Level {
        switch self {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}
