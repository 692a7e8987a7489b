import Glibc
import Logging
import ReelPosix
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 server on SwiftNIO: TCP, a Unix socket, or a socket handed over by systemd.
/// Keep-alive, bodies collected up to `maxBodyBytes` (413 beyond), one handler for every request. `limits` caps the
/// connections held and closes idle and slow clients. A response that ends its connection is written out to the
/// socket completely before the connection is closed.
public struct HTTPServer: Sendable {
    /// Where to listen.
    public enum Binding: Sendable, Hashable {
        /// Port 0 picks a free port; `onBound` reports the real one.
        case tcp(host: String, port: Int)
        /// The path is replaced if a stale socket is there, chmod'ed to `mode` after bind, removed on close.
        case unixSocket(path: String, mode: mode_t = 0o660)
        /// An already bound and listening socket (systemd socket activation: fd 3).
        case adoptedSocket(fd: Int32)
    }

    public typealias Handler = @Sendable (HTTPRequest) async -> HTTPResponse

    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let logger: Logger
    let maxBodyBytes: Int
    let limits: Limits
    let handler: Handler

    public init(logger: Logger, maxBodyBytes: Int = 16 << 20, limits: Limits = Limits(), handler: @escaping Handler) {
        self.logger = logger
        self.maxBodyBytes = maxBodyBytes
        self.limits = limits
        self.handler = handler
    }

