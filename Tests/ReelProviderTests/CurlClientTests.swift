import Foundation
import Glibc
import ReelCore
import ReelCurl
import ReelProvider
import ReelTestKit
import Testing

struct SocketError: Error {
    var errno: Int32
}

/// A one-connection HTTP server on a Unix socket: answers every request on it with `reply`, and hands back
/// the raw requests it read.
final class UnixSocketServer: Sendable {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(fd, 4) == 0 else { throw SocketError(errno: errno) }
        // accept() and read() give up after 30 s, so a failing test cannot hang on this server.
        var limit = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Accepts one connection on a thread of its own and answers `requests` requests on it.
    func serve(requests: Int, reply: String) async -> [String] {
        let fd = fd
        return await withCheckedContinuation { continuation in
            Thread {
                var seen: [String] = []
                let client = accept(fd, nil, nil)
                var limit = timeval(tv_sec: 30, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
                var buffer = [UInt8](repeating: 0, count: 65536)
                var pending = ""
                while seen.count < requests {
                    let n = read(client, &buffer, buffer.count)
                    if n <= 0 { break }
                    pending += String(decoding: buffer[..<n], as: UTF8.self)
                    while let end = pending.range(of: "\r\n\r\n") {
                        seen.append(String(pending[..<end.upperBound]))
                        pending = String(pending[end.upperBound...])
                        let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Multi: a\r\n"
                            + "X-Multi: b\r\nContent-Length: \(reply.utf8.count)\r\n\r\n\(reply)"
                        _ = response.withCString { write(client, $0, strlen($0)) }
                    }
                }
                close(client)
                continuation.resume(returning: seen)
            }.start()
        }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}

@Suite("CurlClient") struct CurlClientTests {
    let curl = CurlClient(threads: 2, userAgent: "reel-curl-tests")

    @Test func getOverAUnixSocketReusesTheConnection() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reel-\(UUID().uuidString.prefix(8)).sock").path
        let server = try UnixSocketServer(path: path)
        async let requests = server.serve(requests: 2, reply: #"{"status":"ok"}"#)
        let spec = HTTPRequestSpec(url: "http://reel/v1/status", headers: [HTTPHeader("X-Trace", "1")],
                                   timeout: 30, unixSocketPath: path)
        let curl = CurlClient(threads: 1)  // one handle, so the second request can reuse the first's connection
        let first = try await curl.perform(spec)
        let second = try await curl.perform(spec)
        let seen = await requests
        #expect(first.status == 200)
        #expect(first.bodyText == #"{"status":"ok"}"#)
        #expect(first.header("CONTENT-TYPE") == "application/json")
        #expect(first.headerValues("x-multi") == ["a", "b"])
        #expect(second.status == 200)
        // Both requests arrived on the one accepted connection (keep-alive through the reused handle).
        #expect(seen.count == 2)
        #expect(seen.first?.hasPrefix("GET /v1/status HTTP/1.1\r\n") == true)
        #expect(seen.first?.contains("X-Trace: 1\r\n") == true)
        #expect(seen.first?.contains("User-Agent: reel/1\r\n") == true)
    }

    /// What reeld does before it exits: a transfer that is waiting for an answer is aborted, later calls fail at
    /// once, and `shutdown` returns only once every transfer thread has returned (so none can be inside libcurl or
    /// OpenSSL while `exit` cleans them up): returning in seconds, not after the 60 s timeout, shows both.
    @Test func shutdownAbortsTransfersAndJoinsEveryThread() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reel-\(UUID().uuidString.prefix(8)).sock").path
        let server = try UnixSocketServer(path: path)  // listens, never accepts: the request waits for an answer
        let spec = HTTPRequestSpec(url: "http://reel/v1/status", timeout: 60, unixSocketPath: path)
        let curl = CurlClient(threads: 3)
        let waiting = Task { try await curl.perform(spec) }
        try await Task.sleep(for: .milliseconds(200))
        let started = ContinuousClock.now
        await Task.detached { curl.shutdown() }.value
        #expect(ContinuousClock.now - started < .seconds(10), "shutdown waited for the 60 s timeout")
        await #expect(throws: CancellationError.self) { _ = try await waiting.value }
        await #expect(throws: CancellationError.self) { _ = try await curl.perform(spec) }
        withExtendedLifetime(server) {}
    }

    @Test func connectRefusedIsNotSent() async throws {
        await #expect {
            _ = try await curl.perform(HTTPRequestSpec(method: "POST", url: "http://127.0.0.1:\(closedLocalPort())/x",
                                                       body: Array("{}".utf8)))
        } throws: { error in
            guard let error = error as? TransportError else { return false }
            return error.code == 7 && !error.requestSent
        }
    }

    @Test func headerInjectionIsRefusedBeforeSending() async throws {
        await #expect {
            _ = try await curl.perform(HTTPRequestSpec(url: "http://127.0.0.1:\(closedLocalPort())/",
                                                       headers: [HTTPHeader("X-A", "b\r\nX-Evil: 1")]))
        } throws: { error in
            (error as? TransportError).map { !$0.requestSent && $0.message.contains("line break") } ?? false
        }
    }

    @Test func cancellingTheTaskAbortsTheTransfer() async throws {
        try await ProviderHarness.with { h in
            // The sandbox holds this create for 5 real seconds; the task is cancelled long before. The
            // cancellation passes through DashScopeClient untouched (not a ProviderFailure).
            try await h.faults(#"[{"fault":"create_delay","seconds":5}]"#)
            let client = h.client
            let transfer = Task { try await client.createTask(ProviderHarness.request()) }
            try await Task.sleep(for: .milliseconds(100))
            transfer.cancel()
            await #expect(throws: CancellationError.self) { _ = try await transfer.value }
        }
    }

    @Test func responseBodyIsCapped() async throws {
        try await ProviderHarness.with { h in
            let task = try await h.client.createTask(ProviderHarness.request())
            let url = try #require(try await h.waitTerminal(task.taskID).videoURL)
            await #expect {
                _ = try await curl.perform(HTTPRequestSpec(url: url, maxResponseBytes: 1000))
            } throws: { error in
                (error as? TransportError).map { $0.code == 23 && $0.message.contains("larger than 1000") } ?? false
            }
        }
    }
}
