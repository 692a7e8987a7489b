import Foundation
import ReelCore
import ReelPosix

/// Makes real media with ffmpeg: the sandbox's results, test references.
public enum FFmpeg {
    /// Renders an H.264 MP4 at `size`, 30 fps, `seconds` long, with an AAC track when `audio`, to `path`.
    /// Written to a temporary sibling and renamed, so a reader never sees half a file.
    public static func renderClip(size: FrameSize, seconds: Double, audio: Bool, to path: String,
                                  label: String = "reel") async throws {
        guard let ffmpeg = which("ffmpeg") else {
            throw FFprobe.Failure(description: "ffmpeg not found on PATH (install Debian's ffmpeg package)")
        }
        let tmp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).mp4"
        let duration = String(format: "%.3f", seconds)
        var args = ["-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc2=size=\(size.width)x\(size.height):rate=\(ProviderLimits.outputFramesPerSecond)"]
        if audio {
            args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
        }
        args += ["-t", duration, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                 "-metadata", "comment=\(label)"]
        if audio { args += ["-c:a", "aac", "-b:a", "64k", "-shortest"] }
        args += ["-movflags", "+faststart", tmp]
        let out = try await runProcess(ffmpeg, args, timeout: 300)
        do {
            guard out.status == 0 else { throw FFprobe.Failure(description: "ffmpeg failed: \(out.stderrText)") }
            try Posix.rename(tmp, to: path)
        } catch {
            try? Posix.unlink(tmp)  // ffmpeg's or the rename's failure is the one to report
            throw error is PosixError ? FFprobe.Failure(description: "cannot publish \(path): \(error)") : error
        }
    }

    /// Renders a still image (PNG/JPEG/BMP/WEBP by extension) of `width`×`height`.
    public static func renderImage(width: Int, height: Int, to path: String) async throws {
        guard let ffmpeg = which("ffmpeg") else {
            throw FFprobe.Failure(description: "ffmpeg not found on PATH (install Debian's ffmpeg package)")
        }
        let out = try await runProcess(ffmpeg, ["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                                                "testsrc2=size=\(width)x\(height):rate=1", "-frames:v", "1", path])
        guard out.status == 0 else { throw FFprobe.Failure(description: "ffmpeg failed: \(out.stderrText)") }
    }
}
