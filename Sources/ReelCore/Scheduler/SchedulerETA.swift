/// ETAs: a list-scheduling forecast over the real queue order.
///
/// Each slot carries a median free time, a variance and the pool of the job in it. Slot holders occupy their slots
/// until their conditional median finish (given how long they have run); then the queue is replayed with the
/// scheduler's own pick (tiers, EDF, fair share, retry alternation, retry times, pool caps), each job starting when
/// the earliest slot frees and its pool has room, and adding its median run time and its variance to that slot. p90 = p50 + 1.2816·σ (σ from the job's p50–p90 spread, summed
/// along the slot's path). Paused batches and a globally stopped scheduler get no ETA for queued jobs.
extension Scheduler {
    private struct Slot: Comparable {
        var free: Double
        var variance: Double
        var batch: String?
        var pool: PoolKey?

        /// At equal times a slot whose job ends goes first, so a slot waiting for a pool sees that pool's room.
        static func < (a: Slot, b: Slot) -> Bool {
            a.free != b.free ? a.free < b.free : (a.pool != nil && b.pool == nil)
        }
        static func == (a: Slot, b: Slot) -> Bool { a.free == b.free && (a.pool == nil) == (b.pool == nil) }
    }

    /// The job's p50/p90 wall-clock finish of its render (not counting the download); nil when unknown or stopped.
    public func eta(of key: JobKey, now: Timestamp) -> ETA? {
        guard records[key] != nil else { return nil }
        return forecast(now: now, targets: [key])[key]
    }

    /// The p50/p90 finish of the last render of `batch`; nil when the scheduler knows no job of it or one of its
    /// queued jobs cannot be forecast (paused).
    public func batchETA(_ batch: String, now: Timestamp) -> ETA? {
        let keys = Set(records.keys.filter { $0.batch == batch })
        guard !keys.isEmpty else { return nil }
        let f = forecast(now: now, targets: keys)
        var out: ETA?
        for key in keys {
            guard let e = f[key] else { return nil }
            out = ETA(p50: max(out?.p50 ?? e.p50, e.p50), p90: max(out?.p90 ?? e.p90, e.p90))
        }
        return out
    }

