import Foundation
import ReelTestKit
import Testing

/// ETAs in listings (issue #6/#8): every unfinished job in `GET /v1/jobs` carries a p50/p90 range from the engine's
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
