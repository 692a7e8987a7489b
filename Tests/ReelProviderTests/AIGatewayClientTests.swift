import Foundation
import ReelCore
import ReelCurl
import ReelProvider
import ReelTestKit
import Testing

/// `AIGatewayClient` against a real `reel-sandbox` speaking the gateway's asynchronous protocol (reference §2.1).
@Suite struct AIGatewayClientTests {
    struct Harness {
        let sandbox: SandboxProcess
        let client: AIGatewayClient
        let directory: String

        static func with(_ arguments: [String] = ["--time-scale", "1000", "--run-time", "1..2"],
                         _ body: (Harness) async throws -> Void) async throws {
            let sandbox = try await SandboxProcess.start(arguments)
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("reel-gateway-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let client = AIGatewayClient(baseURL: sandbox.gatewayBase + "/", apiKey: ProviderHarness.key,
                                         curl: ProviderHarness.curl,
                                         timeouts: .init(connect: 5, api: 10, upload: 30, download: 30))
            // Stopped without blocking a thread of the cooperative pool, which the in-process servers of other
            // suites need.
            do {
                try await body(Harness(sandbox: sandbox, client: client, directory: directory))
            } catch {
                await sandbox.terminate()
                try? FileManager.default.removeItem(atPath: directory)
                throw error
            }
            await sandbox.terminate()
            try? FileManager.default.removeItem(atPath: directory)
        }

        func waitTerminal(_ id: String) async throws -> TaskSnapshot {
            for _ in 0..<600 {
                let (snapshot, _) = try await client.queryTask(id)
                if snapshot.status != .pending { return snapshot }
                try await Task.sleep(for: .milliseconds(50))
            }
            Issue.record("job \(id) never ended")
            throw CancellationError()
        }

        func json(_ target: String) async throws -> [String: Any] {
            try await sandbox.send(TestHTTPRequest("GET", target)).json()
        }

        func tasks() async throws -> [[String: Any]] {
            try #require(try await json("/__sandbox/tasks")["tasks"] as? [[String: Any]])
        }
    }

    static func request(key: String? = "reel:spring/hero-001:1", seed: Int? = 0, prompt: String = "character1 waves",
                        model: RenderModel = .r2vFlash) -> RenderRequest {
        RenderRequest(model: model, prompt: prompt, negativePrompt: "blurry",
                      referenceURLs: ["https://example.com/b.mp4?duration=3", "https://example.com/a.png"],
                      size: FrameSize(width: 1280, height: 720), durationSeconds: 2, shotType: .multi,
                      watermark: false, seed: seed, audio: false, idempotencyKey: key)
    }

