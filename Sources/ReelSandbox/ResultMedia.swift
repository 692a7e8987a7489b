import Foundation
import NIOCore
import ReelCore
import ReelMedia
import ReelPosix
import Synchronization

/// Result MP4s made with ffmpeg, one per (size, seconds, audio), cached on disk under the data directory and
/// in memory. Concurrent requests for the same clip share one ffmpeg run.
final class ResultMedia: Sendable {
    struct Key: Hashable, Sendable {
        var frame: FrameSize
        var seconds: Int
        var audio: Bool

        var fileName: String { "result-\(frame.width)x\(frame.height)-\(seconds)s-\(audio ? "aac" : "silent").mp4" }
    }

    private let directory: String
    private let renders = Mutex<[Key: Task<ByteBuffer, any Error>]>([:])

    init(directory: String) { self.directory = directory }

    /// Starts making the clip if nobody has yet; returns at once.
    func prepare(_ key: Key) { _ = task(for: key) }

    /// The clip's bytes, made on first use.
    func bytes(_ key: Key) async throws -> ByteBuffer {
        let task = task(for: key)
        do {
            return try await task.value
        } catch {
            renders.withLock { if $0[key] == task { $0[key] = nil } }   // let a later request retry
            throw error
        }
    }

    /// Runs ffmpeg (testsrc2 + sine, ultrafast, yuv420p) into a temporary sibling, then renames.
    /// Not `ReelMedia.FFmpeg.renderClip`: its pipe readers block libdispatch's global threads, which on Linux
    /// also run Swift's cooperative pool, so parallel renders stalled every request for seconds. Here the
    /// child's output goes to a log file and only `terminationHandler` is awaited.
    static func render(_ key: Key, to path: String) async throws {
        guard let ffmpeg = which("ffmpeg") else {
            throw ResultMediaError(description: "ffmpeg not found on PATH (install Debian's ffmpeg package)")
        }
        let tmp = path + ".tmp-\(getpid())-\(UUID().uuidString).mp4"
        let log = tmp + ".log"
        defer { try? Posix.unlink(log) }  // only ffmpeg's messages
        var args = ["-nostdin", "-v", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=\(key.frame.width)x\(key.frame.height):rate=\(ProviderLimits.outputFramesPerSecond)"]
        if key.audio { args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] }
        args += ["-t", "\(key.seconds)", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        if key.audio { args += ["-c:a", "aac", "-b:a", "64k", "-shortest"] }
        args += ["-movflags", "+faststart", tmp]
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ffmpeg)
        process.arguments = args
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log)
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
        guard status == 0 else {
            try? Posix.unlink(tmp)  // the failure above is the one to report
            let why = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            throw ResultMediaError(description: "ffmpeg failed (exit \(status)): \(why)")
        }
        do {
            try Posix.rename(tmp, to: path)
        } catch {
            try? Posix.unlink(tmp)  // the failure above is the one to report
            throw ResultMediaError(description: "cannot publish the rendered clip: \(error)")
        }
    }

    private func task(for key: Key) -> Task<ByteBuffer, any Error> {
        renders.withLock { renders in
            if let existing = renders[key] { return existing }
            let path = directory + "/" + key.fileName
            let task = Task<ByteBuffer, any Error> {
                if !FileManager.default.fileExists(atPath: path) { try await Self.render(key, to: path) }
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw ResultMediaError(description: "cannot read \(path)")
                }
                return ByteBuffer(bytes: data)
            }
            renders[key] = task
            return task
        }
    }
}

struct ResultMediaError: Error, CustomStringConvertible {
    var description: String
}
