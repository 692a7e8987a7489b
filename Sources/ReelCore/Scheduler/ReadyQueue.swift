/// A queued job's place: earliest deadline first (none = +∞); then its arrival window (older windows first, so
/// nothing that arrived later overtakes it for long); inside a window the longest predicted run time first, so the
/// last wave of a backlog is made of short renders; then age, then key. Fair share between batches is applied on
/// top, across the heads of the per-batch heaps.
struct QueueEntry: Comparable, Sendable {
    var deadline: Double
    var window: Double
    /// Predicted run time in seconds (0 for every job when tail-aware order is off: plain age order).
    var predicted: Double
    var enqueuedAt: Double
    var key: JobKey
    var generation: UInt64

    static func < (a: QueueEntry, b: QueueEntry) -> Bool {
        if a.deadline != b.deadline { return a.deadline < b.deadline }
        if a.window != b.window { return a.window < b.window }
        if a.predicted != b.predicted { return a.predicted > b.predicted }
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
    private struct BatchHeap: Sendable {
        var batch: String
        var heap = Heap<QueueEntry>()
    }

    private struct Lane: Sendable {
        var batches: [BatchHeap] = []
        var index: [String: Int] = [:]

        mutating func remove(at i: Int) {
            index[batches[i].batch] = nil
            if i != batches.count - 1 {
                batches.swapAt(i, batches.count - 1)
                index[batches[i].batch] = i
            }
            batches.removeLast()
        }
    }

    private static let models = RenderModel.allCases
    /// Lane number: (tier, retry, model) → tier·2·M + retry·M + model.
    private var lanes = [Lane](repeating: Lane(), count: 3 * 2 * ReadyQueue.models.count)
    /// Per tier: whether the last pick came from the retry lane (retries never take two slots in a row while fresh
    /// work of the same tier waits).
    private var lastPickWasRetry = [false, false, false]

    private static func lane(tier: Int, retry: Bool, model: Int) -> Int {
        (tier * 2 + (retry ? 1 : 0)) * models.count + model
    }

    /// Files `job`; `predicted` is its predicted run time (0: order by age only).
    mutating func insert(_ job: SchedulerJob, generation: UInt64, retry: Bool, predicted: Double) {
        let l = Self.lane(tier: job.priority.rank, retry: retry, model: Self.models.firstIndex(of: job.model) ?? 0)
        let w = SchedulerTuning.arrivalWindow
        let entry = QueueEntry(deadline: job.deadline ?? .infinity, window: (job.enqueuedAt / w).rounded(.down),
                               predicted: predicted, enqueuedAt: job.enqueuedAt, key: job.key, generation: generation)
        let batch = job.key.batch
        if let i = lanes[l].index[batch] {
            lanes[l].batches[i].heap.push(entry)
        } else {
            lanes[l].index[batch] = lanes[l].batches.count
            lanes[l].batches.append(BatchHeap(batch: batch))
            lanes[l].batches[lanes[l].batches.count - 1].heap.push(entry)
        }
    }

    private struct Candidate {
        var entry: QueueEntry
        var running: Int
        var lane: Int
        var slot: Int

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
            var retried: Candidate?
            for retry in 0..<2 {
                for m in Self.models.indices where modelHasRoom(Self.models[m]) {
                    let l = Self.lane(tier: tier, retry: retry == 1, model: m)
                    var i = 0
                    while i < lanes[l].batches.count {
                        let batch = lanes[l].batches[i].batch
                        if !paused.isEmpty && paused.contains(batch) {
                            i += 1
                            continue
                        }
                        lanes[l].batches[i].heap.dropStale { !isValid($0) }
                        guard let head = lanes[l].batches[i].heap.top else {
                            lanes[l].remove(at: i)
                            continue
                        }
                        let c = Candidate(entry: head, running: running[batch] ?? 0, lane: l, slot: i)
                        if retry == 1 {
                            if retried.map({ c.precedes($0) }) ?? true { retried = c }
                        } else if fresh.map({ c.precedes($0) }) ?? true {
                            fresh = c
                        }
                        i += 1
                    }
                }
            }
            let chosen: Candidate
            let fromRetry: Bool
            switch (fresh, retried) {
            case (nil, nil): continue
            case (let f?, nil): (chosen, fromRetry) = (f, false)
            case (nil, let r?): (chosen, fromRetry) = (r, true)
            case (let f?, let r?):
                (chosen, fromRetry) = lastPickWasRetry[tier] || f.precedes(r) ? (f, false) : (r, true)
            }
            lanes[chosen.lane].batches[chosen.slot].heap.pop()
            lastPickWasRetry[tier] = fromRetry
            return (chosen.entry.key, fromRetry)
        }
        return nil
    }
}
