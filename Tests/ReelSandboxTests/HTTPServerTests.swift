import Foundation
import Glibc
import Logging
import NIOCore
import NIOHTTP1
import ReelHTTPServer
import ReelTestKit
import Testing

/// Runs an `HTTPServer` on `binding` for the duration of `body`, which gets the bound address.
func withHTTPServer(_ binding: HTTPServer.Binding, maxBodyBytes: Int = 1024, limits: HTTPServer.Limits = .init(),
                    handler: @escaping HTTPServer.Handler,
                    _ body: (String) async throws -> Void) async throws {
    let (addresses, continuation) = AsyncStream<String>.makeStream()
    let server = HTTPServer(logger: Logger(label: "test"), maxBodyBytes: maxBodyBytes, limits: limits, handler: handler)
    let task = Task {
        defer { continuation.finish() }
        try await server.run(on: binding) { continuation.yield($0) }
    }
    var iterator = addresses.makeAsyncIterator()
    guard let address = await iterator.next() else {
        _ = try await task.value
        Issue.record("server stopped before binding")
        return
    }
    do {
        try await body(address)
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
    task.cancel()
    _ = await task.result
}

struct EchoReply: Codable {
    var method: String
    var path: String
    var query: [String: String]
    var body: String
    var pid: Int32?
    var uid: UInt32?
}

let echo: HTTPServer.Handler = { request in
    switch request.path {
    case "/reset":
        return .reset
    case "/truncated":
        return HTTPResponse(headers: ["Content-Length": "100"], body: .stream { writer in
            try await writer.write("0123456789")
            throw HTTPAbort()
        })
    case "/big":
        return HTTPResponse(headers: ["Content-Type": "application/octet-stream"],
                            body: .bytes(ByteBuffer(bytes: bigBody)))
    case "/big-stream":
        return HTTPResponse(headers: ["Content-Length": "\(bigBody.count)"], body: .stream { writer in
            var offset = 0
            while offset < bigBody.count {
                try await writer.write(bigBody[offset..<min(offset + 256 << 10, bigBody.count)])
                offset += 256 << 10
            }
        })
    case "/chunked":
        return HTTPResponse(body: .stream { writer in
            for i in 0..<3 { try await writer.write("line \(i)\n") }
        })
    default:
        return .json(EchoReply(method: "\(request.method)", path: request.path, query: request.query,
                               body: String(decoding: request.bodyBytes, as: UTF8.self),
                               pid: request.peer?.pid, uid: request.peer?.uid))
    }
}

/// Larger than any socket buffer on the way, so a slow reader leaves most of it queued in the server.
let bigBody: [UInt8] = (0..<(6 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 12) }

func decodeEcho(_ r: TestHTTPResponse) throws -> EchoReply {
    try JSONDecoder().decode(EchoReply.self, from: Data(r.body))
}

@Suite struct HTTPServerTests {
    @Test func tcpKeepAliveQueryAndBody() async throws {
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), handler: echo) { address in
            #expect(address.hasPrefix("http://127.0.0.1:"))
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let replies = try await TestHTTP.exchange(endpoint, [
                TestHTTPRequest("GET", "/a%20b?x=1&y=two+words&z=%2F"),
                TestHTTPRequest("POST", "/post", json: #"{"k":1}"#),
                TestHTTPRequest("HEAD", "/head"),
                TestHTTPRequest("POST", "/continue", headers: ["Expect": "100-continue"], body: Array("abc".utf8)),
            ])
            #expect(replies.count == 4)
            #expect(try decodeEcho(replies[3]).body == "abc")   // a 100 Continue came first, then the reply
            let first = try decodeEcho(replies[0])
            #expect(first.path == "/a b")
            #expect(first.query == ["x": "1", "y": "two words", "z": "/"])
            #expect(first.pid == nil)
            #expect(replies[0].header("content-type") == "application/json")
            #expect(try decodeEcho(replies[1]).body == #"{"k":1}"#)
            #expect(replies[2].status == 200)
            #expect(replies[2].body.isEmpty)
            #expect(Int(replies[2].header("content-length") ?? "") ?? 0 > 0)
        }
    }

    @Test func bodyOverLimitGets413() async throws {
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), maxBodyBytes: 16, handler: echo) { address in
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let reply = try await TestHTTP.send(endpoint, TestHTTPRequest("POST", "/", body: Array(repeating: 65, count: 17)))
            #expect(reply.status == 413)
            let ok = try await TestHTTP.send(endpoint, TestHTTPRequest("POST", "/", body: Array(repeating: 65, count: 16)))
            #expect(ok.status == 200)
        }
    }

    @Test func streamsChunkedTruncatesAndResets() async throws {
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), handler: echo) { address in
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let chunked = try await TestHTTP.send(endpoint, TestHTTPRequest("GET", "/chunked"))
            #expect(chunked.complete)
            #expect(chunked.text == "line 0\nline 1\nline 2\n")
            #expect(chunked.header("transfer-encoding") == "chunked")

            let truncated = try await TestHTTP.send(endpoint, TestHTTPRequest("GET", "/truncated"))
            #expect(truncated.header("content-length") == "100")
            #expect(!truncated.complete)
            #expect(truncated.text == "0123456789")

            await #expect(throws: TestHTTPError.self) {
                _ = try await TestHTTP.send(endpoint, TestHTTPRequest("POST", "/reset", json: "{}"))
            }
        }
    }

    @Test func unixSocketReportsPeerAndMode() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("reel-http-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.sock").path
        try await withHTTPServer(.unixSocket(path: path, mode: 0o660), handler: echo) { address in
            #expect(address == "unix:\(path)")
            var st = stat()
            #expect(stat(path, &st) == 0)
            #expect(st.st_mode & 0o777 == 0o660)
            let reply = try await TestHTTP.send(.unix(path: path), TestHTTPRequest("GET", "/who"))
            let echoed = try decodeEcho(reply)
            #expect(echoed.pid == getpid())
            #expect(echoed.uid == getuid())
        }
    }

    @Test func adoptsAListeningSocket() async throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(fd, p, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, p, &len) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: addr.sin_port))
        try await withHTTPServer(.adoptedSocket(fd: fd), handler: echo) { _ in
            let reply = try await TestHTTP.send(.tcp(host: "127.0.0.1", port: port), TestHTTPRequest("GET", "/adopted"))
            #expect(try decodeEcho(reply).path == "/adopted")
        }
    }

    /// A client that sends `Connection: close` and reads slowly through a small receive buffer still gets every
    /// byte: the server closes only after the last write reached the socket.
    @Test(arguments: ["/big", "/big-stream"])
    func closingResponseIsFlushedToASlowReader(path: String) async throws {
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), handler: echo) { address in
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let raw = try await RawClient.onThread {
                let client = try RawClient(endpoint, receiveBuffer: 4096)
                try client.send("GET \(path) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                usleep(300_000)   // the server has written what fits and queued the rest
                return try client.readToEnd(chunk: 32 << 10, pause: 0.0005)
            }
            let reply = try TestHTTPResponse(raw: raw)
            #expect(reply.status == 200)
            #expect(reply.header("connection") == "close")
            #expect(reply.body.count == bigBody.count)
            let identical = reply.body == bigBody   // outside #expect: it would print both arrays on failure
            #expect(identical)
        }
    }

    /// A connection with no request bytes is closed after the idle timeout, also after a kept-alive exchange.
    @Test func idleConnectionsAreClosed() async throws {
        let limits = HTTPServer.Limits(idleTimeout: .milliseconds(300), requestTimeout: .seconds(30))
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), limits: limits, handler: echo) { address in
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let (fresh, afterReply) = try await RawClient.onThread {
                let fresh = try RawClient(endpoint)
                let used = try RawClient(endpoint)
                try used.send("GET /one HTTP/1.1\r\nHost: test\r\n\r\n")
                // Generous bounds: normally each returns after the 300 ms idle timeout; a loaded machine may lag.
                return (fresh.closedByPeer(within: 20), used.closedByPeer(within: 20))
            }
            #expect(fresh)
            #expect(afterReply)
        }
    }

    /// A request whose head trickles in (slowloris) is cut after the request timeout, long before the idle one.
    @Test func slowRequestsAreCut() async throws {
        let limits = HTTPServer.Limits(idleTimeout: .seconds(60), requestTimeout: .milliseconds(500))
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), limits: limits, handler: echo) { address in
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let (headCut, bodyCut) = try await RawClient.onThread {
                let head = try RawClient(endpoint)
                try head.send("GET /slow HTTP/1.1\r\nHost: test\r\n")
                usleep(200_000)
                try head.send("X-Slow: 1\r\n")
                let body = try RawClient(endpoint)
                try body.send("POST /slow HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\n01234")
                return (head.closedByPeer(within: 10), body.closedByPeer(within: 10))
            }
            #expect(headCut)
            #expect(bodyCut)
        }
    }

    /// At the connection cap a new connection replaces the longest-idle one, so a normal request is answered;
    /// when every held connection is mid-request, the new one is closed at once.
    @Test func connectionCapEvictsIdleThenRefuses() async throws {
        let limits = HTTPServer.Limits(maxConnections: 3, idleTimeout: .seconds(60), requestTimeout: .seconds(60))
        try await withHTTPServer(.tcp(host: "127.0.0.1", port: 0), limits: limits, handler: echo) { address in
            let endpoint = try #require(TestHTTP.Endpoint(url: address))
            let idle = try await RawClient.onThread { try (0..<3).map { _ in try RawClient(endpoint) } }
            try await Task.sleep(for: .milliseconds(100))
            let reply = try await TestHTTP.send(endpoint, TestHTTPRequest("GET", "/while-full"))
            #expect(try decodeEcho(reply).path == "/while-full")
            let evicted = try await RawClient.onThread { () -> Int in
                let deadline = Date().addingTimeInterval(5)
                while Date() < deadline {
                    let closed = idle.filter { $0.closedByPeer(within: 0.05) }.count
                    if closed > 0 { return closed }
                }
                return 0
            }
            #expect(evicted == 1)

            // Three connections mid-request (none idle): a fourth is closed without an answer.
            let busy = try await RawClient.onThread {
                try (0..<3).map { _ in
                    let c = try RawClient(endpoint)
                    try c.send("GET /busy HTTP/1.1\r\n")
                    return c
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            let refused = try await RawClient.onThread {
                let c = try RawClient(endpoint)
                return c.closedByPeer(within: 5)
            }
            #expect(refused)
            #expect(busy.count == 3)
        }
    }
}
