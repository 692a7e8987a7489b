import Foundation
import ReelCore
import ReelSandbox
import ReelTestKit
import Testing

@Suite struct SandboxCreateTests {
    typealias C = SandboxClient

    @Test func everyCreateTimeRejectionInOrder() async throws {
        try await withSandbox({ $0.apiKeys = ["sk-test", "sk-arrears-1"] }) { c in
            let ok = C.body()
            let cases: [(String, String, [String: String], Int, String)] = [
                ("no key", ok, ["X-DashScope-Async": "enable"], 401, "InvalidApiKey"),
                ("unknown key", ok, ["Authorization": "Bearer sk-other", "X-DashScope-Async": "enable"], 401, "InvalidApiKey"),
                ("arrears", ok, ["Authorization": "Bearer sk-arrears-1", "X-DashScope-Async": "enable"], 400, "Arrearage"),
                ("sync call", ok, ["Authorization": "Bearer sk-test"], 403, "AccessDenied"),
                ("not JSON", "{", C.auth, 400, "InvalidParameter"),
                ("no model", #"{"input":{"prompt":"p"}}"#, C.auth, 400, "BadRequest.EmptyModel"),
                ("no input", #"{"model":"wan2.6-r2v"}"#, C.auth, 400, "BadRequest.EmptyInput"),
                ("unknown model", C.body(model: "wan2.5-i2v"), C.auth, 404, "ModelNotFound"),
                ("no prompt", #"{"model":"wan2.6-r2v","input":{"reference_urls":["https://e/a.png"]}}"#, C.auth, 400, "InvalidParameter"),
                ("no refs", #"{"model":"wan2.6-r2v","input":{"prompt":"p"}}"#, C.auth, 400, "InvalidParameter"),
                ("empty refs", C.body(refs: []), C.auth, 400, "InvalidParameter"),
                ("six refs", C.body(refs: (1...6).map { "https://e/\($0).png" }), C.auth, 400, "InvalidParameter"),
                ("four videos", C.body(refs: (1...4).map { "https://e/\($0).mp4" }), C.auth, 400, "InvalidParameter"),
                ("image in reference_video_urls", C.body(refs: ["https://e/a.png"], field: "reference_video_urls"), C.auth, 400, "InvalidParameter"),
                ("ftp", C.body(refs: ["ftp://e/a.png"]), C.auth, 400, "InvalidURL"),
                ("oss without header", C.body(refs: ["oss://dir/a.png"]), C.auth, 400, "InvalidParameter"),
                ("duration 11", C.body(duration: 11), C.auth, 400, "InvalidParameter"),
                ("duration 1", C.body(duration: 1), C.auth, 400, "InvalidParameter"),
                ("duration 2.5", C.body(extra: "").replacingOccurrences(of: "\"duration\":2", with: "\"duration\":2.5"), C.auth, 400, "InvalidParameter"),
                ("seed -1", C.body(extra: #","seed":-1"#), C.auth, 400, "InvalidParameter"),
                ("seed too big", C.body(extra: #","seed":2147483648"#), C.auth, 400, "InvalidParameter"),
                ("shot_type", C.body(extra: #","shot_type":"wide""#), C.auth, 400, "InvalidParameter"),
                ("size alias", C.body(size: "720P"), C.auth, 400, "InvalidParameter"),
                ("size 480p", C.body(size: "832*480"), C.auth, 400, "InvalidParameter"),
                ("moderation", C.body(prompt: "x __BLOCK_INPUT__"), C.auth, 400, "DataInspectionFailed"),
            ]
            for (name, body, headers, status, code) in cases {
                let r = try await c.createRaw(body, headers: headers)
                #expect(r.status == status, "\(name): \(r.text)")
                let json = try r.json()
                #expect(json["code"] as? String == code, "\(name): \(r.text)")
                #expect(json["request_id"] as? String != nil, "\(name)")
                #expect(json["output"] == nil, "\(name)")
                #expect(r.header("content-type") == "application/json")
            }
            // A good create, then the deprecated field, both accepted and journaled.
            let id = try await c.create(C.body(extra: #","seed":12345,"shot_type":"multi","watermark":false"#))
            #expect(UUID(uuidString: id) != nil)
            _ = try await c.create(C.body(refs: ["https://e/a.mp4"], field: "reference_video_urls"))
            let journal = try await c.send(TestHTTPRequest("GET", "/__sandbox/requests"))
            let rows = try #require(try journal.json()["requests"] as? [[String: Any]])
            let fields = rows.filter { $0["status"] as? Int == 200 }.compactMap { $0["reference_field"] as? String }
            #expect(fields == ["reference_urls", "reference_video_urls"])
        }
    }

    @Test func badSizeCanFailTheTaskInstead() async throws {
        try await withSandbox({ $0.badSize = .fail }) { c in
            let id = try await c.create(C.body(size: "1000*1000"))
            try await c.advance(1000)
            let q = try await c.query(id)
            #expect(q.status == "FAILED")
            #expect(q.output["code"] as? String == "InvalidParameter")
        }
    }
}

@Suite struct SandboxTaskTests {
    typealias C = SandboxClient

    @Test func statesTimesUsageAndExpiry() async throws {
        try await withSandbox({ $0.urlTTL = 500; $0.taskTTL = 5000 }) { c in
            let refs = ["https://e/a.png", "https://e/b.mp4?duration=1", "https://e/c.mp4"]
            let id = try await c.create(C.body(refs: refs, duration: 3))
            var q = try await c.query(id)
            #expect(q.status == "PENDING")
            #expect(q.output["submit_time"] as? String != nil)
            #expect(q.output["scheduled_time"] == nil)
            try await c.advance(3)
            q = try await c.query(id)
            #expect(q.status == "RUNNING")
            #expect(q.output["scheduled_time"] as? String != nil)
            #expect(q.output["end_time"] == nil)
            #expect(q.body["usage"] == nil)
            try await c.advance(10)
            q = try await c.query(id)
            #expect(q.status == "SUCCEEDED")
            #expect(q.output["end_time"] as? String != nil)
            #expect(q.output["orig_prompt"] as? String == "character1 waves")
            #expect(q.output["actual_prompt"] == nil)
            let usage = try #require(q.body["usage"] as? [String: Any])
            // 3 refs: each video capped at 5/3 s; 1 s + 1.666 s -> 2.66 billed input seconds.
            let input = Billing.billedInputSeconds(videoSeconds: [1, 10], referenceCount: 3)
            #expect(usage["input_video_duration"] as? Double == input)
            #expect(usage["duration"] as? Double == 3 + input)
            #expect(usage["output_video_duration"] as? Int == 3)
            #expect(usage["SR"] as? Int == 720)
            #expect(usage["size"] as? String == "1280*720")
            #expect(usage["video_count"] as? Int == 1)
            let target = C.target(try #require(q.output["video_url"] as? String))
            #expect(target.contains("Expires="))
            #expect(try await c.send(TestHTTPRequest("HEAD", target)).status == 200)
            // A forged signature is refused.
            let forged = try await c.send(TestHTTPRequest("GET", target.replacingOccurrences(of: "Signature=", with: "Signature=0")))
            #expect(forged.status == 403)
            // After url_ttl: 403 OSS XML; after task_ttl: UNKNOWN.
            try await c.advance(600)
            let expired = try await c.send(TestHTTPRequest("GET", target))
            #expect(expired.status == 403)
            #expect(expired.text.contains("<Code>AccessDenied</Code>"))
            #expect(expired.text.contains("Request has expired."))
            try await c.advance(5000)
            #expect(try await c.query(id).status == "UNKNOWN")
            let never = try await c.query(UUID().uuidString.lowercased())
            #expect(never.status == "UNKNOWN")
            #expect(never.body["request_id"] as? String != nil)
        }
    }

    @Test func cancelOnlyWhilePending() async throws {
        try await withSandbox { c in
            let a = try await c.create()
            let b = try await c.create()
            let cancel = try await c.send(TestHTTPRequest("POST", "/api/v1/tasks/\(a)/cancel", headers: C.auth))
            #expect(cancel.status == 200)
            #expect(try cancel.json()["request_id"] as? String != nil)
            var q = try await c.query(a)
            #expect(q.status == "CANCELED")
            #expect(q.output["end_time"] as? String != nil)
            try await c.advance(3)
            let late = try await c.send(TestHTTPRequest("POST", "/api/v1/tasks/\(b)/cancel", headers: C.auth))
            #expect(late.status == 400)
            #expect(try late.json()["code"] as? String == "UnsupportedOperation")
            try await c.advance(20)
            q = try await c.query(b)
            #expect(q.status == "SUCCEEDED")
        }
    }

    @Test func realMediaRangeResumeAndSilentFlash() async throws {
        try await withSandbox { c in
            let id = try await c.create(C.body(size: "960*960", duration: 2))
            let target = try await c.finish(id)
            let full = try await c.send(TestHTTPRequest("GET", target))
            #expect(full.status == 200)
            #expect(full.header("content-type") == "video/mp4")
            #expect(full.header("accept-ranges") == "bytes")
            let p = try await probe(full.body)
            #expect(p.videoCodec == "h264")
            #expect(p.width == 960 && p.height == 960)
            #expect(abs((p.durationSeconds ?? 0) - 2) <= 0.05)
            #expect(p.hasAudio)
            // Resume: first part, then the rest with Range.
            let n = full.body.count
            let head = try await c.send(TestHTTPRequest("GET", target, headers: ["Range": "bytes=0-\(n / 2 - 1)"]))
            #expect(head.status == 206)
            let tail = try await c.send(TestHTTPRequest("GET", target, headers: ["Range": "bytes=\(n / 2)-"]))
            #expect(tail.status == 206)
            #expect(tail.header("content-range") == "bytes \(n / 2)-\(n - 1)/\(n)")
            #expect(head.body + tail.body == full.body)
            let bad = try await c.send(TestHTTPRequest("GET", target, headers: ["Range": "bytes=\(n)-"]))
            #expect(bad.status == 416)

            let flash = try await c.create(C.body(model: "wan2.6-r2v-flash", size: "1280*720", duration: 2, extra: #","audio":false"#))
            let silent = try await c.send(TestHTTPRequest("GET", try await c.finish(flash)))
            let sp = try await probe(silent.body)
            #expect(!sp.hasAudio)
            #expect(sp.width == 1280 && sp.height == 720)
        }
    }
}

@Suite struct SandboxLimitTests {
    typealias C = SandboxClient

    @Test func sixthConcurrentCreateIsThrottled() async throws {
        try await withSandbox { c in
            for _ in 0..<5 { _ = try await c.create() }
            let sixth = try await c.createRaw(C.body())
            #expect(sixth.status == 429)
            #expect(try sixth.json()["code"] as? String == "Throttling")
            try await c.advance(20)
            _ = try await c.create()
        }
    }

    @Test func sixthConcurrentCreateQueues() async throws {
        try await withSandbox({ $0.overflow = .queue }) { c in
            var ids: [String] = []
            for _ in 0..<6 { ids.append(try await c.create()) }
            try await c.advance(3)
            #expect(try await c.query(ids[0]).status == "RUNNING")
            #expect(try await c.query(ids[5]).status == "PENDING")
            try await c.advance(12)   // the first five end at 12; the sixth is admitted then, RUNNING at 14
            #expect(try await c.query(ids[0]).status == "SUCCEEDED")
            #expect(try await c.query(ids[5]).status == "RUNNING")
            try await c.advance(20)
            #expect(try await c.query(ids[5]).status == "SUCCEEDED")
        }
    }

    @Test func overFiveCreatesPerSecondAndTwentyQueriesPerSecond() async throws {
        let frozen: @Sendable () -> Double = { 42 }   // every request lands in the same second
        try await withSandbox({ $0.submitRPS = 5; $0.queryQPS = 20; $0.concurrency = 100; $0.rateClock = frozen }) { c in
            let create = TestHTTPRequest("POST", Sandbox.createPath, headers: C.auth, json: C.body())
            let statuses = try await TestHTTP.exchange(c.endpoint, Array(repeating: create, count: 10)).map(\.status)
            #expect(statuses == Array(repeating: 200, count: 5) + Array(repeating: 429, count: 5))
            let q = TestHTTPRequest("GET", "/api/v1/tasks/x", headers: ["Authorization": "Bearer sk-test"])
            let queries = try await TestHTTP.exchange(c.endpoint, Array(repeating: q, count: 40))
            #expect(queries.prefix(20).allSatisfy { $0.status == 200 })
            #expect(queries.dropFirst(20).allSatisfy { $0.status == 429 })
            let throttled = try #require(queries.last)
            #expect(try throttled.json()["code"] as? String == "Throttling.RateQuota")
            #expect(throttled.header("retry-after") == nil)
        }
    }

    @Test func listsShareTheTwentyQueriesPerSecond() async throws {
        let frozen: @Sendable () -> Double = { 7 }
        try await withSandbox({ $0.queryQPS = 20; $0.rateClock = frozen }) { c in
            let q = TestHTTPRequest("GET", "/api/v1/tasks/x", headers: ["Authorization": "Bearer sk-test"])
            let list = TestHTTPRequest("GET", "/api/v1/tasks?page_size=100", headers: ["Authorization": "Bearer sk-test"])
            let answers = try await TestHTTP.exchange(c.endpoint, Array(repeating: q, count: 15) + Array(repeating: list, count: 10))
            #expect(answers.prefix(20).allSatisfy { $0.status == 200 }, "15 queries and 5 lists fit in one second")
            #expect(answers.dropFirst(20).allSatisfy { $0.status == 429 }, "the 6th list is the 21st query call")
            #expect(try answers.last?.json()["code"] as? String == "Throttling.RateQuota")
        }
    }
}

@Suite struct SandboxUploadTests {
    typealias C = SandboxClient

    @Test func uploadPolicyFormAndOSSReference() async throws {
        try await withSandbox { c in
            let h = ["Authorization": "Bearer sk-test"]
            let policy = try await c.send(TestHTTPRequest("GET", "/api/v1/uploads?action=getPolicy&model=wan2.6-r2v", headers: h))
            #expect(policy.status == 200)
            let out = try #require(try policy.json()["output"] as? [String: Any])
            for field in ["upload_host", "upload_dir", "oss_access_key_id", "signature", "policy", "x_oss_object_acl",
                          "x_oss_forbid_overwrite"] {
                #expect(out[field] != nil, "getPolicy lacks \(field)")
            }
            let key = (out["upload_dir"] as! String) + "/ref.png"
            let boundary = "XyZ"
            var body: [UInt8] = []
            func field(_ name: String, _ value: String) {
                body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
            }
            field("OSSAccessKeyId", out["oss_access_key_id"] as! String)
            field("Signature", out["signature"] as! String)
            field("policy", out["policy"] as! String)
            field("key", key)
            field("x-oss-object-acl", out["x_oss_object_acl"] as! String)
            field("x-oss-forbid-overwrite", out["x_oss_forbid_overwrite"] as! String)
            field("success_action_status", "200")
            field("x-oss-content-type", "image/png")
            body += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ref.png\"\r\nContent-Type: image/png\r\n\r\n".utf8)
            body += [0x89, 0x50, 0x4e, 0x47, 13, 10, 1, 2, 3]
            body += Array("\r\n--\(boundary)--\r\n".utf8)
            let host = out["upload_host"] as! String
            let up = try await c.send(TestHTTPRequest("POST", C.target(host),
                                                      headers: ["Content-Type": "multipart/form-data; boundary=\(boundary)"],
                                                      body: body))
            #expect(up.status == 200, "\(up.text)")
            let stored = try String(contentsOfFile: c.sandbox.dataDirectory + "/uploads/" + key.replacingOccurrences(of: "/", with: "_"),
                                    encoding: .isoLatin1)
            #expect(Array(stored.utf8).count > 0)

            var headers = C.auth
            headers["X-DashScope-OssResourceResolve"] = "enable"
            let id = try await c.create(C.body(refs: ["oss://\(key)"]), headers: headers)
            #expect(try await c.finish(id).hasPrefix("/oss/"))
            let missing = try await c.create(C.body(refs: ["oss://\(out["upload_dir"] as! String)/nope.png"]), headers: headers)
            try await c.advance(1000)
            #expect(try await c.query(missing).output["code"] as? String == "InvalidParameter.DataInspection")
            let journal = try await c.send(TestHTTPRequest("GET", "/__sandbox/requests")).json()
            let creates = (journal["requests"] as? [[String: Any]] ?? []).filter { ($0["path"] as? String)?.hasSuffix("video-synthesis") == true }
            #expect(creates.map { $0["oss_header"] as? Bool } == [true, true])
        }
    }
}
