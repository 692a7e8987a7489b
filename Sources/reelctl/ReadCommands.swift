import ArgumentParser
import Foundation
import ReelCore
import ReelProtocol

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon at a glance: jobs by state, provider health, spend.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let bytes = try await global.client.call("GET", "/v1/status")
        if global.wantsJSON { return printJSON(bytes) }
        let s = try JSONDecoder().decode(StatusResponse.self, from: Data(bytes))
        let t = Terminal()
        print("reeld \(s.version)  pid \(s.pid)  up \(age(s.uptime_s))  mode \(s.mode == "running" ? s.mode : t.paint(s.mode, "33"))")
        let p = s.provider
        let health = p.health == "ok" ? t.paint(p.health, "32") : t.paint(p.health, "33")
        print("provider \(health)\(p.detail.map { " (\($0))" } ?? "")  slots \(p.slots_in_use)/\(p.concurrency_cap) (limit \(p.concurrency_limit))  creates \(p.creates)  polls \(p.polls)  throttles \(p.throttles)")
        for pool in p.pools ?? [] {
            print("  pool \(pool.model)  slots \(pool.slots_in_use)/\(pool.concurrency_cap) (limit \(pool.concurrency_limit))  "
                  + "queued \(pool.queued)  \(pool.submit_per_second.formatted()) creates/s  throttles \(pool.throttles)")
        }
        print(String(format: "jobs %d in %d batches  spend $%.2f", s.total_jobs, s.batches, s.spend_usd)
              + billedNotDelivered(s.billed_not_delivered_usd, jobs: s.billed_not_delivered_jobs))
        if s.storage.health != "ok" {
            print("storage \(t.paint(s.storage.health, "33"))  \(s.storage.waiting_jobs) delivery(s) waiting"
                  + (s.storage.detail.map { " (\($0))" } ?? ""))
        }
        let order = JobState.allCases.map(\.rawValue)
        let rows = order.compactMap { state in s.jobs[state].map { [state, "\($0)"] } }
        if !rows.isEmpty { print(t.table(["STATE", "JOBS"], rows, colourColumn: 0)) }
        for w in s.warnings { print(t.paint("warning: \(w)", "33")) }
    }
}

struct Jobs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List jobs, filtered by state and batch.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only jobs in this state (\(JobState.allCases.map(\.rawValue).joined(separator: ", "))).")
    var state: String?
    @Option(help: "Only jobs of this batch.") var batch: String?
    @Option(help: "At most this many jobs on a terminal (all of them with --json).") var limit = 50

    func validate() throws {
        if let state, JobState(rawValue: state) == nil {
            throw ValidationError("unknown state '\(state)'; states: \(JobState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        let q = query([("state", state), ("batch", batch)])
        if global.wantsJSON {
            // Every match, streamed by the daemon page by page.
            printJSON(try await global.client.call("GET", "/v1/jobs\(q)", accept: "application/x-ndjson",
                                                  streaming: true))
            return
        }
        let page = try await global.client.get("/v1/jobs\(q)\(q.isEmpty ? "?" : "&")limit=\(min(max(limit, 1), 1000))",
                                                as: JobPage.self)
        let now = Date().timeIntervalSince1970
        let rows = page.jobs.map { j in
            [j.job, j.state, j.model.replacingOccurrences(of: "wan2.6-", with: ""), "\(j.resolution) \(j.aspect_ratio) \(j.duration_s)s",
             "\(j.attempt)", Wire.parseTime(j.updated_at).map { age(now - $0) } ?? "", j.reason ?? j.task_id ?? ""]
        }
        print(Terminal().table(["JOB", "STATE", "MODEL", "FORMAT", "TRY", "AGE", "DETAIL"], rows, colourColumn: 1))
        if page.next_cursor != nil { print("… more; use --limit or --json for all") }
    }
}

struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One job: its request, history and every provider exchange.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "BATCH/ID") var job: String

    func run() async throws {
        guard let key = JobKey(parsing: job) else { throw ValidationError("'\(job)' is not BATCH/ID") }
        let bytes = try await global.client.call("GET", "/v1/jobs/\(key.batch)/\(key.id)")
        if global.wantsJSON { return printJSON(bytes) }
        let d = try JSONDecoder().decode(JobDetail.self, from: Data(bytes))
        let t = Terminal()
        let j = d.job
        print("\(t.paint(j.job, "1"))  \(t.state(j.state))\(j.reason.map { "  — \($0)" } ?? "")")
        print("model \(j.model)  \(j.resolution) \(j.aspect_ratio)  \(j.duration_s)s  priority \(j.priority)  attempt \(j.attempt)")
        print("prompt: \(d.prompt)")
        for (i, r) in d.references.enumerated() { print("character\(i + 1): \(r)") }
        if !d.task_ids.isEmpty { print("tasks: \(d.task_ids.joined(separator: ", "))") }
        if let out = j.output { print("output: \(out)  sha256 \(j.sha256 ?? "-")") }
        if let c = j.cost_usd { print(String(format: "cost: $%.4f", c)) } else if let e = j.estimated_cost_usd {
            print(String(format: "estimated cost: $%.4f", e))
        }
        if let eta = j.eta { print("eta: p50 \(eta.p50)  p90 \(eta.p90)") }
        print()
        print(t.table(["AT", "FROM", "TO", "CAUSE"], d.transitions.map { [$0.at, $0.from ?? "", $0.to, $0.cause] }))
        if !d.attempts.isEmpty {
            print()
            print(t.table(["AT", "KIND", "HTTP", "CODE", "MS", "REQUEST"],
                          d.attempts.map { [$0.at, $0.kind, "\($0.http_status)", $0.code ?? $0.error ?? "", "\($0.duration_ms)", $0.request_id ?? ""] }))
        }
    }
}

