import Foundation
import ReelCore
import ReelSandbox
import ReelTestKit
import Testing

/// `GET /api/v1/tasks` as reference §1.9 documents it, and the list faults.
@Suite struct SandboxListTests {
    typealias C = SandboxClient

    /// The documented row fields; `start_time` and `end_time` come on top once the task started / ended.
    static let rowKeys: Set<String> = ["task_id", "status", "model_name", "gmt_create", "region", "request_id",
                                       "api_key_id", "caller_parent_id", "caller_uid", "user_api_unique_key"]

    struct Page {
        var status: Int
        var body: [String: Any]
        var rows: [[String: Any]] { body["data"] as? [[String: Any]] ?? [] }
        var ids: [String] { rows.compactMap { $0["task_id"] as? String } }
        var total: Int? { body["total"] as? Int }
    }

    static func list(_ c: C, _ query: String = "") async throws -> Page {
        let r = try await c.send(TestHTTPRequest("GET", "/api/v1/tasks" + (query.isEmpty ? "" : "?" + query),
                                                 headers: ["Authorization": "Bearer sk-test"]))
        return Page(status: r.status, body: (try? r.json()) ?? [:])
    }

    /// Creates a task; returns its id and the request id the create answered with.
    static func create(_ c: C, _ body: String = C.body()) async throws -> (id: String, requestID: String) {
        let r = try await c.createRaw(body)
        #expect(r.status == 200, "create: \(r.text)")
        let json = try r.json()
        let id = try #require((json["output"] as? [String: Any])?["task_id"] as? String)
        return (id, try #require(json["request_id"] as? String))
    }

    /// `YYYYMMDDhhmmss` of `date` in the zone `hours` east of UTC.
    static func compact(_ date: Date, hours: Int = 8) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(secondsFromGMT: hours * 3600)
        f.dateFormat = "yyyyMMddHHmmss"
        return f.string(from: date)
    }

    static func window(_ from: TimeInterval, _ to: TimeInterval, hours: Int = 8) -> String {
        "start_time=\(compact(Date().addingTimeInterval(from), hours: hours))"
            + "&end_time=\(compact(Date().addingTimeInterval(to), hours: hours))"
    }

    /// Time scale 1: advancing the clock moves the shown wall times by the same seconds. The delays are long
    /// enough that the real seconds a loaded machine takes do not move a task on by themselves.
    static func realTime(_ o: inout SandboxOptions) {
        // Long enough that a loaded machine's real seconds never move a task on by themselves.
        o.timeScale = 1
        o.queueDelay = 600
        o.runTime = 1000...1000
    }

    @Test func rowsHaveExactlyTheDocumentedShapeNewestFirst() async throws {
        try await withSandbox(Self.realTime) { c in
            let before = Int(Date().timeIntervalSince1970 * 1000)
            let done = try await Self.create(c, C.body(prompt: "first"))
            try await c.advance(1700)
            let running = try await Self.create(c, C.body(prompt: "second"))
            try await c.advance(625)
            let pending = try await Self.create(c, C.body(model: "wan2.6-r2v-flash", prompt: "third"))
            let page = try await Self.list(c)
            #expect(page.status == 200)
            #expect(Set(page.body.keys) == ["request_id", "total", "total_page", "page_no", "page_size", "data"])
            #expect(page.total == 3 && page.body["page_no"] as? Int == 1 && page.body["page_size"] as? Int == 10)
            #expect(page.body["total_page"] as? Int == 1)
            #expect(page.ids == [pending.id, running.id, done.id])
            let rows = page.rows
            #expect(Set(rows[0].keys) == Self.rowKeys)
            #expect(Set(rows[1].keys) == Self.rowKeys.union(["start_time"]))
            #expect(Set(rows[2].keys) == Self.rowKeys.union(["start_time", "end_time"]))
            #expect(rows.map { $0["status"] as? String } == ["PENDING", "RUNNING", "SUCCEEDED"])
            #expect(rows.map { $0["request_id"] as? String } == [pending.requestID, running.requestID, done.requestID])
            #expect(rows.map { $0["model_name"] as? String } == ["wan2.6-r2v-flash", "wan2.6-r2v", "wan2.6-r2v"])
            let created = rows.compactMap { $0["gmt_create"] as? Int }
            #expect(created.count == 3 && created == created.sorted(by: >), "newest first by gmt_create")
            // Epoch milliseconds: the first create happened at the real time the test started.
            #expect(abs(created[2] - before) < 60_000, "\(created[2]) vs \(before)")
            let start = try #require(rows[2]["start_time"] as? Int)
            let end = try #require(rows[2]["end_time"] as? Int)
            #expect(abs(start - created[2] - 600_000) < 50 && abs(end - start - 1_000_000) < 50, "queue 600 s, run 1000 s")
            for row in rows {
                #expect(row["caller_uid"] is String && row["caller_parent_id"] is String && row["api_key_id"] is String)
                #expect((row["user_api_unique_key"] as? String)?.hasSuffix(":" + (row["model_name"] as? String ?? "")) == true)
            }
            // The single-task query still echoes the prompt; the list does not.
            #expect(try await c.query(done.id).output["orig_prompt"] as? String == "first")
            #expect(rows.allSatisfy { $0["prompt"] == nil && $0["orig_prompt"] == nil && $0["usage"] == nil })
        }
    }

