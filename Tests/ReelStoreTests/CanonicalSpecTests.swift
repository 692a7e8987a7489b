import Foundation
import ReelCore
@testable import ReelStore
import Testing

/// A job's stored spec and its `spec_digest` (content identity: "same BATCH/ID + same content = no-op") are the
/// hand-written `Codec.spec`, which must stay byte for byte what `JSONEncoder` with sorted keys wrote before it —
/// or every stored job would look changed to a manifest submitted again.
@Suite struct CanonicalSpecTests {
    static let strings = ["plain", "", "a/b\\c \"q\"", "line\nbreak\ttab\r", "ctl\u{0}\u{1}\u{1f}\u{7f}", "é ü ß — 日本語 🎬",
                          "https://cdn.example.com/ref/a.png?x=1&y=%2F", "/abs/path/ref.mp4", "character1 walks"]
    static let doubles = [0.0, 0.1, 0.25, 1.0, 2.5, 4.966666666666667, 30.0, 12.5, 1e-3, 100.0,
                          1_764_892_800, 1_764_892_800.5, 1_764_892_800.123, 0.1 + 0.2, 1e15, 1e16 + 2, 123456.789]

    /// A deterministic spread of specs over every field, optional and not.
    static func specs() -> [JobSpec] {
        var out: [JobSpec] = []
        var rng = SplitMix64(seed: 42)
        for i in 0..<400 {
            func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
            func maybe<T>(_ x: @autoclosure () -> T) -> T? { rng.next() % 2 == 0 ? x() : nil }
            let refs = (0..<(1 + i % 5)).map { _ in
                Reference(source: rng.next() % 2 == 0 ? .url(pick(strings)) : .path(pick(strings)),
                          kind: maybe(pick([MediaKind.video, .image])), durationSeconds: maybe(pick(doubles)),
                          sha256: maybe(String(repeating: "ab", count: 32)), bytes: maybe(Int64(rng.next() % 100_000_000)))
            }
            out.append(JobSpec(
                key: JobKey(batch: "batch-\(i % 7)", id: "job_\(i)"), model: pick(RenderModel.allCases),
                resolution: pick(Resolution.allCases), aspectRatio: pick(AspectRatio.allCases),
                durationSeconds: 2 + i % 9, prompt: pick(strings), negativePrompt: maybe(pick(strings)),
                references: refs, shotType: maybe(pick(ShotType.allCases)), seed: maybe(Int(rng.next() % 2_147_483_648)),
                audio: maybe(rng.next() % 2 == 0), watermark: maybe(rng.next() % 2 == 0),
                priority: pick(Priority.allCases), deadline: maybe(pick(doubles)), budgetUSD: maybe(pick(doubles))))
        }
        return out
    }

    @Test func theDirectEncodingIsJSONEncodersByteForByte() throws {
        for spec in Self.specs() {
            let ours = Codec.spec(spec)
            let foundation = Array(try Codec.data(spec))
            #expect(String(decoding: ours, as: UTF8.self) == String(decoding: foundation, as: UTF8.self))
            #expect(try JSONDecoder().decode(JobSpec.self, from: Data(ours)) == spec)
        }
    }

    @Test func theDigestOfAKnownSpecNeverChanges() throws {
        // Pinned: the digest JSONEncoder gave this spec (what every stored job was hashed with). If this fails, stored jobs
        // would conflict with their own manifests; fix the encoder, never the constant.
        let spec = JobSpec(key: JobKey(batch: "ep01", id: "shot_001"), model: .r2vFlash, resolution: .p720,
                           aspectRatio: .landscape, durationSeconds: 5, prompt: "character1 waves at character2",
                           references: [Reference(source: .url("https://cdn.example.com/a.png"), kind: .image),
                                        Reference(source: .path("/refs/b.mp4"), kind: .video, durationSeconds: 4.5,
                                                  sha256: String(repeating: "0f", count: 32), bytes: 1_234_567)],
                           seed: 7, audio: false, deadline: 1_764_892_800.5, budgetUSD: 12.5)
        #expect(Codec.spec(spec) == Array(try Codec.data(spec)))
        let digest = try Store.specDigest(spec)
        #expect(digest == Self.pinned, "digest \(digest)")
    }

    static let pinned = "4c836e80cf0a0c2b96126e45c4632635174bfeb6e20e88f9a1123acd7c2bf2d7"
}