struct Batches: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "All batches with progress, cost and ETA.")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let bytes = try await global.client.call("GET", "/v1/batches")
        if global.wantsJSON { return printJSON(bytes) }
        let list = try JSONDecoder().decode(BatchList.self, from: Data(bytes))
        print(Terminal().table(["BATCH", "PRIORITY", "DONE", "FAILED", "COST", "ETA P50..P90", "STATE"],
                               list.batches.map(batchRow)))
    }
}

func batchRow(_ b: BatchView) -> [String] {
    let failed = (b.jobs["failed"] ?? 0) + (b.jobs["expired"] ?? 0)
    let eta = b.eta.map { "\(shortTime($0.p50))..\(shortTime($0.p90))" } ?? (b.completed_at != nil ? "done" : "-")
    let state = b.paused ? "paused" : (b.completed_at != nil ? "complete" : (b.deadline_at_risk ? "deadline at risk" : "active"))
    return [b.batch, b.priority, "\(b.done)/\(b.total)", "\(failed)", String(format: "$%.2f", b.cost_usd), eta, state]
}

/// `  (of which $0.20 billed, not delivered: 2 jobs)` when any job was billed without a delivered file.
func billedNotDelivered(_ usd: Double, jobs: Int) -> String {
    jobs > 0 ? String(format: "  (of which $%.2f billed, not delivered: %d job(s))", usd, jobs) : ""
}

func shortTime(_ rfc3339: String) -> String {
    guard let t = Wire.parseTime(rfc3339) else { return rfc3339 }
    let f = DateFormatter()
    f.dateFormat = "HH:mm:ss"
    return f.string(from: Date(timeIntervalSince1970: t))
}

struct BatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "batch", abstract: "One batch in detail.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The batch name.") var name: String

    func run() async throws {
        guard Identifier.isValid(name) else { throw ValidationError("'\(name)' is not a batch name") }
        let bytes = try await global.client.call("GET", "/v1/batches/\(name)")
        if global.wantsJSON { return printJSON(bytes) }
        let b = try JSONDecoder().decode(BatchView.self, from: Data(bytes))
        let t = Terminal()
        print(t.table(["BATCH", "PRIORITY", "DONE", "FAILED", "COST", "ETA P50..P90", "STATE"], [batchRow(b)]))
        print()
        let rows = JobState.allCases.compactMap { s in b.jobs[s.rawValue].map { [s.rawValue, "\($0)"] } }
        print(t.table(["STATE", "JOBS"], rows, colourColumn: 0))
        if let budget = b.budget_usd { print(String(format: "budget $%.2f, spent $%.2f", budget, b.cost_usd)) }
        if b.billed_not_delivered_jobs > 0 {
            print(String(format: "cost $%.2f", b.cost_usd)
                  + billedNotDelivered(b.billed_not_delivered_usd, jobs: b.billed_not_delivered_jobs))
        }
        if let deadline = b.deadline { print("deadline \(deadline)\(b.deadline_at_risk ? t.paint("  (at risk)", "31") : "")") }
    }
}
