import Foundation
import ReelCore

/// A point in time written as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T08:24:46.123Z`.
public struct UTCTime: Sendable, Hashable, Codable, Comparable {
    public var timestamp: Timestamp

    public init(_ timestamp: Timestamp) { self.timestamp = timestamp }

    static let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public var text: String { Date(timeIntervalSince1970: timestamp).formatted(Self.style) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let date = (try? Self.style.parse(s)) ?? (try? Date.ISO8601FormatStyle().parse(s)) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected an RFC 3339 UTC time, got \(s)")
        }
        timestamp = date.timeIntervalSince1970
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }

    public static func < (a: UTCTime, b: UTCTime) -> Bool { a.timestamp < b.timestamp }
}

/// Keeps secrets out of what Reel writes.
public enum Redact {
    /// A URL without credentials, query or fragment: signed URLs (`?Expires=…&Signature=…`, `X-Amz-…`,
    /// `OSSAccessKeyId=…`) and `user:password@` become harmless. Text that is not a URL is returned unchanged.
    public static func url(_ text: String) -> String {
        guard let schemeEnd = text.range(of: "://") else { return text }
        var rest = text[schemeEnd.upperBound...]
        if let cut = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<cut] }
        let hostEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        if let at = rest[..<hostEnd].lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        return String(text[..<schemeEnd.upperBound]) + rest
    }
}

/// The sidecar `<id>.json` beside each delivered video: what was asked, what happened, what it cost,
/// and what was delivered. Written with `Delivery.writeSidecar`; schema `examples/sidecar.schema.json`.
/// Contains no secrets: no API key, no signed URL query strings.
public struct Sidecar: Sendable, Hashable, Codable {
    public static let currentVersion = 1

    public struct Job: Sendable, Hashable, Codable {
        public var batch: String
        public var id: String
    }

    /// The render as requested, after the batch defaults were merged in.
    public struct Request: Sendable, Hashable, Codable {
        public var model: String
        public var prompt: String
        public var negativePrompt: String?
        public var resolution: String
        public var aspectRatio: String
        /// `WIDTHxHEIGHT`, e.g. `1920x1080`.
        public var size: String
        public var durationS: Int
        public var seed: Int?
        public var shotType: String?
        /// Whether an audio track was requested (the provider's default is true).
        public var audio: Bool
        public var watermark: Bool?
        public var priority: String

        public init(spec: JobSpec) {
            model = spec.model.rawValue
            prompt = spec.prompt
            negativePrompt = spec.negativePrompt
            resolution = spec.resolution.rawValue
            aspectRatio = spec.aspectRatio.rawValue
            size = spec.frameSize.description
            durationS = spec.durationSeconds
            seed = spec.seed
            shotType = spec.shotType?.rawValue
            audio = spec.expectsAudio
            watermark = spec.watermark
            priority = spec.priority.rawValue
        }
    }

    public struct ReferenceRecord: Sendable, Hashable, Codable {
        /// `url` or `path`.
        public var source: String
        /// The URL (credentials and query string removed) or the local path.
        public var location: String
        public var kind: String?
        public var sha256: String?
        public var bytes: Int64?
        public var durationS: Double?

        public init(_ reference: Reference) {
            switch reference.source {
            case .url(let u):
                source = "url"
                location = Redact.url(u)
            case .path(let p):
                source = "path"
                location = p
            }
            kind = reference.kind?.rawValue
            sha256 = reference.sha256
            bytes = reference.bytes
            durationS = reference.durationSeconds
        }
    }

    /// One HTTP exchange with the provider.
    public struct AttemptRecord: Sendable, Hashable, Codable {
        /// `create`, `query`, `cancel`, `list`, `upload`, `download`.
        public var kind: String
        /// 0 when no HTTP status was received (transport error).
        public var httpStatus: Int
        public var code: String?
        public var requestId: String?
        public var at: UTCTime

        public init(kind: String, httpStatus: Int, code: String? = nil, requestId: String? = nil, at: Timestamp) {
            self.kind = kind
            self.httpStatus = httpStatus
            self.code = code
            self.requestId = requestId
            self.at = UTCTime(at)
        }

        public init(_ exchange: Exchange, at: Timestamp) {
            self.init(kind: exchange.kind.rawValue, httpStatus: exchange.httpStatus, code: exchange.providerCode,
                      requestId: exchange.requestID, at: at)
        }
    }

