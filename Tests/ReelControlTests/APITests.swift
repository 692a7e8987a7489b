import Foundation
import ReelTestKit
import Testing

/// Every /v1 endpoint against a real reeld over its real Unix socket.
@Suite(.serialized) struct ControlAPITests {
    /// Reads, every job action (and its 409 where it does not apply), batches, global actions, metrics, SSE,
    /// JSON errors and the served OpenAPI document, on one daemon whose jobs stay queued until resumed.
    @Test func everyEndpointOverTheSocket() async throws {
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let reeld = try await pausedDaemon(providerURL: sandbox.url)
        defer { reeld.stop() }
        try reeld.drop(manifest(batch: "alpha", count: 5), as: "alpha.json")
        try reeld.drop(manifest(batch: "beta", count: 3), as: "beta.json")
        _ = try await reeld.waitFor(timeout: 30, "8 queued jobs") { $0["queued"] == 8 }

        // Status.
        let status = try await reeld.status()
        #expect(status["mode"] as? String == "paused")
        #expect(status["total_jobs"] as? Int == 8)
        #expect(status["batches"] as? Int == 2)
        let provider = status["provider"] as? [String: Any]
        #expect(provider?["concurrency_limit"] as? Int == 10, "5 slots per model pool, no overall cap")
        let pools = provider?["pools"] as? [[String: Any]] ?? []
        #expect(pools.map { $0["model"] as? String } == ["wan2.6-r2v", "wan2.6-r2v-flash"])
        #expect(pools.allSatisfy { $0["concurrency_limit"] as? Int == 5 && $0["submit_per_second"] as? Double == 5 })
        #expect(pools.reduce(0) { $0 + ($1["queued"] as? Int ?? 0) } == 8)

        // Listing: filters, limit, cursor.
        let alpha = try await reeld.get("/v1/jobs?batch=alpha&state=queued").json()
        let alphaJobs = alpha["jobs"] as? [[String: Any]] ?? []
        #expect(alphaJobs.map { $0["job"] as? String } == (0..<5).map { "alpha/j-0000\($0)" })
        #expect(alpha["next_cursor"] is NSNull || alpha["next_cursor"] == nil)
        #expect((try await reeld.get("/v1/jobs?state=running").json()["jobs"] as? [Any])?.isEmpty == true)
        let first = try await reeld.get("/v1/jobs?limit=3").json()
        let cursor = try #require(first["next_cursor"] as? String)
        let second = try await reeld.get("/v1/jobs?limit=3&cursor=\(cursor)").json()
        #expect((second["jobs"] as? [[String: Any]])?.first?["job"] as? String == "alpha/j-00003")
        for bad in ["state=bogus", "limit=0", "limit=1001", "limit=x", "batch=-bad", "cursor=%21%21"] {
            let r = try await reeld.get("/v1/jobs?\(bad)")
            #expect(r.status == 400, "\(bad): \(r.status) \(r.text)")
            #expect(r.errorCode != nil, "\(bad): a JSON error body: \(r.text)")
        }

        // NDJSON: every job, one object per line.
        let nd = try await reeld.get("/v1/jobs?batch=beta", headers: ["Accept": "application/x-ndjson"])
        #expect(nd.status == 200)
        #expect(nd.header("content-type")?.hasPrefix("application/x-ndjson") == true)
        let lines = nd.text.split(separator: "\n")
        #expect(lines.count == 3)
        for line in lines {
            let job = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            #expect(job?["batch"] as? String == "beta")
        }

        // Job detail.
        let detail = try await reeld.get("/v1/jobs/alpha/j-00000").json()
        #expect((detail["job"] as? [String: Any])?["state"] as? String == "queued")
        #expect(detail["prompt"] as? String == "character1 waves")
        #expect((detail["transitions"] as? [Any])?.isEmpty == false)
        #expect(try await reeld.get("/v1/jobs/alpha/nope").errorCode == "no_such_job")
        #expect(try await reeld.get("/v1/jobs/alpha/nope").status == 404)
        #expect(try await reeld.get("/v1/jobs/alpha/-x").status == 400)

        // Job actions: 200 where they apply, 409 (with the job) where they do not.
        func act(_ job: String, _ action: String, _ body: String? = nil) async throws -> (Int, String?) {
            let r = try await reeld.post("/v1/jobs/\(job)/\(action)", json: body)
            let state = ((try? r.json())?["job"] as? [String: Any])?["state"] as? String
            return (r.status, state)
        }
        #expect(try await act("alpha/j-00000", "hold") == (200, "held"))
        #expect(try await act("alpha/j-00000", "hold") == (409, "held"))
        #expect(try await act("alpha/j-00000", "release") == (200, "queued"))
        #expect(try await act("alpha/j-00000", "release") == (409, "queued"))
        #expect(try await act("alpha/j-00000", "retry") == (409, "queued"))
        #expect(try await act("alpha/j-00001", "cancel") == (200, "cancelled"))
        #expect(try await act("alpha/j-00001", "cancel") == (409, "cancelled"))
        #expect(try await act("alpha/j-00001", "retry") == (200, "queued"))
        #expect(try await act("alpha/j-00000", "resolve", #"{"action":"fail"}"#) == (409, "queued"))
        #expect(try await act("alpha/j-00000", "resolve", #"{"action":"adopt"}"#).0 == 400)
        #expect(try await act("alpha/j-00000", "resolve", "not json").0 == 400)
        #expect(try await act("alpha/j-00000", "explode").0 == 404)
        #expect(try await act("alpha/missing", "cancel").0 == 404)
        let conflict = try await reeld.post("/v1/jobs/alpha/j-00000/retry").json()
        #expect((conflict["message"] as? String)?.contains("only failed, cancelled or expired") == true)

        // Batches and batch actions.
        let batches = try await reeld.get("/v1/batches").json()["batches"] as? [[String: Any]] ?? []
        #expect(Set(batches.compactMap { $0["batch"] as? String }) == ["alpha", "beta"])
        let beta = try await reeld.get("/v1/batches/beta").json()
        #expect(beta["total"] as? Int == 3 && beta["done"] as? Int == 0)
        #expect(try await reeld.get("/v1/batches/nope").status == 404)
        #expect(try await reeld.post("/v1/batches/beta/pause").status == 200)
        #expect(try await reeld.get("/v1/batches/beta").json()["paused"] as? Bool == true)
        #expect(try await reeld.post("/v1/batches/beta/resume").status == 200)
        #expect(try await reeld.get("/v1/batches/beta").json()["paused"] as? Bool == false)
        #expect(try await reeld.post("/v1/batches/beta/cancel").status == 200)
        let betaAfter = try await reeld.get("/v1/batches/beta").json()
        #expect((betaAfter["jobs"] as? [String: Any])?["cancelled"] as? Int == 3)
        #expect(betaAfter["completed_at"] as? String != nil, "a batch whose jobs are all cancelled has ended")
        #expect(try await reeld.post("/v1/batches/nope/cancel").status == 404)
        #expect(try await reeld.post("/v1/batches/beta/explode").status == 404)

        // Metrics: valid Prometheus text whose job gauge agrees with the status counts.
        let metrics = try await reeld.get("/v1/metrics")
        #expect(metrics.header("content-type")?.hasPrefix("text/plain") == true)
        let samples = try parsePrometheus(metrics.text)
        let queuedGauge = samples.filter { $0.name == "reel_jobs" && $0.labels["state"] == "queued" }.map(\.value)
        #expect(queuedGauge.reduce(0, +) == 5)
        #expect(samples.filter { $0.name == "reel_jobs" && $0.labels["state"] == "cancelled" }.map(\.value).reduce(0, +) == 3)
        for name in ["reel_slots_in_use", "reel_throttles_total", "reel_polls_total", "reel_spend_usd_total",
                     "reel_concurrency_limit", "reel_uptime_seconds"] {
            #expect(samples.contains { $0.name == name }, "metrics lack \(name)")
        }

        // SSE: a job change arrives as an `event: job` frame.
        let events = try TestHTTPStream(.unix(path: reeld.socket),
                                        TestHTTPRequest("GET", "/v1/events?batch=alpha", headers: ["Accept": "text/event-stream"]))
        defer { events.close() }
        let opened = await events.wait { $0.contains(": reel events") }
        #expect(opened.contains("text/event-stream"))
        #expect(try await act("alpha/j-00002", "hold") == (200, "held"))
        let framed = await events.wait { $0.contains("event: job") && $0.contains("alpha/j-00002") }
        let frame = try #require(framed.components(separatedBy: "event: job\ndata: ").dropFirst().first {
            $0.contains("alpha/j-00002")
        })
        let data = try JSONSerialization.jsonObject(with: Data(frame.prefix { $0 != "\n" }.utf8)) as? [String: Any]
        #expect(data?["state"] as? String == "held")

        // Errors: JSON bodies with the right status.
        let notFound = try await reeld.get("/nope")
        #expect(notFound.status == 404 && notFound.errorCode == "not_found")
        #expect(try await reeld.get("/v1/nope").status == 404)
        let wrongMethod = try await reeld.post("/v1/status")
        #expect(wrongMethod.status == 405 && wrongMethod.errorCode == "method_not_allowed", "\(wrongMethod.text)")
        #expect(try await reeld.get("/v1/pause").status == 405)
        #expect(try await reeld.get("/v1/jobs/alpha/j-00000/cancel").status == 405)

        // The served OpenAPI document is the committed one.
        let served = try await reeld.get("/v1/openapi.json")
        let committed = try Data(contentsOf: repositoryRoot().appendingPathComponent("docs/openapi.json"))
        #expect(try JSONSerialization.jsonObject(with: Data(served.body)) as? NSDictionary
                == JSONSerialization.jsonObject(with: committed) as? NSDictionary)

        // Global actions: reload, resume (alpha renders), drain, pause.
        let reload = try await reeld.post("/v1/reload")
        #expect(reload.status == 200, "reload: \(reload.text)")
        #expect(try await reeld.post("/v1/resume").status == 200)
        #expect(try await reeld.status()["mode"] as? String == "running")
        _ = try await reeld.waitFor(timeout: 30, "alpha's unheld jobs rendered") { $0["succeeded"] == 4 }
        #expect(try await reeld.post("/v1/drain").status == 200)
        #expect(try await reeld.status()["mode"] as? String == "draining")
        #expect(try await reeld.post("/v1/pause").status == 200)
        #expect(try await act("alpha/j-00003", "cancel") == (409, "succeeded"))
    }

    /// 10,000 jobs paged with a cursor: every job exactly once, in key order, at several page sizes and with a
    /// filter, and the same set again as one NDJSON stream.
    @Test func paginationAcrossTenThousandJobs() async throws {
        let reeld = try await pausedDaemon(providerURL: "http://127.0.0.1:9")
        defer { reeld.stop() }
        try reeld.drop(manifest(batch: "big", count: 6_000), as: "big-1.json")
        try reeld.drop(manifest(batch: "big", count: 4_000, start: 6_000), as: "big-2.json")
        try reeld.drop(manifest(batch: "small", count: 7), as: "small.json")
        _ = try await reeld.waitFor(timeout: 240, "10,007 queued jobs") { $0["queued"] == 10_007 }
        let expected = (0..<10_000).map { "big/j-" + String($0).leftPadded(to: 5) }

        for limit in [1000, 333] {
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let path = "/v1/jobs?batch=big&limit=\(limit)" + (cursor.map { "&cursor=\($0)" } ?? "")
                let page = try await reeld.get(path).json()
                seen += (page["jobs"] as? [[String: Any]] ?? []).compactMap { $0["job"] as? String }
                cursor = page["next_cursor"] as? String
                pages += 1
            } while cursor != nil && pages < 100
            #expect(seen == expected, "limit \(limit): \(seen.count) jobs, \(Set(seen).count) distinct")
            #expect(pages == (10_000 + limit - 1) / limit)
        }
        // Unfiltered, with the state filter: the small batch comes after big's 10,000.
        var all: [String] = []
        var cursor: String?
        repeat {
            let page = try await reeld.get("/v1/jobs?state=queued&limit=1000" + (cursor.map { "&cursor=\($0)" } ?? "")).json()
            all += (page["jobs"] as? [[String: Any]] ?? []).compactMap { $0["job"] as? String }
            cursor = page["next_cursor"] as? String
        } while cursor != nil && all.count <= 20_000
        #expect(all.count == 10_007 && Set(all).count == 10_007)
        #expect(Array(all.prefix(10_000)) == expected)

        let nd = try await reeld.get("/v1/jobs", headers: ["Accept": "application/x-ndjson"])
        let lines = nd.text.split(separator: "\n")
        #expect(lines.count == 10_007)
        let ids = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["job"] as? String }
        #expect(ids == all)
    }
}

