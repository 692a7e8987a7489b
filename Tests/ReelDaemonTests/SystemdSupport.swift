import Foundation
import Glibc
import ReelTestKit
import Synchronization

/// A valid manifest of `count` jobs with remote references (nothing to upload or probe).
func systemdManifest(batch: String, count: Int, seconds: Int = 2) -> String {
    let jobs = (1...count).map { i in
        """
        {"id": "clip-\(i)", "prompt": "character1 waves at the camera, take \(i)",
         "references": [{"url": "https://cdn.example.com/anna-\(i).png"}]}
        """
    }
    return """
        {"manifest_version": 1, "batch": "\(batch)",
         "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": \(seconds)},
         "jobs": [\(jobs.joined(separator: ",\n"))]}
        """
}

/// Values observed from another thread (e.g. a NotifyCapture observer).
final class Observed<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ initial: Value) { value = Mutex(initial) }
    func update(_ body: @Sendable (inout Value) -> Void) { value.withLock { body(&$0) } }
    var current: Value { value.withLock { $0 } }
}

extension ReeldProcess {
    /// Sends `sig` to the running reeld without waiting.
    func send(_ sig: Int32) {
        if let pid { kill(pid, sig) }
    }

    /// Rewrites reel.toml through `transform` (in place: reeld re-reads the same path on SIGHUP).
    func editConfig(_ transform: (String) -> String) throws {
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
        try transform(text).write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// `provider.concurrency_limit` from `/v1/status`.
    func concurrencyLimit() async throws -> Int? {
        (try await status()["provider"] as? [String: Any])?["concurrency_limit"] as? Int
    }
}

/// A program started by a test outside ReeldProcess (under `systemd-socket-activate` or `unshare`), its output in
/// a log file, stopped and reaped on `stop` or deinit.
final class LaunchedProcess: Sendable {
    let child: Child
    let logPath: String
    var pid: Int32 { child.pid }

    /// Starts `executable` with the test's environment minus every variable systemd sets, plus `environment`;
    /// stdout and stderr go to `logPath` (opened for appending; an existing file is kept, its inode may matter).
    init(_ executable: String, _ arguments: [String], environment: [String: String], logPath: String) throws {
        self.logPath = logPath
        child = try Child(executable, arguments,
                          environment: Child.inheritedEnvironment(removing: ReeldProcess.systemdVariables,
                                                                  adding: environment),
                          stdout: .file(logPath), stderr: .file(logPath))
    }

    deinit { child.stopBlocking(signal: SIGTERM, grace: 5) }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Sends `sig`, waits up to `grace` seconds (then SIGKILL to its process group); returns the exit status (128+N
    /// for a signal) and how long the exit took.
    @discardableResult
    func stop(_ sig: Int32 = SIGTERM, grace: Double = 30) async -> (status: Int32, seconds: Double) {
        let started = NotifyCapture.monotonic()
        let t = await child.stop(signal: sig, grace: grace)
        return (t.status, NotifyCapture.monotonic() - started)
    }
}

/// Polls `condition` every 20 ms for up to `timeout` seconds.
func eventually(_ what: String, timeout: Double = 20, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TimedOut(description: "timed out after \(timeout) s waiting for \(what)")
}

struct TimedOut: Error, CustomStringConvertible { let description: String }

/// Every occurrence of `needle` in the files under `root` (recursively), as "path: N".
func filesContaining(_ needle: String, under root: String) -> [String] {
    let bytes = Array(needle.utf8)
    var hits: [String] = []
    guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
    for case let relative as String in walker {
        let path = root + "/" + relative
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
              let data = FileManager.default.contents(atPath: path) else { continue }
        if containsBytes(Array(data), bytes) { hits.append(path) }
    }
    return hits
}

func containsBytes(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    let first = needle[0]
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == first && haystack[i..<(i + needle.count)].elementsEqual(needle) { return true }
        i += 1
    }
    return false
}
