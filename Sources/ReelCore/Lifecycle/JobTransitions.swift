/// The one transition table of a job's life. `JobLifecycle` never asks for a move it forbids, and the store's
/// compare-and-set refuses every move it forbids (`StoreError.illegalTransition`, nothing written).
public enum JobTransitions {
    /// The states a job in `state` may move to.
    public static func successors(of state: JobState) -> Set<JobState> {
        switch state {
        // `retrying` from `queued`: a create that never left (upload throttled, nothing sent) waits out its backoff.
        case .queued: [.submitting, .retrying, .held, .cancelled, .failed]
        case .held: [.queued, .cancelled, .failed]
        case .retrying: [.queued, .submitting, .held, .cancelled, .failed]
        case .submitting: [.pending, .running, .inDoubt, .retrying, .failed, .queued, .held, .cancelled]
        case .inDoubt: [.pending, .running, .downloading, .queued, .submitting, .failed, .cancelled]
        case .pending: [.running, .downloading, .retrying, .failed, .cancelled, .expired, .inDoubt]
        case .running: [.downloading, .retrying, .failed, .cancelled, .expired, .inDoubt]
        case .downloading: [.verifying, .downloading, .retrying, .failed, .expired, .running]
        case .verifying: [.succeeded, .downloading, .failed, .expired]
        case .succeeded: []
        case .failed: [.queued]
        case .cancelled: [.queued]
        case .expired: [.queued]
        }
    }

    public static func allows(_ from: JobState, _ to: JobState) -> Bool { successors(of: from).contains(to) }

    /// Every non-terminal state that may move to `target`: where a job can be ended in `target` from.
    public static func endableStates(into target: JobState) -> Set<JobState> {
        Set(JobState.allCases.filter { !$0.isTerminal && allows($0, target) })
    }
}
