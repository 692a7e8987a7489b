/// A queued job's place: earliest deadline first (none = +∞), then age, then key. Fair share between batches is
/// applied on top, across the heads of the per-batch heaps.
struct QueueEntry: Comparable, Sendable {
    var deadline: Double
    var enqueuedAt: Double
    var key: JobKey
    var generation: UInt64

    static func < (a: QueueEntry, b: QueueEntry) -> Bool {
        if a.deadline != b.deadline { return a.deadline < b.deadline }
        if a.enqueuedAt != b.enqueuedAt { return a.enqueuedAt < b.enqueuedAt }
        return a.key < b.key
    }

    static func == (a: QueueEntry, b: QueueEntry) -> Bool { a.key == b.key && a.generation == b.generation }
}

/// Jobs waiting for a slot, split into lanes by (tier, fresh or retry, model), each lane a heap per batch.
///
/// Picking looks at one head per (lane, batch), so it costs O(lanes × batches + log n), independent of how many
/// jobs wait. Entries are deleted lazily: a stale generation is skipped when it reaches a head.
struct ReadyQueue: Sendable {
    struct Lane: Hashable, Sendable {
        var tier: Int
        var retry: Bool
        var model: RenderModel
    }

    private var lanes: [Lane: [String: Heap<QueueEntry>]] = [:]
    /// Per tier: whether the last pick came from the retry lane (retries never take two slots in a row while fresh
    /// work of the same tier waits).
    private var lastPickWasRetry = [false, false, false]

    mutating func insert(_ job: SchedulerJob, generation: UInt64, retry: Bool) {
        let lane = Lane(tier: job.priority.rank, retry: retry, model: job.model)
        let entry = QueueEntry(deadline: job.deadline ?? .infinity, enqueuedAt: job.enqueuedAt, key: job.key,
                               generation: generation)
        lanes[lane, default: [:]][job.key.batch, default: Heap()].push(entry)
    }

    private struct Candidate {
        var entry: QueueEntry
        var running: Int
        var lane: Lane

        /// Tier is equal here; deadline, then the batch with fewer running slots, then age, then key.
        func precedes(_ o: Candidate) -> Bool {
            if entry.deadline != o.entry.deadline { return entry.deadline < o.entry.deadline }
            if running != o.running { return running < o.running }
            return entry < o.entry
        }
    }

    /// Removes and returns the next job to submit: best tier first; inside it the best of the fresh and retry heads,
    /// except that a retry never follows a retry while fresh work waits.
    mutating func pick(running: [String: Int], paused: Set<String>, isValid: (QueueEntry) -> Bool,
                       modelHasRoom: (RenderModel) -> Bool) -> (key: JobKey, retry: Bool)? {
        for tier in 0..<3 {
            var fresh: Candidate?
            var retry: Candidate?
            // Arrays of keys, not the live views: mutating a dictionary while a view of it is alive copies it.
            for lane in Array(lanes.keys) where lane.tier == tier {
                guard modelHasRoom(lane.model) else { continue }
                for batch in Array(lanes[lane]!.keys) where !paused.contains(batch) {
                    lanes[lane]![batch]!.dropStale { !isValid($0) }
                    guard let head = lanes[lane]![batch]!.top else {
                        lanes[lane]![batch] = nil
                        continue
                    }
                    let c = Candidate(entry: head, running: running[batch] ?? 0, lane: lane)
                    if lane.retry {
                        if retry.map({ c.precedes($0) }) ?? true { retry = c }
                    } else if fresh.map({ c.precedes($0) }) ?? true {
                        fresh = c
                    }
                }
                if lanes[lane]!.isEmpty { lanes[lane] = nil }
            }
            let chosen: Candidate
            switch (fresh, retry) {
            case (nil, nil): continue
            case (let f?, nil): chosen = f
            case (nil, let r?): chosen = r
            case (let f?, let r?): chosen = lastPickWasRetry[tier] || f.precedes(r) ? f : r
            }
            lanes[chosen.lane]![chosen.entry.key.batch]!.pop()
            lastPickWasRetry[tier] = chosen.lane.retry
            return (chosen.entry.key, chosen.lane.retry)
        }
        return nil
    }
}
