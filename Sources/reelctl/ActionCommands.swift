import ArgumentParser
import Foundation
import ReelCore
import ReelProtocol

/// Job ids from the arguments, or one per line from stdin when the only argument is `-`.
struct JobArguments: ParsableArguments {
    @Argument(help: ArgumentHelp("Jobs as BATCH/ID, or - to read them from stdin, one per line.", valueName: "BATCH/ID"))
    var jobs: [String] = []

    func keys() throws -> [JobKey] {
        var texts = jobs
        if texts == ["-"] {
            texts = []
            while let line = readLine() {
                let t = line.trimmingCharacters(in: .whitespaces)
                if !t.isEmpty, !t.hasPrefix("#") { texts.append(String(t.split(separator: " ").first ?? "")) }
            }
        }
        guard !texts.isEmpty else { throw ValidationError("name at least one job as BATCH/ID, or - for stdin") }
        return try texts.map { text in
            guard let key = JobKey(parsing: text) else {
                throw ValidationError("'\(text)' is not BATCH/ID (each part \(Identifier.syntax))")
            }
            return key
        }
    }
}

/// Applies one action to many jobs; reports each; exits 1 if any failed.
func bulk(_ action: String, _ global: GlobalOptions, _ keys: [JobKey]) async throws {
    let client = global.client
    var failures = 0
    for key in keys {
        do {
            let bytes = try await client.call("POST", "/v1/jobs/\(key.batch)/\(key.id)/\(action)")
            if global.wantsJSON {
                printJSON(bytes)
            } else {
                let r = try JSONDecoder().decode(ActionResult.self, from: Data(bytes))
                print("\(key): \(r.message)")
            }
        } catch let error as CLIError where error.code == Exit.failed {
            failures += 1
            writeStderr("\(key): \(error.description)")
        }
    }
    if failures > 0 { throw CLIError(description: "\(failures) of \(keys.count) failed", code: Exit.failed) }
}

/// The bulk job verbs share one shape: options, job ids, one POST per job.
protocol BulkJobCommand: AsyncParsableCommand {
    static var action: String { get }
    var global: GlobalOptions { get }
    var targets: JobArguments { get }
}

extension BulkJobCommand {
    func run() async throws { try await bulk(Self.action, global, targets.keys()) }
}

struct Cancel: BulkJobCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel jobs (remotely while PENDING; a running render finishes and is discarded).")
    static let action = "cancel"
    @OptionGroup var global: GlobalOptions
    @OptionGroup var targets: JobArguments
}

struct Retry: BulkJobCommand {
    static let configuration = CommandConfiguration(abstract: "Queue failed, cancelled or expired jobs again.")
    static let action = "retry"
    @OptionGroup var global: GlobalOptions
    @OptionGroup var targets: JobArguments
}

struct Hold: BulkJobCommand {
    static let configuration = CommandConfiguration(abstract: "Keep queued jobs from being submitted until released.")
    static let action = "hold"
    @OptionGroup var global: GlobalOptions
    @OptionGroup var targets: JobArguments
}

struct Release: BulkJobCommand {
    static let configuration = CommandConfiguration(abstract: "Release held jobs (operator or budget holds).")
    static let action = "release"
    @OptionGroup var global: GlobalOptions
    @OptionGroup var targets: JobArguments
}

/// `pause`/`resume` with an optional batch, `drain`, `reload`.
func simple(_ global: GlobalOptions, _ path: String) async throws {
    let bytes = try await global.client.call("POST", path)
    if global.wantsJSON { return printJSON(bytes) }
    print(try JSONDecoder().decode(ActionResult.self, from: Data(bytes)).message)
}

struct Pause: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop submitting new renders (all, or one batch); running ones continue.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "A batch; all batches when omitted.") var batch: String?
    func run() async throws { try await simple(global, batch.map { "/v1/batches/\($0)/pause" } ?? "/v1/pause") }
}

struct Resume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Resume submitting (all, or one batch).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "A batch; all batches when omitted.") var batch: String?
    func run() async throws { try await simple(global, batch.map { "/v1/batches/\($0)/resume" } ?? "/v1/resume") }
}

struct Drain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Finish what is running, submit nothing new.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { try await simple(global, "/v1/drain") }
}

struct Reload: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Re-read reel.toml (limits, retry, pricing, hooks, log level), like SIGHUP.")
    @OptionGroup var global: GlobalOptions
    func run() async throws { try await simple(global, "/v1/reload") }
}

struct Resolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Settle an in-doubt job: adopt the provider task it made, resubmit it, or fail it.",
        discussion: "A job is in doubt when Reel cannot tell whether its create call reached the provider. Resubmitting may pay twice; find the task first (reelctl show BATCH/ID lists the window).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "BATCH/ID") var job: String
    @Option(help: "Adopt this provider task id as the job's render.") var adopt: String?
    @Flag(help: "Submit the job again (may pay twice if the first create did arrive).") var resubmit = false
    @Flag(help: "Mark the job failed.") var fail = false

    func validate() throws {
        guard JobKey(parsing: job) != nil else { throw ValidationError("'\(job)' is not BATCH/ID") }
        guard [adopt != nil, resubmit, fail].filter({ $0 }).count == 1 else {
            throw ValidationError("choose exactly one of --adopt TASK, --resubmit, --fail")
        }
    }

    func run() async throws {
        let key = JobKey(parsing: job)!
        let request = ResolveRequest(action: adopt != nil ? "adopt" : (resubmit ? "resubmit" : "fail"), task_id: adopt)
        let bytes = try await global.client.call("POST", "/v1/jobs/\(key.batch)/\(key.id)/resolve",
                                                 body: Array(try Wire.encoder().encode(request)))
        if global.wantsJSON { return printJSON(bytes) }
        print(try JSONDecoder().decode(ActionResult.self, from: Data(bytes)).message)
    }
}
