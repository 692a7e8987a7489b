import Foundation
import ReelControl
import ReelCore
@testable import ReelDaemon
import ReelOutput
import ReelProtocol
import ReelStore
import ReelTestKit
import Testing

/// A job's life through the real engine, with no process: enqueue, submit, poll, deliver, and the ways a create or
/// a render goes wrong. What the provider received is asserted from the scripted API's journal.
@Suite struct EngineTests {
    @Test func aJobIsSubmittedPolledAndDeliveredWithItsSidecar() async throws {
        try await EngineRig.run { rig in
            let key = JobKey(batch: "spring", id: "hero")
            try await rig.submit("spring", ["hero"])
            let row = try await rig.waitFor(key, .succeeded)
            #expect(row.attempt == 1 && row.taskIDs == ["task-1"])
            #expect(try await rig.path(key) == ["->queued", "queued>submitting", "submitting>pending",
                                                "pending>running", "running>downloading", "downloading>verifying",
                                                "verifying>succeeded"])
            // The file and its sidecar are where the tree says, the file is the one downloaded.
            let video = try rig.tree.videoPath(key)
            #expect(row.outputPath == video && FileManager.default.fileExists(atPath: video))
            let delivered = try Data(contentsOf: URL(fileURLWithPath: video))
            #expect(delivered == (try Data(contentsOf: URL(fileURLWithPath: try await ResultClip.shared.path()))))
            #expect(row.resultBytes == Int64(delivered.count) && row.outputSHA256?.count == 64)
            let sidecar = try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: try rig.tree.sidecarPath(key)))) as? [String: Any]
            #expect("\(sidecar ?? [:])".contains("task-1"))
            // Billed at SUCCEEDED: 2 s of output at 0.10 USD/s.
            #expect(row.costUSD == 0.2)
            let calls = rig.api.calls
            #expect(rig.api.createCalls == 1)
            #expect(calls.contains(.download(url: "https://results.example.com/task-1.mp4?Expires=1")))
            let kinds = try await rig.store.attempts(of: key).map(\.exchange.kind)
            #expect(kinds.first == .create && kinds.last == .download && kinds.filter { $0 == .query }.count >= 2)
            // The batch ended: batch.json is written and the batch is complete in the store.
            try await rig.waitForBatchFile("spring")
            #expect(try await rig.store.batch("spring")?.isComplete == true)
        }
    }

    /// A 429 on create says no task exists and nothing about the job: the create comes back after the throttle
    /// hold, and the job's first real attempt is attempt 1.
    @Test func aThrottledCreateComesBackAsAttemptOne() async throws {
        try await EngineRig.run(prepare: {
            $0.script(creates: [.refused(httpStatus: 429, code: "Throttling.RateQuota",
                                         message: "Requests rate limit exceeded", retryAfter: nil)])
        }) { rig in
            let key = JobKey(batch: "b", id: "throttled")
            try await rig.submit("b", ["throttled"])
            let row = try await rig.waitFor(key, .succeeded)
            #expect(row.attempt == 1, "a throttle is not an attempt")
            #expect(rig.api.createCalls == 2)
            let history = try await rig.store.transitions(of: key)
            let refused = try #require(history.first { $0.from == .submitting && $0.to == .retrying })
            #expect(refused.cause == "create refused: Requests rate limit exceeded")
            #expect(history.filter { $0.to == .submitting }.map(\.cause)
                    == ["create call, attempt 1", "create call, attempt 1"])
            let creates = try await rig.store.attempts(of: key).filter { $0.exchange.kind == .create }
            #expect(creates.map(\.exchange.httpStatus) == [429, 200])
            #expect(creates.first?.exchange.providerCode == "Throttling.RateQuota")
        }
    }

    /// A create whose answer is lost (HTTP 500 with the create's request id): the job goes in doubt, is never
    /// re-posted, and reconciliation adopts the task the list shows under that request id.
    @Test func anAmbiguousCreateIsAdoptedFromTheListByRequestID() async throws {
        try await EngineRig.run(prepare: { $0.script(creates: [.createdButAnswerLost(httpStatus: 500)]) }) { rig in
            let key = JobKey(batch: "b", id: "lost")
            try await rig.submit("b", ["lost"])
            let row = try await rig.waitFor(key, .succeeded)
            #expect(rig.api.createCalls == 1, "an in-doubt job is never sent again")
            #expect(rig.api.calls.contains(.list))
            #expect(row.attempt == 1 && row.taskIDs == ["task-1"])
            let history = try await rig.store.transitions(of: key)
            #expect(history.map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue)" }.prefix(4)
                    == ["->queued", "queued>submitting", "submitting>in_doubt", "in_doubt>pending"])
            #expect(history[2].cause.hasPrefix("create outcome unknown"))
            #expect(history[3].cause == "adopted task task-1: the list row's request_id req-1 is the create call's")
            #expect(row.reason == nil)
        }
    }

    /// A render the provider FAILED for the request's own fault (content inspection) fails the job: no retry, no
    /// second create.
    @Test func aFailedRenderWithAPermanentCodeFailsTheJob() async throws {
        try await EngineRig.run(prepare: {
            $0.script(renders: [.fails(code: "DataInspectionFailed",
                                       message: "Input data may contain inappropriate content.")])
        }) { rig in
            let key = JobKey(batch: "b", id: "refused")
            try await rig.submit("b", ["refused"])
            let row = try await rig.waitFor(key, .failed)
            #expect(row.reason?.contains("DataInspectionFailed") == true, "\(row.reason ?? "")")
            #expect(row.attempt == 1 && row.costUSD == nil && row.outputPath == nil)
            #expect(rig.api.createCalls == 1)
            #expect(try await rig.path(key).suffix(2) == ["pending>running", "running>failed"])
            #expect(!FileManager.default.fileExists(atPath: try rig.tree.videoPath(key)))
            try await rig.waitForBatchFile("b")
        }
    }

    /// An operator cancels a queued job: it never reaches the provider, and its batch ends with the other job.
    @Test func anOperatorCancelOfAQueuedJobNeverReachesTheProvider() async throws {
        try await EngineRig.run { rig in
            // Paused, so the jobs stay queued until the cancel is in.
            await rig.engine.handle(.pause(batch: nil))
            try await rig.submit("b", ["keep", "drop"])
            let drop = JobKey(batch: "b", id: "drop")
            let result = await rig.engine.operate(.cancel, on: drop)
            #expect(result == .cancelled, "\(result)")
            let cancelled = try #require(try await rig.store.job(drop))
            #expect(cancelled.state == .cancelled && cancelled.reason == "cancelled by operator")
            #expect(try await rig.path(drop) == ["->queued", "queued>cancelled"])
            // A second cancel is refused with the reason.
            let again = await rig.engine.operate(.cancel, on: drop)
            #expect(again == .refused(.alreadyEnded(.cancelled)), "\(again)")
            await rig.engine.handle(.resume(batch: nil))
            try await rig.waitFor(JobKey(batch: "b", id: "keep"), .succeeded)
            #expect(rig.api.createCalls == 1)
            #expect(try await rig.store.job(drop)?.state == .cancelled)
            #expect(try await rig.store.job(drop)?.attempt == 0)
            #expect(try await rig.store.attempts(of: drop).isEmpty)
            let summary = try await rig.eventually("batch b complete") {
                try await rig.store.batch("b").flatMap { $0.isComplete ? $0 : nil }
            }
            #expect(summary.counts.byState == [.succeeded: 1, .cancelled: 1])
        }
    }
}
