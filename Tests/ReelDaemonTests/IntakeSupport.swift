import Foundation
import Glibc
import ReelMedia
import ReelTestKit
import Testing

/// Helpers shared by the intake tests: manifests, bulk drops, raw directory listings, the log, the store.
enum IntakeKit {
    /// A small valid manifest: one job, or two with `twoJobs`, URL references only (nothing to probe).
    static func manifest(batch: String, ids: [String], prompt: String = "character1 waves at the camera") -> String {
        let jobs = ids.map { id in
            """
            {"id": "\(id)", "prompt": "\(prompt)", "references": [{"url": "https://cdn.example.com/\(id).png"}]}
            """
        }
        return """
            {"manifest_version": 1, "batch": "\(batch)",
             "defaults": {"resolution": "720p", "duration_s": 2},
             "jobs": [\(jobs.joined(separator: ",\n"))]}
            """
    }

    /// `count` manifests of one or two jobs each (alternating), all distinct; returns them with the job total.
    static func manyManifests(_ count: Int, prefix: String) -> (files: [(name: String, json: String)], jobs: Int) {
        var files: [(String, String)] = []
        var jobs = 0
        for i in 0..<count {
            let ids = i % 2 == 0 ? ["m\(i)"] : ["m\(i)-a", "m\(i)-b"]
            jobs += ids.count
            files.append(("\(prefix)-\(i).json", manifest(batch: "\(prefix)\(i / 250)", ids: ids)))
        }
        return (files, jobs)
    }

    /// Writes every file in `tmp/` first, then renames them all into `incoming/` in one tight loop: "at once".
    static func dropAll(_ files: [(name: String, json: String)], into reeld: ReeldProcess) throws {
        for f in files { try f.json.write(toFile: reeld.spool + "/tmp/" + f.name, atomically: false, encoding: .utf8) }
        for f in files {
            guard rename(reeld.spool + "/tmp/" + f.name, reeld.spool + "/incoming/" + f.name) == 0 else {
                throw IntakeTestError("rename \(f.name) into incoming/ failed: errno \(errno)")
            }
        }
    }

    /// Raw entry names of a directory (bytes, so non-UTF-8 names survive), without `.` and `..`.
    static func entries(_ path: String) -> [[UInt8]] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let raw = withUnsafeBytes(of: &entry.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
            if raw != [0x2E] && raw != [0x2E, 0x2E] { names.append(raw) }
        }
        return names
    }

    /// Entry names shown as text (invalid UTF-8 replaced), sorted.
    static func names(_ path: String) -> [String] {
        entries(path).map { String(decoding: $0, as: UTF8.self) }.sorted()
    }

    static func total(_ counts: [String: Int]) -> Int { counts.values.reduce(0, +) }

    /// Waits until the store holds `jobs` jobs and `incoming/` holds nothing but `keep`.
    static func waitUntilTaken(_ reeld: ReeldProcess, jobs: Int, keep: Set<String> = [], timeout: Double = 60)
        async throws -> [String: Int]
    {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [String: Int] = [:]
        while Date() < deadline {
            if let c = try? await reeld.counts() {
                last = c
                if total(c) >= jobs && Set(names(reeld.spool + "/incoming")).isSubset(of: keep) { return c }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw IntakeTestError("timed out: \(total(last)) of \(jobs) jobs, incoming/ holds "
                                + "\(names(reeld.spool + "/incoming").count) entries\n\(reeld.logTail())")
    }

    /// Waits for `condition` (polled every 20 ms).
    static func wait(_ what: String, timeout: Double = 20, _ condition: () throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw IntakeTestError("timed out waiting for \(what)")
    }

    /// The current run's log (`start()` begins a fresh file).
    static func log(_ reeld: ReeldProcess) -> String {
        String(decoding: FileManager.default.contents(atPath: reeld.logPath) ?? Data(), as: UTF8.self)
    }

    static func occurrences(of needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    /// One query against the daemon's SQLite file with the sqlite3 shell (read-only; safe while reeld runs).
    static func sql(_ reeld: ReeldProcess, _ query: String) async throws -> String {
        let out = try await runProcess("/usr/bin/sqlite3", ["-readonly", reeld.state + "/reel.sqlite3", query])
        #expect(out.status == 0, "sqlite3: \(String(decoding: out.stderr, as: UTF8.self))")
        return String(decoding: out.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// `rejected/NAME.error.json` parsed.
    static func report(_ reeld: ReeldProcess, _ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: reeld.spool + "/rejected/" + name))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// `rejected/NAME.error.json` parsed, for a name that is not valid UTF-8.
    static func report(_ reeld: ReeldProcess, raw name: [UInt8]) throws -> [String: Any] {
        let path = (Array((reeld.spool + "/rejected/").utf8) + name + [0]).map { CChar(bitPattern: $0) }
        guard let file = fopen(path, "r") else { throw IntakeTestError("open report: errno \(errno)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while case let n = fread(&buffer, 1, buffer.count, file), n > 0 { bytes += buffer[..<n] }
        return try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] ?? [:]
    }

    /// The issues of a report as (pointer, message, hint).
    static func issues(_ report: [String: Any]) -> [(pointer: String, message: String, hint: String)] {
        (report["issues"] as? [[String: Any]] ?? []).map {
            ($0["pointer"] as? String ?? "?", $0["message"] as? String ?? "", $0["hint"] as? String ?? "")
        }
    }

    /// A fresh scratch directory, removed by the caller.
    static func scratch() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("intake-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}

/// A failed step in an intake test.
struct IntakeTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
