import Foundation
import Glibc
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

/// Reads a streaming response (SSE) from a Unix socket on a thread of its own until `until` holds or time runs out.
final class StreamReader: @unchecked Sendable {
    // @unchecked: `buffer` is guarded by `lock`; `fd` is set once in init and closed once in `close()`.
    private let lock = NSLock()
    private var buffer: [UInt8] = []
    private let fd: Int32

    init(socket path: String, request: String) throws {
        let sock = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        fd = sock
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(sock, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else { Glibc.close(sock); throw TestFailure("connect \(path): errno \(errno)") }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { Glibc.send(sock, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(sock, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                lock.withLock { buffer += chunk[0..<n] }
            }
        }.start()
    }

    var text: String { lock.withLock { String(decoding: buffer, as: UTF8.self) } }

    /// Waits (polling every 10 ms) until `until(text)` holds; returns the text so far either way.
    func wait(timeout: Double = 10, until: (String) -> Bool) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if until(text) { return text }
            try await Task.sleep(for: .milliseconds(10))
        }
        return text
    }

    func close() { shutdown(fd, Int32(SHUT_RDWR)); Glibc.close(fd) }
}

struct RunResult: Sendable {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `command` with bash to completion (stdout and stderr captured, stdin empty).
func sh(_ command: String, environment: [String: String] = [:], timeout: Double = 60) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/bash")
    p.arguments = ["-c", command]
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    final class Box: @unchecked Sendable { var data = Data() }  // written by one thread, read after `group.wait()`
    let o = Box(), e = Box()
    let group = DispatchGroup()
    group.enter(); group.enter()
    Thread { o.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }.start()
    Thread { e.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }.start()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(5_000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL) }
    p.waitUntilExit()
    group.wait()
    return RunResult(status: p.terminationStatus, stdout: String(decoding: o.data, as: UTF8.self),
                     stderr: String(decoding: e.data, as: UTF8.self))
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
