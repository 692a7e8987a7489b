import Foundation
import Glibc
import ReelTestKit
import Synchronization
import Testing

/// A server on a real Unix socket that reads each request head and then misbehaves in one chosen way.
final class MisbehavingServer: Sendable {
    enum Mode: String, CaseIterable, Sendable {
        /// Accepts and closes at once, before reading anything.
        case closeAtAccept
        /// Reads the request and closes without a byte.
        case emptyReply
        /// Reads the request and never answers.
        case silent
        /// Half a status head, then close.
        case partialHead
        /// Something that is not HTTP.
        case notHTTP
        /// `Content-Length: 100`, 12 bytes of body, close.
        case truncatedBody
        /// A complete 200 whose body is HTML.
        case nonJSON
        /// A complete 200 with an empty body.
        case emptyBody
        /// A complete chunked 200 whose NDJSON ends in the middle of a line.
        case ndjsonCutMidLine
        /// A chunked 200 whose connection closes in the middle of a chunk.
        case connectionCutMidChunk
        /// A 500 whose body is not an error object.
        case serverError
    }

    let path: String
    private let listener: Int32
    private let held = Mutex<[Int32]>([])

    init(_ mode: Mode, directory: String) throws {
        let path = directory + "/\(mode.rawValue).sock"
        let listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        self.path = path
        self.listener = listener
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
        guard ok, listen(listener, 16) == 0 else {
            throw TestHTTPError(description: "cannot listen on \(path): errno \(errno)", errno: errno)
        }
        Thread { [self] in
            while true {
                let fd = accept(listener, nil, nil)
                if fd < 0 {
                    if errno == EINTR { continue }
                    return   // the listener was shut down
                }
                serve(fd, mode)
            }
        }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for fd in held.withLock({ $0 }) { close(fd) }
        unlink(path)
    }

    private func serve(_ fd: Int32, _ mode: Mode) {
        if mode == .closeAtAccept { close(fd); return }
        readHead(fd)
        let json = "Content-Type: application/json\r\n"
        let answer: String
        switch mode {
        case .closeAtAccept, .emptyReply: answer = ""
        case .silent:
            held.withLock { $0.append(fd) }
            return
        case .partialHead: answer = "HTTP/1.1 200 OK\r\nContent-Ty"
        case .notHTTP: answer = "SSH-2.0-OpenSSH_9.2\r\n\r\n"
        case .truncatedBody: answer = "HTTP/1.1 200 OK\r\n\(json)Content-Length: 100\r\n\r\n{\"version\": "
        case .nonJSON: answer = "HTTP/1.1 200 OK\r\n\(json)Content-Length: 17\r\n\r\n<html>oops</html>"
        case .emptyBody: answer = "HTTP/1.1 200 OK\r\n\(json)Content-Length: 0\r\n\r\n"
        case .ndjsonCutMidLine:
            let body = "{\"job\":\"a/b\"}\n{\"job\":\"a/"
            answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                + String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n"
        case .connectionCutMidChunk:
            answer = "HTTP/1.1 200 OK\r\n\(json)Transfer-Encoding: chunked\r\n\r\n40\r\n{\"job\":\"a/b\"}\n{\"jo"
        case .serverError: answer = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nboom\n"
        }
        _ = Array(answer.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        close(fd)
    }

    /// Reads up to the blank line that ends a request head (requests from reelctl's reads carry no body).
    private func readHead(_ fd: Int32) {
        var seen: [UInt8] = []
        var byte: UInt8 = 0
        while recv(fd, &byte, 1, 0) == 1 {
            seen.append(byte)
            if seen.suffix(4) == Array("\r\n\r\n".utf8)[...] { return }
        }
    }
}

/// The built `reelctl` against a server that answers badly: every case ends with a message and exit 1 or 69,
/// never a crash, and nothing half-received is printed as if it were the answer.
@Suite struct ReelctlFaultTests {
    typealias Mode = MisbehavingServer.Mode

    /// What reelctl must exit with: 69 when no whole answer arrived, 1 when one did but it is wrong.
    static func expected(_ mode: Mode, _ arguments: [String]) -> Int32 {
        switch mode {
        case .closeAtAccept, .emptyReply, .silent, .partialHead, .notHTTP, .truncatedBody, .connectionCutMidChunk:
            return 69
        case .nonJSON, .ndjsonCutMidLine, .serverError:
            return 1
        case .emptyBody:
            return arguments.first == "jobs" ? 0 : 1   // an empty NDJSON listing is an empty queue
        }
    }

    @Test(arguments: Mode.allCases)
    func cleanErrorOnEveryBadAnswer(mode: Mode) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reelctl-fault-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try MisbehavingServer(mode, directory: dir.path)
        defer { server.stop() }
        for arguments in [["status"], ["status", "--json"], ["jobs", "--json"], ["show", "a/b"]] {
            let run = try await BinaryRun.launch("reelctl", arguments,
                                                 environment: ["REEL_SOCKET": server.path, "REELCTL_TIMEOUT": "1"],
                                                 timeout: 30)
            let want = Self.expected(mode, arguments)
            #expect(run.status == want, "\(mode) \(arguments): exit \(run.status), stderr: \(run.stderr)")
            if want != 0 {
                #expect(run.stderr.hasPrefix("reelctl: "), "\(mode) \(arguments): \(run.stderr)")
                #expect(run.stdout.isEmpty, "\(mode) \(arguments) printed: \(run.stdout)")
            }
        }
    }
}
