import Foundation
import ReelCore
import ReelMedia
import Synchronization
import Testing

/// Counts calls to the real prober.
private final class CountingProber: Sendable {
    let calls = Mutex<[String]>([])

    var prober: ReferenceCheck.Prober {
        { path in
            self.calls.withLock { $0.append(path) }
            return try await FFprobe.probe(path)
        }
    }

    var count: Int { calls.withLock { $0.count } }
}

/// A fresh temporary directory, removed by `cleanup()`.
private struct TempDir {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("reel-validate-\(UUID().uuidString)")

    init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

private func paths(_ ps: [String], id: String = "j1", prompt: String? = nil) -> String {
    let refs = "[" + ps.map { $0.hasPrefix("https:") ? #"{"url": "\#($0)"}"# : #"{"path": "\#($0)"}"# }.joined(separator: ", ") + "]"
    return ManifestText.job(["id": "\"\(id)\"", "references": refs, "prompt": "\"" + (prompt ?? (1...ps.count).map { "character\($0)" }.joined(separator: " ")) + "\""])
}

private func ffmpeg(_ args: [String]) async throws {
    let ffmpeg = try #require(which("ffmpeg"))
    let out = try await runProcess(ffmpeg, ["-nostdin", "-v", "error", "-y"] + args)
    #expect(out.status == 0, "\(out.stderrText)")
}

@Suite struct ValidationReferenceTests {
    @Test func localFilesAreProbedAndCheckedWithThePointerOfTheirPath() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let short = dir.path("short.mp4"), good = dir.path("good.mp4"), small = dir.path("small.png")
        let alpha = dir.path("alpha.png"), fine = dir.path("fine.png"), junk = dir.path("junk.mp4")
        try await FFmpeg.renderClip(size: FrameSize(width: 320, height: 240), seconds: 1, audio: false, to: short)
        try await FFmpeg.renderClip(size: FrameSize(width: 320, height: 240), seconds: 2, audio: true, to: good)
        try await FFmpeg.renderImage(width: 200, height: 200, to: small)
        try await FFmpeg.renderImage(width: 300, height: 260, to: fine)
        try await ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=300x300:rate=1", "-frames:v", "1", "-pix_fmt", "rgba", alpha])
        _ = FileManager.default.createFile(atPath: junk, contents: Data("not a video".utf8))

        let text = ManifestText.doc(jobs: [
            paths([short]), paths([good, fine], id: "j2"),
            paths([small], id: "j3"),
            paths([alpha], id: "j4"),
            paths([junk, dir.path("missing.png")], id: "j5"),
        ])
        let report = await ReferenceCheck.validate(Array(text.utf8))
        #expect(report.pointers == ["E /jobs/0/references/0/path", "E /jobs/2/references/0/path",
                                    "E /jobs/3/references/0/path", "E /jobs/4/references/0/path",
                                    "E /jobs/4/references/1/path"], "\(report.issues)")
        func message(_ p: String) -> String { report.issues.first { $0.pointer == p }?.message ?? "" }
        #expect(message("/jobs/0/references/0/path").contains("1.0 s long"))
        #expect(message("/jobs/2/references/0/path").contains("200×200 px"))
        #expect(message("/jobs/3/references/0/path").contains("alpha channel"))
        #expect(message("/jobs/4/references/0/path").contains("cannot read"))
        #expect(message("/jobs/4/references/1/path").contains("no such file"))
        #expect(report.jobs.isEmpty)
    }

    @Test func acceptedLocalReferencesCarryTheirProbedFacts() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let clip = dir.path("anna.mp4"), still = dir.path("ben.png")
        try await FFmpeg.renderClip(size: FrameSize(width: 320, height: 240), seconds: 2, audio: true, to: clip)
        try await FFmpeg.renderImage(width: 300, height: 260, to: still)
        let report = await ReferenceCheck.validate(Array(ManifestText.doc(jobs: [paths([clip, still, "https://cdn.example.com/c.png"])]).utf8))
        #expect(report.issues.isEmpty, "\(report.issues)")
        let refs = try #require(report.jobs.first).references
        #expect(refs.map(\.kind) == [.video, .image, .image])
        #expect(abs((refs[0].durationSeconds ?? 0) - 2) < 0.1)
        #expect(refs[0].bytes == (try FileManager.default.attributesOfItem(atPath: clip)[.size] as? Int).map(Int64.init))
        #expect(refs[1].durationSeconds == nil && (refs[1].bytes ?? 0) > 0)
        #expect(refs[2].bytes == nil && refs[2].sha256 == nil, "URLs are not probed; sha256 is the uploader's job")
    }

    @Test func eachDistinctPathIsProbedOnce() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let still = dir.path("shared.png"), other = dir.path("other.png")
        try await FFmpeg.renderImage(width: 300, height: 300, to: still)
        try await FFmpeg.renderImage(width: 300, height: 300, to: other)
        let jobs = (0..<200).map { n in
            paths(n == 7 ? [still, other] : [still], id: "j\(n)")
        }
        let counter = CountingProber()
        let report = await ReferenceCheck.validate(Array(ManifestText.doc(jobs: jobs).utf8), probe: counter.prober)
        #expect(report.issues.isEmpty, "\(report.issues.prefix(3))")
        #expect(report.jobs.count == 200)
        #expect(report.jobs.allSatisfy { $0.references[0].kind == .image })
        #expect(counter.calls.withLock { $0.sorted() } == [other, still])
    }

    @Test func videoCountIsRecheckedWithProbedKinds() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let clip = dir.path("clip.bin")  // the name hides that it is a video: only probing knows
        try await FFmpeg.renderClip(size: FrameSize(width: 320, height: 240), seconds: 2, audio: false, to: clip + ".mp4")
        try FileManager.default.moveItem(atPath: clip + ".mp4", toPath: clip)
        let text = ManifestText.doc(jobs: [paths(["https://cdn.example.com/1.mp4", "https://cdn.example.com/2.mp4",
                                       "https://cdn.example.com/3.mov", clip])])
        #expect(ManifestValidator.validate(Array(text.utf8)).isAccepted, "before probing: 3 known videos")
        let report = await ReferenceCheck.validate(Array(text.utf8))
        #expect(report.pointers == ["E /jobs/0/references", "W /jobs/0/references/3/path"], "\(report.issues)")
        #expect(report.issues.first { $0.severity == .error }?.message.contains("4 video references") == true)
    }

    @Test func symlinksAreFollowedButOnlyRegularFilesAreProbed() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let still = dir.path("real.png"), link = dir.path("link.png"), fifo = dir.path("fifo.png")
        try await FFmpeg.renderImage(width: 300, height: 300, to: still)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: still)
        #expect(mkfifo(fifo, 0o600) == 0)
        let counter = CountingProber()
        let text = ManifestText.doc(jobs: [paths([link, fifo, dir.url.path])])
        let report = await ReferenceCheck.validate(Array(text.utf8), probe: counter.prober)
        #expect(report.pointers == ["E /jobs/0/references/1/path", "E /jobs/0/references/2/path"], "\(report.issues)")
        #expect(report.issues[0].message.contains("FIFO") && report.issues[1].message.contains("directory"))
        #expect(counter.calls.withLock { $0 } == [link], "neither the FIFO nor the directory reaches ffprobe")

        let ok = await ReferenceCheck.validate(Array(ManifestText.doc(jobs: [paths([link])]).utf8))
        let size = try FileManager.default.attributesOfItem(atPath: still)[.size] as? Int
        #expect(ok.jobs.first?.references.first?.bytes == size.map(Int64.init), "the target's size, not the link's")
    }

    @Test func probeProblemsAreCappedLikeTheValidatorsOwn() async throws {
        let jobs = (0..<1_200).map { paths(["/nonexistent/reel/shared.png"], id: "j\($0)") }
        let counter = CountingProber()
        let report = await ReferenceCheck.validate(Array(ManifestText.doc(jobs: jobs).utf8), probe: counter.prober)
        #expect(report.issues.count == ManifestValidator.maxIssues + 1)
        #expect(report.issues.last?.message.contains("more than 1000 problems") == true)
        #expect(counter.count == 0, "a missing file never reaches ffprobe")
    }

    @Test func localReferencesOfAnInvalidManifestAreStillProbed() async throws {
        let text = ManifestText.doc(["priority": #""urgent""#], jobs: [paths(["/nonexistent/reel/x.png"])])
        let report = await ReferenceCheck.validate(Array(text.utf8))
        #expect(report.pointers == ["E /jobs/0/references/0/path", "E /priority"])
    }

    @Test func extensionThatContradictsTheContentIsAWarning() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let png = dir.path("really-a-png.jpg")
        try await ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=300x300:rate=1", "-frames:v", "1", "-c:v", "png", "-f", "image2", png])
        let report = await ReferenceCheck.validate(Array(ManifestText.doc(jobs: [paths([png])]).utf8))
        #expect(report.pointers == ["W /jobs/0/references/0/path"], "\(report.issues)")
        #expect(report.issues.first?.hint.contains(".png") == true)
        #expect(report.jobs.count == 1, "warnings do not refuse the file")
    }
}