    public struct Attempts: Sendable, Hashable, Codable {
        public var count: Int
        public var events: [AttemptRecord]

        public init(_ events: [AttemptRecord]) {
            count = events.count
            self.events = events
        }
    }

    /// Moments in a job's life; all but `queued` may be unknown.
    public struct Timings: Sendable, Hashable, Codable {
        public var queued: UTCTime
        public var submitted: UTCTime?
        public var started: UTCTime?
        public var finished: UTCTime?
        public var downloaded: UTCTime?
        public var delivered: UTCTime?

        public init(queued: Timestamp, submitted: Timestamp? = nil, started: Timestamp? = nil,
                    finished: Timestamp? = nil, downloaded: Timestamp? = nil, delivered: Timestamp? = nil) {
            self.queued = UTCTime(queued)
            self.submitted = submitted.map(UTCTime.init)
            self.started = started.map(UTCTime.init)
            self.finished = finished.map(UTCTime.init)
            self.downloaded = downloaded.map(UTCTime.init)
            self.delivered = delivered.map(UTCTime.init)
        }
    }

    /// What ffprobe saw in the delivered file.
    public struct ProbeRecord: Sendable, Hashable, Codable {
        public var codec: String
        public var width: Int
        public var height: Int
        public var durationS: Double
        public var audio: Bool

        public init(_ probe: MediaProbe) {
            codec = probe.videoCodec ?? "unknown"
            width = probe.width ?? 0
            height = probe.height ?? 0
            durationS = ((probe.durationSeconds ?? 0) * 1000).rounded() / 1000
            audio = probe.hasAudio
        }
    }

    public struct FileRecord: Sendable, Hashable, Codable {
        /// Name inside the batch directory, e.g. `hero-001.mp4`.
        public var file: String
        public var sha256: String
        public var bytes: Int64
    }

    public var sidecarVersion: Int
    public var reelVersion: String
    public var job: Job
    public var request: Request
    public var references: [ReferenceRecord]
    public var providerTaskIds: [String]
    public var attempts: Attempts
    public var timings: Timings
    public var usage: TaskUsage?
    /// Actual cost from `usage` and the pricing table; absent when either is unknown.
    public var costUsd: Double?
    public var probe: ProbeRecord
    public var mp4: FileRecord

    /// Builds the sidecar of a published video; `cost_usd` is `Cost.actual(usage:spec:pricing:)`.
    public init(spec: JobSpec, delivered: DeliveredFile, providerTaskIDs: [String], attempts: [AttemptRecord],
                timings: Timings, usage: TaskUsage?, pricing: PricingTable, reelVersion: String = ReelVersion.current) {
        sidecarVersion = Self.currentVersion
        self.reelVersion = reelVersion
        job = Job(batch: spec.key.batch, id: spec.key.id)
        request = Request(spec: spec)
        references = spec.references.map(ReferenceRecord.init)
        providerTaskIds = providerTaskIDs
        self.attempts = Attempts(attempts)
        self.timings = timings
        self.usage = usage
        costUsd = usage.flatMap { Cost.actual(usage: $0, spec: spec, pricing: pricing) }
        probe = ProbeRecord(delivered.probe)
        mp4 = FileRecord(file: (delivered.path as NSString).lastPathComponent, sha256: delivered.sha256,
                         bytes: delivered.bytes)
    }
}

/// `batch.json`, written when every job of a batch is terminal (and rewritten when the batch gains jobs).
/// Schema `examples/batch.schema.json`.
public struct BatchManifest: Sendable, Hashable, Codable {
    public static let currentVersion = 1

    public struct JobOutcome: Sendable, Hashable, Codable {
        public var id: String
        public var state: JobState
        /// Why the job did not succeed (failure, cancellation, expiry), or a note for a succeeded one. A job
        /// whose task SUCCEEDED is billed even when it ends without a file: its `cost_usd` is set then too.
        public var reason: String?
        /// The video, relative to the batch directory (`<id>.mp4`); only for succeeded jobs.
        public var output: String?
        /// The sidecar, relative to the batch directory (`<id>.json`).
        public var sidecar: String?
        public var sha256: String?
        public var bytes: Int64?
        public var timings: Sidecar.Timings?
        public var costUsd: Double?

