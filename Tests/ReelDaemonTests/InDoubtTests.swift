import Foundation
import ReelTestKit
import Testing

/// Every ambiguous create outcome ends `in_doubt` and is then adopted through the provider's documented task list
/// (rows carry the create's `request_id`, never a prompt), never resubmitted; a create that made no task stays in
/// doubt for an operator, after the list's lag, unless `[in_doubt] resubmit = true`.
@Suite(.serialized) struct InDoubtTests {
    @Test func ambiguousCreatesAreAdoptedAndAnUnmatchedOneWaitsOrIsResubmitted() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "5..40"])
        defer { sandbox.stop() }
        // One fault per job, selected by a word of its prompt; each fires on that job's first create only.
        try await sandbox.setFaults("""
            [{"fault": "create_error_after_create", "marker": "case-500", "count": 1},
             {"fault": "create_reset_after_create", "marker": "case-reset", "count": 1},
             {"fault": "create_delay", "marker": "case-timeout", "count": 1, "seconds": 2},
             {"fault": "create_error", "marker": "case-refused", "count": 1}]
            """)
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        // The client gives up after 1 s; the delayed create answers after 2 s (its task exists by then).
        try Durability.editConfig(reeld) {
            $0.replacingOccurrences(of: "request_timeout = \"5s\"", with: "request_timeout = \"1s\"")
        }
        try await reeld.start()
        defer { reeld.stop() }

        let cases = ["e500": "case-500", "reset": "case-reset", "timeout": "case-timeout", "refused": "case-refused"]
        try reeld.drop(Durability.manifest(batch: "doubt", jobs: cases.sorted { $0.key < $1.key }.map {
            (id: $0.key, prompt: "character1 waves at the camera, \($0.value)")
        }), as: "doubt.json")

        // The three creates that made a task: in doubt first, then adopted, then delivered.
        var adopted: [String: String] = [:]
        for id in ["e500", "reset", "timeout"] {
            let detail = try await Durability.waitForState(reeld, "doubt/\(id)", ["succeeded"])
            let path = Durability.path(detail)
            let tasks = Durability.taskIDs(detail)
            #expect(tasks.count == 1, "\(id): one task, adopted: \(tasks)")
            #expect(path.starts(with: ["queued", "submitting", "in_doubt"]), "\(id): \(path)")
            #expect(!path.dropFirst(2).contains("submitting"), "\(id) was never resubmitted: \(path)")
            #expect(Durability.causes(detail).contains { $0.hasPrefix("adopted task \(tasks.first ?? "?"):") },
                    "\(id): \(Durability.causes(detail))")
            let kinds = (detail["attempts"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
            #expect(kinds.filter { $0 == "create" }.count == 1 && kinds.contains("list"), "\(id): attempts \(kinds)")
            adopted[id] = tasks.first
            // The 500 carried the request id of the create that made the task: the list row names it.
            if id == "e500" {
                #expect(Durability.causes(detail).contains { $0.contains("request_id") }, "\(Durability.causes(detail))")
            }
        }
        #expect(Set(adopted.values).count == 3, "each job adopted its own task: \(adopted)")

        // The create that made no task: in doubt, no match, waits for an operator with the command to run.
        let refused = "doubt/refused"
        let waiting = try await Durability.waitUntil(reeld, refused, "an operator's reason") { d in
            let job = d["job"] as? [String: Any]
            return job?["state"] as? String == "in_doubt" && (job?["reason"] as? String ?? "").contains("reelctl resolve")
        }
        let reason = (waiting["job"] as? [String: Any])?["reason"] as? String ?? ""
        #expect(reason.contains("no task was seen"), "\(reason)")
        #expect(Durability.taskIDs(waiting).isEmpty)
        let warnings = try await reeld.status()["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("in-doubt job(s) wait for an operator") },
                "status warns about the in-doubt job: \(warnings)")

        // The provider's own list agrees: one task per ambiguous job, none for the refused one.
        let tasks = try await Durability.sandboxTasks(sandbox)
        for (id, marker) in cases {
            #expect(tasks.values.filter { $0.contains(marker) }.count == (id == "refused" ? 0 : 1), "\(id): \(tasks)")
        }
        // The sandbox journals a delayed create when it answers, 2 s after the task was made.
        var creates = try await sandbox.journal().filter(\.isCreate).count
        for _ in 0..<100 where creates < 4 {
            try await Task.sleep(for: .milliseconds(50))
            creates = try await sandbox.journal().filter(\.isCreate).count
        }
        #expect(creates == 4, "one create per job so far")

        // With `[in_doubt] resubmit = true` the restarted daemon resubmits it: exactly two creates for that job.
        await reeld.terminate()
        try Durability.editConfig(reeld) { $0.replacingOccurrences(of: "[in_doubt]\n", with: "[in_doubt]\nresubmit = true\n") }
        try await reeld.start()
        let resubmitted = try await Durability.waitForState(reeld, refused, ["succeeded"])
        let kinds = (resubmitted["attempts"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        #expect(kinds.filter { $0 == "create" }.count == 2, "refused: attempts \(kinds)")
        #expect(Durability.taskIDs(resubmitted).count == 1)
        #expect(Durability.causes(resubmitted).contains { $0.contains("resubmit") }, "\(Durability.causes(resubmitted))")
        #expect(try await sandbox.journal().filter(\.isCreate).count == 5, "4 first creates + 1 resubmission")
        #expect(try await Durability.sandboxTasks(sandbox).count == 4)
        #expect(await reeld.terminate() == 0)
    }

    /// Where the in-doubt window opens (docs/durability.md): the write-ahead is committed on the transfer thread
    /// right before the request goes out. A create killed before that commit (e.g. while it waited for a free
    /// thread) restarts `queued` and is sent once; one killed after the commit is `in_doubt` (nothing can prove it
    /// was not sent), finds no task at the provider and waits for an operator. Both points are reached through a
    /// debug hook that parks the call there, not by racing a window.
    @Test func theWindowOpensAtTheWriteAheadOnTheTransferThread() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        defer { reeld.stop() }

        // Before the write-ahead: nothing committed, nothing sent.
        reeld.environment["REEL_TEST_HOLD_CREATE"] = "before-intent:early"
        try await reeld.start()
        try reeld.drop(Durability.manifest(batch: "window", jobs: [
            (id: "early", prompt: "character1 waits for a transfer thread, case-early"),
        ]), as: "early.json")
        try await waitForHold(reeld, "window/early")
        #expect(try await Durability.state(reeld, "window/early") == "queued")
        reeld.crash()
        reeld.environment["REEL_TEST_HOLD_CREATE"] = "after-intent:late"
        try await reeld.start()
        let early = try await Durability.waitForState(reeld, "window/early", ["succeeded"])
        #expect(!Durability.path(early).contains("in_doubt"), "\(Durability.path(early))")
        #expect(Durability.path(early).filter { $0 == "submitting" }.count == 1, "\(Durability.path(early))")

        // After the write-ahead, before the request left: in doubt, no task, an operator decides.
        try reeld.drop(Durability.manifest(batch: "window", jobs: [
            (id: "late", prompt: "character1 is about to be sent, case-late"),
        ]), as: "late.json")
        try await waitForHold(reeld, "window/late")
        #expect(try await Durability.state(reeld, "window/late") == "submitting")
        reeld.crash()
        reeld.environment["REEL_TEST_HOLD_CREATE"] = nil
        try await reeld.start()
        let waiting = try await Durability.waitUntil(reeld, "window/late", "an operator's reason") { d in
            let job = d["job"] as? [String: Any]
            return job?["state"] as? String == "in_doubt" && (job?["reason"] as? String ?? "").contains("reelctl resolve")
        }
        #expect(Durability.path(waiting).suffix(2) == ["submitting", "in_doubt"], "\(Durability.path(waiting))")
        let journal = try await sandbox.journal().filter(\.isCreate)
        #expect(journal.count == 1, "only early's create reached the provider: \(journal.count)")
        // The operator finds the render elsewhere (here: made by hand at the provider) and adopts it. The reconciler
        // had let the job go to wait for the operator, so the adoption must hand it back to the scheduler (the
        // crash test caught adopted jobs sitting in `pending` until the next restart). The resubmit choice is
        // covered by the always-on crash test.
        let made = try await sandbox.send(TestHTTPRequest(
            "POST", "/api/v1/services/aigc/video-generation/video-synthesis",
            headers: ["Authorization": "Bearer sk-reel-test", "X-DashScope-Async": "enable"],
            json: #"{"model":"wan2.6-r2v-flash","input":{"prompt":"character1 is about to be sent, case-late","reference_urls":["https://cdn.example.com/anna.png"]},"parameters":{"size":"1280*720","duration":2}}"#))
        let output = try made.json()["output"] as? [String: Any]
        let task = try #require(output?["task_id"] as? String, "create by hand: \(made.text)")
        let reply = try await reeld.post("/v1/jobs/window/late/resolve", json: #"{"action": "adopt", "task_id": "\#(task)"}"#)
        #expect(reply.status == 200, "\(reply.status) \(reply.text)")
        let adopted = try reply.json()["job"] as? [String: Any]
        #expect(adopted?["task_id"] as? String == task)
        #expect(adopted?["reason"] == nil, "the in-doubt reason is gone once a task is adopted: \(reply.text)")
        let late = try await Durability.waitForState(reeld, "window/late", ["succeeded"])
        #expect(Durability.taskIDs(late) == [task])
        #expect(try await sandbox.journal().filter(\.isCreate).count == 2, "early's create and the one made by hand")
        #expect(await reeld.terminate() == 0)
    }

    /// Waits until reeld logs that the create call of `key` is parked by `REEL_TEST_HOLD_CREATE`.
    private func waitForHold(_ reeld: ReeldProcess, _ key: String) async throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let log = reeld.logTail(200_000).split(separator: "\n")
            if log.contains(where: { $0.contains("test hook: create call holding") && $0.contains(key) }) { return }
            try await Task.sleep(for: .milliseconds(30))
        }
        throw DurabilityTestError("\(key): the create call never reached the test hook\n\(reeld.logTail())")
    }
}