/// The pure rules on synthetic probes: limits at and beyond each edge.
@Suite struct LocalReferenceRulesTests {
    static let mp4 = "mov,mp4,m4a,3gp,3g2,mj2"

    static func video(_ seconds: Double?, bytes: Int64 = 1_000_000, format: String = mp4) -> MediaProbe {
        MediaProbe(formatName: format, kind: .video, durationSeconds: seconds, width: 1280, height: 720,
                   videoCodec: "h264", bytes: bytes, pixelFormat: "yuv420p")
    }

    static func image(_ w: Int?, _ h: Int?, codec: String = "png", bytes: Int64 = 50_000, pix: String = "rgb24") -> MediaProbe {
        MediaProbe(formatName: codec + "_pipe", kind: .image, width: w, height: h, videoCodec: codec, bytes: bytes,
                   pixelFormat: pix)
    }

    static let rows: [(String, MediaProbe?, String, Int)] = [
        ("video 2 s", video(2), "mp4", 0),
        ("video 30 s mov", video(30), "MOV", 0),
        ("video 1.9 s", video(1.9), "mp4", 1),
        ("video 30.5 s", video(30.5), "mp4", 1),
        ("video without duration", video(nil), "mp4", 1),
        ("video 100 MB", video(5, bytes: 100 << 20), "mp4", 0),
        ("video over 100 MB", video(5, bytes: (100 << 20) + 1), "mp4", 1),
        ("matroska video", video(5, format: "matroska,webm"), "mkv", 1),
        ("image 240 px", image(240, 5000), "png", 0),
        ("image 239 px", image(239, 300), "png", 1),
        ("image 5001 px", image(300, 5001), "png", 1),
        ("image size unknown", image(nil, nil), "png", 1),
        ("jpeg", image(800, 600, codec: "mjpeg", pix: "yuvj420p"), "jpeg", 0),
        ("bmp", image(800, 600, codec: "bmp", pix: "bgr24"), "bmp", 0),
        ("webp", image(800, 600, codec: "webp", pix: "yuv420p"), "webp", 0),
        ("gif", image(800, 600, codec: "gif", pix: "bgra"), "gif", 1),
        ("image 10 MB", image(800, 600, bytes: 10 << 20), "png", 0),
        ("image over 10 MB", image(800, 600, bytes: (10 << 20) + 1), "png", 1),
        ("png rgba", image(800, 600, pix: "rgba"), "png", 1),
        ("png ya8", image(800, 600, pix: "ya8"), "png", 1),
        ("png rgba64be", image(800, 600, pix: "rgba64be"), "png", 1),
        ("png gray is not alpha", image(800, 600, pix: "gray"), "png", 0),
        ("no video stream", MediaProbe(formatName: "mp3", kind: nil, bytes: 1000), "mp3", 1),
        ("unreadable", nil, "png", 1),
    ]

    @Test func rulesAtTheEdges() {
        for (name, probe, ext, errors) in Self.rows {
            let issues = ManifestValidator.checkLocalReference(probe, probeError: "boom", pointer: "/jobs/0/references/0/path",
                                                               extension: ext)
            #expect(issues.filter { $0.severity == .error }.count == errors, "\(name): \(issues)")
            #expect(issues.allSatisfy { $0.pointer == "/jobs/0/references/0/path" && !$0.hint.isEmpty }, "\(name)")
        }
    }

    @Test func messagesSayWhatAndHowToFix() {
        let alpha = ManifestValidator.checkLocalReference(Self.image(800, 600, pix: "rgba"), probeError: nil, pointer: "/p", extension: "png")
        #expect(alpha.first?.hint.contains("rgb24") == true)
        let unreadable = ManifestValidator.checkLocalReference(nil, probeError: "Permission denied", pointer: "/p", extension: "png")
        #expect(unreadable.first?.message.contains("Permission denied") == true)
        let mismatch = ManifestValidator.checkLocalReference(Self.video(3), probeError: nil, pointer: "/p", extension: "png")
        #expect(mismatch.map(\.severity) == [.warning])
    }
}
