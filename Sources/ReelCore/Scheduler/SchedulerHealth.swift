/// What the scheduler's state says about the provider and the queue, for `/v1/status`, the systemd STATUS line and
/// metrics: one source for the health word and the warnings, so the three never disagree.
public struct SchedulerHealth: Sendable, Equatable {
    /// `ok`, or the most serious condition: `account_blocked`, `breaker_open`, `throttled`, `degraded`, `paused`.
    public var health: String
    /// One line per condition an operator should know of, most serious first.
    public var warnings: [String]
    /// Short phrases for the systemd STATUS line.
    public var notes: [String]

    /// Failures in a row of one call class after which it is reported as failing.
    public static let failingAfter = 3

    public init(_ s: SchedulerSnapshot, limits: SchedulerLimits, now: Timestamp) {
        var warnings: [String] = []
        var notes: [String] = []
        var degraded = false
        if let trouble = s.storeTrouble {
            degraded = true
            warnings.append("degraded: state store refuses writes (\(trouble)); no new creates, work under way waits "
                            + "for its writes and resumes by itself once the store accepts them")
            notes.append("degraded: state store \(trouble)")
        }
        if let block = s.accountBlock {
            warnings.append("submission stopped: \(block)")
            notes.append("provider: \(block)")
        }
        if case .open(let until) = s.breaker {
            warnings.append("provider breaker open for \(Self.seconds(until - now)) after \(s.breakerTrips) failed "
                            + "create call(s) in a row: no creates until it closes")
            notes.append("provider breaker open")
        }
        var throttled = false
        for pool in s.pools {
            if pool.throttleHoldUntil > now {
                throttled = true
                warnings.append("\(pool.key) throttled by the provider: no creates of it for "
                                + Self.seconds(pool.throttleHoldUntil - now))
            }
            if pool.adaptiveCap < pool.limits.concurrency {
                throttled = true
                warnings.append("\(pool.key) concurrency cut to \(pool.concurrencyCap) of \(pool.limits.concurrency) by "
                                + "throttling answers (the account is busy elsewhere); it grows back while no create "
                                + "of it is throttled")
                notes.append("provider throttling \(pool.key) (cap \(pool.concurrencyCap)/\(pool.limits.concurrency))")
            }
        }
        if let until = s.listPollingOffUntil, until > now {
            degraded = true
            warnings.append("task-list polling is off for \(Self.seconds(until - now)) (\(s.listPollingOffReason ?? "failed")): "
                            + "every task is queried on its own meanwhile")
            notes.append("task list off")
        } else if s.listFailuresInRow >= Self.failingAfter - 1, s.listFailuresInRow > 0 {
            degraded = true
            warnings.append("the task list failed \(s.listFailuresInRow) time(s) in a row; tasks are queried on their own")
        }
        if s.queryFailuresInRow >= Self.failingAfter {
            degraded = true
            warnings.append("task queries keep failing: \(s.queryFailuresInRow) in a row")
            notes.append("queries failing")
        }
        if s.unknownTasks > 0 {
            degraded = true
            warnings.append("\(s.unknownTasks) task(s) answer UNKNOWN well inside their 24-hour window (the provider lost "
                            + "them for now); queried again before they go in doubt")
            notes.append("\(s.unknownTasks) task(s) UNKNOWN")
        }
        if s.awaitingOperator > 0 {
            warnings.append("\(s.awaitingOperator) in-doubt job(s) wait for an operator: `reelctl jobs --state in_doubt`, "
                            + "then `reelctl resolve`")
            notes.append("\(s.awaitingOperator) waiting for an operator")
        }
        self.warnings = warnings
        self.notes = notes
        health = if s.accountBlock != nil { "account_blocked" }
            else if case .open = s.breaker { "breaker_open" }
            else if throttled || s.concurrencyCap < 1 { "throttled" }
            else if degraded || s.awaitingOperator > 0 { "degraded" }
            else if s.paused { "paused" }
            else { "ok" }
    }

    static func seconds(_ t: Double) -> String {
        t >= 120 ? "\(Int((t / 60).rounded())) min" : "\(Int(t.rounded(.up))) s"
    }
}
