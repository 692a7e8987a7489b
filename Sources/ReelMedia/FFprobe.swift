import Foundation
import ReelCore

/// Facts about a media file from `ffprobe -of json`, mapped onto the core's `MediaProbe`.
public enum FFprobe {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// Probes `path`. Throws when ffprobe is missing or cannot read the file as media.
    public static func probe(_ path: String) async throws -> MediaProbe {
        guard let ffprobe = which("ffprobe") else {
            throw Failure(description: "ffprobe not found on PATH (install Debian's ffmpeg package)")
        }
        let out = try await runProcess(ffprobe, [
            "-v", "error", "-print_format", "json",
            "-show_entries", "format=format_name,duration,size:stream=codec_type,codec_name,width,height,pix_fmt,duration",
            path,
        ], timeout: 60)
        guard out.status == 0 else {
            let reason = out.stderrText.trimmingCharacters(in: .whitespacesAndNewlines)
            throw Failure(description: "not readable as media: \(reason.isEmpty ? "ffprobe exit \(out.status)" : reason)")
        }
        return try parse(Data(out.stdout), fileBytes: fileSize(path))
    }

    /// Parses ffprobe's JSON (exposed for tests). ffprobe 5.1 gives numbers such as `duration` as strings.
    public static func parse(_ json: Data, fileBytes: Int64) throws -> MediaProbe {
        struct Stream: Decodable {
            var codec_type: String?
            var codec_name: String?
            var width: Int?
            var height: Int?
            var pix_fmt: String?
            var duration: String?
        }
        struct Format: Decodable {
            var format_name: String?
            var duration: String?
        }
        struct Root: Decodable {
            var streams: [Stream]?
            var format: Format?
        }
        let root: Root
        do {
            root = try JSONDecoder().decode(Root.self, from: json)
        } catch {
            throw Failure(description: "unreadable ffprobe output: \(error)")
        }
        let streams = root.streams ?? []
        let video = streams.first { $0.codec_type == "video" }
        let formatName = root.format?.format_name ?? ""
        let duration = root.format?.duration.flatMap(Double.init) ?? video?.duration.flatMap(Double.init)
        let imageFormats = ["image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "webp", "tiff_pipe", "gif"]
        let kind: MediaKind?
        if video == nil {
            kind = nil
        } else if imageFormats.contains(where: { formatName.contains($0) }) {
            kind = .image
        } else {
            kind = .video
        }
        return MediaProbe(formatName: formatName, kind: kind, durationSeconds: kind == .image ? nil : duration,
                          width: video?.width, height: video?.height, videoCodec: video?.codec_name,
                          hasAudio: streams.contains { $0.codec_type == "audio" }, bytes: fileBytes,
                          pixelFormat: video?.pix_fmt)
    }

    private static func fileSize(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
    }
}
