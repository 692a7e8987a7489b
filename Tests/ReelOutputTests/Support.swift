import Foundation
import ReelCore
import ReelMedia
import ReelOutput

/// A fresh directory under the temp dir, removed by `remove()`.
struct TempDir {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("reel-output-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }

    func sub(_ name: String) throws -> String {
        let p = "\(path)/\(name)"
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }
}

/// Real clips made with ffmpeg and shared read-only by the tests. They live in one fixed cache directory under
/// the temp dir (ffmpeg's test sources are deterministic), reused by later runs instead of piling up.
actor Clips {
    static let shared = Clips()
    private var made: [String: String] = [:]

    /// A 1280x720 H.264 clip (the size of 720p 16:9), unless told otherwise.
    func clip(width: Int = 1280, height: Int = 720, seconds: Double = 2, audio: Bool = true,
              codec: String = "h264") async throws -> String {
        let name = "\(width)x\(height)-\(seconds)-\(audio)-\(codec).mp4"
        if let p = made[name] { return p }
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("reel-output-test-clips-v1").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        let path = "\(d)/\(name)"
        if FileManager.default.fileExists(atPath: path) {
            made[name] = path
            return path
        }
        if codec == "h264" {
            try await FFmpeg.renderClip(size: FrameSize(width: width, height: height), seconds: seconds, audio: audio, to: path)
        } else {
            var args = ["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=\(width)x\(height):rate=30"]
            if audio { args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"] }
            args += ["-t", String(seconds), "-c:v", codec]
            if audio { args += ["-c:a", "aac", "-shortest"] }
            let tmp = "\(path).tmp-\(getpid()).mp4"
            args.append(tmp)
            let out = try await runProcess(which("ffmpeg")!, args)
            guard out.status == 0, rename(tmp, path) == 0 else {
                unlink(tmp)
                throw DeliveryError.invalidArgument("ffmpeg: \(out.stderrText)")
            }
        }
        made[name] = path
        return path
    }
}

enum Fixture {
    static let signedURL = "https://user:pw@cdn.example.com/refs/ben.png?Expires=1790000000&OSSAccessKeyId=LTAI5t&Signature=abc%2Fdef"

    /// A 720p 16:9 job of `seconds`; `audio: false` uses the flash model (the only one that renders silence).
    static func spec(batch: String = "spring", id: String = "hero-001", seconds: Int = 2, audio: Bool? = nil) -> JobSpec {
        JobSpec(key: JobKey(batch: batch, id: id), model: audio == false ? .r2vFlash : .r2v, resolution: .p720,
                aspectRatio: .landscape, durationSeconds: seconds,
                prompt: "character1 hands character2 a coffee in a sunlit cafe", negativePrompt: "blurry",
                references: [Reference(source: .url(signedURL), kind: .image),
                             Reference(source: .path("/srv/refs/anna.mp4"), kind: .video, durationSeconds: 4,
                                       sha256: String(repeating: "ab", count: 32), bytes: 123_456)],
                shotType: .single, seed: 42, audio: audio, watermark: false)
    }

    static let pricing: PricingTable = {
        var p = PricingTable()
        p.set(.r2v, .p720, 0.10)
        p.set(.r2vFlash, .p720, 0.05)
        return p
    }()

    /// Copies `clip` to where the download of `key` goes, as the provider client would.
    static func stage(_ clip: String, _ tree: OutputTree, _ key: JobKey) throws -> String {
        try tree.prepare(key.batch)
        let partial = try tree.partialPath(key)
        try? FileManager.default.removeItem(atPath: partial)
        try FileManager.default.copyItem(atPath: clip, toPath: partial)
        return partial
    }

    static func size(_ path: String) -> Int64 {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? -1
    }

    /// Names in `dir` that a person or `ls` would see (no dotfiles).
    static func visible(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    static func all(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    static func sidecar(_ spec: JobSpec, _ delivered: DeliveredFile) -> Sidecar {
        Sidecar(spec: spec, delivered: delivered, providerTaskIDs: ["0385dc79-5ff8-4d82-bcb6-xxxxxx"],
                attempts: [.init(kind: "create", httpStatus: 200, requestId: "req-1", at: 1_800_000_000),
                           .init(kind: "query", httpStatus: 429, code: "Throttling.RateQuota", at: 1_800_000_010.5),
                           .init(kind: "download", httpStatus: 206, at: 1_800_000_100)],
                timings: .init(queued: 1_799_999_990, submitted: 1_800_000_000, started: 1_800_000_020,
                               finished: 1_800_000_090, downloaded: 1_800_000_100, delivered: 1_800_000_101),
                usage: TaskUsage(duration: 4.5, inputVideoDuration: 2.5, outputVideoDuration: 2, size: "1280*720",
                                 sr: 720, videoCount: 1),
                pricing: pricing)
    }

    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// Validates `file` against `examples/<schema>` with python3 jsonschema; nil when jsonschema is missing,
    /// else the validator's complaint ("" when valid).
    static func schemaErrors(_ file: String, schema: String) async throws -> String? {
        let script = """
        import json, sys
        try:
            import jsonschema
        except ImportError:
            print("MISSING"); sys.exit(0)
        schema = json.load(open(sys.argv[1])); doc = json.load(open(sys.argv[2]))
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        for e in v.iter_errors(doc): print(f"{list(e.absolute_path)}: {e.message}")
        """
        let out = try await runProcess(which("python3")!, ["-c", script, "\(repoRoot)/examples/\(schema)", file])
        let text = String(decoding: out.stdout, as: UTF8.self)
        if text.hasPrefix("MISSING") {
            print("skipping schema check: python3 jsonschema is not installed (pip install jsonschema)")
            return nil
        }
        return text + (out.status == 0 ? "" : out.stderrText)
    }
}
