/// Manifest v1 validation: reads a file's bytes and reports **every** problem, each with an RFC 6901
/// JSON pointer, a message and a hint saying how to fix it; for a file without errors, every job with the batch
/// defaults merged in.
///
/// Decisions (also stated in `examples/manifest.schema.json`):
/// - Integers are JSON numbers with no fractional part, as in JSON Schema 2020-12: `5` and `5.0` are both 5;
///   `5.5`, `"5"` and `true` are not integers. Booleans are only `true`/`false`: `1` is not `true`.
/// - Prompt lengths count Unicode code points (what JSON Schema's `maxLength` and Python's `len` count).
/// - A member name that appears twice in one object is an error (parsers disagree on which one wins).
/// - Built-in defaults, used when neither the job nor `defaults` sets them, are the provider's own:
///   model `wan2.6-r2v`, resolution `1080p`, aspect ratio `16:9`, duration 5 s; priority `normal`.
/// - A local `path` must be absolute; `reelctl submit` resolves relative ones against its working directory
///   before copying the file into the spool (a relative path read by the daemon would depend on its CWD).
/// - For a missing field the pointer names where the field belongs, e.g. `/jobs/2/prompt`.
/// - At most ``maxJobsPerFile`` jobs per file and ``maxIssues`` reported problems.
public enum ManifestValidator {
    public static let manifestVersion = 1
    /// A larger batch is split into several files that share the batch name.
    public static let maxJobsPerFile = 10_000
    /// Reporting stops after this many problems (a hostile or machine-garbled file can have millions).
    public static let maxIssues = 1_000
    /// The longest `path` accepted, in UTF-8 bytes (Linux PATH_MAX including the NUL).
    public static let maxPathBytes = 4_095

    public static let defaultModel = RenderModel.r2v
    public static let defaultResolution = Resolution.p1080
    public static let defaultAspectRatio = AspectRatio.landscape
    public static let defaultDurationSeconds = 5

    /// One reference of one job, where it sits in the file and what is known of it before probing.
    public struct ReferenceSite: Hashable, Sendable {
        /// Index of the job in `jobs`.
        public var job: Int
        /// Index of the reference in the job's `references` (it is named `character<index+1>`).
        public var index: Int
        /// `/jobs/J/references/K`.
        public var pointer: String
        public var source: ReferenceSource
        /// From the URL's extension for URLs; nil for local paths until they are probed.
        public var kind: MediaKind?

        public init(job: Int, index: Int, pointer: String, source: ReferenceSource, kind: MediaKind?) {
            self.job = job
            self.index = index
            self.pointer = pointer
            self.source = source
            self.kind = kind
        }
    }

    /// The report plus every well-formed reference of the file (also of invalid files, so local references can
    /// be probed and reported in the same pass).
    public struct Analysis: Sendable {
        public var report: ManifestReport
        public var references: [ReferenceSite]
    }

    /// Validates one manifest file. `now`, when given, turns a deadline in the past into a warning.
    public static func validate(_ data: [UInt8], now: Timestamp? = nil) -> ManifestReport {
        analyze(data, now: now).report
    }

    /// ``validate(_:now:)`` plus the reference sites ``ReferenceSite`` that local-file probing needs.
    public static func analyze(_ data: [UInt8], now: Timestamp? = nil) -> Analysis {
        var w = Walker(now: now)
        let root: JSONValue
        do {
            root = try JSONValue.parse(data)
        } catch {
            w.error("", "not JSON: \(error.message) at line \(error.line), column \(error.column)",
                    hint: "fix the syntax at that spot (python3 -m json.tool FILE points at the same place)")
            return w.finish()
        }
        guard case .object(let members) = root else {
            w.error("", "the manifest must be a JSON object, got \(root.typeName)",
                    hint: "write { \"manifest_version\": 1, \"batch\": \"NAME\", \"jobs\": [ … ] }")
            return w.finish()
        }
        w.top(members)
        return w.finish()
    }

