import ArgumentParser
import Foundation
import ReelCore
import ReelProtocol

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Live progress bars per batch with ETA ranges.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Only this batch.") var batch: String?
    @Option(help: "Seconds between refreshes.") var interval = 1.0
    @Flag(help: "Exit once every watched batch has finished (exit 1 if any job failed or expired).")
    var untilDone = false

    func run() async throws {
        let t = Terminal()
        var firstFrame = true
        var lastFrame = ""
        while true {
            let batches: [BatchView]
            if let batch {
                batches = [try await global.client.get("/v1/batches/\(batch)", as: BatchView.self)]
            } else {
                batches = try await global.client.get("/v1/batches", as: BatchList.self).batches
            }
            if global.json || !t.tablesWanted {
                printJSON(Array(try Wire.encoder().encode(BatchList(batches: batches))))
            } else if !t.isTTY {
                // Not a terminal (a log): the progress again only when a job changed state, no cursor movement.
                let counts = batches.map { b in b.batch + ":" + b.jobs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    .joined(separator: ",") }.joined(separator: ";")
                if counts != lastFrame { print(render(batches, t) + "\n") }
                lastFrame = counts
            } else {
                let frame = render(batches, t)
                // Move up over the previous frame and redraw in place.
                if !firstFrame { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                print(frame)
                firstFrame = false
            }
            fflush(nil)
            let done = !batches.isEmpty && batches.allSatisfy { $0.completed_at != nil }
            if untilDone, done {
                let lost = batches.reduce(0) { $0 + ($1.jobs["failed"] ?? 0) + ($1.jobs["expired"] ?? 0) }
                if lost > 0 { throw CLIError(description: "\(lost) job(s) failed or expired", code: Exit.failed) }
                return
            }
            try await Task.sleep(for: .seconds(max(0.1, interval)))
        }
    }

    func render(_ batches: [BatchView], _ t: Terminal) -> String {
        let nameWidth = min(24, batches.map(\.batch.count).max() ?? 5)
        let barWidth = max(10, min(40, t.width - nameWidth - 60))
        var lines: [String] = []
        for b in batches {
            let failed = (b.jobs["failed"] ?? 0) + (b.jobs["expired"] ?? 0) + (b.jobs["cancelled"] ?? 0)
            let ok = b.jobs["succeeded"] ?? 0
            let active = b.total - b.done
            let okCells = b.total == 0 ? 0 : ok * barWidth / b.total
            let badCells = b.total == 0 ? 0 : failed * barWidth / b.total
            let bar = t.paint(String(repeating: "█", count: okCells), "32")
                + t.paint(String(repeating: "█", count: badCells), "31")
                + String(repeating: "·", count: max(0, barWidth - okCells - badCells))
            let eta = b.completed_at != nil ? "done" : (b.eta.map { "eta \(shortTime($0.p50))..\(shortTime($0.p90))" } ?? "eta -")
            let name = b.batch.count > nameWidth ? String(b.batch.prefix(nameWidth - 1)) + "…" : b.batch.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
            let running = (b.jobs["running"] ?? 0) + (b.jobs["pending"] ?? 0)
            var line = "\(name) [\(bar)] \(ok)/\(b.total) ok"
            if failed > 0 { line += t.paint(" \(failed) lost", "31") }
            line += "  \(running) rendering  \(active) left  \(eta)"
            if b.paused { line += t.paint("  paused", "33") }
            if b.deadline_at_risk { line += t.paint("  deadline at risk", "31") }
            lines.append(line)
        }
        return lines.isEmpty ? "no batches" : lines.joined(separator: "\n")
    }
}

struct Shape: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The backlog by age × state × model, like Postfix's qshape.",
        discussion: "Counts unfinished jobs by how long ago they changed state, so a stuck state shows as a column that moves right.")
    @OptionGroup var global: GlobalOptions

    static let buckets: [(String, Double)] = [("5m", 300), ("10m", 600), ("20m", 1200), ("40m", 2400),
                                              ("80m", 4800), ("160m", 9600), ("320m", 19200), ("640m", 38400)]

    func run() async throws {
        let bytes = try await global.client.call("GET", "/v1/jobs", accept: "application/x-ndjson", streaming: true)
        let now = Date().timeIntervalSince1970
        var counts: [String: [Int]] = [:]
        let decoder = JSONDecoder()
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            guard let job = try? decoder.decode(JobView.self, from: Data(line)),
                  let state = JobState(rawValue: job.state), !state.isTerminal else { continue }
            let ageSeconds = now - (Wire.parseTime(job.updated_at) ?? now)
            let column = Self.buckets.firstIndex { ageSeconds <= $0.1 } ?? Self.buckets.count
            let row = "\(job.state) \(job.model)"
            counts[row, default: Array(repeating: 0, count: Self.buckets.count + 1)][column] += 1
        }
        if global.wantsJSON {
            let out = counts.map { ["row": $0.key, "total": $0.value.reduce(0, +), "buckets": $0.value] as [String: Any] }
            printJSON(Array(try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])))
            return
        }
        let header = ["STATE MODEL", "T"] + Self.buckets.map(\.0) + ["640m+"]
        var rows = counts.sorted { $0.key < $1.key }.map { [$0.key, "\($0.value.reduce(0, +))"] + $0.value.map { "\($0)" } }
        let totals = (0...Self.buckets.count).map { i in counts.values.reduce(0) { $0 + $1[i] } }
        rows.append(["TOTAL", "\(totals.reduce(0, +))"] + totals.map { "\($0)" })
        print(Terminal().table(header, rows))
    }
}
