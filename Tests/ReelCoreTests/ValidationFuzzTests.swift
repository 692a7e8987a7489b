import Foundation
import ReelCore
import Testing

/// 10,000 manifests made by mutating the shipped examples at random (seeded: `REEL_FUZZ_SEED=N` replays a run):
/// values of the wrong type, huge and negative numbers, hostile strings, deleted and unknown keys, deep nesting,
/// truncated and bit-flipped bytes, invalid UTF-8. The validator must answer every one: accepted with jobs, or
/// rejected with errors that each name a JSON pointer and say what is wrong.
@Suite struct ValidationFuzzTests {
    static let count = 10_000

    static let hostileStrings = [
        "", " ", "\u{0}", "character1\u{0}", "\u{301}hero", "a/b", "../../etc/shadow", "/etc/shadow", "~", "%2F",
        String(repeating: "x", count: 70_000), "💥character1", "character999999999999999999",
        "\u{202E}evil", "file:///etc/passwd", "https://", "oss://", "http://[::1", "1e309", "NaN",
    ]

    @Test func everyMutatedManifestGetsAnAnswer() throws {
        let seed = ProcessInfo.processInfo.environment["REEL_FUZZ_SEED"].flatMap(UInt64.init) ?? 20_261_203
        var rng = SplitMix64(seed: seed)
        let examples = try FileManager.default.contentsOfDirectory(atPath: ValidationExamplesTests.manifests.path)
            .filter { $0.hasSuffix(".json") }.sorted()
            .map { try ValidationExamplesTests.read($0) }
        var accepted = 0
        var rejected = 0
        for round in 0..<Self.count {
            let base = examples[Int(rng.next() % UInt64(examples.count))]
            let bytes = Self.mutate(base, &rng)
            let report = ManifestValidator.validate(bytes, now: 1_800_000_000)
            if report.isAccepted {
                accepted += 1
                #expect(!report.jobs.isEmpty, "round \(round) (seed \(seed)): accepted without jobs")
            } else {
                rejected += 1
                for issue in report.errors where !(issue.pointer.isEmpty || issue.pointer.hasPrefix("/")) || issue.message.isEmpty {
                    Issue.record("round \(round) (seed \(seed)): issue without a pointer or message: \(issue)")
                }
            }
        }
        print("ValidationFuzzTests: seed \(seed): \(accepted) accepted, \(rejected) rejected, 0 crashes")
        #expect(rejected > Self.count / 2 && accepted > 0, "the mutations exercise both outcomes")
    }

    static func mutate(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(max(1, n))) }
        switch pick(10) {
        case 0:   // truncated
            return Array(bytes.prefix(pick(bytes.count)))
        case 1:   // bytes flipped, invalid UTF-8 among them
            var b = bytes
            for _ in 0...pick(4) where !b.isEmpty { b[pick(b.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            return b
        default:
            guard var tree = try? JSONSerialization.jsonObject(with: Data(bytes)) else { return bytes }
            for _ in 0...pick(3) { tree = mutateTree(tree, depth: 0, &rng) }
            return (try? Array(JSONSerialization.data(withJSONObject: tree))) ?? bytes
        }
    }

    static func randomValue(_ rng: inout SplitMix64) -> Any {
        switch rng.next() % 12 {
        case 0: return NSNull()
        case 1: return rng.next() % 2 == 0
        case 2: return Int64(bitPattern: rng.next())
        case 3: return -1
        case 4: return 1e300
        case 5: return 2.5
        case 6: return [Any]()
        case 7: return [String: Any]()
        case 8: return [[String: Any]()]
        case 9: return ["url": hostileStrings[Int(rng.next() % UInt64(hostileStrings.count))]]
        case 10: return (0..<20).reduce([Any]()) { acc, _ in [acc] }   // deep nesting
        default: return hostileStrings[Int(rng.next() % UInt64(hostileStrings.count))]
        }
    }

    /// Replaces, deletes or adds one value somewhere in the tree.
    static func mutateTree(_ node: Any, depth: Int, _ rng: inout SplitMix64) -> Any {
        let descend = depth < 6 && rng.next() % 3 != 0
        if var object = node as? [String: Any], !object.isEmpty {
            let keys = object.keys.sorted()
            let key = keys[Int(rng.next() % UInt64(keys.count))]
            if descend, let child = object[key] {
                object[key] = mutateTree(child, depth: depth + 1, &rng)
            } else {
                switch rng.next() % 3 {
                case 0: object[key] = nil
                case 1: object[key] = randomValue(&rng)
                default: object[key + "_x"] = randomValue(&rng)
                }
            }
            return object
        }
        if var array = node as? [Any], !array.isEmpty {
            let i = Int(rng.next() % UInt64(array.count))
            if descend {
                array[i] = mutateTree(array[i], depth: depth + 1, &rng)
            } else {
                switch rng.next() % 3 {
                case 0: array.remove(at: i)
                case 1: array.append(contentsOf: Array(repeating: array[i], count: 8))
                default: array[i] = randomValue(&rng)
                }
            }
            return array
        }
        return randomValue(&rng)
    }
}
