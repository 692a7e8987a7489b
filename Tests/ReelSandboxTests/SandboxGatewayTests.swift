import Foundation
import ReelCore
import ReelSandbox
import ReelTestKit
import Testing

/// The AI Gateway's asynchronous video jobs (reference §2.1) on the sandbox's task engine.
@Suite struct SandboxGatewayTests {
    typealias C = SandboxClient

    static func headers(key: String = "sk-test", model: String = "alibaba/wan-v2.6-r2v",
                        idempotencyKey: String? = nil) -> [String: String] {
        var h = ["Authorization": "Bearer \(key)", "ai-model-id": model, "ai-gateway-protocol-version": "0.0.1",
                 "ai-video-model-specification-version": "4"]
        h["idempotency-key"] = idempotencyKey
        return h
    }

    static let body = """
        {"prompt":"character1 waves at character2","n":1,"resolution":"1280x720","duration":2,"seed":0,\
        "inputReferences":[{"type":"url","url":"https://example.com/b.png"},{"type":"url","url":"https://example.com/a.png"}],\
        "providerOptions":{"alibaba":{"negativePrompt":"blurry","shotType":"multi","watermark":true}}}
        """

    static func start(_ c: C, body: String = body, headers: [String: String] = headers()) async throws -> TestHTTPResponse {
        try await c.send(TestHTTPRequest("POST", Sandbox.gatewayStartPath, headers: headers, json: body))
    }

    static func jobID(_ r: TestHTTPResponse) throws -> String {
        #expect(r.status == 202, "start: \(r.text)")
        return try #require((try r.json()["operation"] as? [String: Any])?["gatewayJobId"] as? String)
    }

