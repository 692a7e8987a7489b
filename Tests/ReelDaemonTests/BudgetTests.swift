import Foundation
import ReelTestKit
import Testing

/// `budget_usd` through the real daemon: the batch is held before a submission would exceed it, and
/// `reelctl release` admits exactly the released job.
@Suite(.serialized) struct BudgetTests {
    /// Six flash 720p jobs of 2 s cost $0.10 each at fastConfig's rates; a $0.25 budget admits two.
    @Test func budgetHoldsTheBatchBeforeItIsExceeded() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        let ids = (1...6).map { "shot-\($0)" }
        try reeld.drop(DeliveryTests.manifest(batch: "capped", jobs: ids.map { ($0, "character1 poses for \($0)") },
                                              extra: "\"budget_usd\": 0.25,"), as: "capped.json")
        let counts = try await reeld.waitFor(timeout: 60, "2 succeeded and 4 held") { c in
            c["succeeded"] == 2 && c["held"] == 4
        }
        #expect(counts.values.reduce(0, +) == 6, "\(counts)")
        var held: [String] = []
        for id in ids {
            let job = try await DeliveryKit.job(reeld, "capped", id)
            guard job["state"] as? String == "held" else { continue }
            held.append(id)
            let reason = job["reason"] as? String ?? ""
            #expect(reason.contains("budget") && reason.contains("$0.25") && reason.contains("reelctl release"), "\(reason)")
        }
        #expect(held.count == 4)
        #expect(try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }.count == 2)
        let batch = try await reeld.get("/v1/batches/capped").json()
        #expect(((batch["cost_usd"] as? Double) ?? 1) <= 0.25 + 1e-9, "\(batch)")

        // The operator accepts one overrun: that job runs; its batch-mates stay held.
        let released = try #require(held.first)
        let run = try await BinaryRun.launch("reelctl", ["release", "capped/\(released)"], environment: ["REEL_SOCKET": reeld.socket])
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        let after = try await reeld.waitFor(timeout: 30, "the released job to succeed") { $0["succeeded"] == 3 }
        #expect(after["held"] == 3, "\(after)")
        try await Task.sleep(for: .milliseconds(300))  // nothing else may slip through meanwhile
        #expect(try await reeld.counts()["held"] == 3)
        #expect(try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }.count == 3)
        let job = try await DeliveryKit.job(reeld, "capped", released)
        #expect(job["state"] as? String == "succeeded")
    }

    /// Renders that SUCCEEDED but were never delivered were billed all the same (reference §1.6), so they count
    /// against the budget: two results that fail QC spend $0.20 of $0.25, and a later job of $0.10 is held.
    @Test func billedButUndeliveredRendersCountAgainstTheBudget() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "1..2"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        try reeld.drop(DeliveryTests.manifest(batch: "lossy", jobs: [("bad-1", "character1 bows __FAULT:wrong_size__"),
                                                                     ("bad-2", "character1 nods __FAULT:wrong_size__")],
                                              extra: "\"budget_usd\": 0.25,"), as: "lossy-1.json")
        let failed = try await reeld.waitFor(timeout: 60, "both QC failures") { $0["failed"] == 2 }
        #expect(failed.values.reduce(0, +) == 2, "\(failed)")
        let batch = try await reeld.get("/v1/batches/lossy").json()
        #expect(batch["cost_usd"] as? Double == 0.2 && batch["billed_not_delivered_jobs"] as? Int == 2, "\(batch)")

        try reeld.drop(DeliveryTests.manifest(batch: "lossy", jobs: [("next", "character1 smiles")]), as: "lossy-2.json")
        _ = try await reeld.waitFor(timeout: 30, "the new job held") { $0["held"] == 1 }
        let next = try await DeliveryKit.job(reeld, "lossy", "next")
        let reason = next["reason"] as? String ?? ""
        #expect(reason.contains("spent $0.20") && reason.contains("$0.25"), "\(reason)")
        #expect(try await sandbox.journal().filter { $0.isCreate && $0.status == 200 }.count == 2)
    }
}
