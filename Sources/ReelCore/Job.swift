/// A reference as the manifest gives it: a URL the provider fetches, or a local file Reel uploads first.
public enum ReferenceSource: Hashable, Sendable, Codable {
    case url(String)
    case path(String)

    private enum CodingKeys: String, CodingKey { case url, path }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let u = try c.decodeIfPresent(String.self, forKey: .url) {
            self = .url(u)
        } else {
            self = .path(try c.decode(String.self, forKey: .path))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .url(let u): try c.encode(u, forKey: .url)
        case .path(let p): try c.encode(p, forKey: .path)
        }
    }
}

/// What a local reference turned out to be when probed at intake.
public enum MediaKind: String, Sendable, Codable {
    case video
    case image
}

/// A reference after intake: where it came from, what it is, and (for local files) its content hash.
public struct Reference: Hashable, Sendable, Codable {
    public var source: ReferenceSource
    /// Known for local files (probed) and guessed from the extension for URLs; nil when unknown.
    public var kind: MediaKind?
    /// Seconds, for videos whose duration is known (local videos are probed).
    public var durationSeconds: Double?
    /// Hex sha256 of a local file's content.
    public var sha256: String?
    public var bytes: Int64?

    public init(source: ReferenceSource, kind: MediaKind? = nil, durationSeconds: Double? = nil,
                sha256: String? = nil, bytes: Int64? = nil) {
        self.source = source
        self.kind = kind
        self.durationSeconds = durationSeconds
        self.sha256 = sha256
        self.bytes = bytes
    }
}

/// One render as Reel will request it: a manifest job with the batch defaults merged in and every field checked.
public struct JobSpec: Hashable, Sendable, Codable {
    public var key: JobKey
    public var model: RenderModel
    public var resolution: Resolution
    public var aspectRatio: AspectRatio
    public var durationSeconds: Int
    public var prompt: String
    public var negativePrompt: String?
    public var references: [Reference]
    public var shotType: ShotType?
    public var seed: Int?
    /// nil = provider default (audio on). `false` only with the flash model.
    public var audio: Bool?
    public var watermark: Bool?
    public var priority: Priority
    /// Seconds since 1970 (UTC), from the manifest's RFC 3339 `deadline`.
    public var deadline: Double?
    public var budgetUSD: Double?

    public init(key: JobKey, model: RenderModel, resolution: Resolution, aspectRatio: AspectRatio,
                durationSeconds: Int, prompt: String, negativePrompt: String? = nil, references: [Reference],
                shotType: ShotType? = nil, seed: Int? = nil, audio: Bool? = nil, watermark: Bool? = nil,
                priority: Priority = .normal, deadline: Double? = nil, budgetUSD: Double? = nil) {
        self.key = key
        self.model = model
        self.resolution = resolution
        self.aspectRatio = aspectRatio
        self.durationSeconds = durationSeconds
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.references = references
        self.shotType = shotType
        self.seed = seed
        self.audio = audio
        self.watermark = watermark
        self.priority = priority
        self.deadline = deadline
        self.budgetUSD = budgetUSD
    }

    public var frameSize: FrameSize { FrameSize.of(resolution, aspectRatio) }

    /// Whether the delivered MP4 must carry an audio track.
    public var expectsAudio: Bool { audio ?? true }

    /// Whole seconds of reference video the render reads (a video whose length intake could not probe counts as
    /// the provider's input-video quota), for run-time predictions.
    public var referenceVideoSeconds: Int {
        let videos = references.filter { $0.kind == .video }.map { $0.durationSeconds ?? Billing.inputVideoQuotaSeconds }
        return Int(videos.reduce(0, +).rounded())
    }

    /// Billed seconds as the provider will compute them, from what intake knows of the references.
    public var estimatedBilledSeconds: Double {
        let videos = references.filter { $0.kind == .video }.map { $0.durationSeconds ?? Billing.inputVideoQuotaSeconds }
        return Billing.billedSeconds(outputSeconds: durationSeconds, videoSeconds: videos, referenceCount: references.count)
    }
}
