/// A forecast of every job the scheduler holds, from one replay of the queue.
///
/// `GET /v1/jobs` shows an ETA on each row and `GET /v1/batches` one per batch; replaying a queue of 100,000 jobs
/// for each row (or each batch) of each request would cost the control API its latency. The daemon computes one
/// `ETAForecast` from a copy of the scheduler (a value, so the copy is free and the replay runs off the engine's
/// actor) and answers listings from it until it is a second old.
public struct ETAForecast: Sendable {
    /// When the forecast was made.
    public let at: Timestamp
    /// p50/p90 render finish per job; a job without an entry has no ETA (terminal, paused, or submission stopped).
    public let jobs: [JobKey: ETA]
    /// The finish of each batch's last render; absent when one of its jobs cannot be forecast.
    public let batches: [String: ETA]

    public init(at: Timestamp, jobs: [JobKey: ETA], batches: [String: ETA]) {
        self.at = at
        self.jobs = jobs
        self.batches = batches
    }
}

extension Scheduler {
    /// ETAs of every job and batch the scheduler holds, in one replay (the same rules as `eta(of:)` and
    /// `batchETA(_:now:)`, which answer for one job or batch).
    public func forecastAll(now: Timestamp) -> ETAForecast {
        let keys = Set(records.keys)
        let jobs = forecast(now: now, targets: keys)
        var batches: [String: ETA] = [:]
        var unknown: Set<String> = []
        for key in keys {
            guard let e = jobs[key] else {
                unknown.insert(key.batch)
                continue
            }
            let b = batches[key.batch]
            batches[key.batch] = ETA(p50: max(b?.p50 ?? e.p50, e.p50), p90: max(b?.p90 ?? e.p90, e.p90))
        }
        for batch in unknown { batches[batch] = nil }
        return ETAForecast(at: now, jobs: jobs, batches: batches)
    }
}
