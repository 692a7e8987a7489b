import Foundation
import NIOCore
import ReelCore
import ReelMedia
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

    private func task(for key: Key) -> Task<ByteBuffer, any Error> {
        renders.withLock { renders in
            if let existing = renders[key] { return existing }
            let path = directory + "/" + key.fileName
            let task = Task<ByteBuffer, any Error> {
                if !FileManager.default.fileExists(atPath: path) {
                    try await FFmpeg.renderClip(size: key.frame, seconds: Double(key.seconds), audio: key.audio,
                                                to: path, label: "reel-sandbox")
                }
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
