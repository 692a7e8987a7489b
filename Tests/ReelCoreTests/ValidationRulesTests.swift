import ReelCore
import Testing

private let two = #"[{"url": "https://cdn.example.com/a.mp4"}, {"url": "https://cdn.example.com/b.png"}]"#
private let both = #""character1 and character2""#
private func urls(_ names: [String]) -> String {
    "[" + names.map { #"{"url": "https://cdn.example.com/\#($0)"}"# }.joined(separator: ", ") + "]"
}
private func chars(_ n: Int) -> String { "\"" + (1...n).map { "character\($0)" }.joined(separator: " ") + "\"" }
private let deadlineNow: Timestamp = 1_796_148_000  // 2026-12-01T18:00:00Z

/// One row per manifest rule: the valid side and the invalid side, each with the exact pointers expected.
private let cases: [ValidationCase] = [
    // Document shape
    .init("base manifest is valid", ManifestText.doc()),
    .init("not JSON", "{\"manifest_version\": 1,", ["E "]),
    .init("empty file", "", ["E "]),
    .init("trailing comma is not JSON", #"{"a": 1,}"#, ["E "]),
    .init("top level not an object", "[1, 2]", ["E "]),
    .init("nesting too deep", String(repeating: "[", count: 100) + String(repeating: "]", count: 100), ["E "]),
    .init("lone surrogate", #"{"batch": "\udc00"}"#, ["E "]),
    .init("raw control character in a string", "{\"batch\": \"b\u{1}\"}", ["E "]),
    .init("BOM is accepted", "\u{FEFF}" + ManifestText.doc()),
    .init("$schema is allowed", ManifestText.doc(["$schema": #""../manifest.schema.json""#])),
    .init("$schema must be a string", ManifestText.doc(["$schema": "1"]), ["E /$schema"]),

    // manifest_version
    .init("version missing", ManifestText.doc(omit: ["manifest_version"]), ["E /manifest_version"]),
    .init("version 2", ManifestText.doc(["manifest_version": "2"]), ["E /manifest_version"]),
    .init("version as string", ManifestText.doc(["manifest_version": #""1""#]), ["E /manifest_version"]),
    .init("version true is not 1", ManifestText.doc(["manifest_version": "true"]), ["E /manifest_version"]),
    .init("version 1.0 is 1", ManifestText.doc(["manifest_version": "1.0"])),

    // Unknown fields, every level; member names are escaped per RFC 6901
    .init("unknown top field", ManifestText.doc(["bacth": #""x""#]), ["E /bacth"]),
    .init("unknown defaults field", ManifestText.doc(["defaults": #"{"modle": "wan2.6-r2v"}"#]), ["E /defaults/modle"]),
    .init("unknown job field", ManifestText.doc(jobs: [ManifestText.job(["promt": #""x""#])]), ["E /jobs/0/promt"]),
    .init("unknown reference field",
          ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "https://cdn.example.com/a.png", "kind": "image"}]"#])]),
          ["E /jobs/0/references/0/kind"]),
    .init("pointer escapes ~ and /", ManifestText.doc(["a/b~c": "1"]), ["E /a~1b~0c"]),
    .init("job-only key in defaults", ManifestText.doc(["defaults": #"{"prompt": "x"}"#]), ["E /defaults/prompt"]),
    .init("batch key in a job", ManifestText.doc(jobs: [ManifestText.job(["priority": #""rush""#])]), ["E /jobs/0/priority"]),
    .init("duplicate member", ManifestText.doc(jobs: [ManifestText.object(ManifestText.baseJob.map { ($0.key, $0.value) } + [("seed", "1"), ("seed", "2")])]),
          ["E /jobs/0/seed"]),

    // batch and id syntax
    .init("batch missing", ManifestText.doc(omit: ["batch"]), ["E /batch"]),
    .init("batch starts with -", ManifestText.doc(["batch": #""-spring""#]), ["E /batch"]),
    .init("batch of 65 chars", ManifestText.doc(["batch": "\"" + String(repeating: "a", count: 65) + "\""]), ["E /batch"]),
    .init("batch of 64 chars with . _ -", ManifestText.doc(["batch": "\"A" + String(repeating: "._-9", count: 15) + "xyz\""])),
    .init("batch not a string", ManifestText.doc(["batch": "7"]), ["E /batch"]),
    .init("id with a space", ManifestText.doc(jobs: [ManifestText.job(["id": #""shot 1""#])]), ["E /jobs/0/id"]),
    .init("id with a slash", ManifestText.doc(jobs: [ManifestText.job(["id": #""a/b""#])]), ["E /jobs/0/id"]),
    .init("id missing", ManifestText.doc(jobs: [ManifestText.job(omit: ["id"])]), ["E /jobs/0/id"]),
    .init("duplicate ids", ManifestText.doc(jobs: [ManifestText.job(), ManifestText.job(), ManifestText.job(["id": #""j2""#])]), ["E /jobs/1/id"]),

    // jobs
    .init("jobs missing", ManifestText.doc(omit: ["jobs"]), ["E /jobs"]),
    .init("jobs not an array", ManifestText.doc(["jobs": "{}"]), ["E /jobs"]),
    .init("jobs empty", ManifestText.doc(["jobs": "[]"]), ["E /jobs"]),
    .init("job not an object", ManifestText.doc(jobs: ["1", ManifestText.job(["id": #""j2""#])]), ["E /jobs/0"]),

    // Enums
    .init("model flash", ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v-flash""#])])),
    .init("model unknown", ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v-fast""#])]), ["E /jobs/0/model"]),
    .init("resolution 720p", ManifestText.doc(jobs: [ManifestText.job(["resolution": #""720p""#])])),
    .init("resolution upper case", ManifestText.doc(jobs: [ManifestText.job(["resolution": #""1080P""#])]), ["E /jobs/0/resolution"]),
    .init("resolution as number", ManifestText.doc(jobs: [ManifestText.job(["resolution": "1080"])]), ["E /jobs/0/resolution"]),
    .init("every aspect ratio", ManifestText.doc(jobs: ["16:9", "9:16", "1:1", "4:3", "3:4"].enumerated().map {
        ManifestText.job(["id": "\"j\($0.offset)\"", "aspect_ratio": "\"\($0.element)\""])
    })),
    .init("aspect 16x9", ManifestText.doc(jobs: [ManifestText.job(["aspect_ratio": #""16x9""#])]), ["E /jobs/0/aspect_ratio"]),
    .init("shot_type multi", ManifestText.doc(jobs: [ManifestText.job(["shot_type": #""multi""#])])),
    .init("shot_type double", ManifestText.doc(jobs: [ManifestText.job(["shot_type": #""double""#])]), ["E /jobs/0/shot_type"]),
    .init("priority rush", ManifestText.doc(["priority": #""rush""#])),
    .init("priority urgent", ManifestText.doc(["priority": #""urgent""#]), ["E /priority"]),

    // duration_s: integer 2–10
    .init("duration 2", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "2"])])),
    .init("duration 10", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "10"])])),
    .init("duration 5.0 is an integer", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "5.0"])])),
    .init("duration 1", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "1"])]), ["E /jobs/0/duration_s"]),
    .init("duration 11", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "11"])]), ["E /jobs/0/duration_s"]),
    .init("duration 5.5", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "5.5"])]), ["E /jobs/0/duration_s"]),
    .init("duration string", ManifestText.doc(jobs: [ManifestText.job(["duration_s": #""5""#])]), ["E /jobs/0/duration_s"]),
    .init("duration true", ManifestText.doc(jobs: [ManifestText.job(["duration_s": "true"])]), ["E /jobs/0/duration_s"]),

    // seed: integer 0–2147483647
    .init("seed 0", ManifestText.doc(jobs: [ManifestText.job(["seed": "0"])])),
    .init("seed max", ManifestText.doc(jobs: [ManifestText.job(["seed": "2147483647"])])),
    .init("seed -1", ManifestText.doc(jobs: [ManifestText.job(["seed": "-1"])]), ["E /jobs/0/seed"]),
    .init("seed max+1", ManifestText.doc(jobs: [ManifestText.job(["seed": "2147483648"])]), ["E /jobs/0/seed"]),
    .init("seed 1e400", ManifestText.doc(jobs: [ManifestText.job(["seed": "1e400"])]), ["E /jobs/0/seed"]),
    .init("seed 1.5", ManifestText.doc(jobs: [ManifestText.job(["seed": "1.5"])]), ["E /jobs/0/seed"]),

    // audio: false only with flash; booleans are booleans
    .init("audio false on flash", ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v-flash""#, "audio": "false"])])),
    .init("audio true on r2v", ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v""#, "audio": "true"])])),
    .init("audio false on r2v", ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v""#, "audio": "false"])]), ["E /jobs/0/audio"]),
    .init("audio false on the default model", ManifestText.doc(jobs: [ManifestText.job(["audio": "false"])]), ["E /jobs/0/audio"]),
    .init("audio false in defaults, default model: one error",
          ManifestText.doc(["defaults": #"{"audio": false}"#], jobs: [ManifestText.job(), ManifestText.job(["id": #""j2""#])]), ["E /defaults/audio"]),
    .init("audio false and flash in defaults, a job switches to r2v",
          ManifestText.doc(["defaults": #"{"audio": false, "model": "wan2.6-r2v-flash"}"#],
                jobs: [ManifestText.job(), ManifestText.job(["id": #""j2""#, "model": #""wan2.6-r2v""#])]), ["E /jobs/1/model"]),
    .init("audio false in defaults with an invalid model: no cascade",
          ManifestText.doc(["defaults": #"{"audio": false, "model": "nope"}"#]), ["E /defaults/model"]),
    .init("audio 0", ManifestText.doc(jobs: [ManifestText.job(["audio": "0"])]), ["E /jobs/0/audio"]),
    .init("watermark true", ManifestText.doc(jobs: [ManifestText.job(["watermark": "true"])])),
    .init("watermark as string", ManifestText.doc(jobs: [ManifestText.job(["watermark": #""true""#])]), ["E /jobs/0/watermark"]),

    // deadline and budget
    .init("deadline Z", ManifestText.doc(["deadline": #""2026-12-01T18:00:00Z""#])),
    .init("deadline offset and fraction", ManifestText.doc(["deadline": #""2028-02-29T10:00:00.25+02:00""#])),
    .init("deadline month 13", ManifestText.doc(["deadline": #""2026-13-01T00:00:00Z""#]), ["E /deadline"]),
    .init("deadline Feb 29 of a common year", ManifestText.doc(["deadline": #""2026-02-29T00:00:00Z""#]), ["E /deadline"]),
    .init("deadline without zone", ManifestText.doc(["deadline": #""2026-12-01T18:00:00""#]), ["E /deadline"]),
    .init("deadline with a space", ManifestText.doc(["deadline": #""2026-12-01 18:00:00Z""#]), ["E /deadline"]),
    .init("deadline as number", ManifestText.doc(["deadline": "1796148000"]), ["E /deadline"]),
    .init("deadline past with now", ManifestText.doc(["deadline": #""2026-12-01T17:59:59Z""#]), ["W /deadline"], now: deadlineNow),
    .init("deadline now is not past", ManifestText.doc(["deadline": #""2026-12-01T18:00:00Z""#]), now: deadlineNow),
    .init("deadline past without now", ManifestText.doc(["deadline": #""2020-01-01T00:00:00Z""#])),
    .init("budget 0", ManifestText.doc(["budget_usd": "0"])),
    .init("budget 40.5", ManifestText.doc(["budget_usd": "40.5"])),
    .init("budget negative", ManifestText.doc(["budget_usd": "-1"]), ["E /budget_usd"]),
    .init("budget string", ManifestText.doc(["budget_usd": #""40""#]), ["E /budget_usd"]),

    // prompt and negative_prompt
    .init("prompt missing", ManifestText.doc(jobs: [ManifestText.job(omit: ["prompt"])]), ["E /jobs/0/prompt"]),
    .init("prompt empty", ManifestText.doc(jobs: [ManifestText.job(["prompt": #""""#])]), ["E /jobs/0/prompt"]),
    .init("prompt blank", ManifestText.doc(jobs: [ManifestText.job(["prompt": #"" \n\t ""#])]), ["E /jobs/0/prompt"]),
    .init("prompt not a string", ManifestText.doc(jobs: [ManifestText.job(["prompt": #"["x"]"#])]), ["E /jobs/0/prompt"]),
    .init("prompt of 1500 code points (emoji count once)",
          ManifestText.doc(jobs: [ManifestText.job(["prompt": "\"character1 " + String(repeating: "🎬", count: 1489) + "\""])])),
    .init("prompt of 1501 code points",
          ManifestText.doc(jobs: [ManifestText.job(["prompt": "\"character1 " + String(repeating: "x", count: 1490) + "\""])]), ["E /jobs/0/prompt"]),
    .init("negative prompt of 500", ManifestText.doc(jobs: [ManifestText.job(["negative_prompt": "\"" + String(repeating: "n", count: 500) + "\""])])),
    .init("negative prompt of 501", ManifestText.doc(jobs: [ManifestText.job(["negative_prompt": "\"" + String(repeating: "n", count: 501) + "\""])]),
          ["E /jobs/0/negative_prompt"]),
    .init("negative prompt of 501 in defaults", ManifestText.doc(["defaults": "{\"negative_prompt\": \"" + String(repeating: "n", count: 501) + "\"}"]),
          ["E /defaults/negative_prompt"]),

    // references: 1–5, ≤ 3 videos, url xor path
    .init("references missing", ManifestText.doc(jobs: [ManifestText.job(omit: ["references"])]), ["E /jobs/0/references"]),
    .init("references not an array", ManifestText.doc(jobs: [ManifestText.job(["references": #"{"url": "https://a.example/x.png"}"#])]),
          ["E /jobs/0/references"]),
    .init("references empty", ManifestText.doc(jobs: [ManifestText.job(["references": "[]", "prompt": #""a cat""#])]), ["E /jobs/0/references"]),
    .init("five references", ManifestText.doc(jobs: [ManifestText.job(["references": urls(["1.png", "2.png", "3.mp4", "4.mp4", "5.mov"]),
                                                   "prompt": chars(5)])])),
    .init("six references", ManifestText.doc(jobs: [ManifestText.job(["references": urls((1...6).map { "\($0).png" }), "prompt": chars(6)])]),
          ["E /jobs/0/references"]),
    .init("four videos", ManifestText.doc(jobs: [ManifestText.job(["references": urls(["1.mp4", "2.MOV", "3.mp4?sig=1", "4.mp4"]), "prompt": chars(4)])]),
          ["E /jobs/0/references"]),
    .init("three videos and an unknown kind", ManifestText.doc(jobs: [ManifestText.job(["references": urls(["1.mp4", "2.mov", "3.mp4", "4.gif"]),
                                                                   "prompt": chars(4)])])),
    .init("reference as a bare string", ManifestText.doc(jobs: [ManifestText.job(["references": #"["https://a.example/x.png"]"#])]),
          ["E /jobs/0/references/0"]),
    .init("reference with neither", ManifestText.doc(jobs: [ManifestText.job(["references": "[{}]"])]), ["E /jobs/0/references/0"]),
    .init("reference with both", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "https://a.example/x.png", "path": "/x.png"}]"#])]),
          ["E /jobs/0/references/0"]),
    .init("url oss upper case", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "OSS://bucket/dir/x.png"}]"#])])),
    .init("url http", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "http://10.0.0.5:8080/x.png"}]"#])])),
    .init("url file://", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "file:///srv/refs/x.png"}]"#])]),
          ["E /jobs/0/references/0/url"]),
    .init("url ftp", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "ftp://a.example/x.png"}]"#])]),
          ["E /jobs/0/references/0/url"]),
    .init("url without host", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "https:///x.png"}]"#])]),
          ["E /jobs/0/references/0/url"]),
    .init("url without scheme", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "cdn.example.com/x.png"}]"#])]),
          ["E /jobs/0/references/0/url"]),
    .init("url with a space", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "https://a.example/my file.png"}]"#])]),
          ["E /jobs/0/references/0/url"]),
    .init("path absolute", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": "/srv/refs/anna.mp4"}]"#])])),
    .init("path relative", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": "refs/anna.mp4"}]"#])]),
          ["E /jobs/0/references/0/path"]),
    .init("path empty", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": ""}]"#])]), ["E /jobs/0/references/0/path"]),
    .init("path with NUL", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": "/srv/a\u0000.png"}]"#])]),
          ["E /jobs/0/references/0/path"]),
    .init("path as number", ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": 1}]"#])]), ["E /jobs/0/references/0/path"]),

    // characterN naming
    .init("Character1 in upper case names reference 1", ManifestText.doc(jobs: [ManifestText.job(["prompt": #""Character1 waves""#])])),
    .init("both references named", ManifestText.doc(jobs: [ManifestText.job(["references": two, "prompt": both])])),
    .init("character3 with two references", ManifestText.doc(jobs: [ManifestText.job(["references": two, "prompt": #""character1, character2 and character3""#])]),
          ["E /jobs/0/prompt"]),
    .init("character0", ManifestText.doc(jobs: [ManifestText.job(["prompt": #""character0 and character1""#])]), ["E /jobs/0/prompt"]),
    .init("reference never named", ManifestText.doc(jobs: [ManifestText.job(["references": two, "prompt": #""character1 alone""#])]),
          ["W /jobs/0/references/1"]),
    .init("no reference named", ManifestText.doc(jobs: [ManifestText.job(["references": two, "prompt": #""a quiet street""#])]),
          ["W /jobs/0/references/0", "W /jobs/0/references/1"]),

    // defaults
    .init("defaults with every setting", ManifestText.doc(["defaults": #"""
        {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "9:16", "duration_s": 3, "shot_type": "multi",
         "seed": 9, "audio": false, "watermark": true, "negative_prompt": "blur"}
        """#])),
    .init("defaults not an object", ManifestText.doc(["defaults": "[]"]), ["E /defaults"]),
    .init("invalid default reported once", ManifestText.doc(["defaults": #"{"duration_s": 11}"#], jobs: [ManifestText.job(), ManifestText.job(["id": #""j2""#])]),
          ["E /defaults/duration_s"]),
]

@Suite struct ValidationRulesTests {
    @Test(arguments: cases)
    func rule(_ c: ValidationCase) {
        let report = ManifestText.validate(c.json, now: c.now)
        #expect(report.pointers == c.expected.sorted(), "\(report.issues)")
        let hasErrors = c.expected.contains { $0.hasPrefix("E") }
        #expect(report.isAccepted == !hasErrors)
        #expect(report.jobs.isEmpty == hasErrors, "jobs are filled exactly when there are no errors")
        for issue in report.issues {
            #expect(!issue.message.isEmpty && !issue.hint.isEmpty, "\(issue)")
        }
    }

    @Test func tooManyJobs() {
        let jobs = (0...ManifestValidator.maxJobsPerFile).map { ManifestText.job(["id": "\"j\($0)\""]) }
        let report = ManifestText.validate(ManifestText.doc(jobs: jobs))
        #expect(report.pointers == ["E /jobs"])
        #expect(report.issues[0].message.contains("10001 jobs"))
    }

    @Test func issuesAreCapped() {
        let jobs = (0..<1_500).map { _ in ManifestText.job(["id": #""bad id""#]) }
        let report = ManifestText.validate(ManifestText.doc(jobs: jobs))
        #expect(report.issues.count == ManifestValidator.maxIssues + 1)
        #expect(report.issues.last?.message.contains("more than 1000 problems") == true)
    }

    @Test func hostileShapesAreReportedNotCrashedOn() {
        let manyKeys = "{" + (0..<20_000).map { "\"k\($0)\": \($0)" }.joined(separator: ",") + "}"
        let report = ManifestText.validate(manyKeys)
        #expect(report.issues.count == ManifestValidator.maxIssues + 1 && !report.isAccepted)
        let deep = ManifestText.validate(String(repeating: #"{"a":"#, count: 10_000))
        #expect(deep.pointers == ["E "] && deep.issues[0].message.contains("nesting deeper than 64"))
        let longNumber = ManifestText.validate(ManifestText.doc(jobs: [ManifestText.job(["seed": String(repeating: "9", count: 5_000)])]))
        #expect(longNumber.pointers == ["E /jobs/0/seed"])
    }

    @Test func everyProblemIsCollectedNotJustTheFirst() {
        let report = ManifestText.validate(ManifestText.doc(["manifest_version": "2", "batch": #""-x""#, "priority": #""soon""#],
                                      jobs: [ManifestText.job(["duration_s": "0", "seed": "-5", "model": #""x""#])]))
        #expect(report.pointers == ["E /batch", "E /jobs/0/duration_s", "E /jobs/0/model", "E /jobs/0/seed",
                                    "E /manifest_version", "E /priority"])
    }

    @Test func hintsSuggestTheIntendedName() {
        func hint(_ json: String, at pointer: String) -> String {
            ManifestText.validate(json).issues.first { $0.pointer == pointer }?.hint ?? "<no issue at \(pointer)>"
        }
        #expect(hint(ManifestText.doc(["defaults": #"{"modle": "x"}"#]), at: "/defaults/modle").contains(#"did you mean "model""#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["durration_s": "3"])]), at: "/jobs/0/durration_s").contains(#""duration_s""#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["aspectRatio": #""1:1""#])]), at: "/jobs/0/aspectRatio").contains(#""aspect_ratio""#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["duration": "3"])]), at: "/jobs/0/duration").contains(#""duration_s""#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["size": #""1280*720""#])]), at: "/jobs/0/size").contains("resolution"))
        #expect(hint(ManifestText.doc(["model": #""wan2.6-r2v""#]), at: "/model").contains("defaults"))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["priority": #""rush""#])]), at: "/jobs/0/priority").contains("top level"))
        #expect(hint(ManifestText.doc(["defaults": #"{"prompt": "x"}"#]), at: "/defaults/prompt").contains("each job"))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["zzzzzz": "1"])]), at: "/jobs/0/zzzzzz").contains("allowed in a job"))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["resolution": #""1080P""#])]), at: "/jobs/0/resolution").contains(#"did you mean "1080p""#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v-fash""#])]), at: "/jobs/0/model").contains("wan2.6-r2v-flash"))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"url": "file:///srv/x.png"}]"#])]), at: "/jobs/0/references/0/url")
            .contains(#"{"path": "/srv/x.png"}"#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": "refs/x.png"}]"#])]), at: "/jobs/0/references/0/path")
            .contains("reelctl submit"))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["id": #""shot 1""#])]), at: "/jobs/0/id").contains(#""shot-1""#))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(["duration_s": #""5""#])]), at: "/jobs/0/duration_s").contains("without quotes"))
        #expect(hint(ManifestText.doc(jobs: [ManifestText.job(), ManifestText.job()]), at: "/jobs/1/id").contains("/jobs/0/id"))
    }

    @Test func audioHintNamesTheModel() {
        let job = ManifestText.validate(ManifestText.doc(jobs: [ManifestText.job(["model": #""wan2.6-r2v""#, "audio": "false"])])).issues[0]
        #expect(job.pointer == "/jobs/0/audio")
        #expect(job.message.contains("/jobs/0/model"))
        #expect(job.hint.contains("set /jobs/0/model to \"wan2.6-r2v-flash\""))
        let fromDefaults = ManifestText.validate(ManifestText.doc(["defaults": #"{"audio": false}"#], jobs: [ManifestText.job(["model": #""wan2.6-r2v""#])])).issues[0]
        #expect(fromDefaults.pointer == "/jobs/0/model" && fromDefaults.message.contains("from /defaults/audio"))
        let builtIn = ManifestText.validate(ManifestText.doc(jobs: [ManifestText.job(["audio": "false"])])).issues[0]
        #expect(builtIn.message.contains("built-in default"))
    }

    @Test func invalidUTF8IsNotJSON() {
        let bytes = Array(ManifestText.doc(["batch": #""b-X""#]).utf8).map { $0 == UInt8(ascii: "X") ? 0xFF : $0 }
        let report = ManifestValidator.validate(bytes)
        #expect(report.pointers == ["E "])
        #expect(report.issues[0].message.contains("UTF-8"))
    }

    @Test func notJSONSaysWhere() {
        let issue = ManifestText.validate("{\n  \"batch\": \"b\",\n  \"jobs\": [,]\n}").issues[0]
        #expect(issue.pointer == "")
        #expect(issue.message.contains("line 3, column 12"), "\(issue.message)")
    }

    @Test func defaultsMergeIntoJobsAndJobsWin() throws {
        let report = ManifestText.validate(ManifestText.doc([
            "priority": #""rush""#, "deadline": #""2026-12-01T18:00:00Z""#, "budget_usd": "40",
            "defaults": #"{"model": "wan2.6-r2v-flash", "duration_s": 3, "audio": false, "negative_prompt": "blur", "seed": 1}"#,
        ], jobs: [
            ManifestText.job(["duration_s": "4", "seed": "2"]),
            ManifestText.job(["id": #""j2""#, "references": two, "prompt": both, "negative_prompt": #""grain""#, "audio": "true"]),
        ]))
        try #require(report.isAccepted, "\(report.issues)")
        #expect(report.batch == "b1")
        let a = report.jobs[0], b = report.jobs[1]
        #expect(a.key == JobKey(batch: "b1", id: "j1"))
        #expect(a.model == .r2vFlash && a.durationSeconds == 4 && a.seed == 2 && a.audio == false)
        #expect(a.negativePrompt == "blur")
        #expect(a.resolution == .p1080 && a.aspectRatio == .landscape, "built-in defaults")
        #expect(a.priority == .rush && a.deadline == 1_796_148_000 && a.budgetUSD == 40)
        #expect(b.durationSeconds == 3 && b.seed == 1 && b.audio == true && b.negativePrompt == "grain")
        #expect(b.references.map(\.kind) == [.video, .image])
        #expect(b.references[0].source == .url("https://cdn.example.com/a.mp4"))
    }

    @Test func builtInDefaults() throws {
        let report = ManifestText.validate(ManifestText.doc())
        let job = try #require(report.jobs.first)
        #expect(job.model == .r2v && job.resolution == .p1080 && job.aspectRatio == .landscape)
        #expect(job.durationSeconds == 5 && job.priority == .normal)
        #expect(job.seed == nil && job.audio == nil && job.watermark == nil && job.shotType == nil)
    }

    @Test func batchIsReportedEvenWhenTheFileHasErrors() {
        let report = ManifestText.validate(ManifestText.doc(jobs: [ManifestText.job(["seed": "-1"])]))
        #expect(!report.isAccepted && report.batch == "b1" && report.jobs.isEmpty)
        #expect(ManifestText.validate(ManifestText.doc(["batch": #""no good""#])).batch == nil)
    }

    @Test func urlKindsComeFromTheExtension() {
        #expect(ManifestValidator.kind(ofURL: "https://a.example/x.MP4?sig=abc#t") == .video)
        #expect(ManifestValidator.kind(ofURL: "oss://bucket/x.jpeg") == .image)
        #expect(ManifestValidator.kind(ofURL: "https://a.example/x.gif") == nil)
        #expect(ManifestValidator.kind(ofURL: "https://a.example/video") == nil)
        #expect(ManifestValidator.kind(ofURL: "https://a.example/.mp4") == nil)
    }

    @Test func characterNumbers() {
        #expect(ManifestValidator.characterNumbers(in: "Character1 meets CHARACTER12; characters; character") == [1, 12])
        #expect(ManifestValidator.characterNumbers(in: "character99999999999999999999") == [10_000])
    }

    @Test func rfc3339() {
        #expect(RFC3339.parse("2026-12-01T18:00:00Z") == 1_796_148_000)
        #expect(RFC3339.parse("2028-02-29T10:00:00.250+02:00") == 1_835_424_000.25)
        #expect(RFC3339.parse("1969-12-31t23:00:00-01:30") == 1_800)
        #expect(RFC3339.parse("2026-12-31T23:59:60Z") == RFC3339.parse("2026-12-31T23:59:59Z"))
        for bad in ["2026-12-01", "2026-12-01T24:00:00Z", "2026-04-31T00:00:00Z", "2026-12-01T18:00Z",
                    "2026-12-01T18:00:00.Z", "2026-12-01T18:00:00+0200", "2026-12-01T18:00:00Zjunk", ""] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func relativePathsResolveAgainstTheGivenDirectory() {
        let text = ManifestText.doc(jobs: [ManifestText.job(["references": #"[{"path": "./refs/a.png"}, {"path": "/abs/b.png"}, {"path": "~/c.png"}]"#,
                                       "prompt": #""character1 character2 character3 — \"quoted\"""#, "seed": "5.0"])])
        let resolved = ManifestValidator.resolvingRelativePaths(Array(text.utf8), against: "/home/ana/work")
        let report = ManifestValidator.validate(resolved)
        #expect(report.pointers == ["E /jobs/0/references/2/path"], "~ is left for the validator to report")
        let out = String(decoding: resolved, as: UTF8.self)
        #expect(out.contains(#""/home/ana/work/refs/a.png""#) && out.contains(#""/abs/b.png""#))
        #expect(out.contains(#""seed": 5.0"#) && out.contains(#"\"quoted\""#))

        let absolute = Array(ManifestText.doc().utf8)
        #expect(ManifestValidator.resolvingRelativePaths(absolute, against: "/x") == absolute, "unchanged bytes")
        #expect(ManifestValidator.resolvingRelativePaths(Array("{oops".utf8), against: "/x") == Array("{oops".utf8))
    }
}
