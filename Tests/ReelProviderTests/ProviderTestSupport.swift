import Foundation
import Glibc
import ReelCore
import ReelCurl
import ReelProvider
import ReelTestKit
import Testing

/// One real `reel-sandbox` process per test (faults are process-wide), a client for it, and a scratch directory.
struct ProviderHarness {
    static let key = "sk-reel-test-7f3a9c"
    /// Shared by every test: its threads and handles are meant to live as long as the process.
    static let curl = CurlClient(threads: 4, userAgent: "reel-tests")

    let sandbox: SandboxProcess
    let client: DashScopeClient
    let directory: String

    static func start(_ arguments: [String] = ["--time-scale", "1000", "--run-time", "1..2"],
                      key: String = ProviderHarness.key) async throws -> ProviderHarness {
        let sandbox = try await SandboxProcess.start(arguments)
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("reel-provider-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let client = DashScopeClient(baseURL: sandbox.url + "/", apiKey: key, curl: curl,
                                     timeouts: .init(connect: 5, api: 10, upload: 30, download: 30))
        return ProviderHarness(sandbox: sandbox, client: client, directory: directory)
    }

    func stop() {
        sandbox.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs `body` with a fresh harness and always tears it down.
    static func with(_ arguments: [String] = ["--time-scale", "1000", "--run-time", "1..2"],
                     key: String = ProviderHarness.key,
                     _ body: (ProviderHarness) async throws -> Void) async throws {
        let harness = try await start(arguments, key: key)
        defer { harness.stop() }
        try await body(harness)
    }

    static func request(prompt: String = "character1 waves at the camera", model: RenderModel = .r2v,
                        references: [String] = ["https://example.com/a.png"], duration: Int = 2,
                        seed: Int? = 42) -> RenderRequest {
        RenderRequest(model: model, prompt: prompt, negativePrompt: "blurry", referenceURLs: references,
                      size: FrameSize(width: 1280, height: 720), durationSeconds: duration, shotType: .single,
                      watermark: false, seed: seed)
    }

    /// Polls (50 ms apart, at most ~30 s) until the task is terminal.
    func waitTerminal(_ taskID: String) async throws -> TaskSnapshot {
        for _ in 0..<600 {
            let (snapshot, _) = try await client.queryTask(taskID)
            if snapshot.status.isTerminal { return snapshot }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("task \(taskID) never became terminal")
        throw CancellationError()
    }

    /// Sets the sandbox's fault rules (a JSON array).
    func faults(_ rules: String) async throws { try await sandbox.setFaults(rules) }

    func path(_ name: String) -> String { directory + "/" + name }
}

/// Runs `body` expecting a `ProviderFailure` and returns it.
func expectFailure(_ what: String, _ body: () async throws -> Void,
                   sourceLocation: SourceLocation = #_sourceLocation) async -> ProviderFailure? {
    do {
        try await body()
        Issue.record("\(what): expected a ProviderFailure, got success", sourceLocation: sourceLocation)
    } catch let failure as ProviderFailure {
        return failure
    } catch {
        Issue.record("\(what): expected a ProviderFailure, got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed).
func closedLocalPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            _ = bind(fd, $0, length)
            _ = getsockname(fd, $0, &length)
        }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
