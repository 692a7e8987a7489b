import Foundation
import ReelCore
import ReelSandbox
import ReelTestKit
import Testing

@Suite struct SandboxFaultTests {
    typealias C = SandboxClient

    func listTotal(_ c: C) async throws -> Int {
        try await c.send(TestHTTPRequest("GET", "/api/v1/tasks", headers: ["Authorization": "Bearer sk-test"])).json()["total"] as? Int ?? -1
    }

    @Test func createFaults() async throws {
        try await withSandbox { c in
            try await c.setFaults(#"[{"fault":"create_throttle","count":2,"retry_after":3}]"#)
            for _ in 0..<2 {
                let r = try await c.createRaw(C.body())
                #expect(r.status == 429)
                #expect(r.header("retry-after") == "3")
                #expect(try r.json()["code"] as? String == "Throttling.RateQuota")
            }
            _ = try await c.create()   // the count is used up
            #expect(try await listTotal(c) == 1)

            let error = try await c.createRaw(C.body(prompt: "a __FAULT:create_error__"))
            #expect(error.status == 500)
            #expect(try error.json()["code"] as? String == "InternalError")
            #expect(try await listTotal(c) == 1)
            let created = try await c.createRaw(C.body(prompt: "b __FAULT:create_error_after_create__"))
            #expect(created.status == 500)
            #expect(try await listTotal(c) == 2)

            await #expect(throws: TestHTTPError.self) { _ = try await c.createRaw(C.body(prompt: "c __FAULT:create_reset__")) }
            #expect(try await listTotal(c) == 2)
            await #expect(throws: TestHTTPError.self) {
                _ = try await c.createRaw(C.body(prompt: "d __FAULT:create_reset_after_create__"))
            }
            #expect(try await listTotal(c) == 3)

            let inspect = try await c.createRaw(C.body(prompt: "__FAULT:input_inspection__"))
            #expect(inspect.status == 400)
            #expect(try inspect.json()["code"] as? String == "DataInspectionFailed")
            let ip = try await c.createRaw(C.body(prompt: "__FAULT:create_ip_infringement__"))
            #expect(ip.status == 400)
            #expect(try ip.json()["code"] as? String == "IPInfringementSuspect")

            try await c.setFaults(#"[{"fault":"create_delay","count":1,"seconds":0.3}]"#)
            let started = Date()
            _ = try await c.create()
            #expect(Date().timeIntervalSince(started) >= 0.3)

            let journal = try await c.send(TestHTTPRequest("GET", "/__sandbox/requests")).json()
            let rows = journal["requests"] as? [[String: Any]] ?? []
            #expect(rows.contains { $0["status"] as? Int == 0 && $0["fault"] as? String == "create_reset_after_create" })
        }
    }

    @Test func probabilityRulesFollowTheSeed() async throws {
        try await withSandbox { c in
            try await c.setFaults(#"[{"fault":"create_error","probability":0}]"#)
            #expect(try await c.createRaw(C.body()).status == 200)
            try await c.setFaults(#"[{"fault":"create_error","probability":1,"model":"wan2.6-r2v-flash"}]"#)
            #expect(try await c.createRaw(C.body()).status == 200)
            #expect(try await c.createRaw(C.body(model: "wan2.6-r2v-flash")).status == 500)
            try await c.setFaults(#"[{"fault":"create_error","marker":"BOOM"}]"#)
            #expect(try await c.createRaw(C.body(prompt: "BOOM")).status == 500)
            #expect(try await c.createRaw(C.body(prompt: "calm")).status == 200)
            let bad = try await c.send(TestHTTPRequest("PUT", "/__sandbox/faults", json: #"{"rules":[{"fault":"nope"}]}"#))
            #expect(bad.status == 400)
            #expect(bad.text.contains("create_throttle"))
        }
    }

    @Test func queryFaults() async throws {
        try await withSandbox { c in
            let id = try await c.create()
            let h = ["Authorization": "Bearer sk-test"]
            func q() async throws -> TestHTTPResponse { try await c.send(TestHTTPRequest("GET", "/api/v1/tasks/\(id)", headers: h)) }
            try await c.setFaults(#"[{"fault":"query_throttle","count":1},{"fault":"query_503","count":1}]"#)
            let throttled = try await q()
            #expect(throttled.status == 429)
            #expect(throttled.header("retry-after") == nil)
            #expect(try await q().status == 503)
            try await c.setFaults(#"[{"fault":"query_504","count":1}]"#)
            #expect(try await q().status == 504)
            try await c.setFaults(#"[{"fault":"query_reset","count":1}]"#)
            await #expect(throws: TestHTTPError.self) { _ = try await q() }
            try await c.setFaults(#"[{"fault":"malformed_no_output","count":1}]"#)
            #expect(try await q().json()["output"] == nil)
            try await c.setFaults(#"[{"fault":"malformed_no_task_id","count":1}]"#)
            #expect((try await q().json()["output"] as? [String: Any])?["task_id"] == nil)
            try await c.setFaults(#"[{"fault":"malformed_status","count":1}]"#)
            #expect((try await q().json()["output"] as? [String: Any])?["task_status"] as? String == "SUSPENDED")
            try await c.advance(1000)
            try await c.setFaults(#"[{"fault":"malformed_usage_strings","count":1}]"#)
            let usage = try await q().json()["usage"] as? [String: Any]
            #expect(usage?["output_video_duration"] as? String == "2")
            #expect(try await c.query(id).status == "SUCCEEDED")
        }
    }

    @Test func outcomeFaults() async throws {
        try await withSandbox({ $0.concurrency = 100 }) { c in
            let expected: [(FaultName, String, String?)] = [
                (.outputInspection, "FAILED", "DataInspectionFailed"),
                (.ipInfringement, "FAILED", "IPInfringementSuspect"),
                (.failInternal, "FAILED", "InternalError"),
                (.failInvalidParameter, "FAILED", "InvalidParameter"),
                (.unknownAfterRunning, "UNKNOWN", nil),
                (.spontaneousCancel, "CANCELED", nil),
            ]
            var ids: [String] = []
            for (fault, _, _) in expected { ids.append(try await c.create(C.body(prompt: fault.marker))) }
            try await c.advance(3)
            #expect(try await c.query(ids[0]).status == "RUNNING")   // failures come after RUNNING
            #expect(try await c.query(ids[5]).status == "CANCELED")
            try await c.advance(1000)
            for (i, (fault, status, code)) in expected.enumerated() {
                let q = try await c.query(ids[i])
                #expect(q.status == status, "\(fault)")
                #expect(q.output["code"] as? String == code, "\(fault)")
                #expect(q.body["usage"] == nil, "\(fault)")
            }
            let slow = try await c.create(C.body(prompt: "__FAULT:slow_queue__"))
            try await c.advance(1000)
            #expect(try await c.query(slow).status == "PENDING")
            try await c.advance(3000)
            #expect(try await c.query(slow).status == "SUCCEEDED")
        }
    }

    @Test func wrongMediaFaults() async throws {
        try await withSandbox { c in
            let size = try await c.create(C.body(prompt: "__FAULT:wrong_size__", duration: 2))
            let duration = try await c.create(C.body(prompt: "__FAULT:wrong_duration__", duration: 2))
            let ps = try await probe(try await c.send(TestHTTPRequest("GET", try await c.finish(size))).body)
            #expect(ps.width == 640 && ps.height == 360)
            let pd = try await probe(try await c.send(TestHTTPRequest("GET", try await c.finish(duration))).body)
            #expect(abs((pd.durationSeconds ?? 0) - 3) <= 0.05)
            #expect(pd.width == 1280)
        }
    }

    @Test func downloadFaults() async throws {
        try await withSandbox { c in
            let id = try await c.create(C.body(duration: 2))
            let target = try await c.finish(id)
            let full = try await c.send(TestHTTPRequest("GET", target))
            try await c.setFaults(#"[{"fault":"truncated_download","count":1}]"#)
            let cut = try await c.send(TestHTTPRequest("GET", target))
            #expect(cut.header("content-length") == "\(full.body.count)")
            #expect(!cut.complete)
            #expect(cut.body.count < full.body.count)
            let rate = full.body.count * 4   // about a quarter of a second
            try await c.setFaults("[{\"fault\":\"slow_download\",\"count\":1,\"bytes_per_second\":\(rate)}]")
            let started = Date()
            let slow = try await c.send(TestHTTPRequest("GET", target))
            #expect(Date().timeIntervalSince(started) >= 0.2)
            #expect(slow.complete && slow.body == full.body)
            try await c.setFaults(#"[{"fault":"expired_url","count":1},{"fault":"deleted_url","count":1}]"#)
            let expired = try await c.send(TestHTTPRequest("GET", target))
            #expect(expired.status == 403)
            #expect(expired.text.contains("Request has expired."))
            let deleted = try await c.send(TestHTTPRequest("GET", target))
            #expect(deleted.status == 404)
            #expect(deleted.text.contains("<Code>NoSuchKey</Code>"))
            try await c.setFaults(#"[{"fault":"wrong_content_type","count":1}]"#)
            #expect(try await c.send(TestHTTPRequest("GET", target)).header("content-type") == "application/octet-stream")
            #expect(try await c.send(TestHTTPRequest("GET", target)).header("content-type") == "video/mp4")
        }
    }
}

@Suite struct SandboxBinaryTests {
    @Test func launcherJournalClockAndCleanStop() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2", "--seed", "3"])
        #expect(sandbox.url.hasPrefix("http://127.0.0.1:"))
        let create = TestHTTPRequest("POST", Sandbox.createPath, headers: SandboxClient.auth, json: SandboxClient.body())
        try await sandbox.setFaults(#"[{"fault":"create_throttle","count":1}]"#)
        #expect(try await sandbox.send(create).status == 429)
        let ok = try await sandbox.send(create)
        #expect(ok.status == 200)
        try await sandbox.advanceClock(10)
        let journal = try await sandbox.journal()
        #expect(journal.filter(\.isCreate).map(\.status) == [429, 200])
        #expect(journal.last?.referenceField == "reference_urls")
        #expect(try await sandbox.journal(since: journal[0].seq).count == 1)
        #expect(sandbox.stop() == 0)
    }

    @Test func scenarioFileFromTheCommandLine() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("faults-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"rules":[{"fault":"create_error","count":1}]}"#.utf8).write(to: file)
        let sandbox = try await SandboxProcess.start(["--faults", file.path, "--time-scale", "1000"])
        let create = TestHTTPRequest("POST", Sandbox.createPath, headers: SandboxClient.auth, json: SandboxClient.body())
        #expect(try await sandbox.send(create).status == 500)
        #expect(try await sandbox.send(create).status == 200)
        #expect(sandbox.stop() == 0)
    }

    @Test func listOptionsAndAnAccountWideListFaultFromTheCommandLine() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("faults-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(#"{"rules":[{"fault":"list_omit","marker":"HIDE"},{"fault":"list_late","seconds":30}]}"#.utf8).write(to: file)
        let sandbox = try await SandboxProcess.start(["--faults", file.path, "--list-time-zone-offset", "0",
                                                      "--list-extras", "--time-scale", "1"])
        for prompt in ["shown", "HIDE me"] {
            let create = TestHTTPRequest("POST", Sandbox.createPath, headers: SandboxClient.auth,
                                         json: SandboxClient.body(prompt: prompt))
            #expect(try await sandbox.send(create).status == 200)
        }
        let window = SandboxListTests.window(-1800, 1800, hours: 0)
        let list = TestHTTPRequest("GET", "/api/v1/tasks?" + window, headers: ["Authorization": "Bearer sk-test"])
        #expect(try await sandbox.send(list).json()["total"] as? Int == 0, "both rows are late")
        try await sandbox.advanceClock(31)
        let rows = try await sandbox.send(list).json()["data"] as? [[String: Any]] ?? []
        #expect(rows.map { $0["prompt"] as? String } == ["shown"], "UTC window, extras on, HIDE omitted")
        #expect(sandbox.stop() == 0)
    }

    @Test func helpDocumentsEveryOptionAndFault() async throws {
        let path = try #require(SandboxProcess.binaryPath())
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--help"]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        for option in ["--listen", "--time-scale", "--run-time", "--queue-delay", "--concurrency", "--submit-rps",
                       "--query-qps", "--overflow", "--bad-size", "--faults", "--api-key", "--account", "--url-ttl", "--task-ttl",
                       "--data", "--seed", "--list-time-zone-offset", "--list-extras"] {
            #expect(text.contains(option), "\(option)")
        }
        for fault in FaultName.allCases { #expect(text.contains(fault.rawValue), "\(fault)") }
    }
}