    /// Binds, calls `onBound` with the address (`http://HOST:PORT` for TCP, `unix:PATH` for a Unix socket, the
    /// local address for an adopted socket), then serves until the calling task is cancelled; returns normally then.
    public func run(on binding: Binding, onBound: @Sendable (String) -> Void = { _ in }) async throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
        let gate = ConnectionGate(limit: limits.maxConnections)
        let (limits, logger) = (self.limits, self.logger)
        let initializer: @Sendable (any Channel) -> EventLoopFuture<(Connection, PeerCredentials?)> = { channel in
            guard gate.admit(channel) else {
                logger.warning("http connection refused: connection limit reached",
                               metadata: ["limit": "\(limits.maxConnections)"])
                channel.close(promise: nil)
                return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            channel.closeFuture.whenComplete { _ in gate.remove(channel) }
            return peerCredentials(of: channel).flatMapThrowing { peer in
                let watch = ConnectionWatch(limits: limits, gate: gate, logger: logger)
                let pipeline = channel.pipeline.syncOperations
                try pipeline.addHandler(watch.rawSide, position: .first)
                try pipeline.configureHTTPServerPipeline(withErrorHandling: true)
                try pipeline.addHandler(watch.messageSide)
                return (try Connection(wrappingChannelSynchronously: channel), peer)
            }
        }
        let server: NIOAsyncChannel<(Connection, PeerCredentials?), Never>
        let address: String
        switch binding {
        case .tcp(let host, let port):
            server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
            let bound = server.channel.localAddress?.port ?? port
            address = "http://\(host.contains(":") ? "[\(host)]" : host):\(bound)"
        case .unixSocket(let path, let mode):
            server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true,
                                              childChannelInitializer: initializer)
            do throws(PosixError) {
                try Posix.chmod(path, mode)
            } catch {
                try? await server.channel.close()  // the chmod's failure is the one to report
                throw IOError(errnoCode: error.code, reason: "chmod \(path)")
            }
            address = "unix:\(path)"
        case .adoptedSocket(let fd):
            server = try await bootstrap.bind(fd, childChannelInitializer: initializer)
            address = server.channel.localAddress.map { "\($0)" } ?? "fd:\(fd)"
        }
        logger.debug("http server listening", metadata: ["address": "\(address)"])
        onBound(address)
        let serverChannel = server.channel
        do {
            try await withTaskCancellationHandler {
                try await withThrowingDiscardingTaskGroup { group in
                    try await server.executeThenClose { inbound in
                        for try await (connection, peer) in inbound {
                            group.addTask { await serve(connection, peer: peer) }
                        }
                    }
                }
            } onCancel: {
                serverChannel.close(promise: nil)
            }
        } catch where Task.isCancelled {
            return   // cancellation is the normal way to stop
        }
    }

    private func serve(_ connection: Connection, peer: PeerCredentials?) async {
        let channel = connection.channel
        do {
            try await withTaskCancellationHandler {
                try await connection.executeThenClose { inbound, outbound in
                    var parts = inbound.makeAsyncIterator()
                    while let part = try await parts.next() {
                        guard case .head(let head) = part else { continue }
                        if head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .continue)))
                        }
                        var body = channel.allocator.buffer(capacity: 0)
                        var tooLarge = false
                        collect: while let next = try await parts.next() {
                            switch next {
                            case .body(var chunk):
                                if body.readableBytes + chunk.readableBytes > maxBodyBytes {
                                    tooLarge = true
                                } else {
                                    body.writeBuffer(&chunk)
                                }
                            case .end:
                                break collect
                            case .head:
                                return
                            }
                        }
                        if tooLarge {
                            var r = HTTPResponse.text("request body larger than \(maxBodyBytes) bytes\n",
                                                      status: .payloadTooLarge)
                            r.headers.replaceOrAdd(name: "Connection", value: "close")
                            _ = try await write(r, for: head, keepAlive: false, to: outbound, channel: channel)
                            return
                        }
                        let request = HTTPRequest(method: head.method, uri: head.uri, headers: head.headers,
                                                  body: body, peer: peer)
                        let response = await handler(request)
                        if response.resetsConnection {
                            try? await resetConnection(channel)
                            return
                        }
                        let keepAlive = head.isKeepAlive
                            && !response.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
                        let closes = try await write(response, for: head, keepAlive: keepAlive, to: outbound,
                                                     channel: channel)
                        if closes { return }
                    }
                }
            } onCancel: {
                channel.close(promise: nil)
            }
        } catch {
            logger.trace("connection closed", metadata: ["error": "\(error)"])
        }
    }

    /// Writes `response`; returns true when the connection must close after it. Such a response's last part is
    /// written with a promise and awaited, so every byte is on the socket before the caller's return closes it
    /// (closing drops writes still queued in the channel).
    private func write(_ response: HTTPResponse, for head: HTTPRequestHead, keepAlive: Bool,
                       to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
                       channel: any Channel) async throws -> Bool {
        var headers = response.headers
        var streamsToClose = false
        if case .bytes(let buffer) = response.body, !headers.contains(name: "content-length") {
            headers.add(name: "Content-Length", value: "\(buffer.readableBytes)")
        }
        if case .stream = response.body, !headers.contains(name: "content-length"), head.version.minor == 0 {
            streamsToClose = true
        }
        let closes = !keepAlive || streamsToClose
        if closes {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if head.version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        let responseHead = HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: response.status,
                                                                         headers: headers))
        switch response.body {
        case .bytes(let buffer):
            // Head, body and end in one write: one hop to the event loop and one flush per response.
            var parts = [responseHead]
            if head.method != .HEAD, buffer.readableBytes > 0 { parts.append(.body(.byteBuffer(buffer))) }
            if !closes { parts.append(.end(nil)) }
            try await outbound.write(contentsOf: parts)
        case .stream(let produce):
            try await outbound.write(responseHead)
            if head.method != .HEAD {
                try await produce(HTTPBodyWriter { try await outbound.write(.body(.byteBuffer($0))) })
            }
            if !closes { try await outbound.write(.end(nil)) }
        }
        if closes {
            // Queued behind everything the writer handed to the channel; succeeds once all of it is written.
            try await channel.writeAndFlush(HTTPServerResponsePart.end(nil)).get()
        }
        return closes
    }
}

/// Closes with SO_LINGER 0, so the peer gets a TCP RST instead of a FIN.
private func resetConnection(_ channel: any Channel) async throws {
    if let provider = channel as? any SocketOptionProvider {
        try await provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
    }
    try await channel.close()
}

/// SO_PEERCRED of a Unix-socket connection; nil on TCP.
private func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
    guard case .unixDomainSocket = channel.localAddress, let provider = channel as? any SocketOptionProvider else {
        return channel.eventLoop.makeSucceededFuture(nil)
    }
    return readPeerCred(provider).map { cred -> PeerCredentials? in
        PeerCredentials(pid: cred.pid, uid: cred.uid, gid: cred.gid)
    }.recover { _ in nil }
}

/// Glibc's `struct ucred` (only imported with _GNU_SOURCE): same layout, pid_t/uid_t/gid_t.
private struct RawUcred: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

// Kept non-public and non-inlinable as NIO asks for raw socket-option reads (SocketOptionProvider.swift).
private func readPeerCred(_ provider: any SocketOptionProvider) -> EventLoopFuture<RawUcred> {
    provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
}