    /// ETAs of the slot holders and of queued jobs up to the last of `targets` (the replay stops there).
    func forecast(now: Timestamp, targets: Set<JobKey>) -> [JobKey: ETA] {
        let z = SchedulerTuning.z90
        var result: [JobKey: ETA] = [:]
        var remaining = targets
        var slots = Heap<Slot>()
        for key in targets where records[key].map({ $0.phase == .downloading || !$0.phase.holdsSlot && $0.phase.taskID != nil }) ?? false {
            result[key] = ETA(p50: now, p90: now)
            remaining.remove(key)
        }
        for key in holderKeys {
            guard let rec = records[key] else { continue }
            let d = distribution(key)
            let elapsed: Double
            let start: Double
            if case .remote = rec.phase {
                elapsed = max(0, now - rec.submittedAt)
                start = rec.submittedAt
            } else {
                elapsed = 0
                start = now
            }
            let p50 = max(now, start + d.conditionalQuantile(0.5, elapsed: elapsed))
            let p90 = max(p50, start + d.conditionalQuantile(0.9, elapsed: elapsed))
            let sigma = (p90 - p50) / z
            result[key] = ETA(p50: p50, p90: p90)
            remaining.remove(key)
            slots.push(Slot(free: p50, variance: sigma * sigma, batch: key.batch, pool: rec.job.pool))
        }
        let cap = max(1, concurrencyCap)
        while slots.count < cap { slots.push(Slot(free: now, variance: 0, batch: nil)) }
        guard !remaining.isEmpty, submissionBlocked(now: nil) == nil else { return result }

        var q = queue
        var timers = retryTimers
        var running = runningByBatch
        var slotCount = slots.count
        var inPool: [PoolKey: Int] = [:]
        for key in holderKeys { if let p = records[key]?.job.pool { inPool[p, default: 0] += 1 } }
        let poolCaps = pools.mapValues(\.cap)
        var spread: [RunTimeKey: (Double, Double)] = [:]   // median and σ per run-time key
        let records = self.records
        let valid: (QueueEntry) -> Bool = { e in
            guard let r = records[e.key], r.generation == e.generation else { return false }
            switch r.phase {
            case .queued, .waiting: return true
            default: return false
            }
        }
        while !remaining.isEmpty, var slot = slots.pop() {
            if let b = slot.batch {
                running[b, default: 1] -= 1
                slot.batch = nil
            }
            if let p = slot.pool {
                inPool[p, default: 1] -= 1
                slot.pool = nil
            }
            if slotCount > cap {   // holders beyond a shrunken cap free their slot for good
                slotCount -= 1
                continue
            }
            let t = max(now, slot.free)
            while let timer = timers.top, timer.at <= t {
                timers.pop()
                guard let r = records[timer.key], r.generation == timer.generation,
                      case .waiting(_, let fresh) = r.phase else { continue }
                q.insert(r.job, generation: r.generation, retry: !fresh, predicted: orderKey(r.job))
            }
            let room = inPool
            guard let (key, _) = q.pick(running: running, paused: pausedBatches, isValid: valid, modelHasRoom: { m in
                let p = PoolKey(model: m)
                return room[p, default: 0] < poolCaps[p, default: 0]
            }) else {
                // Nothing can start here now: wait for the next job to end (its pool gets room) or a retry time.
                let nextEnd = slots.items.lazy.filter { $0.pool != nil }.map(\.free).min()
                guard let at = [nextEnd, timers.top?.at].compactMap({ $0 }).min() else { break }
                slots.push(Slot(free: max(t, at), variance: slot.variance, batch: nil))
                continue
            }
            let runKey = records[key]!.job.runTimeKey
            let (median, sigma) = spread[runKey] ?? {
                var d = runTimes.distribution(runKey)
                d.priorRange = limits.polling.priorRunTime
                let m = (d.quantile(0.5), (d.quantile(0.9) - d.quantile(0.5)) / z)
                spread[runKey] = m
                return m
            }()
            let p50 = t + median
            let variance = slot.variance + sigma * sigma
            result[key] = ETA(p50: p50, p90: p50 + z * variance.squareRoot())
            remaining.remove(key)
            running[key.batch, default: 0] += 1
            inPool[records[key]!.job.pool, default: 0] += 1
            slots.push(Slot(free: p50, variance: variance, batch: key.batch, pool: records[key]!.job.pool))
        }
        return result
    }

    /// Raises `.deadlineAtRisk` once for each job whose p90 finish is after its deadline.
    ///
    /// The forecast costs O(position of the last unwarned deadline job), so it does not run on every tick: the next
    /// check comes after half the smallest slack (deadline − p90), clamped to [1 min, 1 h], or 1 min after anything
    /// that can push jobs back (new work, priority change, new limits, resume, a shrunken cap).
    mutating func checkDeadlines(now: Timestamp, _ out: inout [SchedulerAction]) {
        var atRisk: [(JobKey, ETA, Timestamp)] = []
        var minSlack = Double.infinity
        lastDeadlineCheck = now
        for (key, eta) in forecast(now: now, targets: unwarnedDeadlines) {
            guard unwarnedDeadlines.contains(key), let deadline = records[key]?.job.deadline else { continue }
            if eta.p90 > deadline {
                atRisk.append((key, eta, deadline))
            } else {
                minSlack = min(minSlack, deadline - eta.p90)
            }
        }
        let interval = SchedulerTuning.deadlineCheckInterval
        nextDeadlineCheck = now + min(SchedulerTuning.deadlineCheckMaxInterval, max(interval, minSlack / 2))
        for (key, eta, deadline) in atRisk.sorted(by: { $0.0 < $1.0 }) {
            unwarnedDeadlines.remove(key)
            out.append(.deadlineAtRisk(key, p90: eta.p90, deadline: deadline))
        }
    }

    /// Something may have pushed jobs back: check deadlines again within a minute of the last check.
    mutating func deadlinesMayHaveMoved(now: Timestamp) {
        guard !unwarnedDeadlines.isEmpty else { return }
        nextDeadlineCheck = min(nextDeadlineCheck, max(now, lastDeadlineCheck + SchedulerTuning.deadlineCheckInterval))
    }
}