    /// The error for more than 3 videos among one job's references (`pointer` is `/jobs/J/references`).
    public static func videoCountIssue(pointer: String, videos: Int) -> ManifestIssue? {
        guard videos > ProviderLimits.maxVideoReferences else { return nil }
        return ManifestIssue(.error, pointer,
                             "\(videos) video references; the provider accepts at most \(ProviderLimits.maxVideoReferences)",
                             hint: "keep at most 3 videos (MP4/MOV) and give the other characters as images")
    }

    /// The kind a URL's file extension implies: `.mp4`/`.mov` video; `.png`/`.jpg`/`.jpeg`/`.bmp`/`.webp` image.
    public static func kind(ofURL url: String) -> MediaKind? {
        let b = url.utf8
        let end = b.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? b.endIndex
        return kind(ofExtension: fileExtension(String(url[..<end])))
    }

    /// The kind a file extension (without the dot, any case) implies, nil when it implies neither.
    public static func kind(ofExtension ext: String) -> MediaKind? {
        guard ext.utf8.count <= 4 else { return nil }
        switch ext.lowercased() {
        case "mp4", "mov": return .video
        case "png", "jpg", "jpeg", "bmp", "webp": return .image
        default: return nil
        }
    }

    /// The extension of the last path component, without the dot; "" when there is none.
    public static func fileExtension(_ path: String) -> String {
        let b = path.utf8
        let nameStart = b.lastIndex(of: UInt8(ascii: "/")).map { b.index(after: $0) } ?? b.startIndex
        guard let dot = b[nameStart...].lastIndex(of: UInt8(ascii: ".")), dot != nameStart else { return "" }
        return String(path[b.index(after: dot)...])
    }
}

/// A render setting as read from one object: not given, given but wrong (already reported), or given.
enum Slot<T> {
    case absent
    case invalid
    case given(T, pointer: String)

    /// `.given` when the value was read, `.invalid` when it was present but wrong.
    init(_ value: T?, _ pointer: String) {
        self = value.map { .given($0, pointer: pointer) } ?? .invalid
    }

    func over(_ base: Slot<T>) -> Slot<T> {
        if case .absent = self { return base }
        return self
    }

    var value: T? {
        if case .given(let v, _) = self { return v }
        return nil
    }

    var pointer: String? {
        if case .given(_, let p) = self { return p }
        return nil
    }
}

/// The settings `defaults` may give and a job may override.
struct Settings {
    var model: Slot<RenderModel> = .absent
    var resolution: Slot<Resolution> = .absent
    var aspectRatio: Slot<AspectRatio> = .absent
    var duration: Slot<Int> = .absent
    var shotType: Slot<ShotType> = .absent
    var seed: Slot<Int> = .absent
    var audio: Slot<Bool> = .absent
    var watermark: Slot<Bool> = .absent
    var negativePrompt: Slot<String> = .absent

    func over(_ d: Settings) -> Settings {
        Settings(model: model.over(d.model), resolution: resolution.over(d.resolution),
                 aspectRatio: aspectRatio.over(d.aspectRatio), duration: duration.over(d.duration),
                 shotType: shotType.over(d.shotType), seed: seed.over(d.seed), audio: audio.over(d.audio),
                 watermark: watermark.over(d.watermark), negativePrompt: negativePrompt.over(d.negativePrompt))
    }
}

/// An object's allowed members, each with its pointer, found by a linear scan of at most a dozen names (cheaper
/// than hashing for objects this small).
struct Fields {
    typealias Entry = (value: JSONValue, pointer: String)
    let keys: [String]
    var slots: [Entry?]

    init(keys: [String]) {
        self.keys = keys
        slots = Array(repeating: nil, count: keys.count)
    }

    subscript(key: String) -> Entry? { keys.firstIndex(of: key).flatMap { slots[$0] } }
}

/// One pass over a parsed manifest, collecting issues in document order.
private struct Walker {
    let now: Timestamp?
    var issues: [ManifestIssue] = []
    var seen: Set<ManifestIssue> = []
    var truncated = false
    var hasErrors = false
    var batch: String?
    var specs: [JobSpec] = []
    var sites: [ManifestValidator.ReferenceSite] = []

    // Batch-level values every job carries.
    var priority = Priority.normal
    var deadline: Double?
    var budget: Double?
    var defaults = Settings()
    var ids: [String: String] = [:]

    init(now: Timestamp?) { self.now = now }

