import Foundation
import ReelOutput
import ReelTestKit

// Shared helpers of the durability tests: manifests, the control API's job views, the sandbox's task
// list as an operator would read it, and the output-tree invariant.

struct DurabilityTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Durability {
    /// A manifest of 2-second 720p flash jobs (one cached sandbox render serves them all).
    static func manifest(batch: String, jobs: [(id: String, prompt: String)]) -> String {
        let items = jobs.map { job in
            "{\"id\": \"\(job.id)\", \"prompt\": \"\(job.prompt)\", \"references\": [{\"url\": \"https://cdn.example.com/anna.png\"}]}"
        }
        return """
            {"manifest_version": 1, "batch": "\(batch)",
             "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
             "jobs": [\(items.joined(separator: ",\n"))]}
            """
    }

    /// Every job of `batch` as the control API lists it.
    static func jobs(_ reeld: ReeldProcess, batch: String, state: String? = nil) async throws -> [[String: Any]] {
        var all: [[String: Any]] = []
        var cursor: String?
        repeat {
            var path = "/v1/jobs?batch=\(batch)&limit=1000"
            if let state { path += "&state=\(state)" }
            if let cursor { path += "&cursor=\(cursor)" }
            let page = try await reeld.get(path).json()
            all += page["jobs"] as? [[String: Any]] ?? []
            cursor = page["next_cursor"] as? String
        } while cursor != nil
        return all
    }

    /// `GET /v1/jobs/BATCH/ID`: the job with its transitions and attempts.
    static func detail(_ reeld: ReeldProcess, _ key: String) async throws -> [String: Any] {
        let reply = try await reeld.get("/v1/jobs/\(key)")
        guard reply.status == 200 else { throw DurabilityTestError( "GET /v1/jobs/\(key): \(reply.status) \(reply.text)") }
        return try reply.json()
    }

    static func state(_ reeld: ReeldProcess, _ key: String) async throws -> String {
        (try await detail(reeld, key)["job"] as? [String: Any])?["state"] as? String ?? "?"
    }

    /// Polls one job's detail until `done` holds.
    @discardableResult
    static func waitUntil(_ reeld: ReeldProcess, _ key: String, _ what: String, timeout: Double = 30,
                          _ done: ([String: Any]) -> Bool) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        var last: [String: Any] = [:]
        while Date() < deadline {
            if let d = try? await detail(reeld, key) {
                last = d["job"] as? [String: Any] ?? [:]
                if done(d) { return d }
            }
            try await Task.sleep(for: .milliseconds(30))
        }
        throw DurabilityTestError( "\(key): no \(what) within \(timeout) s (last: \(last))\n\(reeld.logTail())")
    }

    /// Polls one job until its state is in `states`.
    @discardableResult
    static func waitForState(_ reeld: ReeldProcess, _ key: String, _ states: Set<String>,
                             timeout: Double = 30) async throws -> [String: Any] {
        try await waitUntil(reeld, key, "state in \(states.sorted())", timeout: timeout) {
            states.contains((($0["job"] as? [String: Any])?["state"] as? String) ?? "")
        }
    }

    /// Rewrites reeld's config file (read at the next start).
    static func editConfig(_ reeld: ReeldProcess, _ edit: (String) -> String) throws {
        let text = try String(contentsOfFile: reeld.configPath, encoding: .utf8)
        try edit(text).write(toFile: reeld.configPath, atomically: true, encoding: .utf8)
    }

    /// The "to" states of a job's transitions, oldest first.
    static func path(_ detail: [String: Any]) -> [String] {
        (detail["transitions"] as? [[String: Any]] ?? []).compactMap { $0["to"] as? String }
    }

    static func causes(_ detail: [String: Any]) -> [String] {
        (detail["transitions"] as? [[String: Any]] ?? []).compactMap { $0["cause"] as? String }
    }

    static func taskIDs(_ detail: [String: Any]) -> [String] { detail["task_ids"] as? [String] ?? [] }

    /// Every task the sandbox made (task id → prompt), from its test endpoint: the documented task list carries
    /// no prompt.
    static func sandboxTasks(_ sandbox: SandboxProcess) async throws -> [String: String] {
        let reply = try await sandbox.send(TestHTTPRequest("GET", "/__sandbox/tasks"))
        guard reply.status == 200 else { throw DurabilityTestError("sandbox tasks: \(reply.status) \(reply.text)") }
        var tasks: [String: String] = [:]
        for row in try reply.json()["tasks"] as? [[String: Any]] ?? [] {
            if let id = row["task_id"] as? String { tasks[id] = row["prompt"] as? String ?? "" }
        }
        return tasks
    }

    /// What the output tree may show at any moment: `<id>.mp4`, `<id>.json`, `batch.json`, `SHA256SUMS` and
    /// dot-prefixed partials. Every `<id>.mp4` that has its sidecar must match the sidecar's sha256.
    /// Returns the problems found (empty when the tree is clean) and how many MP4s were checked.
    static func checkTree(_ output: String, ids: Set<String>) async -> (problems: [String], checked: Int) {
        var problems: [String] = []
        var checked = 0
        let fm = FileManager.default
        for batch in (try? fm.contentsOfDirectory(atPath: output)) ?? [] {
            let dir = output + "/" + batch
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                if name.hasPrefix(".") || name == "batch.json" || name == "SHA256SUMS" { continue }
                let id = name.hasSuffix(".mp4") ? String(name.dropLast(4)) : name.hasSuffix(".json") ? String(name.dropLast(5)) : ""
                guard ids.contains(id) else {
                    problems.append("unexpected file \(batch)/\(name)")
                    continue
                }
                guard name.hasSuffix(".mp4"),
                      let sidecarData = fm.contents(atPath: "\(dir)/\(id).json"),
                      let sidecar = try? JSONSerialization.jsonObject(with: sidecarData) as? [String: Any],
                      let expected = (sidecar["mp4"] as? [String: Any])?["sha256"] as? String else { continue }
                guard let actual = try? await Delivery.sha256(ofFile: "\(dir)/\(name)") else {
                    problems.append("\(batch)/\(name) unreadable")
                    continue
                }
                checked += 1
                if actual != expected { problems.append("\(batch)/\(name): sha256 \(actual) but its sidecar says \(expected)") }
            }
        }
        return (problems, checked)
    }
}
