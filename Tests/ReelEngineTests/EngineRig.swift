import Foundation
import Logging
import ReelCore
import ReelCurl
@testable import ReelDaemon
import ReelMedia
import ReelOutput
import ReelStore
import ReelTestKit
import Testing

/// The real `Engine` wired to a `MemoryStore`, a `ScriptedRenderAPI` and an `OutputTree` in a temp directory,
/// running for the length of one test. Limits are small (milliseconds of backoff and polling) so a job's whole life
/// takes a fraction of a second; outcomes are awaited by watching the store, never by sleeping a fixed time.
struct EngineRig {
    let store: MemoryStore
    let api: ScriptedRenderAPI
    let tree: OutputTree
    let engine: Engine
    let clock: SystemClock

    /// Backoff, polling and rates for tests: every wait the scheduler chooses is at most tens of milliseconds
    /// (except the throttle hold, which is at least one second by design).
    static let limits: SchedulerLimits = {
        var polling = PollPolicy()
        polling.priorRunTime = 0.01...0.02
        polling.minInterval = 0.01
        polling.maxInterval = 0.05
        polling.latencyCap = 0.02
        polling.overdueInterval = 0.02
        polling.useTaskList = false
        return SchedulerLimits(concurrency: 4, submitPerSecond: 1000, queryPerSecond: 1000, maxAttempts: 3,
                               baseDelay: 0.01, maxDelay: 0.05, polling: polling)
    }()

    static let pricing: PricingTable = {
        var p = PricingTable()
        p.set(.r2v, .p720, 0.10)
        return p
    }()

    /// Runs `body` with a started engine (restored from the empty store, `run()` going), then stops the engine
    /// the way a shutdown does and removes the directory. `prepare` scripts the provider before anything starts.
    static func run(prepare: (ScriptedRenderAPI) -> Void = { _ in },
                    _ body: (EngineRig) async throws -> Void) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-engine-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clock = SystemClock()
        let api = ScriptedRenderAPI(resultFile: try await ResultClip.shared.path(), clock: clock)
        prepare(api)
        var logger = Logger(label: "engine-test")
        logger.logLevel = .error
        let tree = OutputTree(root: dir + "/out")
        let store = MemoryStore()
        let options = Engine.Options(limits: limits, resubmitInDoubt: false, listLag: 0.2, pricing: pricing)
        let engine = Engine(store: store, api: api, tree: tree, clock: clock, options: options,
                            batchEnd: BatchEndHandler(hooks: .init(), curl: CurlClient(threads: 1), logger: logger),
                            logger: logger)
        try await engine.restore()
        let rig = EngineRig(store: store, api: api, tree: tree, engine: engine, clock: clock)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await engine.run() }
            try await body(rig)
            group.cancelAll()
        }
    }

    /// A 720p 16:9 render of 2 s with audio: what `ResultClip` delivers passes QC for it.
    static func spec(_ batch: String, _ id: String) -> JobSpec {
        JobSpec(key: JobKey(batch: batch, id: id), model: .r2v, resolution: .p720, aspectRatio: .landscape,
                durationSeconds: 2, prompt: "character1 pours coffee for character2",
                references: [Reference(source: .url("https://cdn.example.com/refs/ben.png"), kind: .image)])
    }

    /// Commits jobs the way intake does (one manifest) and hands them to the engine.
    func submit(_ batch: String, _ ids: [String]) async throws {
        let specs = ids.map { Self.spec(batch, $0) }
        let now = clock.now()
        let outcome = try await store.ingest(manifestSHA256: "\(batch):\(ids)", fileName: "\(batch).json", batch: batch,
                                             settings: BatchSettings(), jobs: specs, now: now)
        #expect(outcome == .accepted(added: specs.map(\.key), unchanged: []))
        await engine.enqueue(specs, createdAt: now)
    }

    /// Waits (up to `timeout` seconds, checking every few milliseconds) until the job is in `state`; fails early
    /// when it ends in another terminal state. The limit is generous: alone these runs take well under a second,
    /// but in the whole suite CPU-bound tests (fuzzing, simulations) can hold the 2-thread cooperative pool the
    /// engine runs on for a minute on a loaded machine.
    @discardableResult
    func waitFor(_ key: JobKey, _ state: JobState, timeout: Double = 120) async throws -> JobRow {
        try await eventually("\(key) \(state.rawValue)", timeout: timeout) {
            guard let row = try await store.job(key) else { return nil }
            if row.state == state { return row }
            if row.state.isTerminal {
                throw RigError.unexpected(
                    "\(key) ended \(row.state.rawValue) (\(row.reason ?? "no reason")), not \(state.rawValue)")
            }
            return nil
        }
    }

    /// Polls `probe` until it answers, at most `timeout` seconds.
    func eventually<T>(_ what: String, timeout: Double = 120,
                       _ probe: () async throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(timeout)
        repeat {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(5))
        } while ContinuousClock.now < deadline
        throw RigError.unexpected("timed out after \(timeout) s waiting for \(what)")
    }

    /// Waits until the batch folder holds `batch.json` (the batch-end handler wrote it).
    func waitForBatchFile(_ batch: String) async throws {
        let file = try tree.batchDirectory(batch) + "/batch.json"
        _ = try await eventually(file) { FileManager.default.fileExists(atPath: file) ? true : nil }
    }

    /// The job's state changes as `from>to`.
    func path(_ key: JobKey) async throws -> [String] {
        try await store.transitions(of: key).map { "\($0.from?.rawValue ?? "-")>\($0.to.rawValue)" }
    }
}

enum RigError: Error, CustomStringConvertible {
    case unexpected(String)
    var description: String {
        switch self { case .unexpected(let m): m }
    }
}

/// The result file every scripted download delivers: a real H.264 clip made once with ffmpeg, kept in a fixed
/// directory under the temp dir (ffmpeg's test source is deterministic) and reused by later runs.
actor ResultClip {
    static let shared = ResultClip()
    private var made: String?

    func path() async throws -> String {
        if let made { return made }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-engine-test-clips-v1").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/1280x720-2s-audio.mp4"
        if !FileManager.default.fileExists(atPath: path) {
            try await FFmpeg.renderClip(size: FrameSize(width: 1280, height: 720), seconds: 2, audio: true, to: path)
        }
        made = path
        return path
    }
}