    // MARK: Issues

    /// Records an issue; once ``ManifestValidator/maxIssues`` are recorded, only whether errors exist is tracked
    /// (message and hint are not even built, so a file with a million bad members costs little).
    mutating func add(_ severity: ManifestIssue.Severity, _ pointer: @autoclosure () -> String,
                      _ message: @autoclosure () -> String, hint: @autoclosure () -> String) {
        if severity == .error { hasErrors = true }
        guard !truncated else { return }
        let issue = ManifestIssue(severity, pointer(), message(), hint: hint())
        guard seen.insert(issue).inserted else { return }
        if issues.count >= ManifestValidator.maxIssues {
            truncated = true
            issues.append(ManifestIssue(.error, "", "more than \(ManifestValidator.maxIssues) problems; the rest are not listed",
                                        hint: "fix the problems above and validate again"))
            return
        }
        issues.append(issue)
    }

    mutating func error(_ pointer: @autoclosure () -> String, _ message: @autoclosure () -> String,
                        hint: @autoclosure () -> String) {
        add(.error, pointer(), message(), hint: hint())
    }

    func finish() -> ManifestValidator.Analysis {
        ManifestValidator.Analysis(report: ManifestReport(batch: batch, jobs: hasErrors ? [] : specs, issues: issues),
                                   references: sites)
    }

    // MARK: Members and scalar values

    /// The members of an object by name, after reporting duplicates and names not allowed at `level`.
    mutating func members(_ m: [(key: String, value: JSONValue)], at p: String, level: ManifestLevel) -> Fields {
        var fields = Fields(keys: level.keys)
        for (key, value) in m {
            let kp = p + "/" + pointerToken(key)
            if let slot = fields.keys.firstIndex(of: key) {
                if fields.slots[slot] != nil {
                    error(kp, "\"\(key)\" appears more than once in this object",
                          hint: "keep one \"\(key)\": JSON readers disagree on which copy wins")
                }
                fields.slots[slot] = (value, kp)
            } else {
                error(kp, "unknown field \"\(key)\" \(level.place)", hint: level.hint(forUnknown: key))
            }
        }
        return fields
    }