    @Test func startStatusCompletedAndDownload() async throws {
        try await Harness.with { h in
            let created = try await h.client.createTask(Self.request())
            #expect(created.status == .pending)
            #expect(created.exchange.kind == .create && created.exchange.httpStatus == 202)
            let done = try await h.waitTerminal(created.taskID)
            #expect(done.status == .succeeded)
            let expiresAt = try #require(done.resultExpiresAt)
            #expect(expiresAt > Date().timeIntervalSince1970)
            let path = h.directory + "/out.mp4"
            let result = try await h.client.download(url: try #require(done.videoURL), to: path)
            #expect(result.isComplete && result.bytesOnDisk > 1000)
            let journal = try await h.sandbox.journal()
            let start = try #require(journal.first { $0.isGatewayStart })
            #expect(start.model == "alibaba/wan-v2.6-r2v-flash" && start.status == 202)
            #expect(start.idempotencyKey == "reel:spring/hero-001:1" && start.account == "default")
        }
    }

    @Test func theRequestIsMappedAndSeedZeroIsSent() async throws {
        try await Harness.with { h in
            _ = try await h.client.createTask(Self.request(seed: 0))
            let task = try #require(try await h.tasks().first)
            #expect(task["seed"] as? Int == 0, "seed 0 is a valid seed and is sent")
            #expect(task["references"] as? [String] == ["https://example.com/b.mp4?duration=3", "https://example.com/a.png"])
            #expect(task["size"] as? String == "1280*720" && task["duration"] as? Int == 2)
            #expect(task["negative_prompt"] as? String == "blurry" && task["shot_type"] as? String == "multi")
            #expect(task["watermark"] as? Bool == false && task["audio"] as? Bool == false)
            #expect(task["idempotency_key"] as? String == "reel:spring/hero-001:1")
            _ = try await h.client.createTask(Self.request(key: "other", seed: nil))
            #expect(try await h.tasks().last?["seed"] == nil, "no seed when the job has none")
        }
    }

    @Test func aRepeatedStartWithTheSameKeyIsTheSameJob() async throws {
        try await Harness.with { h in
            let first = try await h.client.createTask(Self.request())
            let again = try await h.client.createTask(Self.request())
            #expect(first.taskID == again.taskID)
            let starts = try await h.sandbox.gatewayStarts()
            #expect(starts.map(\.idempotencyKey) == ["reel:spring/hero-001:1"])
            #expect(starts.first?.starts == 2 && starts.first?.jobs == 1 && starts.first?.jobID == first.taskID)
        }
    }

    @Test func throttledStartsAreThrottled() async throws {
        try await Harness.with { h in
            try await h.sandbox.setFaults(#"[{"fault":"create_throttle","count":1,"retry_after":2}]"#)
            let failure = try #require(await expectFailure("throttled start") { _ = try await h.client.createTask(Self.request()) })
            #expect(failure.exchange.httpStatus == 429)
            #expect(failure.code == "rate_limit_exceeded")
            #expect(failure.blame == .throttled)
            #expect(failure.retryAfter == 2)
        }
    }

    @Test func aStartWithoutADefiniteAnswerIsRetriedWithItsKey() async throws {
        try await Harness.with { h in
            try await h.sandbox.setFaults(#"[{"fault":"create_error_after_create","count":1}]"#)
            let failure = try #require(await expectFailure("500 after the job was made") {
                _ = try await h.client.createTask(Self.request())
            })
            #expect(failure.exchange.httpStatus == 500 && failure.code == "internal_server_error")
            #expect(failure.repeatable)
            #expect(failure.blame == .provider, "retryable: asking again with the key is safe")
            let created = try await h.client.createTask(Self.request())
            #expect(try await h.tasks().map { $0["task_id"] as? String } == [created.taskID], "one job, not two")

            try await h.sandbox.setFaults(#"[{"fault":"create_reset_after_create","count":1}]"#)
            let reset = try #require(await expectFailure("reset after the job was made") {
                _ = try await h.client.createTask(Self.request(key: "reel:spring/hero-002:1"))
            })
            #expect(reset.exchange.httpStatus == 0 && reset.blame == .provider)
            _ = try await h.client.createTask(Self.request(key: "reel:spring/hero-002:1"))
            #expect(try await h.tasks().count == 2)

            try await h.sandbox.setFaults(#"[{"fault":"create_error","count":1}]"#)
            let unkeyed = try #require(await expectFailure("500 without a key") {
                _ = try await h.client.createTask(Self.request(key: nil))
            })
            #expect(unkeyed.blame == .ambiguous, "without a key a 500 leaves the start in doubt")
        }
    }

    @Test func anExpiredAssetIsUnknown() async throws {
        try await Harness.with(["--time-scale", "1000", "--run-time", "1..2", "--url-ttl", "60000"]) { h in
            let created = try await h.client.createTask(Self.request())
            #expect(try await h.waitTerminal(created.taskID).status == .succeeded)
            try await h.sandbox.advanceClock(120_000)
            let (snapshot, _) = try await h.client.queryTask(created.taskID)
            #expect(snapshot.status == .unknown)
            #expect(snapshot.videoURL == nil)
            let (missing, exchange) = try await h.client.queryTask("gwjob_never")
            #expect(missing.status == .unknown && exchange.httpStatus == 404)
        }
    }

    @Test func failedJobsCarryTheErrorType() async throws {
        try await Harness.with { h in
            let refused = try await h.client.createTask(Self.request(key: "a", prompt: "__FAULT:output_inspection__"))
            let failing = try await h.client.createTask(Self.request(key: "b", prompt: "__FAULT:fail_internal__"))
            let failed = try await h.waitTerminal(refused.taskID)
            #expect(failed.status == .failed && failed.code == "invalid_request_error")
            #expect(ProviderFailure.isPermanentCode(try #require(failed.code)))
            let lost = try await h.waitTerminal(failing.taskID)
            #expect(lost.status == .failed && lost.code == "internal_server_error")
            #expect(!ProviderFailure.isPermanentCode(try #require(lost.code)), "a provider failure is retried")
        }
    }

    @Test func listCancelAndUploadAreUnsupportedAndSendNothing() async throws {
        try await Harness.with { h in
            #expect(!h.client.supportsTaskList && !h.client.supportsCancel && h.client.deduplicatesCreates)
            let list = try #require(await expectFailure("list") { _ = try await h.client.listTasks(TaskListQuery()) })
            let cancel = try #require(await expectFailure("cancel") { _ = try await h.client.cancelTask("gwjob_x") })
            let upload = try #require(await expectFailure("upload") {
                _ = try await h.client.uploadFile(path: "/etc/hostname", model: .r2v)
            })
            for failure in [list, cancel, upload] {
                #expect(failure.code == ProviderFailure.unsupportedCode)
                #expect(failure.blame == .jobPermanent)
                #expect(failure.exchange.httpStatus == 0)
            }
            #expect(try await h.sandbox.journal().isEmpty, "nothing reached the gateway")
        }
    }

    @Test func aDownAccountAnswers500AndTheKeyIsNeverShown() async throws {
        try await Harness.with(["--time-scale", "1000", "--run-time", "1..2",
                                "--account", "gw=\(ProviderHarness.key)"]) { h in
            try await h.sandbox.setFaults(#"[{"fault":"call_error","account":"gw"}]"#)
            let failure = try #require(await expectFailure("account down") { _ = try await h.client.createTask(Self.request()) })
            #expect(failure.exchange.httpStatus == 500 && failure.blame == .provider)
            #expect(!"\(h.client)".contains(ProviderHarness.key) && !failure.description.contains(ProviderHarness.key))
        }
    }
}