    static func status(_ c: C, _ id: String, key: String = "sk-test") async throws -> TestHTTPResponse {
        try await c.send(TestHTTPRequest("POST", Sandbox.gatewayStatusPath, headers: ["Authorization": "Bearer \(key)"],
                                         json: #"{"operation":{"gatewayJobId":"\#(id)"}}"#))
    }

    static func tasks(_ c: C) async throws -> [[String: Any]] {
        try #require(try await c.send(TestHTTPRequest("GET", "/__sandbox/tasks")).json()["tasks"] as? [[String: Any]])
    }

    static func starts(_ c: C) async throws -> [[String: Any]] {
        try #require(try await c.send(TestHTTPRequest("GET", "/__sandbox/gateway/starts")).json()["keys"] as? [[String: Any]])
    }

    @Test func startStatusCompletedDownloadAndExpiry() async throws {
        try await withSandbox({ $0.urlTTL = 3600 }) { c in
            let id = try Self.jobID(try await Self.start(c, headers: Self.headers(idempotencyKey: "k-1")))
            let pending = try await Self.status(c, id)
            #expect(pending.status == 200)
            #expect(try pending.json()["status"] as? String == "pending")
            try await c.advance(100)
            let done = try await Self.status(c, id).json()
            #expect(done["status"] as? String == "completed")
            let video = try #require((done["videos"] as? [[String: Any]])?.first)
            #expect(video["type"] as? String == "url" && video["mediaType"] as? String == "video/mp4")
            let job = (((done["providerMetadata"] as? [String: Any])?["gateway"] as? [String: Any])?["asyncJob"]
                as? [String: Any])
            let expiresAt = try #require((job?["result"] as? [String: Any])?["expiresAt"] as? String)
            let expiry = try #require(RFC3339.parse(expiresAt))
            #expect(expiry > Date().timeIntervalSince1970)
            let file = try await c.send(TestHTTPRequest("GET", C.target(try #require(video["url"] as? String))))
            #expect(file.status == 200)
            let probe = try await probe(file.body)
            #expect(probe.width == 1280 && probe.height == 720)
            try await c.advance(3600)
            let expired = try await Self.status(c, id).json()
            #expect(expired["status"] as? String == "completed")
            #expect((expired["videos"] as? [Any])?.isEmpty == true, "an expired asset: completed, no videos")
        }
    }

    @Test func theStartIsTranslatedAsTheAlibabaProviderDoes() async throws {
        try await withSandbox { c in
            _ = try Self.jobID(try await Self.start(c))
            let task = try #require(try await Self.tasks(c).first)
            #expect(task["protocol"] as? String == "gateway")
            #expect(task["model"] as? String == "wan2.6-r2v")
            #expect(task["size"] as? String == "1280*720")
            #expect(task["seed"] as? Int == 0)
            #expect(task["references"] as? [String] == ["https://example.com/b.png", "https://example.com/a.png"])
            #expect(task["negative_prompt"] as? String == "blurry")
            #expect(task["shot_type"] as? String == "multi")
            #expect(task["watermark"] as? Bool == true)
        }
    }

    @Test func aRepeatedKeyAnswersTheSameJob() async throws {
        try await withSandbox { c in
            let first = try Self.jobID(try await Self.start(c, headers: Self.headers(idempotencyKey: "reel-a-1")))
            let again = try Self.jobID(try await Self.start(c, headers: Self.headers(idempotencyKey: "reel-a-1")))
            let other = try Self.jobID(try await Self.start(c, headers: Self.headers(idempotencyKey: "reel-b-1")))
            #expect(first == again)
            #expect(first != other)
            #expect(try await Self.tasks(c).count == 2, "no second render for a repeated key")
            let starts = try await Self.starts(c)
            #expect(starts.map { $0["idempotency_key"] as? String } == ["reel-a-1", "reel-b-1"])
            #expect(starts.map { $0["starts"] as? Int } == [2, 1])
            #expect(starts.map { $0["jobs"] as? Int } == [1, 1])
        }
    }

    @Test func aStartWhoseAnswerWasLostIsSettledByAskingAgain() async throws {
        try await withSandbox { c in
            try await c.setFaults(#"[{"fault":"create_error_after_create","count":1}]"#)
            let lost = try await Self.start(c, headers: Self.headers(idempotencyKey: "reel-c-1"))
            #expect(lost.status == 500)
            let error = try lost.json()
            #expect(error["type"] as? String == "error" && error["errorType"] as? String == "internal_server_error")
            #expect(error["statusCode"] as? Int == 500)
            let id = try Self.jobID(try await Self.start(c, headers: Self.headers(idempotencyKey: "reel-c-1")))
            #expect(try await Self.tasks(c).map { $0["task_id"] as? String } == [id])
            #expect(try await Self.starts(c).first?["starts"] as? Int == 2)
        }
    }

    @Test func errorsInTheSSEErrorShape() async throws {
        try await withSandbox { c in
            try await c.setFaults(#"[{"fault":"create_throttle","count":1,"retry_after":3}]"#)
            let throttled = try await Self.start(c)
            #expect(throttled.status == 429)
            #expect(try throttled.json()["errorType"] as? String == "rate_limit_exceeded")
            #expect(throttled.header("retry-after") == "3")
            let noKey = try await c.send(TestHTTPRequest("POST", Sandbox.gatewayStartPath,
                                                         headers: ["ai-model-id": "alibaba/wan-v2.6-r2v"], json: Self.body))
            #expect(noKey.status == 401)
            #expect(try noKey.json()["errorType"] as? String == "authentication_error")
            let model = try await Self.start(c, headers: Self.headers(model: "alibaba/wan-v9"))
            #expect(model.status == 404)
            #expect(try model.json()["errorType"] as? String == "model_not_found")
            let bad = try await Self.start(c, body: #"{"prompt":"x","n":1,"duration":11,"inputReferences":[{"type":"url","url":"https://e.com/a.png"}]}"#)
            #expect(bad.status == 400)
            #expect(try bad.json()["errorType"] as? String == "invalid_request_error")
            #expect(try await Self.status(c, "gwjob_nope").status == 404)
        }
    }

    @Test func failedAndLostJobsAnswerError() async throws {
        try await withSandbox { c in
            let inspect = #"{"prompt":"__FAULT:output_inspection__","n":1,"inputReferences":[{"type":"url","url":"https://e.com/a.png"}]}"#
            let failInternal = #"{"prompt":"__FAULT:fail_internal__","n":1,"inputReferences":[{"type":"url","url":"https://e.com/a.png"}]}"#
            let a = try Self.jobID(try await Self.start(c, body: inspect))
            let b = try Self.jobID(try await Self.start(c, body: failInternal))
            try await c.advance(100)
            let failed = try await Self.status(c, a).json()
            #expect(failed["status"] as? String == "error")
            #expect((failed["error"] as? [String: Any])?["errorType"] as? String == "invalid_request_error")
            let lost = try await Self.status(c, b).json()
            #expect((lost["error"] as? [String: Any])?["errorType"] as? String == "internal_server_error")
        }
    }

    @Test func protocolsAndAccountsDoNotSeeEachOthersJobs() async throws {
        try await withSandbox({ $0.accounts = [.init(name: "gw", keys: ["sk-gw"]), .init(name: "direct", keys: ["sk-d"])] }) { c in
            let id = try Self.jobID(try await Self.start(c, headers: Self.headers(key: "sk-gw")))
            #expect(try await Self.status(c, id, key: "sk-d").status == 404)
            #expect(try await Self.status(c, id, key: "sk-gw").status == 200)
            let dash = try await c.send(TestHTTPRequest("GET", "/api/v1/tasks/\(id)", headers: ["Authorization": "Bearer sk-gw"]))
            #expect((try dash.json()["output"] as? [String: Any])?["task_status"] as? String == "UNKNOWN")
            try await c.setFaults(#"[{"fault":"call_error","account":"gw"}]"#)
            #expect(try await Self.status(c, id, key: "sk-gw").status == 500)
            #expect(try await Self.start(c, headers: Self.headers(key: "sk-gw", idempotencyKey: "x")).status == 500)
        }
    }
}
