import Foundation
import ReelCore
import ReelCurl
@testable import ReelProvider
import ReelTestKit
import Testing

@Suite("DashScopeClient against reel-sandbox") struct DashScopeClientTests {
    @Test func createQueryUntilSucceeded() async throws {
        try await ProviderHarness.with { h in
            let created = try await h.client.createTask(ProviderHarness.request())
            #expect(created.status == .pending)
            #expect(created.exchange.kind == .create && created.exchange.httpStatus == 200)
            #expect(created.exchange.requestID?.isEmpty == false)

            let done = try await h.waitTerminal(created.taskID)
            #expect(done.status == .succeeded)
            #expect(done.taskID == created.taskID)
            #expect(done.videoURL?.hasPrefix(h.sandbox.url) == true)
            #expect(done.usage?.size == "1280*720")
            #expect(done.usage?.outputVideoDuration == 2)
            #expect(done.usage?.sr == 720)
            #expect(done.submitTime != nil && done.endTime != nil)

            // What the sandbox saw: one create, on reference_urls, without the OSS header, then queries.
            let journal = try await h.sandbox.journal()
            let creates = journal.filter(\.isCreate)
            #expect(creates.count == 1)
            #expect(creates.first?.model == "wan2.6-r2v")
            #expect(creates.first?.referenceField == "reference_urls")
            #expect(creates.first?.ossHeader == false)
            #expect(creates.first?.taskID == created.taskID)
            #expect(journal.contains { $0.isQuery && $0.taskID == created.taskID && $0.status == 200 })
        }
    }

    @Test func createBodyFollowsTheReference() throws {
        let full = RenderRequest(model: .r2vFlash, prompt: "character1 dances", negativePrompt: "blur",
                                 referenceURLs: ["https://x/a.mp4", "oss://dir/b.png"],
                                 size: FrameSize(width: 720, height: 1280), durationSeconds: 7, shotType: .multi,
                                 watermark: true, seed: 2_147_483_647, audio: false)
        let body = try JSONSerialization.jsonObject(
            with: JSONEncoder().encode(DashScopeClient.CreateBody(full))) as? [String: Any]
        let input = body?["input"] as? [String: Any]
        let parameters = body?["parameters"] as? [String: Any]
        #expect(body?["model"] as? String == "wan2.6-r2v-flash")
        #expect(input?["prompt"] as? String == "character1 dances")
        #expect(input?["negative_prompt"] as? String == "blur")
        #expect(input?["reference_urls"] as? [String] == ["https://x/a.mp4", "oss://dir/b.png"])
        #expect(parameters?["size"] as? String == "720*1280")
        #expect(parameters?["duration"] as? Int == 7)
        #expect(parameters?["shot_type"] as? String == "multi")
        #expect(parameters?["watermark"] as? Bool == true)
        #expect(parameters?["seed"] as? Int == 2_147_483_647)
        #expect(parameters?["audio"] as? Bool == false)

        let minimal = RenderRequest(model: .r2v, prompt: "p", referenceURLs: ["https://x/a.png"],
                                    size: FrameSize(width: 1280, height: 720), durationSeconds: 5)
        let sparse = try JSONSerialization.jsonObject(
            with: JSONEncoder().encode(DashScopeClient.CreateBody(minimal))) as? [String: Any]
        #expect(Set((sparse?["parameters"] as? [String: Any])?.keys.map { $0 } ?? []) == ["size", "duration"])
        #expect(Set((sparse?["input"] as? [String: Any])?.keys.map { $0 } ?? []) == ["prompt", "reference_urls"])
    }

    @Test func providerTimesAndRetryAfter() {
        // 2026-01-01 00:00:00 UTC is 08:00 in the provider's UTC+8.
        #expect(ProviderTime.formatCompact(1_767_225_600) == "20260101080000")
        #expect(ProviderTime.parseCompact("20260101080000") == 1_767_225_600)
        #expect(ProviderTime.format(1_767_225_600.5) == "2026-01-01 08:00:00.500")
        #expect(ProviderTime.parse("2026-01-01 08:00:00.500") == 1_767_225_600.5)
        #expect(ProviderTime.parse("2026-01-01 08:00:00") == 1_767_225_600)
        #expect(ProviderTime.parse("2026-02-30 08:00:00") == nil)
        #expect(ProviderTime.seconds(from: "2025-12-16 00:25:59.869", to: "2025-12-16 00:30:35.396")! - 275.527 < 1e-6)
        #expect(DashScopeClient.retryAfter("7") == 7)
        #expect(DashScopeClient.retryAfter(" 2.5 ") == 2.5)
        #expect(DashScopeClient.retryAfter("Wed, 21 Oct 2015 07:28:00 GMT") == 0)  // in the past
        #expect(DashScopeClient.retryAfter("soon") == nil)
        #expect(DashScopeClient.retryAfter(nil) == nil)
    }

