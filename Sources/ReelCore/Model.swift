/// The provider's models and the output formats they render.
public enum RenderModel: String, Sendable, Codable, CaseIterable {
    case r2v = "wan2.6-r2v"
    case r2vFlash = "wan2.6-r2v-flash"

    /// Only the flash model can render without audio (`parameters.audio = false`).
    public var supportsSilentOutput: Bool { self == .r2vFlash }

    /// The model's id on the Vercel AI Gateway (`ai-model-id`; reference §2).
    public var gatewayModelID: String {
        switch self {
        case .r2v: "alibaba/wan-v2.6-r2v"
        case .r2vFlash: "alibaba/wan-v2.6-r2v-flash"
        }
    }

    public init?(gatewayModelID: String) {
        guard let model = Self.allCases.first(where: { $0.gatewayModelID == gatewayModelID }) else { return nil }
        self = model
    }
}

public enum Resolution: String, Sendable, Codable, CaseIterable {
    case p720 = "720p"
    case p1080 = "1080p"

    /// The provider's `usage.SR` value.
    public var scanLines: Int { self == .p720 ? 720 : 1080 }
}

public enum AspectRatio: String, Sendable, Codable, CaseIterable {
    case landscape = "16:9"
    case portrait = "9:16"
    case square = "1:1"
    case classic = "4:3"
    case classicPortrait = "3:4"
}

public enum ShotType: String, Sendable, Codable, CaseIterable {
    case single
    case multi
}

public enum Priority: String, Sendable, Codable, CaseIterable, Comparable {
    case rush
    case normal
    case bulk

    /// Lower rank runs first.
    public var rank: Int {
        switch self {
        case .rush: 0
        case .normal: 1
        case .bulk: 2
        }
    }

    public static func < (a: Priority, b: Priority) -> Bool { a.rank < b.rank }
}

/// A frame size in pixels, rendered by the provider as `"W*H"`.
public struct FrameSize: Hashable, Sendable, Codable, CustomStringConvertible {
    public let width: Int
    public let height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// The provider's `parameters.size` string, e.g. `1280*720`.
    public var providerString: String { "\(width)*\(height)" }
    public var description: String { "\(width)x\(height)" }

    /// Parses the provider's `W*H` form.
    public init?(providerString s: String) {
        let parts = s.split(separator: "*")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else { return nil }
        self.init(width: w, height: h)
    }

    /// The table of the provider reference §1.3: the ten sizes wan2.6 r2v accepts.
    public static func of(_ resolution: Resolution, _ aspect: AspectRatio) -> FrameSize {
        switch (resolution, aspect) {
        case (.p720, .landscape): FrameSize(width: 1280, height: 720)
        case (.p720, .portrait): FrameSize(width: 720, height: 1280)
        case (.p720, .square): FrameSize(width: 960, height: 960)
        case (.p720, .classic): FrameSize(width: 1088, height: 832)
        case (.p720, .classicPortrait): FrameSize(width: 832, height: 1088)
        case (.p1080, .landscape): FrameSize(width: 1920, height: 1080)
        case (.p1080, .portrait): FrameSize(width: 1080, height: 1920)
        case (.p1080, .square): FrameSize(width: 1440, height: 1440)
        case (.p1080, .classic): FrameSize(width: 1632, height: 1248)
        case (.p1080, .classicPortrait): FrameSize(width: 1248, height: 1632)
        }
    }

    /// Every size the provider accepts, with the resolution tier it belongs to.
    public static let allowed: [(Resolution, AspectRatio, FrameSize)] = Resolution.allCases.flatMap { r in
        AspectRatio.allCases.map { a in (r, a, FrameSize.of(r, a)) }
    }

    /// The tier of an allowed provider size, nil when the size is not one of the ten.
    public static func tier(ofProviderSize s: String) -> Resolution? {
        allowed.first { $0.2.providerString == s }?.0
    }
}

/// Limits of the provider (reference §1.3, §1.8) that validation and the sandbox both enforce.
public enum ProviderLimits {
    public static let durationRange = 2...10
    public static let seedRange = 0...2_147_483_647
    public static let maxReferences = 5
    public static let maxVideoReferences = 3
    public static let maxPromptCharacters = 1500
    public static let maxNegativePromptCharacters = 500
    public static let videoReferenceSeconds = 2.0...30.0
    public static let maxVideoReferenceBytes = 100 * 1024 * 1024
    public static let imageReferenceSide = 240...5000
    public static let maxImageReferenceBytes = 10 * 1024 * 1024
    public static let outputFramesPerSecond = 30
    /// Results and task ids live this long at the provider.
    public static let resultLifetimeSeconds = 24.0 * 3600
}