    @Test func extrasOnlyWhenAskedFor() async throws {
        try await withSandbox({ $0.listExtras = true }) { c in
            let task = try await Self.create(c, C.body(prompt: "shown"))
            let row = try #require(try await Self.list(c).rows.first)
            #expect(row["task_id"] as? String == task.id)
            #expect(row["prompt"] as? String == "shown")
            #expect(row["submit_time"] is String)
            #expect(Set(row.keys).isSuperset(of: Self.rowKeys))
        }
    }

    @Test func pagesFiltersAndTheWindow() async throws {
        try await withSandbox(Self.realTime) { c in
            let a = try await Self.create(c, C.body(prompt: "first")).id
            let b = try await Self.create(c, C.body(model: "wan2.6-r2v-flash", prompt: "second")).id
            let d = try await Self.create(c, C.body(prompt: "third")).id
            let second = try await Self.list(c, "page_no=2&page_size=2")
            #expect(second.total == 3 && second.body["total_page"] as? Int == 2 && second.ids == [a])
            #expect(try await Self.list(c, "model_name=wan2.6-r2v-flash").ids == [b])
            #expect(try await Self.list(c, "task_id=\(d)").ids == [d])
            _ = try await c.send(TestHTTPRequest("POST", "/api/v1/tasks/\(a)/cancel", headers: C.auth))
            #expect(try await Self.list(c, "status=CANCELED").ids == [a])
            #expect(try await Self.list(c, "status=PENDING").ids == [d, b])

            #expect(try await Self.list(c, Self.window(-3600, 3600)).total == 3)
            #expect(try await Self.list(c, Self.window(3600, 7200)).total == 0)
            #expect(try await Self.list(c, Self.window(-7200, -3600)).total == 0)
            let wide = try await Self.list(c, Self.window(-25 * 3600, 0))
            #expect(wide.status == 400 && wide.body["code"] as? String == "InvalidParameter")
            #expect((wide.body["message"] as? String)?.contains("24 hours") == true)
            let early = "start_time=\(Self.compact(Date().addingTimeInterval(-25 * 3600)))"
            #expect(try await Self.list(c, early).status == 400, "an absent end_time is now")
            let late = "end_time=\(Self.compact(Date().addingTimeInterval(-3600)))"
            #expect(try await Self.list(c, late).total == 0, "an absent start_time is 24 h before end_time")
            let bad = try await Self.list(c, "start_time=2025-01-01")
            #expect(bad.status == 400 && (bad.body["message"] as? String)?.contains("start_time") == true)
            #expect(try await Self.list(c, "status=SUSPENDED").status == 400)
        }
    }

    @Test func theWindowZoneIsAnOption() async throws {
        try await withSandbox { c in
            _ = try await Self.create(c)
            #expect(try await Self.list(c, Self.window(-1800, 1800, hours: 8)).total == 1)
            #expect(try await Self.list(c, Self.window(-1800, 1800, hours: 0)).total == 0, "UTC digits read as UTC+8")
        }
        try await withSandbox({ $0.listTimeZoneOffsetHours = 0 }) { c in
            _ = try await Self.create(c)
            #expect(try await Self.list(c, Self.window(-1800, 1800, hours: 0)).total == 1)
            #expect(try await Self.list(c, Self.window(-1800, 1800, hours: 8)).total == 0)
        }
    }

    @Test func expiredTasksAreNotListed() async throws {
        try await withSandbox({ Self.realTime(&$0); $0.taskTTL = 300 }) { c in
            let old = try await Self.create(c).id
            try await c.advance(200)
            let young = try await Self.create(c).id
            #expect(try await Self.list(c).ids == [young, old])
            try await c.advance(150)
            #expect(try await Self.list(c).ids == [young])
            #expect(try await c.query(old).status == "UNKNOWN")
        }
    }

