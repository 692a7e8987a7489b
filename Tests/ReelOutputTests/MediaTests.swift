import Foundation
import ReelCore
import ReelMedia
import Testing

@Suite struct MediaTests {
    @Test func renderedClipProbesAtRequestedSizeDurationAndAudio() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-media-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let withAudio = dir.appendingPathComponent("a.mp4").path
        let silent = dir.appendingPathComponent("s.mp4").path
        try await FFmpeg.renderClip(size: FrameSize(width: 832, height: 1088), seconds: 2, audio: true, to: withAudio)
        try await FFmpeg.renderClip(size: FrameSize(width: 320, height: 240), seconds: 3, audio: false, to: silent)

        let a = try await FFprobe.probe(withAudio)
        #expect(a.kind == .video)
        #expect(a.videoCodec == "h264")
        #expect(a.width == 832 && a.height == 1088)
        #expect(abs((a.durationSeconds ?? 0) - 2) < 0.1)
        #expect(a.hasAudio)
        #expect(a.bytes > 0)

        let s = try await FFprobe.probe(silent)
        #expect(!s.hasAudio)
        #expect(abs((s.durationSeconds ?? 0) - 3) < 0.1)
    }

    @Test func imageProbesAsImageAndGarbageIsRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-media-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = dir.appendingPathComponent("r.png").path
        try await FFmpeg.renderImage(width: 300, height: 260, to: png)
        let p = try await FFprobe.probe(png)
        #expect(p.kind == .image)
        #expect(p.width == 300 && p.height == 260)

        let junk = dir.appendingPathComponent("junk.mp4").path
        #expect(FileManager.default.createFile(atPath: junk, contents: Data("not a video".utf8)))
        await #expect(throws: FFprobe.Failure.self) { try await FFprobe.probe(junk) }
    }
}
