import Foundation
import ReelCore
import ReelStore
import Testing

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
func ingest(_ store: any JobStore, _ batch: String, _ ids: [String], sha: String? = nil, now: Timestamp = t0,
            model: RenderModel = .r2vFlash) async throws -> IngestOutcome {
    try await store.ingest(manifestSHA256: sha ?? "\(batch):\(ids.joined(separator: ","))", fileName: "\(batch).json",
                           batch: batch, settings: BatchSettings(),
                           jobs: ids.map { spec(batch, $0, model: model) }, now: now)
}

func key(_ text: String) -> JobKey { JobKey(parsing: text)! }

/// One implementation of `JobStore` under contract: how to make an empty one. `StoreContractTests` runs every test
/// against each of `all`; another implementation joins by adding its factory to that list.
struct StoreFactory: Sendable, CustomTestStringConvertible {
    let name: String
    /// An empty store whose files (if any) live in the given fresh directory.
    let make: @Sendable (String) async throws -> any JobStore

    var testDescription: String { name }

    static let sqlite = StoreFactory(name: "sqlite") { dir in try Store(path: dir + "/reel.sqlite3") }
    static let memory = StoreFactory(name: "memory") { _ in MemoryStore() }

    static let all: [StoreFactory] = [.sqlite, .memory]

    /// Runs `body` on a new empty store; its directory is removed afterwards.
    func with(_ body: (any JobStore) async throws -> Void) async throws {
        try await withDatabase { path in
            try await body(try await make((path as NSString).deletingLastPathComponent))
        }
    }
}
