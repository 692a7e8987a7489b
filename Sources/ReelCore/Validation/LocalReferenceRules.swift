extension ManifestValidator {
    /// The provider's rules for a local reference file (reference §1.3), applied to what probing found.
    ///
    /// - Parameters:
    ///   - probe: the facts from ffprobe and stat; nil when the file could not be read.
    ///   - probeError: why it could not be read (shown in the message).
    ///   - pointer: where the reference's path sits, e.g. `/jobs/0/references/1/path`.
    ///   - extension: the file name's extension without the dot (any case), "" when none.
    /// - Returns: errors for files the provider would refuse: videos that are not MP4/MOV, not 2–30 s or over
    ///   100 MB; images that are not JPEG/PNG/BMP/WEBP, have a side outside 240–5000 px, are over 10 MB or are PNGs
    ///   with an alpha channel; unreadable files. A warning when the name's extension disagrees with the content.
    public static func checkLocalReference(_ probe: MediaProbe?, probeError: String?, pointer: String,
                                           extension ext: String) -> [ManifestIssue] {
        let accepted = "an MP4/MOV video (2–30 s, ≤ 100 MB) or a JPEG/PNG/BMP/WEBP image (240–5000 px a side, ≤ 10 MB)"
        guard let probe else {
            return [ManifestIssue(.error, pointer, "cannot read the reference file: \(probeError ?? "unknown error")",
                                  hint: "check that the file exists, is readable by the reel service user, and is \(accepted)")]
        }
        var out: [ManifestIssue] = []
        func error(_ message: String, _ hint: String) { out.append(ManifestIssue(.error, pointer, message, hint: hint)) }
        func checkExtension(_ what: String, _ fitting: [String]) {
            guard !fitting.contains(ext.lowercased()) else { return }
            out.append(ManifestIssue(.warning, pointer,
                                     "the file is \(what) but its name ends in \(ext.isEmpty ? "no extension" : "." + ext)",
                                     hint: "rename it to end in \(fitting.map { "." + $0 }.joined(separator: " or ")) so the provider and people reading the manifest see what it is"))
        }
        switch probe.kind {
        case nil:
            error("the file has no video or image stream (ffprobe format \"\(probe.formatName)\")", "give \(accepted)")
        case .video?:
            let isMP4orMOV = probe.formatName.contains("mov") || probe.formatName.contains("mp4")
            if !isMP4orMOV {
                error("video container \"\(probe.formatName)\" is not MP4 or MOV",
                      "re-encode it, e.g. ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p -c:a aac OUT.mp4")
            } else {
                checkExtension("an MP4/MOV video", ["mp4", "mov"])
            }
            let range = ProviderLimits.videoReferenceSeconds
            if let d = probe.durationSeconds {
                if !range.contains(d) {
                    error("the video is \(decimal(d)) s long; the provider accepts \(decimal(range.lowerBound))–\(decimal(range.upperBound)) s",
                          d < range.lowerBound ? "use a clip of at least 2 seconds" : "trim it to 30 seconds or less (ffmpeg -i IN -t 30 -c copy OUT.mp4)")
                }
            } else {
                error("the video's duration cannot be read", "re-mux it: ffmpeg -i IN -c copy OUT.mp4")
            }
            if probe.bytes > Int64(ProviderLimits.maxVideoReferenceBytes) {
                error("the video is \(megabytes(probe.bytes)) MB; the provider accepts at most \(ProviderLimits.maxVideoReferenceBytes >> 20) MB",
                      "re-encode it at a lower bitrate or trim it")
            }
        case .image?:
            let codec = probe.videoCodec ?? ""
            if !["png", "mjpeg", "bmp", "webp"].contains(codec) {
                error("image format \"\(codec.isEmpty ? probe.formatName : codec)\" is not JPEG, PNG, BMP or WEBP",
                      "convert it, e.g. ffmpeg -i IN OUT.png")
            } else {
                checkExtension(codec == "mjpeg" ? "a JPEG image" : "a \(codec.uppercased()) image", codec == "mjpeg" ? ["jpg", "jpeg"] : [codec])
            }
            let side = ProviderLimits.imageReferenceSide
            if let w = probe.width, let h = probe.height {
                if !side.contains(w) || !side.contains(h) {
                    error("the image is \(w)×\(h) px; each side must be \(side.lowerBound)–\(side.upperBound) px",
                          "scale it so both sides are within \(side.lowerBound)–\(side.upperBound), e.g. ffmpeg -i IN -vf scale=W:H OUT.png")
                }
            } else {
                error("the image's size cannot be read", "re-save it as a PNG or JPEG")
            }
            if probe.bytes > Int64(ProviderLimits.maxImageReferenceBytes) {
                error("the image is \(megabytes(probe.bytes)) MB; the provider accepts at most \(ProviderLimits.maxImageReferenceBytes >> 20) MB",
                      "save it as a JPEG, or scale it down")
            }
            if codec == "png", let pf = probe.pixelFormat, hasAlpha(pf) {
                error("the PNG has an alpha channel (pixel format \(pf)); the provider refuses PNGs with transparency",
                      "flatten it, e.g. ffmpeg -i IN.png -pix_fmt rgb24 OUT.png, or save it as a JPEG")
            }
        }
        return out
    }

    /// Whether an ffmpeg pixel format carries alpha: rgba/bgra/argb/abgr (any depth), ya8/ya16, yuva*, gbrap*,
    /// ayuv*. `gray` contains an "a" but no alpha; `pal8` (palette) is not flagged.
    public static func hasAlpha(_ pixelFormat: String) -> Bool {
        let f = pixelFormat.lowercased()
        return ["rgba", "bgra", "argb", "abgr", "ya8", "ya16", "yuva", "gbrap", "ayuv"].contains { f.hasPrefix($0) }
    }

    /// `x` with one decimal.
    static func decimal(_ x: Double) -> String {
        let tenths = (x * 10).rounded()
        let whole = Int(tenths / 10)
        return "\(whole).\(Int(abs(tenths)) % 10)"
    }

    static func megabytes(_ bytes: Int64) -> String { decimal(Double(bytes) / 1_048_576) }
}