    @Test func errorAfterCreateCarriesTheTasksRequestID() async throws {
        try await withSandbox { c in
            let r = try await c.createRaw(C.body(prompt: "__FAULT:create_error_after_create__"))
            #expect(r.status == 500)
            let error = try r.json()
            #expect(error["code"] as? String == "InternalError")
            let requestID = try #require(error["request_id"] as? String)
            let row = try #require(try await Self.list(c).rows.first)
            #expect(row["request_id"] as? String == requestID)

            await #expect(throws: TestHTTPError.self) {
                _ = try await c.createRaw(C.body(prompt: "__FAULT:create_reset_after_create__"))
            }
            let rows = try await Self.list(c).rows
            #expect(rows.count == 2)
            let reset = try #require(rows.first?["request_id"] as? String)
            #expect(!reset.isEmpty && reset != requestID)
            // A 500 before any task exists has a fresh id that no row shows.
            let plain = try await c.createRaw(C.body(prompt: "__FAULT:create_error__"))
            #expect(plain.status == 500)
            let fresh = try #require(try plain.json()["request_id"] as? String)
            #expect(!(try await Self.list(c).rows.contains { $0["request_id"] as? String == fresh }))
        }
    }

    @Test func listCallFaults() async throws {
        try await withSandbox { c in
            _ = try await Self.create(c)
            try await c.setFaults(#"[{"fault":"list_404","count":1},{"fault":"list_500","count":1}]"#)
            let missing = try await Self.list(c)
            #expect(missing.status == 404 && missing.body["code"] as? String == "NotFound")
            let broken = try await Self.list(c)
            #expect(broken.status == 500 && broken.body["code"] as? String == "InternalError")
            #expect(try await Self.list(c).total == 1)
            let journal = try await c.send(TestHTTPRequest("GET", "/__sandbox/requests")).json()
            let faults = (journal["requests"] as? [[String: Any]] ?? []).compactMap { $0["fault"] as? String }
            #expect(faults == ["list_404", "list_500"])
        }
    }

    @Test func malformedRowsBesideGoodOnes() async throws {
        try await withSandbox { c in
            try await c.setFaults(#"[{"fault":"list_malformed_row","count":3}]"#)
            for _ in 0..<4 { _ = try await Self.create(c) }
            let page = try await Self.list(c)
            #expect(page.status == 200 && page.total == 4)
            let rows = page.rows
            #expect(rows.filter { $0["task_id"] is Int }.count == 1, "task 1: numeric task_id")
            #expect(rows.filter { $0["status"] as? String == "PAUSED" }.count == 1, "task 2: status not in the enum")
            #expect(rows.filter { $0["status"] == nil }.count == 1, "task 3: no status")
            let good = rows.filter { ($0["task_id"] is String) && TaskStatus(rawValue: $0["status"] as? String ?? "") != nil }
            #expect(good.count == 1 && Set(good[0].keys) == Self.rowKeys, "task 4 is untouched")
            let marked = try await Self.create(c, C.body(prompt: "x __FAULT:list_malformed_row__")).id
            #expect(try await Self.list(c, "task_id=\(marked)").rows.first?["status"] as? String == "PAUSED")   // task 5
        }
    }

    @Test func lateRowsAppearAfterTheirDelay() async throws {
        try await withSandbox(Self.realTime) { c in
            try await c.setFaults(#"[{"fault":"list_late","seconds":300}]"#)
            var ids: [String] = []
            for _ in 0..<3 { ids.append(try await Self.create(c).id) }
            #expect(try await Self.list(c).total == 0)
            #expect(try await c.query(ids[0]).status == "PENDING", "the single-task query sees it at once")
            try await c.advance(301)
            #expect(try await Self.list(c).ids == ids.reversed())
            // With no rules, a `__FAULT:list_late__` prompt delays its own row by the default 60 s.
            try await c.setFaults("[]")
            let marked = try await Self.create(c, C.body(prompt: "__FAULT:list_late__")).id
            try await c.advance(31)
            #expect(try await Self.list(c, "task_id=\(marked)").total == 0)
            try await c.advance(30)
            #expect(try await Self.list(c, "task_id=\(marked)").total == 1)
        }
    }

    @Test func omittedTasksNeverShow() async throws {
        try await withSandbox({ Self.realTime(&$0); $0.concurrency = 100 }) { c in
            try await c.setFaults(#"[{"fault":"list_omit","probability":0.5}]"#)
            var ids: [String] = []
            for _ in 0..<20 { ids.append(try await Self.create(c).id) }
            let listed = try await Self.list(c, "page_size=100").ids
            #expect(listed.count > 0 && listed.count < 20, "\(listed.count) of 20 listed")
            try await c.advance(1700)
            #expect(try await Self.list(c, "page_size=100").ids == listed, "the same tasks stay hidden")
            for id in ids where !listed.contains(id) { #expect(try await c.query(id).status == "SUCCEEDED") }
            try await c.setFaults(#"[{"fault":"list_omit"}]"#)
            _ = try await Self.create(c)
            #expect(try await Self.list(c, "page_size=100").total == listed.count, "account-wide: every new task")
            try await c.setFaults("[]")
            let marked = try await Self.create(c, C.body(prompt: "__FAULT:list_omit__")).id
            #expect(try await Self.list(c, "task_id=\(marked)").total == 0)
        }
    }
}
