import Foundation
import ReelTestKit
import Testing

/// ETAs in listings: every unfinished job in `GET /v1/jobs` carries a p50/p90 range from the engine's
/// forecast, and the job detail and the batch view agree with it.
@Suite struct ListingETATests {
    @Test func listingsCarryETAsThatAgreeWithDetailAndBatch() async throws {
        // Renders that take ten real minutes: five run, fifteen stay queued for the whole test.
        let sandbox = try await SandboxProcess.start(["--time-scale", "1", "--run-time", "600..600"])
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)
        try await reeld.start()
        defer { reeld.stop() }
        try reeld.drop(manifest(batch: "eta", count: 20), as: "eta.json")
        _ = try await reeld.waitFor(timeout: 30, "5 running, 15 queued") {
            ($0["running"] ?? 0) + ($0["pending"] ?? 0) == 5 && $0["queued"] == 15
        }

        func etas(_ jobs: [[String: Any]]) -> [String: (p50: String, p90: String)] {
            var out: [String: (p50: String, p90: String)] = [:]
            for job in jobs {
                if let name = job["job"] as? String, let eta = job["eta"] as? [String: Any],
                   let p50 = eta["p50"] as? String, let p90 = eta["p90"] as? String {
                    out[name] = (p50, p90)
                }
            }
            return out
        }
        // The first listing may predate the last submissions' forecast; within a couple of seconds all 20 have one.
        var listed: [[String: Any]] = []
        for _ in 0..<60 {
            listed = try await reeld.get("/v1/jobs?batch=eta&limit=100").json()["jobs"] as? [[String: Any]] ?? []
            if etas(listed).count == 20 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let table = etas(listed)
        #expect(table.count == 20, "every unfinished job has an ETA in the listing: \(table.count) of 20")
        for (job, eta) in table { #expect(eta.p50 <= eta.p90, "\(job): p50 \(eta.p50) after p90 \(eta.p90)") }
        let queued = listed.filter { $0["state"] as? String == "queued" }.compactMap { $0["job"] as? String }
        let remote = listed.filter { $0["state"] as? String != "queued" }.compactMap { $0["job"] as? String }
        #expect(queued.count == 15 && remote.count == 5)
        let lastRemote = remote.compactMap { table[$0]?.p50 }.max() ?? ""
        let firstQueued = queued.compactMap { table[$0]?.p50 }.min() ?? ""
        #expect(firstQueued >= lastRemote, "queued jobs start after a running one ends (\(firstQueued) < \(lastRemote))")

        // Detail and batch come from the same forecast (or a newer one: forecasts are refreshed once a second, and
        // a later forecast of a stuck queue only moves later).
        let name = try #require(queued.last)
        let detail = try await reeld.get("/v1/jobs/\(name)").json()["job"] as? [String: Any]
        let detailETA = etas([detail ?? [:]])[name]
        #expect(detailETA != nil && detailETA!.p50 >= table[name]!.p50, "detail \(String(describing: detailETA)) vs listing \(String(describing: table[name]))")
        let batch = try await reeld.get("/v1/batches/eta").json()
        let batchP90 = (batch["eta"] as? [String: Any])?["p90"] as? String
        #expect(batchP90 != nil && batchP90! >= table.values.map(\.p90).max()!, "the batch ends with its last job")
    }
}

/// `GET /v1/jobs` answers a repeated page from reeld's listing cache; the cache must never show a page older than
/// the last change the caller was told about.
@Suite struct ListingCacheTests {
    @Test func aRepeatedPageIsTheSamePageUntilSomethingChanges() async throws {
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let reeld = try await pausedDaemon(providerURL: sandbox.url)
        defer { reeld.stop() }
        try reeld.drop(manifest(batch: "cache", count: 12), as: "cache.json")
        _ = try await reeld.waitFor(timeout: 30, "12 queued") { $0["queued"] == 12 }

        func page() async throws -> (bytes: [UInt8], states: [String: String]) {
            let r = try await reeld.get("/v1/jobs?batch=cache&limit=5")
            #expect(r.status == 200)
            let jobs = try r.json()["jobs"] as? [[String: Any]] ?? []
            var states: [String: String] = [:]
            for j in jobs { states[j["id"] as? String ?? "?"] = j["state"] as? String }
            return (r.body, states)
        }
        let first = try await page()
        #expect(first.states.count == 5 && first.states.values.allSatisfy { $0 == "queued" })
        #expect(try await page().bytes == first.bytes, "nothing changed: the same bytes")

        // Every mutation is visible to the very next read of the same page.
        for (action, expected) in [("hold", "held"), ("release", "queued"), ("cancel", "cancelled"), ("retry", "queued")] {
            let r = try await reeld.post("/v1/jobs/cache/j-00002/\(action)")
            #expect(r.status == 200, "\(action): \(r.text)")
            #expect(try await page().states["j-00002"] == expected, "after \(action)")
        }
        // Another filter over the same jobs is another entry, not the cached page.
        let held = try await reeld.post("/v1/jobs/cache/j-00000/hold")
        #expect(held.status == 200)
        let queuedOnly = try await reeld.get("/v1/jobs?batch=cache&limit=5&state=queued").json()["jobs"] as? [[String: Any]]
        #expect(queuedOnly?.compactMap { $0["id"] as? String }.contains("j-00000") == false)
        #expect(queuedOnly?.count == 5)
        #expect(try await page().states["j-00000"] == "held")
    }
}
