import Foundation
import ReelTestKit
import Testing

/// A refused result URL leads to a fresh query and a download with the new URL; a result
/// whose 24-hour window has passed (the sandbox's clock moved past the task's lifetime while reeld was down) ends
/// `expired` with the reason stated, and `/v1/status` warns about it; a task young by reeld's clock that the
/// provider no longer knows goes in doubt, never `expired`.
@Suite(.serialized) struct ExpiryTests {
    @Test func expiredURLIsRefreshedAndAResultPastTheWindowExpires() async throws {
        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "5..40"])
        defer { sandbox.stop() }
        // `fresh`: its first download is refused as expired. `lost`: its first download crawls, so reeld is
        // still downloading when it is killed. `late`: its task stays PENDING for 80 s of real time (22 h of sandbox time).
        try await sandbox.setFaults("""
            [{"fault": "expired_url", "marker": "case-fresh", "count": 1},
             {"fault": "slow_download", "marker": "case-lost", "count": 1, "bytes_per_second": 2000},
             {"fault": "slow_queue", "marker": "case-late", "seconds": 80000}]
            """)
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        try reeld.drop(Durability.manifest(batch: "expiry", jobs: [
            (id: "fresh", prompt: "character1 opens a door, case-fresh"),
            (id: "lost", prompt: "character1 closes a door, case-lost"),
            (id: "late", prompt: "character1 waits by a door, case-late"),
        ]), as: "expiry.json")

        // A fresh query after the refusal, and the download with the new URL.
        let fresh = try await Durability.waitForState(reeld, "expiry/fresh", ["succeeded"])
        let attempts = (fresh["attempts"] as? [[String: Any]] ?? []).map { ($0["kind"] as? String ?? "", $0["http_status"] as? Int ?? -1) }
        guard let refused = attempts.firstIndex(where: { $0 == ("download", 403) }) else {
            Issue.record("no refused download in \(attempts)")
            return
        }
        #expect(attempts[(refused + 1)...].first { $0.0 != "download" }.map { $0 == ("query", 200) } == true, "\(attempts)")
        #expect(attempts.last.map { $0 == ("download", 200) || $0 == ("download", 206) } == true, "\(attempts)")
        #expect(Durability.causes(fresh).contains { $0.contains("result URL") }, "\(Durability.causes(fresh))")
        let downloads = try await sandbox.journal().filter { $0.method == "GET" && $0.path.hasSuffix(".mp4") }
        #expect(Set(downloads.map(\.path)).count >= 2 || downloads.count >= 2, "two downloads: \(downloads.map(\.path))")

        // Kill reeld mid-download, let the sandbox's clock pass the task's 24-hour lifetime, restart.
        try await Durability.waitForState(reeld, "expiry/lost", ["downloading"])
        try await Durability.waitForState(reeld, "expiry/late", ["pending"])
        reeld.crash()
        try await sandbox.advanceClock(90_000)
        try await reeld.start()
        let lost = try await Durability.waitForState(reeld, "expiry/lost", ["expired"])
        let job = lost["job"] as? [String: Any] ?? [:]
        let reason = job["reason"] as? String ?? ""
        #expect(reason.contains("billed but lost"), "\(reason)")
        #expect(Durability.path(lost).suffix(2) == ["downloading", "expired"], "\(Durability.path(lost))")
        #expect(!FileManager.default.fileExists(atPath: reeld.output + "/expiry/lost.mp4"), "nothing published for lost")
        #expect(!FileManager.default.fileExists(atPath: reeld.output + "/expiry/.lost.mp4.part"),
                "the expired job's partial download is removed")
        // `late`'s task is gone at the provider (its clock passed the 24 hours), but by reeld's own clock the task is
        // seconds old, as after a provider restart that lost it: it is not called expired. It is queried again for
        // `unknown_grace`, then goes in doubt with the true reason, and reconciliation finds no task to adopt.
        let late = try await Durability.waitUntil(reeld, "expiry/late", "an operator's reason") { d in
            let job = d["job"] as? [String: Any]
            return job?["state"] as? String == "in_doubt" && (job?["reason"] as? String ?? "").contains("reelctl resolve")
        }
        #expect(Durability.path(late).suffix(2) == ["pending", "in_doubt"], "\(Durability.path(late))")
        #expect(Durability.causes(late).contains { $0.contains("answered UNKNOWN") && !$0.contains("window passed") },
                "\(Durability.causes(late))")
        let queries = (late["attempts"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "query" }.count
        #expect(queries >= 3, "queried again before going in doubt: \(queries) queries")
        let status = try await reeld.status()
        let warnings = status["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("expired") && $0.contains("billed") }, "status warns: \(warnings)")
        // `lost` SUCCEEDED, so it was billed: its cost counts in spend, as billed-not-delivered. `late` was never
        // seen SUCCEEDED, so nothing is recorded for it.
        let lostCost = try #require(job["cost_usd"] as? Double, "the expired job's billed cost: \(job)")
        #expect(lostCost > 0)
        #expect((late["job"] as? [String: Any])?["cost_usd"] == nil)
        #expect(status["billed_not_delivered_jobs"] as? Int == 1, "\(status)")
        #expect(abs((status["billed_not_delivered_usd"] as? Double ?? -1) - lostCost) < 1e-9, "\(status)")
        #expect((status["spend_usd"] as? Double ?? 0) >= lostCost, "\(status)")
        #expect(try await sandbox.journal().filter(\.isCreate).count == 3, "an expired result is never re-rendered")
        let check = await Durability.checkTree(reeld.output, ids: ["fresh", "lost", "late"])
        #expect(check.problems.isEmpty && check.checked == 1, "\(check)")
        #expect(await reeld.terminate() == 0)
    }
}
