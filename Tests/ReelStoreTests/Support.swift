import Foundation
import ReelCore
import ReelStore

/// A fresh directory for one test's database file, removed afterwards.
func withDatabase(_ body: (String) async throws -> Void) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reelstore-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try await body(dir.appendingPathComponent("reel.sqlite3").path)
}

func withStore(_ body: (Store, String) async throws -> Void) async throws {
    try await withDatabase { path in try await body(try Store(path: path), path) }
}

let t0: Timestamp = 1_800_000_000

func spec(_ batch: String, _ id: String, prompt: String = "character1 waves", model: RenderModel = .r2vFlash,
          resolution: Resolution = .p720) -> JobSpec {
    JobSpec(key: JobKey(batch: batch, id: id), model: model, resolution: resolution, aspectRatio: .landscape,
            durationSeconds: 5, prompt: prompt,
            references: [Reference(source: .url("https://cdn.example.com/a.png"), kind: .image)])
}

/// Ingests `ids` of `batch` as one manifest whose identity is `sha` (default: derived from the ids).
@discardableResult
func ingest(_ store: Store, _ batch: String, _ ids: [String], sha: String? = nil, now: Timestamp = t0,
            model: RenderModel = .r2vFlash) async throws -> IngestOutcome {
    try await store.ingest(manifestSHA256: sha ?? "\(batch):\(ids.joined(separator: ","))", fileName: "\(batch).json",
                           batch: batch, settings: BatchSettings(),
                           jobs: ids.map { spec(batch, $0, model: model) }, now: now)
}

func key(_ text: String) -> JobKey { JobKey(parsing: text)! }
