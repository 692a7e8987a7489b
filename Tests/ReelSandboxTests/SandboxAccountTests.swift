import Foundation
import ReelCore
import ReelSandbox
import ReelTestKit
import Testing

/// Limits per (account, model) and per account (reference §1.8), several accounts, and faults aimed at one.
@Suite struct SandboxAccountTests {
    typealias C = SandboxClient

    static func accounts(_ o: inout SandboxOptions) {
        o.accounts = [.init(name: "prod", keys: ["sk-prod-1", "sk-prod-2"]), .init(name: "overflow", keys: ["sk-over"])]
    }

    static func headers(_ key: String) -> [String: String] {
        ["Authorization": "Bearer \(key)", "X-DashScope-Async": "enable"]
    }

    static func create(_ c: C, key: String, model: String = "wan2.6-r2v") async throws -> TestHTTPResponse {
        try await c.createRaw(C.body(model: model), headers: headers(key))
    }

    static func taskID(_ r: TestHTTPResponse) throws -> String {
        try #require((try r.json()["output"] as? [String: Any])?["task_id"] as? String)
    }

    @Test func eachModelIsItsOwnPoolOnEachAccount() async throws {
        try await withSandbox({ Self.accounts(&$0); $0.concurrency = 2 }) { c in
            for _ in 0..<2 { #expect(try await Self.create(c, key: "sk-prod-1").status == 200) }
            let full = try await Self.create(c, key: "sk-prod-2")
            #expect(full.status == 429, "the second key of the account shares its pool")
            #expect(try full.json()["code"] as? String == "Throttling")
            #expect(try await Self.create(c, key: "sk-prod-1", model: "wan2.6-r2v-flash").status == 200,
                    "flash has its own pool")
            #expect(try await Self.create(c, key: "sk-over").status == 200, "another account has its own pools")
            let stats = try await c.send(TestHTTPRequest("GET", "/__sandbox/stats")).json()
            let prod = try #require((stats["accounts"] as? [String: Any])?["prod"] as? [String: Any])
            #expect(prod["active"] as? [String: Int] == ["wan2.6-r2v": 2, "wan2.6-r2v-flash": 1])
        }
    }

    @Test func createRateIsPerAccountAndModelQueriesPerAccount() async throws {
        let frozen: @Sendable () -> Double = { 9 }
        try await withSandbox({ Self.accounts(&$0); $0.submitRPS = 2; $0.queryQPS = 3; $0.concurrency = 100
                                $0.rateClock = frozen }) { c in
            var statuses: [Int] = []
            for _ in 0..<3 { statuses.append(try await Self.create(c, key: "sk-prod-1").status) }
            statuses.append(try await Self.create(c, key: "sk-prod-1", model: "wan2.6-r2v-flash").status)
            statuses.append(try await Self.create(c, key: "sk-over").status)
            #expect(statuses == [200, 200, 429, 200, 200])
            let query = { (key: String) in TestHTTPRequest("GET", "/api/v1/tasks/x", headers: ["Authorization": "Bearer \(key)"]) }
            let prod = try await TestHTTP.exchange(c.endpoint, Array(repeating: query("sk-prod-2"), count: 4)).map(\.status)
            #expect(prod == [200, 200, 200, 429])
            #expect(try await c.send(query("sk-over")).status == 200, "the other account's budget is untouched")
        }
    }

    @Test func anAccountSeesOnlyItsOwnTasks() async throws {
        try await withSandbox({ Self.accounts(&$0) }) { c in
            let id = try Self.taskID(try await Self.create(c, key: "sk-prod-1"))
            let own = try await c.send(TestHTTPRequest("GET", "/api/v1/tasks/\(id)", headers: ["Authorization": "Bearer sk-prod-2"]))
            #expect((try own.json()["output"] as? [String: Any])?["task_status"] as? String == "PENDING")
            let other = try await c.send(TestHTTPRequest("GET", "/api/v1/tasks/\(id)", headers: ["Authorization": "Bearer sk-over"]))
            #expect((try other.json()["output"] as? [String: Any])?["task_status"] as? String == "UNKNOWN")
            let list = try await c.send(TestHTTPRequest("GET", "/api/v1/tasks", headers: ["Authorization": "Bearer sk-over"]))
            #expect((try list.json()["data"] as? [Any])?.isEmpty == true)
            let listed = try await c.send(TestHTTPRequest("GET", "/api/v1/tasks", headers: ["Authorization": "Bearer sk-prod-1"]))
            #expect(((try listed.json()["data"] as? [[String: Any]])?.compactMap { $0["task_id"] as? String }) == [id])
            let cancel = try await c.send(TestHTTPRequest("POST", "/api/v1/tasks/\(id)/cancel", headers: ["Authorization": "Bearer sk-over"]))
            #expect(cancel.status == 400, "another account cannot cancel it")
            #expect(try await c.send(TestHTTPRequest("POST", "/api/v1/tasks/\(id)/cancel",
                                                     headers: ["Authorization": "Bearer sk-prod-2"])).status == 200)
            #expect(try await Self.create(c, key: "sk-test").status == 401, "with accounts configured, only their keys work")
        }
    }

    @Test func aFaultCanTakeOneAccountDown() async throws {
        try await withSandbox({ Self.accounts(&$0) }) { c in
            let id = try Self.taskID(try await Self.create(c, key: "sk-prod-1"))
            try await c.setFaults(#"[{"fault":"call_error","account":"prod"}]"#)
            let h = ["Authorization": "Bearer sk-prod-1"]
            let calls = [
                try await Self.create(c, key: "sk-prod-1"),
                try await c.send(TestHTTPRequest("GET", "/api/v1/tasks/\(id)", headers: h)),
                try await c.send(TestHTTPRequest("GET", "/api/v1/tasks", headers: h)),
                try await c.send(TestHTTPRequest("POST", "/api/v1/tasks/\(id)/cancel", headers: h)),
                try await c.send(TestHTTPRequest("GET", "/api/v1/uploads?action=getPolicy&model=wan2.6-r2v", headers: h)),
            ]
            #expect(calls.map(\.status) == [500, 500, 500, 500, 500])
            #expect(try calls[0].json()["code"] as? String == "InternalError")
            #expect(try await Self.create(c, key: "sk-over").status == 200, "the other account still works")
            let journal = try await c.send(TestHTTPRequest("GET", "/__sandbox/requests")).json()
            let entries = try #require(journal["requests"] as? [[String: Any]])
            #expect(entries.filter { $0["fault"] as? String == "call_error" }.allSatisfy { $0["account"] as? String == "prod" })
            #expect(entries.last?["account"] as? String == "overflow")
        }
    }
}