        public init(id: String, state: JobState, reason: String? = nil, delivered: DeliveredFile? = nil,
                    timings: Sidecar.Timings? = nil, costUSD: Double? = nil) {
            self.id = id
            self.state = state
            self.reason = reason
            output = delivered.map { ($0.path as NSString).lastPathComponent }
            sidecar = delivered.map { _ in "\(id).json" }
            sha256 = delivered?.sha256
            bytes = delivered?.bytes
            self.timings = timings
            costUsd = costUSD.map(Cost.rounded)
        }
    }

    /// Number of jobs in each state.
    public struct Totals: Sendable, Hashable, Codable {
        public var jobs = 0
        public var queued = 0, held = 0, retrying = 0, submitting = 0, inDoubt = 0, pending = 0, running = 0
        public var downloading = 0, verifying = 0, succeeded = 0, failed = 0, cancelled = 0, expired = 0

        public init(_ states: [JobState]) {
            jobs = states.count
            for s in states {
                switch s {
                case .queued: queued += 1
                case .held: held += 1
                case .retrying: retrying += 1
                case .submitting: submitting += 1
                case .inDoubt: inDoubt += 1
                case .pending: pending += 1
                case .running: running += 1
                case .downloading: downloading += 1
                case .verifying: verifying += 1
                case .succeeded: succeeded += 1
                case .failed: failed += 1
                case .cancelled: cancelled += 1
                case .expired: expired += 1
                }
            }
        }
    }

    public var batchManifestVersion: Int
    public var reelVersion: String
    public var batch: String
    /// True when every job is terminal.
    public var complete: Bool
    public var generatedAt: UTCTime
    /// Sorted by id.
    public var jobs: [JobOutcome]
    public var totals: Totals
    /// Sum of the jobs' billed costs, delivered or not (jobs without a known cost count as 0).
    public var totalCostUsd: Double
    /// Whether the folder has a `SHA256SUMS`, and why not when it has none.
    public var checksums: Checksums

    /// `SHA256SUMS` lists every delivered video and its sidecar. `sha256sum -c` fails on an empty file ("no
    /// properly formatted checksum lines found"), so a batch that delivered nothing has no `SHA256SUMS` at all,
    /// and says so here; it appears once a job of the batch is delivered (e.g. after a retry).
    public struct Checksums: Sendable, Hashable, Codable {
        /// `SHA256SUMS` when the file exists, nil when nothing was delivered.
        public var file: String?
        /// How many files it lists (two per delivered job: the video and its sidecar).
        public var entries: Int
        /// Why there is no file, when there is none.
        public var note: String?

        public static let fileName = "SHA256SUMS"
        static let nothingDelivered = "no file of this batch was delivered, so there is no SHA256SUMS to check"

        /// What a `SHA256SUMS` of `entries` lines means for the folder.
        public init(entries: Int) {
            self.entries = entries
            file = entries > 0 ? Self.fileName : nil
            note = entries > 0 ? nil : Self.nothingDelivered
        }

        /// What `Delivery.finishBatch` writes for `jobs`: each delivered video and its sidecar.
        init(jobs: [JobOutcome]) {
            self.init(entries: jobs.reduce(0) { n, job in
                guard job.output != nil, job.sha256 != nil else { return n }
                return n + (job.sidecar == nil ? 1 : 2)
            })
        }
    }
    /// The part of `totalCostUsd` billed for jobs that ended without a delivered file (a SUCCEEDED task whose
    /// result failed QC, expired or was cancelled during delivery), and how many such jobs.
    public var billedNotDeliveredUsd: Double
    public var billedNotDeliveredJobs: Int

    public init(batch: String, jobs: [JobOutcome], generatedAt: Timestamp, reelVersion: String = ReelVersion.current) {
        batchManifestVersion = Self.currentVersion
        self.reelVersion = reelVersion
        self.batch = batch
        self.jobs = jobs.sorted { $0.id < $1.id }
        complete = jobs.allSatisfy { $0.state.isTerminal }
        self.generatedAt = UTCTime(generatedAt)
        totals = Totals(jobs.map(\.state))
        totalCostUsd = Cost.rounded(jobs.compactMap(\.costUsd).reduce(0, +))
        checksums = Checksums(jobs: self.jobs)
        let undelivered = jobs.filter { $0.state.isTerminal && $0.output == nil && $0.costUsd != nil }
        billedNotDeliveredUsd = Cost.rounded(undelivered.compactMap(\.costUsd).reduce(0, +))
        billedNotDeliveredJobs = undelivered.count
    }
}