    mutating func string(_ v: JSONValue, _ p: String, _ name: String, hint: @autoclosure () -> String) -> String? {
        if case .string(let s) = v { return s }
        error(p, "\"\(name)\" must be a string, got \(v.typeName)", hint: hint())
        return nil
    }

    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ v: JSONValue, _ p: String, _ name: String,
                                                                  _: E.Type) -> E? where E.RawValue == String {
        if case .string(let s) = v, let e = E(rawValue: s) { return e }
        let all = E.allCases.map(\.rawValue)
        let list = all.map { "\"\($0)\"" }.joined(separator: ", ")
        let written: String
        switch v {
        case .string(let s): written = s
        case .number(let n): written = n.text
        default:
            error(p, "\"\(name)\" must be a string, got \(v.typeName)", hint: "use one of: \(list)")
            return nil
        }
        let near = all.first { $0.lowercased() == written.lowercased() } ?? ManifestLevel.nearest(written, in: all)
        let hint = near.map { "did you mean \"\($0)\"? Allowed: \(list)" } ?? "use one of: \(list)"
        if case .number = v {
            error(p, "\"\(name)\" must be a string, got a number", hint: hint)
        } else {
            error(p, "\"\(name)\" is \"\(written)\", which is not one of the allowed values", hint: hint)
        }
        return nil
    }

    mutating func integer(_ v: JSONValue, _ p: String, _ name: String, _ range: ClosedRange<Int>,
                          hint: @autoclosure () -> String) -> Int? {
        switch v {
        case .number(let n):
            if let i = n.integer, range.contains(i) { return i }
            if n.integer == nil, n.value.isFinite, abs(n.value) < 9e15 {
                error(p, "\"\(name)\" must be a whole number, got \(n.text)", hint: hint())
            } else {
                error(p, "\"\(name)\" is \(n.text), outside \(range.lowerBound)–\(range.upperBound)", hint: hint())
            }
        case .string(let s) where Int(s) != nil:
            error(p, "\"\(name)\" must be a number, got the string \"\(s)\"", hint: "write \(s) without quotes")
        default:
            error(p, "\"\(name)\" must be a whole number, got \(v.typeName)", hint: hint())
        }
        return nil
    }

    mutating func boolean(_ v: JSONValue, _ p: String, _ name: String) -> Bool? {
        if case .bool(let b) = v { return b }
        let hint = switch v {
        case .string(let s) where s == "true" || s == "false": "write \(s) without quotes"
        case .number: "write true or false; numbers are not booleans"
        default: "write true or false"
        }
        error(p, "\"\(name)\" must be true or false, got \(v.typeName)", hint: hint)
        return nil
    }

    mutating func limitedText(_ v: JSONValue, _ p: String, _ name: String, max: Int) -> String? {
        guard let s = string(v, p, name, hint: "write the text in double quotes") else { return nil }
        let count = s.unicodeScalars.count
        guard count <= max else {
            error(p, "\"\(name)\" is \(count) characters; the provider accepts at most \(max) and silently cuts longer text",
                  hint: "shorten it by \(count - max) characters (Unicode code points are counted)")
            return nil
        }
        return s
    }

    mutating func identifier(_ v: JSONValue, _ p: String, _ name: String) -> String? {
        let rule = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters"
        guard let s = string(v, p, name, hint: "write it in double quotes: \(rule)") else { return nil }
        if Identifier.isValid(s) { return s }
        var hint = "use \(rule)"
        if let example = Self.sanitized(s) { hint += ", for example \"\(example)\"" }
        hint += "; the pattern is \(Identifier.syntax)"
        error(p, s.isEmpty ? "\"\(name)\" is empty" : "\"\(name)\" \"\(s)\" is not a valid name", hint: hint)
        return nil
    }

    /// `s` with every disallowed character replaced by `-`, trimmed to a valid identifier; nil if nothing is left.
    static func sanitized(_ s: String) -> String? {
        var chars = s.unicodeScalars.map { c -> Character in
            c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "." || c == "_" || c == "-")
                ? Character(c) : "-"
        }
        while let f = chars.first, !(f.isASCII && (f.isLetter || f.isNumber)) { chars.removeFirst() }
        let out = String(chars.prefix(Identifier.maxLength))
        return Identifier.isValid(out) ? out : nil
    }

    // MARK: Top level

    mutating func top(_ m: [(key: String, value: JSONValue)]) {
        let f = members(m, at: "", level: .top)
        if let (v, p) = f["manifest_version"] {
            if case .number(let n) = v, n.integer == ManifestValidator.manifestVersion {
                // ok
            } else if case .number(let n) = v {
                error(p, "manifest_version \(n.text) is not supported; this Reel reads version 1",
                      hint: "write \"manifest_version\": 1, or upgrade Reel to read newer manifests")
            } else {
                error(p, "\"manifest_version\" must be the number 1, got \(v.typeName)",
                      hint: "write \"manifest_version\": 1 (no quotes)")
            }
        } else {
            error("/manifest_version", "\"manifest_version\" is missing",
                  hint: "add \"manifest_version\": 1 as the first member")
        }
        if let (v, p) = f["$schema"] { _ = string(v, p, "$schema", hint: "write the schema's URL or path in double quotes, or remove it") }
        if let (v, p) = f["batch"] {
            batch = identifier(v, p, "batch")
        } else {
            error("/batch", "\"batch\" is missing",
                  hint: "add \"batch\": \"NAME\" (\(Identifier.syntax)); jobs are addressed as NAME/ID")
        }
        if let (v, p) = f["priority"], let pr = enumeration(v, p, "priority", Priority.self) { priority = pr }
        if let (v, p) = f["deadline"], let s = string(v, p, "deadline", hint: "write an RFC 3339 time in quotes, e.g. \"2026-12-01T18:00:00Z\"") {
            if let t = RFC3339.parse(s) {
                deadline = t
                if let now, t < now {
                    add(.warning, p, "deadline \(s) is already past",
                        hint: "jobs still run, as soon as possible; set a future deadline or remove it")
                }
            } else {
                error(p, "deadline \"\(s)\" is not an RFC 3339 date-time",
                      hint: "write it like \"2026-12-01T18:00:00Z\" or \"2026-12-01T20:00:00+02:00\": date, 'T', time, then 'Z' or an offset")
            }
        }
        if let (v, p) = f["budget_usd"] {
            if case .number(let n) = v, n.value.isFinite, n.value >= 0 {
                budget = n.value
            } else if case .number(let n) = v {
                error(p, "\"budget_usd\" is \(n.text); it must be 0 or more", hint: "write the batch's spending cap in US dollars, e.g. 40.0")
            } else {
                error(p, "\"budget_usd\" must be a number, got \(v.typeName)",
                      hint: "write the batch's spending cap in US dollars as a number, e.g. 40.0 (no quotes or $ sign)")
            }
        }
        if let (v, p) = f["defaults"] {
            if case .object(let dm) = v {
                let df = members(dm, at: p, level: .defaults)
                defaults = settings(df)
            } else {
                error(p, "\"defaults\" must be an object, got \(v.typeName)",
                      hint: "write \"defaults\": { \"model\": \"wan2.6-r2v\", \"resolution\": \"1080p\", … }")
            }
        }
        guard let (jv, jp) = f["jobs"] else {
            error("/jobs", "\"jobs\" is missing",
                  hint: "add \"jobs\": [ { \"id\": …, \"prompt\": …, \"references\": [ … ] } ]")
            return
        }
        guard case .array(let jobs) = jv else {
            error(jp, "\"jobs\" must be an array, got \(jv.typeName)", hint: "write \"jobs\": [ { … }, { … } ]")
            return
        }
        if jobs.isEmpty {
            error(jp, "\"jobs\" is empty", hint: "add at least one job; a manifest without jobs has nothing to render")
        } else if jobs.count > ManifestValidator.maxJobsPerFile {
            error(jp, "\(jobs.count) jobs in one file; at most \(ManifestValidator.maxJobsPerFile)",
                  hint: "split the batch into several files with the same \"batch\" name")
        }
        for (n, job) in jobs.enumerated() {
            if let spec = self.job(n, job) { specs.append(spec) }
        }
    }

    /// Reads the render settings present in `f` (a `defaults` or job object).
    mutating func settings(_ f: Fields) -> Settings {
        var s = Settings()
        if let (v, p) = f["model"] { s.model = Slot(enumeration(v, p, "model", RenderModel.self), p) }
        if let (v, p) = f["resolution"] { s.resolution = Slot(enumeration(v, p, "resolution", Resolution.self), p) }
        if let (v, p) = f["aspect_ratio"] { s.aspectRatio = Slot(enumeration(v, p, "aspect_ratio", AspectRatio.self), p) }
        if let (v, p) = f["duration_s"] {
            s.duration = Slot(integer(v, p, "duration_s", ProviderLimits.durationRange,
                                      hint: "use whole seconds from 2 to 10, the lengths the provider renders"), p)
        }
        if let (v, p) = f["shot_type"] { s.shotType = Slot(enumeration(v, p, "shot_type", ShotType.self), p) }
        if let (v, p) = f["seed"] {
            s.seed = Slot(integer(v, p, "seed", ProviderLimits.seedRange,
                                  hint: "use a whole number from 0 to 2147483647, or leave it out for a random seed"), p)
        }
        if let (v, p) = f["audio"] { s.audio = Slot(boolean(v, p, "audio"), p) }
        if let (v, p) = f["watermark"] { s.watermark = Slot(boolean(v, p, "watermark"), p) }
        if let (v, p) = f["negative_prompt"] {
            s.negativePrompt = Slot(limitedText(v, p, "negative_prompt", max: ProviderLimits.maxNegativePromptCharacters), p)
        }
        return s
    }

    // MARK: Jobs

    mutating func job(_ n: Int, _ v: JSONValue) -> JobSpec? {
        let p = "/jobs/\(n)"
        guard case .object(let m) = v else {
            error(p, "each job must be an object, got \(v.typeName)",
                  hint: "write { \"id\": \"shot-001\", \"prompt\": \"…\", \"references\": [ … ] }")
            return nil
        }
        let f = members(m, at: p, level: .job)

        var id: String?
        if let (iv, ip) = f["id"] {
            if let s = identifier(iv, ip, "id") {
                if let first = ids[s] {
                    error(ip, "job id \"\(s)\" is used twice in this file", hint: "first used at \(first); give every job its own id")
                } else {
                    ids[s] = ip
                    id = s
                }
            }
        } else {
            error(p + "/id", "\"id\" is missing", hint: "give the job an id unique in its batch (\(Identifier.syntax))")
        }

        var prompt: String?
        if let (pv, pp) = f["prompt"] {
            if let s = limitedText(pv, pp, "prompt", max: ProviderLimits.maxPromptCharacters) {
                if s.allSatisfy(\.isWhitespace) {
                    error(pp, "\"prompt\" is empty", hint: "describe the shot, naming the references character1, character2, …")
                } else {
                    prompt = s
                }
            }
        } else {
            error(p + "/prompt", "\"prompt\" is missing",
                  hint: "add \"prompt\": \"…\", naming the references character1, character2, … in their order")
        }

        let s = settings(f).over(defaults)
        checkAudio(s)

        let refs = references(n, f["references"], at: p + "/references")
        if let prompt, let count = refs.count { checkCharacters(prompt, count: count, job: p) }

        guard let batch, let id, let prompt, let refs = refs.sites,
              let model = value(s.model, ManifestValidator.defaultModel),
              let resolution = value(s.resolution, ManifestValidator.defaultResolution),
              let aspect = value(s.aspectRatio, ManifestValidator.defaultAspectRatio),
              let duration = value(s.duration, ManifestValidator.defaultDurationSeconds),
              let shotType = optional(s.shotType), let seed = optional(s.seed), let audio = optional(s.audio),
              let watermark = optional(s.watermark), let negative = optional(s.negativePrompt)
        else { return nil }
        return JobSpec(key: JobKey(batch: batch, id: id), model: model, resolution: resolution, aspectRatio: aspect,
                       durationSeconds: duration, prompt: prompt, negativePrompt: negative,
                       references: refs.map { Reference(source: $0.source, kind: $0.kind) },
                       shotType: shotType, seed: seed, audio: audio, watermark: watermark, priority: priority,
                       deadline: deadline, budgetUSD: budget)
    }

    /// The merged value, the built-in default when absent, nil when the given value was invalid.
    func value<T>(_ slot: Slot<T>, _ fallback: T) -> T? {
        switch slot {
        case .absent: fallback
        case .invalid: nil
        case .given(let v, _): v
        }
    }

    /// `.some(nil)` when absent (the provider's default applies), nil when the given value was invalid.
    func optional<T>(_ slot: Slot<T>) -> T?? {
        switch slot {
        case .absent: .some(nil)
        case .invalid: nil
        case .given(let v, _): .some(v)
        }
    }

    /// `audio: false` needs the flash model. Reported where the job departs from its defaults: at the job's
    /// `audio` when it sets one, else at the job's `model` when it sets one, else once at `/defaults/audio`.
    mutating func checkAudio(_ s: Settings) {
        guard case .given(false, let ap) = s.audio else { return }
        let model: RenderModel
        let from: String
        switch s.model {
        case .invalid: return
        case .absent: (model, from) = (ManifestValidator.defaultModel, "the built-in default")
        case .given(let m, let mp): (model, from) = (m, mp)
        }
        guard !model.supportsSilentOutput else { return }
        let flash = RenderModel.r2vFlash.rawValue
        let at = ap.hasPrefix("/jobs/") ? ap : s.model.pointer.flatMap { $0.hasPrefix("/jobs/") ? $0 : nil } ?? ap
        let fix = s.model.pointer.map { "set \($0) to \"\(flash)\"" } ?? "set \"model\": \"\(flash)\" in defaults or in the job"
        error(at, "\"audio\": false\(at == ap ? "" : " (from \(ap))") needs model \"\(flash)\", but the model is \"\(model.rawValue)\" (from \(from))",
              hint: "\(fix), or remove \"audio\": false: \(model.rawValue) always renders sound")
    }

    /// Checks a job's references; `count` is the array's length when it is an array, `sites` is set when every
    /// reference is well-formed.
    mutating func references(_ job: Int, _ entry: Fields.Entry?,
                             at rp: String) -> (count: Int?, sites: [ManifestValidator.ReferenceSite]?) {
        guard let (v, _) = entry else {
            error(rp, "\"references\" is missing",
                  hint: "add 1–5 references, e.g. \"references\": [{\"url\": \"https://…/anna.png\"}, {\"path\": \"/srv/refs/ben.mp4\"}]")
            return (nil, nil)
        }
        guard case .array(let items) = v else {
            error(rp, "\"references\" must be an array, got \(v.typeName)",
                  hint: "write \"references\": [{\"url\": …}, {\"path\": …}]")
            return (nil, nil)
        }
        if items.isEmpty {
            error(rp, "\"references\" is empty; the provider needs 1 to 5",
                  hint: "add an image or video of each character: [{\"url\": …}] or [{\"path\": …}]")
        } else if items.count > ProviderLimits.maxReferences {
            error(rp, "\(items.count) references; the provider accepts at most \(ProviderLimits.maxReferences)",
                  hint: "keep at most 5 (images and videos together, at most 3 videos)")
        }
        var found: [ManifestValidator.ReferenceSite] = []
        for (k, item) in items.enumerated() {
            if let site = reference(job, k, item, at: rp + "/\(k)") { found.append(site) }
        }
        sites.append(contentsOf: found)
        if let issue = ManifestValidator.videoCountIssue(pointer: rp, videos: found.count(where: { $0.kind == .video })) {
            error(issue.pointer, issue.message, hint: issue.hint)
        }
        return (items.count, found.count == items.count ? found : nil)
    }

    mutating func reference(_ job: Int, _ k: Int, _ v: JSONValue, at p: String) -> ManifestValidator.ReferenceSite? {
        guard case .object(let m) = v else {
            var hint = "write {\"url\": \"https://…\"} or {\"path\": \"/absolute/file\"}"
            if case .string(let s) = v { hint = s.hasPrefix("/") ? "write {\"path\": \"\(s)\"}" : "write {\"url\": \"\(s)\"}" }
            error(p, "each reference must be an object, got \(v.typeName)", hint: hint)
            return nil
        }
        let f = members(m, at: p, level: .reference)
        let source: ReferenceSource
        switch (f["url"], f["path"]) {
        case (nil, nil):
            error(p, "a reference needs \"url\" or \"path\"",
                  hint: "write {\"url\": \"https://…\"} for a file the provider can fetch, or {\"path\": \"/absolute/file\"} for a local file Reel uploads")
            return nil
        case (.some, .some):
            error(p, "a reference has both \"url\" and \"path\"; give exactly one",
                  hint: "keep \"url\" when the provider can fetch it, else \"path\" to have Reel upload the local file")
            return nil
        case (let (uv, up)?, nil):
            guard let u = url(uv, up) else { return nil }
            source = .url(u)
        case (nil, let (pv, pp)?):
            guard let path = path(pv, pp) else { return nil }
            source = .path(path)
        }
        let kind: MediaKind? = if case .url(let u) = source { ManifestValidator.kind(ofURL: u) } else { nil }
        return ManifestValidator.ReferenceSite(job: job, index: k, pointer: p, source: source, kind: kind)
    }

    mutating func url(_ v: JSONValue, _ p: String) -> String? {
        guard let s = string(v, p, "url", hint: "write the URL in double quotes") else { return nil }
        let b = s.utf8
        guard let colon = b.firstIndex(of: UInt8(ascii: ":")), colon != b.startIndex,
              b[..<colon].allSatisfy({ ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2B || $0 == 0x2D || $0 == 0x2E })
        else {
            error(p, "\"\(s)\" is not a URL (no scheme)",
                  hint: s.hasPrefix("/") ? "for a local file write {\"path\": \"\(s)\"}; Reel uploads it"
                                         : "write the full URL, e.g. \"https://\(s)\"")
            return nil
        }
        let scheme = s[..<colon].lowercased()
        let rest = s[s.index(after: colon)...]
        switch scheme {
        case "http", "https", "oss":
            let r = rest.utf8
            guard r.starts(with: "//".utf8), let first = r.dropFirst(2).first,
                  first != UInt8(ascii: "/"), first != UInt8(ascii: "?"), first != UInt8(ascii: "#")
            else {
                error(p, "URL \"\(s)\" has no host", hint: "write it as \(scheme)://HOST/PATH")
                return nil
            }
            if let bad = s.unicodeScalars.first(where: { $0.value <= 0x20 || $0.value == 0x7F || ($0.value > 0x7F && $0.properties.isWhitespace) }) {
                error(p, "URL contains \(bad == " " ? "a space" : "a whitespace or control character")",
                      hint: "percent-encode it (a space is %20)")
                return nil
            }
            return s
        case "file":
            let local = rest.hasPrefix("//") ? String(rest.dropFirst(2)) : String(rest)
            error(p, "file: URLs are not accepted; the provider cannot fetch files from this machine",
                  hint: "write {\"path\": \"\(local.hasPrefix("/") ? local : "/" + local)\"} instead; Reel uploads local files itself")
        default:
            error(p, "URL scheme \"\(scheme)\" is not accepted; the provider fetches http, https and oss URLs",
                  hint: "host the file on an http(s) server, or give it as {\"path\": \"/absolute/file\"} so Reel uploads it")
        }
        return nil
    }

    mutating func path(_ v: JSONValue, _ p: String) -> String? {
        guard let s = string(v, p, "path", hint: "write the absolute path in double quotes") else { return nil }
        if s.isEmpty {
            error(p, "\"path\" is empty", hint: "write the file's absolute path, e.g. \"/srv/refs/anna.png\"")
        } else if s.utf8.contains(0) {
            error(p, "\"path\" contains a NUL character", hint: "remove the \\u0000 from the path")
        } else if !s.hasPrefix("/") {
            error(p, "\"path\" \"\(s)\" is not absolute",
                  hint: "write the full path from / (the daemon has no working directory of yours); `reelctl submit` makes relative paths absolute for you")
        } else if s.utf8.count > ManifestValidator.maxPathBytes {
            error(p, "\"path\" is \(s.utf8.count) bytes long; at most \(ManifestValidator.maxPathBytes)",
                  hint: "move the file to a shorter path")
        } else {
            return s
        }
        return nil
    }

    /// `characterN` (any case) in the prompt must name one of the `count` references; a reference never named
    /// is a warning.
    mutating func checkCharacters(_ prompt: String, count: Int, job p: String) {
        let named = ManifestValidator.characterNumbers(in: prompt)
        for n in named.sorted() where n < 1 || n > count {
            if n < 1 {
                error(p + "/prompt", "the prompt names character\(n), but references are numbered from character1",
                      hint: "name the first reference character1")
            } else {
                error(p + "/prompt",
                      "the prompt names character\(n), but the job has \(count) reference\(count == 1 ? "" : "s")",
                      hint: count == 0 ? "add references; they are named character1, character2, … in their order"
                                       : "references are named character1…character\(count) in the order of \"references\"; add a reference or fix the name")
            }
        }
        for k in 0..<min(count, ProviderLimits.maxReferences) where !named.contains(k + 1) {
            add(.warning, p + "/references/\(k)", "reference \(k + 1) is never named in the prompt (as character\(k + 1))",
                hint: "name it character\(k + 1) in the prompt, or remove it: the model recognises references only by that name, and each one still counts in billing")
        }
    }
}

extension ManifestValidator {
    /// The numbers N of every `characterN` in `prompt`, matched case-insensitively (`Character1` appears in the
    /// provider's own examples). Numbers beyond 9999 are reported as 9999+1.
    public static func characterNumbers(in prompt: String) -> Set<Int> {
        let b = Array(prompt.utf8)
        let word = Array("character".utf8)
        var out: Set<Int> = []
        var i = 0
        while i + word.count < b.count {
            var match = true
            for j in 0..<word.count where b[i + j] | 0x20 != word[j] {
                match = false
                break
            }
            guard match else {
                i += 1
                continue
            }
            var k = i + word.count
            var n = 0
            while k < b.count, b[k] >= 0x30, b[k] <= 0x39 {
                n = min(n * 10 + Int(b[k] - 0x30), 10_000)
                k += 1
            }
            if k > i + word.count { out.insert(n) }
            i = k
        }
        return out
    }
}
