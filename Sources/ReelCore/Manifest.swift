/// One problem found in a manifest: where (a JSON pointer into the file), what, and how to fix it.
public struct ManifestIssue: Hashable, Sendable, Codable, CustomStringConvertible {
    public enum Severity: String, Sendable, Codable {
        case error
        case warning
    }

    public var severity: Severity
    /// RFC 6901 pointer into the submitted file, e.g. `/jobs/3/references/0/path`. `""` is the whole document.
    public var pointer: String
    public var message: String
    public var hint: String

    public init(_ severity: Severity, _ pointer: String, _ message: String, hint: String) {
        self.severity = severity
        self.pointer = pointer
        self.message = message
        self.hint = hint
    }

    public var description: String {
        "\(severity.rawValue): \(pointer.isEmpty ? "/" : pointer): \(message) (\(hint))"
    }
}

/// What the facts of a local reference file turned out to be (ffprobe plus fstat), checked by the core's rules.
public struct MediaProbe: Hashable, Sendable, Codable {
    /// ffprobe's `format_name`, e.g. `mov,mp4,m4a,3gp,3g2,mj2`, `png_pipe`, `image2`.
    public var formatName: String
    public var kind: MediaKind?
    public var durationSeconds: Double?
    public var width: Int?
    public var height: Int?
    /// First video stream's codec, e.g. `h264`, `png`, `mjpeg`, `bmp`, `webp`.
    public var videoCodec: String?
    public var hasAudio: Bool
    public var bytes: Int64
    public var pixelFormat: String?

    public init(formatName: String, kind: MediaKind?, durationSeconds: Double? = nil, width: Int? = nil,
                height: Int? = nil, videoCodec: String? = nil, hasAudio: Bool = false, bytes: Int64,
                pixelFormat: String? = nil) {
        self.formatName = formatName
        self.kind = kind
        self.durationSeconds = durationSeconds
        self.width = width
        self.height = height
        self.videoCodec = videoCodec
        self.hasAudio = hasAudio
        self.bytes = bytes
        self.pixelFormat = pixelFormat
    }
}

/// The result of validating one manifest file.
public struct ManifestReport: Hashable, Sendable, Codable {
    /// The batch name when it could be read, even from an invalid file.
    public var batch: String?
    /// Every job, defaults merged; empty when the file has errors (a manifest is taken whole or not at all).
    public var jobs: [JobSpec]
    public var issues: [ManifestIssue]

    public init(batch: String?, jobs: [JobSpec], issues: [ManifestIssue]) {
        self.batch = batch
        self.jobs = jobs
        self.issues = issues
    }

    public var errors: [ManifestIssue] { issues.filter { $0.severity == .error } }
    public var warnings: [ManifestIssue] { issues.filter { $0.severity == .warning } }
    public var isAccepted: Bool { errors.isEmpty }
}
