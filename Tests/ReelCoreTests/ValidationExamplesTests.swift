import Foundation
import ReelCore
import ReelMedia
import Testing

/// The shipped examples: valid ones are accepted by the validator (with their local reference probed) and by the
/// JSON Schema; invalid ones produce exactly the expected pointers and fail the schema.
@Suite struct ValidationExamplesTests {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let manifests = repo.appendingPathComponent("examples/manifests")

    static func read(_ name: String) throws -> [UInt8] {
        // Relative reference paths in examples are relative to the repository root, where the demo runs
        // `reelctl submit`; resolve them the way reelctl does.
        let raw = try Array(Data(contentsOf: manifests.appendingPathComponent(name)))
        return ManifestValidator.resolvingRelativePaths(raw, against: repo.path)
    }

    static let expectedInvalid: [String: [String]] = [
        "invalid-typos.json": [
            "E /defaults/duration_s", "E /defaults/modle", "E /defaults/resolution", "E /jobs/0/aspect_ratio",
            "E /jobs/0/audio", "E /jobs/0/durationS", "E /jobs/0/id", "E /jobs/0/prompt", "E /jobs/0/seed",
            "E /jobs/0/watermark", "E /priority", "W /jobs/0/references/1",
        ],
        "invalid-structure.json": [
            "E /batch", "E /budget_usd", "E /deadline", "E /jobs/0/references/0/url", "E /jobs/1/id",
            "E /jobs/1/prompt", "E /jobs/1/references", "E /jobs/2/duration_s", "E /jobs/2/references",
            "E /jobs/2/references/4", "E /manifest_version",
        ],
    ]

    @Test func everyExampleIsCovered() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.manifests.path).filter { $0.hasSuffix(".json") }
        let invalid = names.filter { $0.hasPrefix("invalid-") }
        #expect(Set(invalid) == Set(Self.expectedInvalid.keys))
        #expect(names.count - invalid.count == 3)
    }

    @Test(arguments: ["landscape-promo.json", "portrait-stories.json", "square-catalog.json"])
    func validExampleIsAccepted(_ name: String) async throws {
        let report = await ReferenceCheck.validate(try Self.read(name))
        #expect(report.issues.isEmpty, "\(report.issues)")
        #expect(report.jobs.count >= 2 && report.jobs.count <= 4)
        #expect(report.jobs.allSatisfy { (2...4).contains($0.durationSeconds) }, "short demo renders")
    }

    @Test func examplesCoverEveryAspectFamilyAndALocalReference() throws {
        let jobs = try ["landscape-promo.json", "portrait-stories.json", "square-catalog.json"].flatMap {
            ManifestValidator.validate(try Self.read($0)).jobs
        }
        #expect(Set(jobs.map(\.aspectRatio)) == Set(AspectRatio.allCases))
        let local = jobs.flatMap(\.references).filter { if case .path = $0.source { true } else { false } }
        #expect(!local.isEmpty)
    }

    @Test(arguments: ["invalid-typos.json", "invalid-structure.json"])
    func invalidExampleReportsExactlyTheExpectedPointers(_ name: String) throws {
        let report = ManifestValidator.validate(try Self.read(name))
        #expect(report.pointers == Self.expectedInvalid[name]?.sorted())
        #expect(report.jobs.isEmpty)
    }

    @Test func examplesAgreeWithTheJSONSchema() async throws {
        let script = Self.repo.appendingPathComponent("Tests/schema/check_examples.py").path
        guard which("python3") != nil else { try Test.cancel("python3 is not installed: schema check skipped") }
        let out = try await runProcess("/usr/bin/env", ["python3", script, Self.repo.path], timeout: 60)
        let text = String(decoding: out.stdout, as: UTF8.self)
        if out.status == 77 { try Test.cancel("python3 jsonschema is not installed (pip install jsonschema): \(text)") }
        #expect(out.status == 0, "\(text)\(out.stderrText)")
        #expect(text.components(separatedBy: "\n").filter { $0.hasPrefix("ok ") }.count == 5, "\(text)")
    }

    @Test func schemaDeclaresTheValidatorsRanges() throws {
        let data = try Data(contentsOf: Self.repo.appendingPathComponent("examples/manifest.schema.json"))
        let schema = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let defs = try #require(schema["$defs"] as? [String: Any])
        let settings = try #require(defs["settings"] as? [String: [String: Any]])
        #expect(settings["duration_s"]?["minimum"] as? Int == ProviderLimits.durationRange.lowerBound)
        #expect(settings["duration_s"]?["maximum"] as? Int == ProviderLimits.durationRange.upperBound)
        #expect(settings["seed"]?["maximum"] as? Int == ProviderLimits.seedRange.upperBound)
        #expect(settings["negative_prompt"]?["maxLength"] as? Int == ProviderLimits.maxNegativePromptCharacters)
        #expect(settings["model"]?["enum"] as? [String] == RenderModel.allCases.map(\.rawValue))
        #expect(settings["resolution"]?["enum"] as? [String] == Resolution.allCases.map(\.rawValue))
        #expect(settings["aspect_ratio"]?["enum"] as? [String] == AspectRatio.allCases.map(\.rawValue))
        #expect(settings["shot_type"]?["enum"] as? [String] == ShotType.allCases.map(\.rawValue))
        #expect(Set(settings.keys) == Set(["model", "resolution", "aspect_ratio", "duration_s", "shot_type", "seed",
                                           "audio", "watermark", "negative_prompt"]))
        let identifier = try #require(defs["identifier"] as? [String: Any])
        #expect(identifier["pattern"] as? String == "^" + Identifier.syntax + "$")
    }
}
