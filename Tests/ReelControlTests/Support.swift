import Foundation
import ReelTestKit
import Testing

/// A manifest of `count` cheap jobs (`PREFIX-00000`…), each with a remote reference so nothing is probed.
func manifest(batch: String, count: Int, prefix: String = "j", start: Int = 0) -> String {
    let jobs = (start..<(start + count)).map { i in
        let id = prefix + "-" + String(i).leftPadded(to: 5)
        return #"{"id":"\#(id)","prompt":"character1 waves","references":[{"url":"https://cdn.example.com/a.png"}]}"#
    }
    return """
        {"manifest_version":1,"batch":"\(batch)","defaults":{"model":"wan2.6-r2v-flash","resolution":"720p","aspect_ratio":"16:9","duration_s":2},
        "jobs":[\(jobs.joined(separator: ",\n"))]}
        """
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// A reeld that has been told to pause (persisted) before anything is dropped, so jobs stay `queued`.
func pausedDaemon(providerURL: String, extraConfig: String = ReeldProcess.fastConfig) async throws -> ReeldProcess {
    let reeld = try ReeldProcess(providerURL: providerURL, extraConfig: extraConfig)
    try await reeld.start()
    let r = try await reeld.post("/v1/pause")
    #expect(r.status == 200, "pause: \(r.text)")
    return reeld
}

extension TestHTTPResponse {
    /// `error.code` of an error body.
    var errorCode: String? { ((try? json())?["error"] as? [String: Any])?["code"] as? String }
}

struct RunResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `command` with bash to completion (stdout and stderr captured, stdin empty).
func sh(_ command: String, environment: [String: String] = [:], timeout: Double = 60) async throws -> RunResult {
    let r = try await Child.run("/bin/bash", ["-c", command], environment: Child.inheritedEnvironment(adding: environment),
                                timeout: timeout)
    return RunResult(status: r.status, stdout: r.stdoutText, stderr: r.stderrText)
}

/// ``sh(_:environment:timeout:)`` for `defer` blocks: blocks the calling thread until bash exits.
func shBlocking(_ command: String, timeout: Double = 60) throws -> RunResult {
    let child = try Child("/bin/bash", ["-c", command], stdout: .capture, stderr: .capture)
    let t = child.waitBlocking(timeout: timeout) ?? child.killAndReap()
    return RunResult(status: t.status, stdout: String(decoding: child.stdoutAtEOF(), as: UTF8.self),
                     stderr: String(decoding: child.stderrAtEOF(), as: UTF8.self))
}

/// The built binaries' folder (for shell commands that run `reelctl`).
var binDir: String {
    (SandboxProcess.binaryPath(named: "reelctl").map { ($0 as NSString).deletingLastPathComponent })
        ?? repositoryRoot().appendingPathComponent(".build/debug").path
}

/// Shell-quotes one word.
func q(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
