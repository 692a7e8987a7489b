import Foundation
import ReelCore
import ReelProtocol
import Testing

/// The hand-written encoder of the hot wire types against Foundation's: same bytes, same decoded value.
@Suite struct WireJSONTests {
    static let awkward = ["", "plain", "a/b/c.mp4", "quote \" and backslash \\", "line\nbreak\ttab\rcr",
                          "bell\u{7} nul\u{0} esc\u{1b} us\u{1f} bs\u{8} ff\u{c}", "é ü ß — 日本語 🎬", "del\u{7f}",
                          "</script>", "https://cdn.example.com/a.png?x=1&y=%20"]

    static func view(_ i: Int, _ full: Bool) -> JobView {
        let s = awkward[i % awkward.count]
        return JobView(job: "b/j\(i)", batch: "b", id: "j\(i)", state: full ? "succeeded" : "queued",
                       priority: "normal", model: "wan2.6-r2v-flash", resolution: "1080P", aspect_ratio: "16:9",
                       duration_s: 2 + i % 9, attempt: i % 4, task_id: full ? "task-\(i)" : nil,
                       reason: full ? s : nil, created_at: "2026-12-02T05:00:00.000Z",
                       updated_at: "2026-12-02T05:01:00.123Z", output: full ? "/out/b/\(s).mp4" : nil,
                       sha256: full ? String(repeating: "ab", count: 32) : nil,
                       cost_usd: full ? [0.0, 0.35, 1.5, 2.0, 0.1 + 0.2, 1234567.891, 1e-7][i % 7] : nil,
                       estimated_cost_usd: [0.6, 3.0, 0.15, 10.0][i % 4], deadline: full ? "2026-12-03T00:00:00.000Z" : nil,
                       eta: i % 3 == 0 ? ETAView(p50: "2026-12-02T06:00:00.000Z", p90: "2026-12-02T06:10:00.000Z") : nil)
    }

    static func foundation(_ value: some Encodable) throws -> [UInt8] { Array(try Wire.encoder().encode(value)) }

    @Test func jobPagesMatchFoundationByteForByte() throws {
        let views = (0..<60).map { Self.view($0, $0 % 2 == 0) }
        for page in [JobPage(jobs: views, next_cursor: "YjpqNTk"), JobPage(jobs: [], next_cursor: nil),
                     JobPage(jobs: [views[1]], next_cursor: nil)] {
            let ours = page.wireJSON()
            #expect(String(decoding: ours, as: UTF8.self) == String(decoding: try Self.foundation(page), as: UTF8.self))
            #expect(try JSONDecoder().decode(JobPage.self, from: Data(ours)) == page)
        }
    }

    @Test func everyAwkwardStringSurvivesInEveryField() throws {
        for (i, s) in Self.awkward.enumerated() {
            var v = Self.view(i, true)
            v.reason = s
            v.output = s
            v.task_id = s
            let ours = v.wireJSON()
            #expect(String(decoding: ours, as: UTF8.self) == String(decoding: try Self.foundation(v), as: UTF8.self),
                    "string #\(i)")
            #expect(try JSONDecoder().decode(JobView.self, from: Data(ours)) == v)
            #expect((try? JSONSerialization.jsonObject(with: Data(ours))) != nil)
        }
    }

    @Test func statusMatchesFoundation() throws {
        let status = StatusResponse(
            version: "0.3.0", pid: 4242, started_at: "2026-12-02T05:00:00.000Z", uptime_s: 3601.123456789,
            mode: "running", jobs: ["queued": 99_000, "running": 5, "succeeded": 995, "in_doubt": 1, "expired": 0],
            total_jobs: 100_001, batches: 10,
            provider: .init(health: "throttled", detail: "429 \"Throttling\" from the provider", concurrency_limit: 5,
                            concurrency_cap: 3, slots_in_use: 3, throttles: 12, creates: 1000, polls: 2250),
            spend_usd: 1234.56, warnings: ["1 job(s) in doubt: see `reelctl jobs --state in_doubt`", "é/ü\n"])
        var quiet = status
        quiet.provider.detail = nil
        quiet.warnings = []
        quiet.jobs = [:]
        quiet.uptime_s = 2
        quiet.spend_usd = 0
        for s in [status, quiet] {
            let ours = s.wireJSON()
            #expect(String(decoding: ours, as: UTF8.self) == String(decoding: try Self.foundation(s), as: UTF8.self))
            #expect(try JSONDecoder().decode(StatusResponse.self, from: Data(ours)) == s)
        }
    }

    @Test func numbersArePrintedAsJSONEncoderPrintsThemAndReadBackExactly() throws {
        for x in [0.0, -0.0, 0.35, 1.0, 2.5e-9, 1e15, 1e21, 123456789.125, Double.ulpOfOne, 9_007_199_254_740_993.0] {
            var w = JSONWriter()
            w.array([x]) { w, x in w.double(x) }
            #expect(String(decoding: w.bytes, as: UTF8.self) == String(decoding: try Self.foundation([x]), as: UTF8.self))
            let back = try JSONDecoder().decode([Double].self, from: Data(w.bytes))
            #expect(back == [x], "\(x) → \(String(decoding: w.bytes, as: UTF8.self))")
        }
    }
}
