import Foundation
import ReelCore
import ReelTestKit
import Testing

/// A batch of 100 jobs on reel-sandbox while reeld is SIGKILLed at random moments (seeded;
/// replay with `REEL_CRASH_SEED=N`), many of them while a create call is in flight (`create_delay` makes the
/// sandbox create the task and answer 0.3 s later). Every job must end `succeeded` with exactly one task at the
/// provider; the output tree never shows a partial or mismatching MP4.
@Suite(.serialized) struct DurabilityCrashTests {
    // Opt-in (`REEL_CRASH_TEST=1`): on this shared 2-core machine it takes about 5 minutes, not the ~60 s a test
    // may take (see docs/durability.md, "Crash test numbers").
    @Test(.enabled(if: ProcessInfo.processInfo.environment["REEL_CRASH_TEST"] != nil))
    func hundredJobsSurviveRepeatedKills() async throws {
        try await crashRun(distinct: 96, twins: 4, minKills: 30, maxKills: 80)
    }

    /// The same schedule, small enough for every run: 20 jobs, 8 kills.
    @Test func twentyJobsSurviveEightKills() async throws {
        try await crashRun(distinct: 18, twins: 2, minKills: 8, maxKills: 8)
    }

    /// `distinct` jobs with their own prompts and `twins` sharing one (reconciliation cannot tell those apart);
    /// at least `minKills` SIGKILLs, and more while work remains, up to `maxKills`.
    private func crashRun(distinct: Int, twins: Int, minKills: Int, maxKills: Int) async throws {
        let seed = ProcessInfo.processInfo.environment["REEL_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64(Int32.max))
        print("DurabilityCrashTests: seed \(seed) (replay with REEL_CRASH_SEED=\(seed))")
        var rng = SplitMix64(seed: seed)
        let began = Date()

        let sandbox = try await SandboxProcess.start(["--time-scale", "1000", "--run-time", "5..40", "--seed", "\(seed)",
                                                      "--concurrency", "10", "--submit-rps", "10",
                                                      // 24 h is 86 s at this scale: keep results and tasks alive.
                                                      "--url-ttl", "100000000", "--task-ttl", "100000000"])
        defer { sandbox.stop() }
        try await sandbox.setFaults(#"[{"fault": "create_delay", "probability": 0.3, "seconds": 0.3}]"#)
        let reeld = try ReeldProcess(providerURL: sandbox.url, extraConfig: ReeldProcess.fastConfig + """

            [limits]
            concurrency = 8
            submit_per_second = 8
            """)
        // Throttles after a restart's burst are definite refusals that count as attempts: never let them fail a job.
        try Durability.editConfig(reeld) { $0.replacingOccurrences(of: "[retry]\n", with: "[retry]\nmax_attempts = 100\n") }
        try await reeld.start()
        defer { reeld.stop() }
        // Every visible name in the output tree, sampled every 2 ms on a thread of its own for the whole run.
        let watcher = PartialWatcher(root: reeld.output)

        var jobs = (0..<distinct).map { (id: String(format: "shot-%03d", $0),
                                               prompt: "character1 crosses the square, take \($0) of the crash test") }
        jobs += (0..<twins).map { (id: "twin-\($0)", prompt: "character1 stands in the rain, one identical prompt") }
        let ids = Set(jobs.map(\.id))
        let prompts = Dictionary(uniqueKeysWithValues: jobs.map { ($0.id, $0.prompt) })
        try reeld.drop(Durability.manifest(batch: "crash", jobs: jobs), as: "crash.json")

        // Kill phase: at least `minKills` kills, and keep killing while work remains.
        var kills = 0, killsWithWork = 0, mp4Checks = 0
        var restarting = 0.0
        var treeProblems: [String] = []
        while kills < maxKills {
            let counts = (try? await reeld.counts()) ?? [:]
            let busy = counts.values.reduce(0, +) < jobs.count
                || ["queued", "retrying", "submitting", "pending", "running", "downloading", "verifying"]
                    .contains { (counts[$0] ?? 0) > 0 }
            if kills >= minKills && !busy { break }
            if FileManager.default.fileExists(atPath: reeld.spool + "/rejected/crash.json") {
                Issue.record("the crash manifest was rejected: \((try? String(contentsOfFile: reeld.spool + "/rejected/crash.error.json", encoding: .utf8)) ?? "")")
                return
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 300...1200, using: &rng)))
            reeld.crash()
            kills += 1
            if busy { killsWithWork += 1 }
            let sample = await Durability.checkTree(reeld.output, ids: ids)
            treeProblems += sample.problems
            mp4Checks += sample.checked
            let restart = Date()
            try await reeld.start()
            restarting += Date().timeIntervalSince(restart)
        }
        let killPhase = Date().timeIntervalSince(began)

        // Operator phase: a job left in doubt with no unambiguous match is resolved as an operator would, from the
        // provider's task list: adopt an unowned task with its prompt, or resubmit when none exists. Resubmissions
        // go together; adoptions one per prompt per round (the next must see this one's task as owned).
        var operatorResolved: [String: String] = [:]
        let deadline = Date().addingTimeInterval(Double(jobs.count) * 3)
        while Date() < deadline {
            let all = try await Durability.jobs(reeld, batch: "crash")
            let open = all.filter { !["succeeded", "failed", "cancelled", "expired"].contains($0["state"] as? String ?? "") }
            if all.count == jobs.count && open.isEmpty { break }
            let waiting = open.filter { $0["state"] as? String == "in_doubt" && ($0["reason"] as? String ?? "").contains("reelctl resolve") }
            if waiting.isEmpty {
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            let owned = Set(all.compactMap { $0["task_id"] as? String })
            let tasks = try await Durability.sandboxTasks(sandbox)
            var adoptedPrompts: Set<String> = []
            for job in waiting {
                guard let id = job["id"] as? String, let prompt = prompts[id] else { continue }
                let free = tasks.filter { $0.value == prompt && !owned.contains($0.key) }.keys.sorted()
                if !free.isEmpty && !adoptedPrompts.insert(prompt).inserted { continue }
                let body = free.first.map { #"{"action": "adopt", "task_id": "\#($0)"}"# } ?? #"{"action": "resubmit"}"#
                let reply = try await reeld.post("/v1/jobs/crash/\(id)/resolve", json: body)
                #expect(reply.status == 200, "resolve \(id): \(reply.status) \(reply.text)")
                operatorResolved[id] = free.first.map { "adopt \($0)" } ?? "resubmit"
            }
            try await Task.sleep(for: .milliseconds(100))
        }

        // Every job succeeded.
        let counts = try await reeld.counts()
        #expect(counts["succeeded"] == jobs.count, "\(counts)\n\(reeld.logTail())")

        // Exactly one task per job at the provider, and it is the job's own.
        var details: [String: [String: Any]] = [:]
        for job in jobs { details[job.id] = try await Durability.detail(reeld, "crash/\(job.id)") }
        let tasks = try await Durability.sandboxTasks(sandbox)
        var inDoubt: [String] = []
        var autoAdopted = 0
        for job in jobs {
            let detail = details[job.id] ?? [:]
            let own = Durability.taskIDs(detail)
            #expect(own.count == 1, "\(job.id) owns one task: \(own)")
            if Durability.path(detail).contains("in_doubt") {
                inDoubt.append(job.id)
                if operatorResolved[job.id] == nil { autoAdopted += 1 }
            }
            if job.id.hasPrefix("shot-") {
                let created = tasks.filter { $0.value == job.prompt }.keys.sorted()
                #expect(created == own, "\(job.id): the provider has \(created), the job owns \(own)")
            }
        }
        let twinTasks = Set(tasks.filter { $0.value == jobs.last?.prompt }.keys)
        let twinOwned = Set(jobs.filter { $0.id.hasPrefix("twin-") }.flatMap { Durability.taskIDs(details[$0.id] ?? [:]) })
        #expect(twinTasks == twinOwned && twinOwned.count == twins, "twins: provider \(twinTasks), owned \(twinOwned)")
        #expect(tasks.count == jobs.count, "the provider rendered \(tasks.count) tasks for \(jobs.count) jobs")

        // The journal: one create that made a task per job.
        let journal = try await sandbox.journal()
        let creates = journal.filter(\.isCreate)
        let withTask = Set(creates.compactMap(\.taskID))
        #expect(withTask == Set(tasks.keys), "creates that made tasks: \(withTask.count), tasks \(tasks.count)")
        let statuses = Dictionary(grouping: creates, by: \.status).mapValues(\.count)

        // Creates per job, from the journal: a create that made a task counts for the job whose prompt it carried.
        var createsPerPrompt: [String: Int] = [:]
        for create in creates { if let id = create.taskID, let prompt = tasks[id] { createsPerPrompt[prompt, default: 0] += 1 } }
        let histogram = Dictionary(grouping: jobs.filter { $0.id.hasPrefix("shot-") }, by: { createsPerPrompt[$0.prompt] ?? 0 })
            .mapValues(\.count)
        #expect(histogram == [1: distinct], "creates that made a task, per job: \(histogram)")

        // The output tree: never anything but finished, matching files; at the end all 100 with their sidecars.
        let visiblePartials = watcher.stop()
        #expect(visiblePartials.isEmpty, "visible non-deliverable files: \(visiblePartials.prefix(10))")
        #expect(treeProblems.isEmpty, "\(treeProblems.prefix(10))")
        let final = await Durability.checkTree(reeld.output, ids: ids)
        #expect(final.problems.isEmpty, "\(final.problems.prefix(10))")
        #expect(final.checked == jobs.count)
        let sums = try await runShell("cd '\(reeld.output)/crash' && sha256sum --strict -c SHA256SUMS >/dev/null && test -f batch.json")
        #expect(sums == 0, "SHA256SUMS and batch.json of the crash batch")

        #expect(kills >= minKills)
        print("""
            DurabilityCrashTests: seed \(seed); \(kills) kills (\(killsWithWork) with work under way) in \
            \(String(format: "%.1f", killPhase)) s (\(String(format: "%.1f", restarting)) s of it restarting); \(inDoubt.count) jobs went in doubt (\(autoAdopted) adopted by \
            reconciliation, \(operatorResolved.count) resolved by the operator: \(operatorResolved.sorted { $0.key < $1.key })); \
            \(creates.count) create calls (by status \(statuses.sorted { $0.key < $1.key })), \(tasks.count) tasks for \
            \(jobs.count) jobs (creates with a task per distinct-prompt job: \(histogram.sorted { $0.key < $1.key })); \
            \(mp4Checks) MP4 checks between kills; \(visiblePartials.count) visible partials; wall \(String(format: "%.1f", Date().timeIntervalSince(began))) s
            """)
    }

    private func runShell(_ script: String) async throws -> Int32 {
        try await Child.run("/bin/sh", ["-c", script]).status
    }
}
