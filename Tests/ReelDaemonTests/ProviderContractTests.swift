import Foundation
import ReelTestKit
import Testing

/// The provider contract suite: one 30-job batch through reeld under each provider profile — the documented task
/// list, no list at all, a list answering 500s, list rows 30 s late, malformed list rows, 500s after the task was
/// created, connections
/// reset after the task was created, and bursts of 429s. Each must end with every job delivered, no operator action
/// and no duplicate paid create (one task per job at the provider). The sandbox runs with its documented behaviour
/// only (no opt-in extras). The numbers of each run are printed.
@Suite(.serialized) struct ProviderContractTests {
    struct Profile: Sendable, CustomStringConvertible {
        var name: String
        var faults: String = "[]"
        var expectInDoubt = false
        /// The list fails for good: status must say that list polling is off while the batch runs.
        var listBroken = false
        var description: String { name }
    }

    static let profiles: [Profile] = [
        Profile(name: "documented list"),
        Profile(name: "list off (404)", faults: #"[{"fault": "list_404"}]"#, listBroken: true),
        Profile(name: "list 500s", faults: #"[{"fault": "list_500"}]"#, listBroken: true),
        // 30 s of real time at the sandbox's time scale: longer than the whole batch takes.
        Profile(name: "list rows 30 s late", faults: #"[{"fault": "list_late", "seconds": 30000}]"#),
        Profile(name: "malformed list rows", faults: #"[{"fault": "list_malformed_row", "probability": 0.3}]"#),
        Profile(name: "500 after create on a third", faults: #"[{"fault": "create_error_after_create", "probability": 0.34}]"#,
                expectInDoubt: true),
        Profile(name: "resets after create", faults: #"[{"fault": "create_reset_after_create", "probability": 0.2}]"#,
                expectInDoubt: true),
        Profile(name: "429 bursts", faults: #"[{"fault": "create_throttle", "probability": 0.4}]"#),
    ]

    static let jobs = 30
    static let timeScale = 1000.0

    @Test(arguments: profiles) func thirtyJobsSettleWithoutAnOperatorAndWithoutPayingTwice(_ profile: Profile) async throws {
        // Renders of 0.5–3 s of real time: several tasks run at once, so polling goes through the task list (or
        // its failure) many times per batch, not once.
        let arguments = ["--time-scale", "\(Int(Self.timeScale))", "--run-time", "500..3000", "--seed", "7"]
        let sandbox = try await SandboxProcess.start(arguments)
        defer { sandbox.stop() }
        try await sandbox.setFaults(profile.faults)
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        let began = Date()

        let batch = "contract"
        try reeld.drop(Durability.manifest(batch: batch, jobs: (0..<Self.jobs).map {
            (id: String(format: "job-%02d", $0), prompt: "character1 walks through scene \($0) of the contract run")
        }), as: "contract.json")

        // Every job terminal; none waiting for an operator at any point.
        var all: [[String: Any]] = []
        var operatorWaits: Set<String> = []
        var listWarning: String?
        let deadline = Date().addingTimeInterval(300)
        while Date() < deadline {
            all = try await Durability.jobs(reeld, batch: batch)
            for job in all where (job["reason"] as? String ?? "").contains("reelctl resolve") {
                operatorWaits.insert(job["id"] as? String ?? "?")
            }
            if profile.listBroken, listWarning == nil {
                let status = try await reeld.status()
                let warnings = status["warnings"] as? [String] ?? []
                let health = (status["provider"] as? [String: Any])?["health"] as? String
                if let w = warnings.first(where: { $0.contains("task-list polling is off") }), health == "degraded" {
                    listWarning = w
                }
            }
            if all.count == Self.jobs, all.allSatisfy({ ["succeeded", "failed", "cancelled", "expired"].contains($0["state"] as? String ?? "") }) {
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let settled = Date().timeIntervalSince(began)
        let states = Dictionary(grouping: all, by: { $0["state"] as? String ?? "?" }).mapValues(\.count)
        #expect(states == ["succeeded": Self.jobs], "\(profile): \(states)\n\(reeld.logTail())")
        #expect(operatorWaits.isEmpty, "\(profile): waited for an operator: \(operatorWaits.sorted())")
        if profile.listBroken {
            // Still off after the batch: nothing has re-enabled it (the re-probe comes after 5 minutes).
            let warnings = try await reeld.status()["warnings"] as? [String] ?? []
            listWarning = listWarning ?? warnings.first { $0.contains("task-list polling is off") }
            #expect(listWarning != nil, "\(profile): status never said that list polling is off: \(warnings)")
        }
        // Throttles are not attempts, and no refused create trips the store's transition table.
        let attempts = all.compactMap { $0["attempt"] as? Int }
        #expect(attempts.count == Self.jobs && attempts.allSatisfy { $0 == 1 }, "\(profile): attempts \(attempts)")
        let log = reeld.logTail(50_000_000)
        #expect(!log.contains("illegal transition"), "\(profile): \(log.split(separator: "\n").filter { $0.contains("illegal") }.prefix(3))")

        // One task per job at the provider: nothing paid twice, nothing left unowned.
        let tasks = try await Durability.sandboxTasks(sandbox)
        let perPrompt = Dictionary(grouping: tasks.values, by: { $0 }).mapValues(\.count)
        #expect(tasks.count == Self.jobs, "\(profile): \(tasks.count) tasks for \(Self.jobs) jobs")
        #expect(perPrompt.values.allSatisfy { $0 == 1 }, "\(profile): duplicated: \(perPrompt.filter { $0.value > 1 })")

        // The numbers.
        var inDoubt = 0
        for job in all {
            let detail = try await Durability.detail(reeld, "\(batch)/\(job["id"] as? String ?? "")")
            if Durability.path(detail).contains("in_doubt") { inDoubt += 1 }
        }
        let journal = try await sandbox.journal()
        let queries = journal.filter(\.isQuery).count
        let lists = journal.filter { $0.method == "GET" && $0.path.hasPrefix("/api/v1/tasks") && !$0.isQuery }.count
        let creates = journal.filter(\.isCreate).count
        print("contract[\(profile)]: \(Self.jobs) jobs settled in \(String(format: "%.1f", settled)) s; "
              + "creates \(creates), task queries \(queries), list queries \(lists), "
              + "polls per job \(String(format: "%.2f", Double(queries + lists) / Double(Self.jobs))), in doubt \(inDoubt)")
        if profile.expectInDoubt {
            #expect(inDoubt > 0, "\(profile): the fault never put a job in doubt (the profile tests nothing)")
        } else {
            #expect(inDoubt == 0, "\(profile): \(inDoubt) job(s) in doubt")
        }
        #expect(await reeld.terminate() == 0)
    }
}