    @Test func errorEnvelopesAreClassified() async throws {
        try await ProviderHarness.with { h in
            let request = ProviderHarness.request()

            let badKey = DashScopeClient(baseURL: h.sandbox.url, apiKey: "not-a-key", curl: ProviderHarness.curl)
            let unauthorized = await expectFailure("401") { _ = try await badKey.createTask(request) }
            #expect(unauthorized?.exchange.httpStatus == 401)
            #expect(unauthorized?.code == "InvalidApiKey")
            #expect(unauthorized?.blame == .account)
            #expect(unauthorized?.requestMayHaveArrived == false)
            #expect(unauthorized?.exchange.requestID?.isEmpty == false)

            var tooLong = request
            tooLong.durationSeconds = 11
            let invalid = await expectFailure("400") { _ = try await h.client.createTask(tooLong) }
            #expect(invalid?.exchange.httpStatus == 400)
            #expect(invalid?.code == "InvalidParameter")
            #expect(invalid?.blame == .jobPermanent)
            #expect(invalid?.message.contains("duration") == true)

            try await h.faults(#"[{"fault":"create_throttle","count":1}]"#)
            let throttled = await expectFailure("429") { _ = try await h.client.createTask(request) }
            #expect(throttled?.exchange.httpStatus == 429)
            #expect(throttled?.code?.hasPrefix("Throttling") == true)
            #expect(throttled?.retryAfter == nil)
            #expect(throttled?.blame == .throttled)

            try await h.faults(#"[{"fault":"create_throttle","count":1,"retry_after":3}]"#)
            let throttledWithHint = await expectFailure("429 + Retry-After") {
                _ = try await h.client.createTask(request)
            }
            #expect(throttledWithHint?.retryAfter == 3)
            #expect(throttledWithHint?.blame == .throttled)

            try await h.faults(#"[{"fault":"create_error","count":1}]"#)
            let serverError = await expectFailure("500") { _ = try await h.client.createTask(request) }
            #expect(serverError?.exchange.httpStatus == 500)
            #expect(serverError?.requestMayHaveArrived == true)
            #expect(serverError?.blame == .ambiguous)

            try await h.faults(#"[{"fault":"create_reset_after_create","count":1}]"#)
            let reset = await expectFailure("reset") { _ = try await h.client.createTask(request) }
            #expect(reset?.exchange.httpStatus == 0)
            #expect(reset?.exchange.transportError != nil)
            #expect(reset?.requestMayHaveArrived == true)
            #expect(reset?.blame == .ambiguous)

            let task = try await h.client.createTask(request)
            try await h.faults(#"[{"fault":"query_503","count":1}]"#)
            let unavailable = await expectFailure("503") { _ = try await h.client.queryTask(task.taskID) }
            #expect(unavailable?.exchange.httpStatus == 503)
            #expect(unavailable?.blame == .provider)

            // Exactly one create per call: libcurl did not re-send the reset create on its own.
            let creates = try await h.sandbox.journal().filter(\.isCreate)
            #expect(creates.map(\.status) == [401, 400, 429, 429, 500, 0, 200])
        }
    }

    @Test func createTimeoutAfterSendingIsInDoubt() async throws {
        try await ProviderHarness.with { h in
            let impatient = DashScopeClient(baseURL: h.sandbox.url, apiKey: ProviderHarness.key,
                                            curl: ProviderHarness.curl, timeouts: .init(connect: 5, api: 0.3))
            try await h.faults(#"[{"fault":"create_delay","seconds":3,"count":1}]"#)
            let timedOut = await expectFailure("timeout") { _ = try await impatient.createTask(ProviderHarness.request()) }
            #expect(timedOut?.exchange.httpStatus == 0)
            #expect(timedOut?.exchange.transportError?.lowercased().contains("timed out") == true)
            #expect(timedOut?.requestMayHaveArrived == true)
            #expect(timedOut?.blame == .ambiguous)
        }
    }

    /// A query reset on a kept-alive connection is re-sent once by libcurl (GET is idempotent); a create is
    /// never re-sent (see `errorEnvelopesAreClassified`).
    @Test func queryResetOnAReusedConnectionIsRetried() async throws {
        try await ProviderHarness.with { h in
            let client = DashScopeClient(baseURL: h.sandbox.url, apiKey: ProviderHarness.key,
                                         curl: CurlClient(threads: 1))
            let task = try await client.createTask(ProviderHarness.request())
            _ = try await client.queryTask(task.taskID)
            try await h.faults(#"[{"fault":"query_reset","count":1}]"#)
            let (snapshot, exchange) = try await client.queryTask(task.taskID)
            #expect(snapshot.taskID == task.taskID)
            #expect(exchange.httpStatus == 200)
            let queries = try await h.sandbox.journal().filter(\.isQuery)
            #expect(queries.map(\.status) == [200, 0, 200])
        }
    }

    @Test func connectRefusedNeverArrived() async throws {
        let client = DashScopeClient(baseURL: "http://127.0.0.1:\(closedLocalPort())", apiKey: ProviderHarness.key,
                                     curl: ProviderHarness.curl)
        let refused = await expectFailure("refused") { _ = try await client.createTask(ProviderHarness.request()) }
        #expect(refused?.exchange.httpStatus == 0)
        #expect(refused?.exchange.kind == .create)
        #expect(refused?.requestMayHaveArrived == false)
        #expect(refused?.blame == .provider)  // safe to retry: no task can exist
        #expect(refused?.exchange.transportError?.contains("onnect") == true)
    }

    @Test func malformedAnswersBecomeFailuresNotCrashes() async throws {
        try await ProviderHarness.with { h in
            let task = try await h.client.createTask(ProviderHarness.request())
            for fault in ["malformed_no_output", "malformed_no_task_id", "malformed_status"] {
                try await h.faults(#"[{"fault":"\#(fault)","count":1}]"#)
                let failure = await expectFailure(fault) { _ = try await h.client.queryTask(task.taskID) }
                #expect(failure?.code == DashScopeClient.malformedCode, "\(fault)")
                #expect(failure?.exchange.httpStatus == 200, "\(fault)")
                #expect(failure?.blame == .provider, "\(fault)")
            }
            try await h.faults(#"[{"fault":"malformed_status","count":1}]"#)
            let suspended = await expectFailure("SUSPENDED") { _ = try await h.client.queryTask(task.taskID) }
            #expect(suspended?.message.contains("SUSPENDED") == true)

            try await h.faults(#"[{"fault":"malformed_usage_strings"}]"#)
            let done = try await h.waitTerminal(task.taskID)
            #expect(done.status == .succeeded)
            #expect(done.usage?.outputVideoDuration == 2)
            #expect(done.usage?.duration == 2)
            #expect(done.usage?.sr == 720)
        }
    }

    @Test func failedTaskCarriesItsCode() async throws {
        try await ProviderHarness.with { h in
            let task = try await h.client.createTask(ProviderHarness.request(prompt: "x __FAULT:fail_internal__"))
            let done = try await h.waitTerminal(task.taskID)
            #expect(done.status == .failed)
            #expect(done.code == "InternalError")
            #expect(done.message?.isEmpty == false)
            #expect(done.videoURL == nil)
        }
    }

    @Test func cancelPendingAndRefuseOthers() async throws {
        // Time scale 10: the slow_queue fault keeps the task PENDING for 360 s of real time, so a loaded machine
        // cannot let it start before the cancel arrives.
        try await ProviderHarness.with(["--time-scale", "10", "--run-time", "1..2"]) { h in
            let slow = try await h.client.createTask(ProviderHarness.request(prompt: "a __FAULT:slow_queue__"))
            let exchange = try await h.client.cancelTask(slow.taskID)
            #expect(exchange.kind == .cancel && exchange.httpStatus == 200)
            #expect(try await h.client.queryTask(slow.taskID).0.status == .canceled)

            let quick = try await h.client.createTask(ProviderHarness.request())
            _ = try await h.waitTerminal(quick.taskID)
            let refused = await expectFailure("cancel done task") { _ = try await h.client.cancelTask(quick.taskID) }
            #expect(refused?.exchange.kind == .cancel)
            #expect(refused?.exchange.httpStatus == 400)
            #expect(refused?.code == "UnsupportedOperation")
        }
    }

    @Test func listRowsCarryTheCreateRequestID() async throws {
        try await ProviderHarness.with { h in
            let now = Date().timeIntervalSince1970
            let a = try await h.client.createTask(ProviderHarness.request(prompt: "character1 list A"))
            let b = try await h.client.createTask(ProviderHarness.request(prompt: "character1 list B", model: .r2vFlash))
            let (all, exchange) = try await h.client.listTasks(
                TaskListQuery(startTime: now - 3600, endTime: now + 3600, pageNumber: 1, pageSize: 10))
            #expect(exchange.kind == .list && exchange.httpStatus == 200)
            #expect(all.total == 2 && all.skippedRows == 0)
            #expect(Set(all.rows.map(\.taskID)) == [a.taskID, b.taskID])
            let rowA = all.rows.first { $0.taskID == a.taskID }
            // The documented list row names the create call's request id (reference §1.9).
            #expect(rowA?.requestID != nil && rowA?.requestID == a.exchange.requestID)
            #expect(rowA?.model == "wan2.6-r2v")
            #expect(abs((rowA?.createdAt ?? 0) - now) < 60)

            let (flash, _) = try await h.client.listTasks(TaskListQuery(model: .r2vFlash))
            #expect(flash.rows.map(\.taskID) == [b.taskID])
            // The window is widened by the filter's unknown zone (8 h), so only a window starting later than
            // that excludes the tasks just made.
            let (future, _) = try await h.client.listTasks(TaskListQuery(startTime: now + 9 * 3600,
                                                                         endTime: now + 10 * 3600))
            #expect(future.rows.isEmpty && future.total == 0)
        }
    }

    @Test func listRowsAreReadTolerantlyOneByOne() throws {
        func row(_ json: String) -> TaskListRow? {
            DashScopeClient.listRow(JSONValue.parse(Array(json.utf8))!)
        }
        // As documented: epoch milliseconds, `status`, unknown fields ignored.
        let documented = row(#"{"task_id":"t1","status":"RUNNING","model_name":"wan2.6-r2v","gmt_create":1745568428109,"start_time":1745568428138,"request_id":"r1","region":"cn-beijing","api_key_id":"15"}"#)
        #expect(documented == TaskListRow(taskID: "t1", status: .running, model: "wan2.6-r2v", createdAt: 1745568428.109,
                                          startedAt: 1745568428.138, requestID: "r1"))
        // Another server's plausible variants: `task_status`, times as strings (UTC+8), numbers quoted.
        let variant = row(#"{"task_id":"t2","task_status":"SUCCEEDED","gmt_create":"2025-04-25 16:07:08.109","end_time":"1745568500000"}"#)
        #expect(variant?.status == .succeeded)
        #expect(variant?.createdAt == 1745568428.109)
        #expect(variant?.endedAt == 1745568500)
        // Rows that cannot be read are skipped, one by one.
        #expect(row(#"{"status":"RUNNING"}"#) == nil)
        #expect(row(#"{"task_id":"t3"}"#) == nil)
        #expect(row(#"{"task_id":"t4","status":"SLEEPING"}"#) == nil)
        #expect(row(#"["t5"]"#) == nil)
    }

    @Test func uploadGivesAnOSSReferenceUsableInCreate() async throws {
        try await ProviderHarness.with { h in
            let file = h.path("ref one.png")
            try Data(repeating: 7, count: 4096).write(to: URL(fileURLWithPath: file))
            let (url, exchange) = try await h.client.uploadFile(path: file, model: .r2v)
            #expect(url.hasPrefix("oss://") && url.hasSuffix("/ref one.png"))
            #expect(exchange.kind == .upload && exchange.httpStatus == 200)

            let created = try await h.client.createTask(ProviderHarness.request(references: [url]))
            let create = try await h.sandbox.journal().first { $0.isCreate }
            #expect(create?.ossHeader == true)
            #expect(create?.status == 200)
            #expect(create?.taskID == created.taskID)

            let missing = await expectFailure("missing file") {
                _ = try await h.client.uploadFile(path: h.path("nope.png"), model: .r2v)
            }
            #expect(missing?.code == "InvalidParameter.LocalFile")
            #expect(missing?.blame == .jobPermanent)
        }
    }

    @Test func downloadResumesAfterATruncatedTransfer() async throws {
        try await ProviderHarness.with { h in
            let task = try await h.client.createTask(ProviderHarness.request())
            let url = try #require(try await h.waitTerminal(task.taskID).videoURL)

            let whole = try await h.client.download(url: url, to: h.path("whole.mp4"))
            #expect(whole.isComplete)
            #expect(whole.exchange.httpStatus == 200)
            #expect(whole.digest == ContentDigest(sha256: try await sha256sum(h.path("whole.mp4")), bytes: whole.bytesOnDisk))

            try await h.faults(#"[{"fault":"truncated_download","count":1}]"#)
            let part = try await h.client.download(url: url, to: h.path("resumed.mp4"))
            #expect(!part.isComplete)
            #expect(part.bytesOnDisk > 0 && part.bytesOnDisk < whole.bytesOnDisk)
            #expect(part.expectedBytes == whole.bytesOnDisk)
            #expect(part.exchange.transportError != nil)
            #expect(part.digest == nil)  // a broken transfer hands on no digest: the next one starts from the file

            let rest = try await h.client.download(url: url, to: h.path("resumed.mp4"))
            #expect(rest.isComplete)
            #expect(rest.exchange.httpStatus == 206)
            #expect(rest.bytesOnDisk == whole.bytesOnDisk)
            let a = try Data(contentsOf: URL(fileURLWithPath: h.path("whole.mp4")))
            let b = try Data(contentsOf: URL(fileURLWithPath: h.path("resumed.mp4")))
            #expect(a == b)
            // The resumed transfer hashed the bytes already on disk, then the new ones.
            #expect(rest.digest == ContentDigest(sha256: try await sha256sum(h.path("resumed.mp4")), bytes: whole.bytesOnDisk))
            #expect(rest.digest == whole.digest)

            // Asking again for a complete file: 416 with the same total counts as complete, file untouched.
            let again = try await h.client.download(url: url, to: h.path("resumed.mp4"))
            #expect(again.isComplete)
            #expect(again.bytesOnDisk == whole.bytesOnDisk)
            #expect(again.digest == nil)  // nothing was transferred, so nothing was hashed
        }
    }

    /// The first field of `sha256sum FILE`.
    private func sha256sum(_ path: String) async throws -> String {
        let out = try await Child.run("/usr/bin/sha256sum", [path])
        #expect(out.status == 0, "\(out.stderrText)")
        return String(out.stdoutText.prefix(64))
    }

    @Test func expiredAndDeletedResultURLs() async throws {
        try await ProviderHarness.with { h in
            let task = try await h.client.createTask(ProviderHarness.request())
            let url = try #require(try await h.waitTerminal(task.taskID).videoURL)

            try await h.faults(#"[{"fault":"expired_url","count":1}]"#)
            let expired = await expectFailure("403") { _ = try await h.client.download(url: url, to: h.path("e.mp4")) }
            #expect(expired?.exchange.httpStatus == 403)
            #expect(expired?.code == "AccessDenied")
            #expect(expired?.message == "result URL expired")
            #expect(expired?.isResultURLGone == true)

            try await h.faults(#"[{"fault":"deleted_url","count":1}]"#)
            let deleted = await expectFailure("404") { _ = try await h.client.download(url: url, to: h.path("e.mp4")) }
            #expect(deleted?.code == "NoSuchKey")
            #expect(deleted?.isResultURLGone == true)
            // Neither error body ended up in the file.
            let size = (try FileManager.default.attributesOfItem(atPath: h.path("e.mp4"))[.size] as? Int) ?? -1
            #expect(size == 0)
        }
    }

    @Test func theKeyNeverLeaks() async throws {
        let secret = "sk-arrears-SECRET-41d1"
        try await ProviderHarness.with(key: secret) { h in
            #expect(!h.client.description.contains(secret))
            var dumped = ""
            dump(h.client, to: &dumped)
            #expect(!dumped.contains(secret))

            var texts: [String] = []
            if let f = await expectFailure("arrears", { _ = try await h.client.createTask(ProviderHarness.request()) }) {
                #expect(f.code == "Arrearage")
                texts += [f.description, f.message, String(reflecting: f)]
            }
            let refused = DashScopeClient(baseURL: "http://127.0.0.1:\(closedLocalPort())/\(secret)", apiKey: secret,
                                          curl: ProviderHarness.curl)
            if let f = await expectFailure("refused", { _ = try await refused.queryTask("t-\(secret)") }) {
                texts += [f.description, f.message, String(reflecting: f)]
            }
            #expect(texts.count == 6)
            for text in texts { #expect(!text.contains(secret), "leaked in: \(text)") }
        }
    }
}

@Suite struct BlameOfClientFailures {
    /// A create answered 200 without a task id (what `DashScopeClient` throws as MalformedResponse, with
    /// `requestMayHaveArrived`) may have created a billed task: in doubt, never silently retried.
    @Test func malformedCreateIsAmbiguousButMalformedQueryIsNot() {
        func failure(_ kind: Exchange.Kind) -> ProviderFailure {
            ProviderFailure(exchange: Exchange(kind: kind, httpStatus: 200, providerCode: DashScopeClient.malformedCode,
                                               durationMilliseconds: 1),
                            code: DashScopeClient.malformedCode, message: "malformed", requestMayHaveArrived: true)
        }
        #expect(failure(.create).blame == .ambiguous)
        #expect(failure(.query).blame == .provider)
    }
}
