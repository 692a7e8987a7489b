@testable import ReelCore

/// Shorthands for scheduler tests on a manual clock (times are plain seconds from 0).
func jk(_ text: String) -> JobKey { JobKey(parsing: text)! }

func sjob(_ text: String, _ priority: Priority = .normal, deadline: Double? = nil, at: Double = 0,
          model: RenderModel = .r2v, attempts: Int = 0) -> SchedulerJob {
    SchedulerJob(key: jk(text), priority: priority, deadline: deadline, enqueuedAt: at, model: model,
                 resolution: .p1080, durationSeconds: 5, attempts: attempts)
}

extension Array where Element == SchedulerAction {
    var submits: [JobKey] {
        compactMap { if case .submit(let k) = $0 { k } else { nil } }
    }

    var polls: [JobKey] {
        compactMap { if case .poll(let k, _) = $0 { k } else { nil } }
    }
}

/// A scheduler with generous rates so only the rule under test decides; `taskList: false` polls each task.
/// `concurrency` and `submitPerSecond` are each pool's limits and `concurrency` also the overall cap, so a test
/// that mixes models still sees `concurrency` slots in all; `perModel` gives a pool fewer slots.
func makeScheduler(concurrency: Int = 5, submitPerSecond: Double = 1000, queryPerSecond: Double = 1000,
                   maxAttempts: Int = 5, perModel: [RenderModel: Int] = [:], taskList: Bool = true,
                   seed: UInt64 = 1) -> Scheduler {
    var polling = PollPolicy()
    polling.useTaskList = taskList
    let pools = perModel.mapValues { PoolLimits(concurrency: $0, submitPerSecond: submitPerSecond) }
    return Scheduler(limits: SchedulerLimits(pools: pools,
                                             defaultPool: PoolLimits(concurrency: concurrency,
                                                                     submitPerSecond: submitPerSecond),
                                             concurrency: concurrency, queryPerSecond: queryPerSecond,
                                             maxAttempts: maxAttempts, polling: polling),
                     seed: seed)
}

extension SchedulerSnapshot {
    /// The snapshot of one model's pool.
    func pool(_ model: RenderModel) -> PoolSnapshot { pools.first { $0.key.model == model }! }
}

extension Scheduler {
    /// Runs a job that was just submitted to completion: created, SUCCEEDED, downloaded. Returns what followed.
    mutating func complete(_ key: JobKey, now: Double) -> [SchedulerAction] {
        var out = handle(.submitted(key, taskID: "t-\(key.id)"), now: now)
        out += handle(.polled(key, .succeeded), now: now)
        out += handle(.released(key), now: now)
        return out
    }

    /// With concurrency 1: starts from a paused scheduler holding `jobs`, resumes and returns the submit order.
    static func submitOrder(_ jobs: [SchedulerJob], concurrency: Int = 1) -> [JobKey] {
        var s = makeScheduler(concurrency: concurrency)
        _ = s.handle(.pause(batch: nil), now: 0)
        for j in jobs { _ = s.handle(.enqueued(j), now: 0) }
        var order: [JobKey] = []
        var pending = s.handle(.resume(batch: nil), now: 1).submits
        var t = 1.0
        while let k = pending.first {
            pending.removeFirst()
            order.append(k)
            t += 1
            pending += s.complete(k, now: t).submits
        }
        return order
    }
}
