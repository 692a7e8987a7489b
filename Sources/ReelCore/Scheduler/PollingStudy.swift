/// A test-free comparison of the SDK's polling with `PollPolicy` on given run times (docs/scheduler.md has numbers).
/// Network latency is ignored; a task finishing at T is detected by the first poll at or after T.
public enum PollingStudy {
    /// Polls per task and detection latency (seconds from the task's end to the poll that sees it), both ways.
    public struct Result: Sendable, Equatable {
        public var sdkPollsPerJob: Double
        public var reelPollsPerJob: Double
        public var sdkP95Latency: Double
        public var reelP95Latency: Double
        public var sdkMeanLatency: Double
        public var reelMeanLatency: Double
    }

    /// The official SDK's `wait()`: query at once, sleep 1 s, double the sleep after every 3rd query, cap 5 s.
    public static func sdkPolls(runTime: Double) -> (polls: Int, latency: Double) {
        var t = 0.0, wait = 1.0, step = 0
        while true {
            step += 1
            if t >= runTime { return (step, t - runTime) }
            if step % 3 == 0 { wait = min(wait * 2, 5) }
            t += wait
        }
    }

    /// Reel's schedule for a task of `runTime` seconds, with `history` as the learned sample (empty: the prior).
    public static func reelPolls(runTime: Double, history: [Double], policy: PollPolicy) -> (polls: Int, latency: Double) {
        reelPolls(runTime: runTime, distribution: RunTimeDistribution(sorted: Array(history.suffix(RunTimeSamples.capacity)).sorted()),
                  policy: policy)
    }

    static func reelPolls(runTime: Double, distribution d: RunTimeDistribution, policy: PollPolicy) -> (polls: Int, latency: Double) {
        var t = policy.nextPoll(elapsed: 0, d)
        var polls = 1
        while t < runTime {
            t = policy.nextPoll(elapsed: t, d)
            polls += 1
        }
        return (polls, t - runTime)
    }

    /// Both schedules over `runTimes`, Reel's learned from `history`.
    public static func compare(runTimes: [Double], history: [Double], policy: PollPolicy = PollPolicy()) -> Result {
        let d = RunTimeDistribution(sorted: Array(history.suffix(RunTimeSamples.capacity)).sorted())
        var sdk: [(Int, Double)] = [], reel: [(Int, Double)] = []
        for r in runTimes {
            sdk.append(sdkPolls(runTime: r))
            reel.append(reelPolls(runTime: r, distribution: d, policy: policy))
        }
        func summary(_ xs: [(Int, Double)]) -> (Double, Double, Double) {
            let n = Double(max(1, xs.count))
            let lat = xs.map(\.1).sorted()
            let p95 = lat.isEmpty ? 0 : lat[min(lat.count - 1, Int((Double(lat.count) * 0.95).rounded(.up)) - 1)]
            return (Double(xs.map(\.0).reduce(0, +)) / n, p95, lat.reduce(0, +) / n)
        }
        let s = summary(sdk), r = summary(reel)
        return Result(sdkPollsPerJob: s.0, reelPollsPerJob: r.0, sdkP95Latency: s.1, reelP95Latency: r.1,
                      sdkMeanLatency: s.2, reelMeanLatency: r.2)
    }
}
