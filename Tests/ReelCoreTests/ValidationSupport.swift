import ReelCore
import Testing

/// Builds manifest text for validation tests: a valid base document whose members can be replaced, removed or
/// added as raw JSON fragments (raw text, so `5` and `5.0` stay what they are).
enum ManifestText {
    static let baseJob: KeyValuePairs<String, String> = [
        "id": #""j1""#,
        "prompt": #""character1 waves""#,
        "references": #"[{"url": "https://cdn.example.com/a.png"}]"#,
    ]

    /// A job: the base members with `set` replacing or adding members (in order) and `omit` removed.
    static func job(_ set: KeyValuePairs<String, String> = [:], omit: Set<String> = []) -> String {
        var members: [(String, String)] = baseJob.filter { !omit.contains($0.key) }.map { ($0.key, $0.value) }
        for (k, v) in set {
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
        }
        return object(members)
    }

    /// A manifest: version 1, batch "b1", one base job, with top-level members replaced, added or omitted.
    static func doc(_ set: KeyValuePairs<String, String> = [:], omit: Set<String> = [], jobs: [String]? = nil) -> String {
        var members: [(String, String)] = [("manifest_version", "1"), ("batch", #""b1""#),
                                           ("jobs", "[" + (jobs ?? [job()]).joined(separator: ",") + "]")]
        members.removeAll { omit.contains($0.0) }
        for (k, v) in set {
            if let i = members.firstIndex(where: { $0.0 == k }) { members[i].1 = v } else { members.append((k, v)) }
        }
        return object(members)
    }

    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    static func validate(_ text: String, now: Timestamp? = nil) -> ManifestReport {
        ManifestValidator.validate(Array(text.utf8), now: now)
    }
}

/// One table row: a document and exactly the issues (severity and pointer) it must produce.
struct ValidationCase: Sendable, CustomTestStringConvertible {
    var name: String
    var json: String
    var expected: [String]
    var now: Timestamp?

    /// `expected` entries are "E /pointer" for errors and "W /pointer" for warnings.
    init(_ name: String, _ json: String, _ expected: [String] = [], now: Timestamp? = nil) {
        self.name = name
        self.json = json
        self.expected = expected
        self.now = now
    }

    var testDescription: String { name }
}

extension ManifestReport {
    /// Issues as "E /pointer" / "W /pointer", sorted, for exact comparison.
    var pointers: [String] {
        issues.map { "\($0.severity == .error ? "E" : "W") \($0.pointer)" }.sorted()
    }
}
