/// The member names allowed at each level of a v1 manifest, and the hints for names that are not.
enum ManifestLevel: Sendable {
    case top, defaults, job, reference

    /// Keys a batch's `defaults` may carry and a job may override: every render setting, none of a job's identity
    /// (`id`, `prompt`, `references`) and none of the batch's own (`priority`, `deadline`, `budget_usd`).
    static let settingKeys = ["model", "resolution", "aspect_ratio", "duration_s", "shot_type", "seed", "audio",
                              "watermark", "negative_prompt"]

    static let topKeys = ["$schema", "manifest_version", "batch", "priority", "deadline", "budget_usd", "defaults", "jobs"]
    static let jobKeys = ["id", "prompt", "references"] + settingKeys
    static let referenceKeys = ["url", "path"]

    var keys: [String] {
        switch self {
        case .top: Self.topKeys
        case .defaults: Self.settingKeys
        case .job: Self.jobKeys
        case .reference: Self.referenceKeys
        }
    }

    var place: String {
        switch self {
        case .top: "at the top level"
        case .defaults: "in defaults"
        case .job: "in a job"
        case .reference: "in a reference"
        }
    }

    /// How to fix `key`, which is not allowed at this level.
    func hint(forUnknown key: String) -> String {
        let normalized = Self.normalize(key)
        if let exact = keys.first(where: { Self.normalize($0) == normalized }) {
            return "did you mean \"\(exact)\"? Names are lower case with underscores"
        }
        if let alias = Self.aliases[normalized] { return alias }
        if let elsewhere = whereElse(key) { return elsewhere }
        if let near = Self.nearest(key, in: keys) {
            return "did you mean \"\(near)\"? Unknown fields are refused so a typo cannot change a paid render"
        }
        return "remove it; allowed \(place): \(keys.filter { $0 != "$schema" }.joined(separator: ", "))"
    }

    private func whereElse(_ key: String) -> String? {
        let batchKeys = ["manifest_version", "batch", "priority", "deadline", "budget_usd"]
        let jobOnly = ["id", "prompt", "references"]
        switch self {
        case .top where Self.settingKeys.contains(key):
            return "\"\(key)\" is a render setting: put it in \"defaults\" (for every job) or in each job"
        case .top where jobOnly.contains(key):
            return "\"\(key)\" belongs to a job: put it in each object of \"jobs\""
        case .defaults where jobOnly.contains(key):
            return "\"\(key)\" cannot be a default: set it in each job"
        case .defaults where batchKeys.contains(key), .job where batchKeys.contains(key):
            return "\"\(key)\" applies to the whole file: set it once at the top level"
        case .job where key == "defaults" || key == "jobs":
            return "\"\(key)\" belongs at the top level, not inside a job"
        case .reference where ["kind", "type", "media", "name"].contains(key):
            return "a reference is {\"url\": …} or {\"path\": …} and nothing else; its kind is detected and it is named character1, character2, … by its position"
        default:
            return nil
        }
    }

    private static let aliases: [String: String] = [
        "size": "Reel derives the provider's size from \"resolution\" and \"aspect_ratio\"; set those instead",
        "duration": "did you mean \"duration_s\"? (whole seconds, 2–10)",
        "ratio": "did you mean \"aspect_ratio\"?",
        "aspect": "did you mean \"aspect_ratio\"?",
        "referenceurls": "write \"references\": [{\"url\": …}, {\"path\": …}]",
        "referencevideourls": "write \"references\": [{\"url\": …}, {\"path\": …}]",
        "refs": "did you mean \"references\"?",
        "promptextend": "prompt rewriting is not offered for wan2.6 r2v; remove the field",
        "negativeprompt": "did you mean \"negative_prompt\"?",
    ]

    static func normalize(_ s: String) -> String {
        String(s.lowercased().unicodeScalars.filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    /// The candidate closest to `word` when it is a plausible typo of it (at most 2 edits, and fewer than half
    /// the letters); nil otherwise.
    static func nearest(_ word: String, in candidates: [String]) -> String? {
        let w = Array(word.lowercased().unicodeScalars)
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(w, Array(c.unicodeScalars))
            if d <= 2, d * 2 < max(c.unicodeScalars.count, 2), d < best?.1 ?? Int.max { best = (c, d) }
        }
        return best?.0
    }

    /// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent transpositions.
    static func editDistance<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev2 = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    cur[j] = min(cur[j], prev2[j - 2] + 1)
                }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[b.count]
    }
}

/// RFC 6901: `~` is written `~0` and `/` is written `~1` inside a reference token.
func pointerToken(_ key: String) -> String {
    guard key.utf8.contains(where: { $0 == UInt8(ascii: "~") || $0 == UInt8(ascii: "/") }) else { return key }
    return key.replacingTildeAndSlash()
}

private extension String {
    func replacingTildeAndSlash() -> String {
        var out = ""
        for ch in self {
            switch ch {
            case "~": out += "~0"
            case "/": out += "~1"
            default: out.append(ch)
            }
        }
        return out
    }
}
