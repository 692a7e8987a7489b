import Foundation
import ReelTestKit
import Testing

/// A provider that restarts and comes back without its tasks answers UNKNOWN for tasks a few seconds old. That is
/// not expiry (the 24-hour lifetime is far away): reeld queries them again for `[in_doubt] unknown_grace`, shows the
/// trouble in its health meanwhile, then puts the jobs in doubt with the true reason and reconciles them; with no
/// task to be found they wait for an operator. Nothing is marked expired, nothing is created twice.
@Suite(.serialized) struct UnknownTaskTests {
    @Test func tasksLostByARestartedProviderGoInDoubtNotExpired() async throws {
        // Renders of 60–90 s of real time, so the tasks are still running when the provider restarts, however loaded
        // the machine (the restart loses them, so the test never waits for them).
        let arguments = ["--time-scale", "10", "--run-time", "600..900"]
        let first = try await SandboxProcess.start(arguments)
        var firstStopped = false
        defer { if !firstStopped { first.stop() } }
        let reeld = try ReeldProcess(providerURL: first.url)
        try await reeld.start()
        defer { reeld.stop() }
        let ids = ["one", "two", "three"]
        try reeld.drop(Durability.manifest(batch: "lost", jobs: ids.map {
            (id: $0, prompt: "character1 waits for the provider, job \($0)")
        }), as: "lost.json")
        let started = Date().addingTimeInterval(60)
        while Date() < started {
            let states = try await Durability.jobs(reeld, batch: "lost").compactMap { $0["state"] as? String }
            if states.count == ids.count && states.allSatisfy({ ["pending", "running"].contains($0) }) { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let creates = try await first.journal().filter(\.isCreate).count
        #expect(creates == ids.count)

        // The provider restarts on the same address, without the tasks.
        let address = first.url.replacingOccurrences(of: "http://", with: "")
        await first.terminate()
        firstStopped = true
        let second = try await SandboxProcess.start(arguments + ["--listen", address])
        defer { second.stop() }

        // While the tasks answer UNKNOWN, health is not "ok" and a warning says why.
        var sawWarning = false
        var sawDegraded = false
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let status = try await reeld.status()
            let warnings = status["warnings"] as? [String] ?? []
            let health = (status["provider"] as? [String: Any])?["health"] as? String
            if warnings.contains(where: { $0.contains("UNKNOWN") }) { sawWarning = true }
            if health == "degraded" { sawDegraded = true }
            let states = try await Durability.jobs(reeld, batch: "lost").compactMap { $0["state"] as? String }
            if states.count == ids.count && states.allSatisfy({ $0 == "in_doubt" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(sawWarning, "status warned about tasks answering UNKNOWN")
        #expect(sawDegraded, "health said degraded while they did")

        for id in ids {
            let detail = try await Durability.waitUntil(reeld, "lost/\(id)", "an operator's reason") { d in
                let job = d["job"] as? [String: Any]
                return job?["state"] as? String == "in_doubt" && (job?["reason"] as? String ?? "").contains("reelctl resolve")
            }
            let path = Durability.path(detail)
            #expect(!path.contains("expired") && path.last == "in_doubt", "\(id): \(path)")
            #expect(Durability.causes(detail).contains { $0.contains("answered UNKNOWN") && $0.contains("24-hour window") },
                    "\(id): \(Durability.causes(detail))")
            let reason = (detail["job"] as? [String: Any])?["reason"] as? String ?? ""
            #expect(!reason.contains("window passed") && !reason.contains("billed but lost"), "\(id): \(reason)")
        }
        #expect(try await second.journal().filter(\.isCreate).isEmpty, "nothing was created again")
        let warnings = try await reeld.status()["warnings"] as? [String] ?? []
        #expect(warnings.contains { $0.contains("wait for an operator") }, "\(warnings)")
        #expect(await reeld.terminate() == 0)
    }
}
