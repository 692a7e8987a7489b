import Foundation
import ReelCore
import ReelPosix

/// Quality control of a delivered video against what was asked for.
public enum QC {
    /// Allowed difference between the probed and the requested duration, in seconds.
    public static let durationTolerance = 0.1

    /// Problems of `probe` measured against `spec`; empty when the file is the video that was requested:
    /// H.264 video at exactly `spec.frameSize`, duration within ±0.1 s of `spec.durationSeconds`, and an audio
    /// track iff `spec.expectsAudio`. Each message names the expected and the actual value.
    public static func check(_ probe: MediaProbe, spec: JobSpec) -> [String] {
        guard probe.kind == .video else {
            return ["video: expected an H.264 video stream, found \(probe.kind.map { "an \($0.rawValue)" } ?? "none")"
                + " (format \(probe.formatName.isEmpty ? "unknown" : probe.formatName))"]
        }
        var problems: [String] = []
        let codec = probe.videoCodec ?? "unknown"
        if codec != "h264" { problems.append("video codec: expected h264, got \(codec)") }
        let size = spec.frameSize
        if probe.width != size.width || probe.height != size.height {
            problems.append("frame size: expected \(size), got \(probe.width.map(String.init) ?? "?")x\(probe.height.map(String.init) ?? "?")")
        }
        let want = Double(spec.durationSeconds)
        if let d = probe.durationSeconds {
            if abs(d - want) > durationTolerance + 1e-9 {
                problems.append("duration: expected \(spec.durationSeconds) s ±\(durationTolerance) s, got \(format(d)) s")
            }
        } else {
            problems.append("duration: expected \(spec.durationSeconds) s, got none (ffprobe reports no duration)")
        }
        if spec.expectsAudio && !probe.hasAudio {
            problems.append("audio: expected an audio track, found none")
        } else if !spec.expectsAudio && probe.hasAudio {
            problems.append("audio: expected no audio track (audio: false), found one")
        }
        return problems
    }

    /// One line describing what ffprobe saw, for failure reasons: `h264 1280x720 2.000 s, audio, 123456 bytes`.
    public static func summary(_ probe: MediaProbe) -> String {
        let size = "\(probe.width.map(String.init) ?? "?")x\(probe.height.map(String.init) ?? "?")"
        let duration = probe.durationSeconds.map { "\(format($0)) s" } ?? "no duration"
        return "\(probe.videoCodec ?? "no video") \(size) \(duration), \(probe.hasAudio ? "audio" : "no audio"), \(probe.bytes) bytes"
    }

    static func format(_ seconds: Double) -> String { String(format: "%.3f", seconds) }
}

/// The top-level box layout of an MP4/ISO-BMFF file: the boxes must tile the file exactly, and `ftyp`, `moov`
/// and `mdat` must be present. This catches a download cut short even when the index (`moov`, written first
/// with `+faststart`) is intact, which ffprobe alone would accept.
enum MP4Structure {
    static func problems(fd: Int32, size: Int64) -> [String] {
        var offset: Int64 = 0
        var seen = Set<String>()
        var header = [UInt8](repeating: 0, count: 16)
        while offset < size {
            guard size - offset >= 8 else {
                return ["truncated: \(size - offset) stray bytes at offset \(offset), file ends at \(size)"]
            }
            let n = header.withUnsafeMutableBytes { try? Posix.pread(fd, into: $0, at: off_t(offset), path: "") } ?? 0
            guard n >= 8 else { return ["unreadable box header at offset \(offset)"] }
            var boxSize = Int64(header[0..<4].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            let type = String(decoding: header[4..<8], as: UTF8.self)
            if boxSize == 1 {
                guard n >= 16 else { return ["truncated: box '\(type)' at offset \(offset) has no 64-bit size"] }
                boxSize = Int64(bitPattern: header[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            } else if boxSize == 0 {
                boxSize = size - offset   // "extends to the end of the file"
            }
            guard boxSize >= 8 else { return ["corrupt: box '\(type)' at offset \(offset) declares \(boxSize) bytes"] }
            guard offset + boxSize <= size else {
                return ["truncated: box '\(type)' at offset \(offset) declares \(boxSize) bytes, file ends at \(size) "
                    + "(\(offset + boxSize - size) bytes missing)"]
            }
            seen.insert(type)
            offset += boxSize
        }
        let missing = ["ftyp", "moov", "mdat"].filter { !seen.contains($0) }
        return missing.isEmpty ? [] : ["not a complete MP4: missing \(missing.map { "'\($0)'" }.joined(separator: ", ")) box"]
    }
}
