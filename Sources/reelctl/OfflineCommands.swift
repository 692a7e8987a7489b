import ArgumentParser
import Foundation
import ReelConfig
import ReelCore
import ReelMedia
import ReelProtocol
import ReelSpool

/// Reads a manifest the way `submit` will send it: relative reference paths resolved against the current directory.
func loadManifest(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw CLIError(description: "\(path): cannot read the file", code: Exit.failed)
    }
    return ManifestValidator.resolvingRelativePaths(Array(data), against: FileManager.default.currentDirectoryPath)
}

struct FileReport: Encodable {
    var file: String
    var batch: String?
    var jobs: Int
    var ok: Bool
    var estimated_cost_usd: Double?
    var billed_seconds: Double?
    var issues: [ManifestIssue]
}

/// Validates every file with the daemon's own validator and reference probing; prints a report per file.
func check(_ files: [String], pricing: PricingTable?, json: Bool) async throws -> [(String, [UInt8], ManifestReport)] {
    let t = Terminal()
    var results: [(String, [UInt8], ManifestReport)] = []
    var reports: [FileReport] = []
    for file in files {
        let bytes = try loadManifest(file)
        let report = await ReferenceCheck.validate(bytes, now: Date().timeIntervalSince1970)
        results.append((file, bytes, report))
        let seconds = report.jobs.reduce(0) { $0 + $1.estimatedBilledSeconds }
        // The daemon's own estimate, job by job (nil when [pricing] lacks a model/resolution of the file).
        let cost = pricing.flatMap { p in
            report.jobs.reduce(Optional(0.0)) { sum, job in
                sum.flatMap { s in Cost.estimate(spec: job, pricing: p).map { Cost.rounded(s + $0) } }
            }
        }
        reports.append(FileReport(file: file, batch: report.batch, jobs: report.jobs.count, ok: report.isAccepted,
                                  estimated_cost_usd: report.isAccepted ? cost : nil,
                                  billed_seconds: report.isAccepted ? seconds : nil, issues: report.issues))
        guard !json else { continue }
        if report.isAccepted {
            var line = "\(file): \(t.paint("ok", "32")) — batch \(report.batch ?? "?"), \(report.jobs.count) job(s)"
            if pricing != nil {
                line += String(format: ", %.1f billed s", seconds)
                line += cost.map { String(format: ", estimated $%.2f", $0) } ?? ", no price for some model/resolution in [pricing]"
            }
            print(line)
        } else {
            print("\(file): \(t.paint("\(report.errors.count) error(s)", "31"))")
        }
        for issue in report.issues {
            let label = issue.severity == .error ? t.paint("error", "31") : t.paint("warning", "33")
            print("  \(label) \(issue.pointer.isEmpty ? "/" : issue.pointer): \(issue.message)")
            print("        hint: \(issue.hint)")
        }
    }
    if json {
        let encoder = Wire.encoder(pretty: true)
        printJSON(Array(try encoder.encode(reports)))
    }
    return results
}

struct Validate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check manifests offline with the daemon's validator: every problem, with a JSON pointer and a hint.",
        discussion: "Exit 1 if any file has an error. Local reference files are probed with ffprobe.")
    @Flag(help: "Print the reports as JSON.") var json = false
    @Argument(help: "Manifest files.") var files: [String]

    func run() async throws {
        let results = try await check(files, pricing: nil, json: json)
        if results.contains(where: { !$0.2.isAccepted }) { throw ExitCode(Exit.failed) }
    }
}

struct Estimate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Price manifests offline with [pricing] from reel.toml (output seconds plus capped input-video seconds).")
    @Option(help: ArgumentHelp("The configuration whose [pricing] to use.", valueName: "file"))
    var config = "/etc/reel/reel.toml"
    @Flag(help: "Print the reports as JSON.") var json = false
    @Argument(help: "Manifest files.") var files: [String]

    func run() async throws {
        let pricing: PricingTable
        do {
            pricing = try ReelConfig.load(path: config).pricing
        } catch {
            throw CLIError(description: "\(error)\n  hint: name a configuration with --config FILE", code: Exit.failed)
        }
        let results = try await check(files, pricing: pricing, json: json)
        if results.contains(where: { !$0.2.isAccepted }) { throw ExitCode(Exit.failed) }
    }
}

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate manifests, then copy them atomically into the spool (tmp/ then rename into incoming/).",
        discussion: "Relative reference paths are resolved against the current directory first. Nothing is copied if any file has an error. The daemon need not be running.")
    @Option(help: ArgumentHelp("The spool folder (default: [paths] spool of --config, else /var/spool/reel).", valueName: "dir"))
    var spool: String?
    @Option(help: ArgumentHelp("Read the spool folder from this configuration.", valueName: "file"))
    var config: String?
    @Flag(help: "Print the reports as JSON.") var json = false
    @Argument(help: "Manifest files.") var files: [String]

    func run() async throws {
        let results = try await check(files, pricing: nil, json: json)
        if results.contains(where: { !$0.2.isAccepted }) {
            throw CLIError(description: "nothing submitted: fix the errors above", code: Exit.failed)
        }
        var root = spool ?? ProcessInfo.processInfo.environment["REEL_SPOOL"] ?? "/var/spool/reel"
        if spool == nil, let config {
            root = try ReelConfig.load(path: config).paths.spool
        }
        let directory: SpoolDirectory
        do {
            directory = try SpoolDirectory(layout: SpoolLayout(root: root))
        } catch {
            throw CLIError(description: "cannot open the spool at \(root): \(error)\n  hint: use --spool DIR, and make sure you are in the spool's group (reel-clients)", code: Exit.failed)
        }
        for (file, bytes, report) in results {
            let base = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            let digest = String(UInt64(truncatingIfNeeded: bytes.reduce(into: UInt64(14_695_981_039_346_656_037)) {
                $0 = ($0 ^ UInt64($1)) &* 1_099_511_628_211
            }), radix: 16)
            var name = Identifier.isValid(base) ? base : "\(report.batch ?? "manifest")-\(digest)"
            do {
                name = try directory.submit(bytes, as: name)
            } catch let error as SpoolError where error.code == .nameTaken {
                name = try directory.submit(bytes, as: "\(name.replacingOccurrences(of: ".json", with: ""))-\(digest)")
            }
            if !json { print("\(file): submitted as incoming/\(name) (batch \(report.batch ?? "?"), \(report.jobs.count) job(s))") }
        }
    }
}
