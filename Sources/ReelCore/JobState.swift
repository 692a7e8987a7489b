/// The life of a job. Every change is recorded with a time and a cause.
public enum JobState: String, Sendable, Codable, CaseIterable {
    case queued
    case held
    case retrying
    case submitting
    /// The create call's outcome is unknown (crash or timeout mid-call): never resubmitted silently.
    case inDoubt = "in_doubt"
    case pending
    case running
    case downloading
    case verifying
    case succeeded
    case failed
    case cancelled
    /// The result's 24-hour window passed before it was downloaded: billed, but lost.
    case expired

    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled, .expired: true
        default: false
        }
    }

    /// The job holds one of the account's render slots (the provider counts PENDING + RUNNING).
    public var holdsRenderSlot: Bool {
        switch self {
        case .submitting, .inDoubt, .pending, .running: true
        default: false
        }
    }

    /// A remote task exists (or may exist) for the job.
    public var hasRemoteTask: Bool {
        switch self {
        case .pending, .running, .downloading, .verifying: true
        default: false
        }
    }

    /// The transitions the store accepts (`JobTransitions`, the one table). Anything else is a bug and is refused
    /// by the compare-and-set.
    public var successors: Set<JobState> { JobTransitions.successors(of: self) }

    public func canMove(to next: JobState) -> Bool { JobTransitions.allows(self, next) }
}