struct PromSample {
    var name: String
    var labels: [String: String]
    var value: Double
}

/// Parses the Prometheus text format strictly enough to catch malformed lines: every sample's metric has a
/// `# TYPE` line before it, labels are `k="v"` pairs, values are numbers.
func parsePrometheus(_ text: String) throws -> [PromSample] {
    var typed: Set<String> = []
    var samples: [PromSample] = []
    let sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$/
    let label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/
    for line in text.split(separator: "\n") {
        if line.hasPrefix("# TYPE ") {
            let parts = line.split(separator: " ")
            guard parts.count == 4, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[3]) else {
                throw TestFailure("bad TYPE line: \(line)")
            }
            typed.insert(String(parts[2]))
            continue
        }
        if line.hasPrefix("#") { continue }
        guard let m = try sample.wholeMatch(in: String(line)), let value = Double(m.4) ?? (m.4 == "NaN" ? .nan : nil)
        else { throw TestFailure("bad sample line: \(line)") }
        guard typed.contains(String(m.1)) else { throw TestFailure("sample before its TYPE: \(line)") }
        var labels: [String: String] = [:]
        if let body = m.3 {
            for l in body.matches(of: label) { labels[String(l.1)] = String(l.2) }
        }
        samples.append(PromSample(name: String(m.1), labels: labels, value: value))
    }
    return samples
}
