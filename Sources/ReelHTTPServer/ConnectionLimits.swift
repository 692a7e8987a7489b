import Logging
import NIOCore
import NIOHTTP1
import Synchronization

extension HTTPServer {
    /// How many connections a server holds and how long it waits on a client.
    public struct Limits: Sendable, Hashable {
        /// Connections held at once. At the cap, a new connection takes the place of the one that has waited
        /// longest without a request; when every connection is busy, the new one is closed at once.
        public var maxConnections: Int
        /// A kept-alive connection with no request bytes for this long is closed.
        public var idleTimeout: Duration
        /// A request whose head and body are not complete this long after its first byte is closed (slowloris).
        public var requestTimeout: Duration

        public init(maxConnections: Int = 1024, idleTimeout: Duration = .seconds(60),
                    requestTimeout: Duration = .seconds(15)) {
            self.maxConnections = max(1, maxConnections)
            self.idleTimeout = idleTimeout
            self.requestTimeout = requestTimeout
        }
    }
}

/// The open connections of one server, and which of them wait for a request (those may be closed to admit a new
/// connection at the cap). Touched from every event loop, so behind a lock.
final class ConnectionGate: Sendable {
    private struct Entry {
        let channel: any Channel
        /// When the connection started to wait for a request; nil while a request is read or answered.
        var idleSince: NIODeadline?
    }

    let limit: Int
    private let entries = Mutex<[ObjectIdentifier: Entry]>([:])

    init(limit: Int) { self.limit = limit }

    var count: Int { entries.withLock { $0.count } }

    /// Registers `channel`, or returns false when the cap is reached and no held connection is idle. At the cap
    /// with an idle connection, that one (idle the longest) is closed and forgotten to make room.
    func admit(_ channel: any Channel) -> Bool {
        let outcome: (admitted: Bool, evicted: (any Channel)?) = entries.withLock { entries in
            var evicted: (any Channel)?
            if entries.count >= limit {
                guard let oldest = entries.filter({ $0.value.idleSince != nil })
                    .min(by: { $0.value.idleSince! < $1.value.idleSince! }) else { return (false, nil) }
                entries[oldest.key] = nil
                evicted = oldest.value.channel
            }
            entries[ObjectIdentifier(channel)] = Entry(channel: channel, idleSince: .now())
            return (true, evicted)
        }
        outcome.evicted?.close(promise: nil)
        return outcome.admitted
    }

    func remove(_ channel: any Channel) {
        _ = entries.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    func setIdle(_ channel: any Channel, _ idle: Bool) {
        entries.withLock { entries in
            entries[ObjectIdentifier(channel)]?.idleSince = idle ? .now() : nil
        }
    }
}

/// Where one connection is in its request cycle, and the timer that closes it when a client is too slow:
/// waiting for a request (idle timeout), reading one (request timeout, from its first byte), or answering one
/// (no limit: a handler may stream for as long as it likes). Lives on the connection's event loop; the two
/// handlers below feed it, one before the HTTP decoder (raw bytes) and one after it (request and response parts).
final class ConnectionWatch {
    private enum Phase { case idle, receiving, responding }

    private let limits: HTTPServer.Limits
    private let gate: ConnectionGate
    private let logger: Logger
    private var phase = Phase.idle
    /// Bytes of a further (pipelined) request arrived while one was being answered.
    private var pipelined = false
    private var timer: Scheduled<Void>?

    init(limits: HTTPServer.Limits, gate: ConnectionGate, logger: Logger) {
        self.limits = limits
        self.gate = gate
        self.logger = logger
    }

    var rawSide: RawBytesWatch { RawBytesWatch(self) }
    var messageSide: MessageWatch { MessageWatch(self) }

    fileprivate func started(_ channel: any Channel) { enterIdle(channel) }

    fileprivate func bytesArrived(_ channel: any Channel) {
        switch phase {
        case .idle: enterReceiving(channel)
        case .receiving: break
        case .responding: pipelined = true
        }
    }

    fileprivate func requestComplete() {
        phase = .responding
        timer?.cancel()
        timer = nil
    }

    fileprivate func responseComplete(_ channel: any Channel) {
        if pipelined {
            pipelined = false
            enterReceiving(channel)
        } else {
            enterIdle(channel)
        }
    }

    fileprivate func stopped() {
        timer?.cancel()
        timer = nil
    }

    private func enterIdle(_ channel: any Channel) {
        phase = .idle
        gate.setIdle(channel, true)
        arm(channel, after: limits.idleTimeout, "idle timeout")
    }

    private func enterReceiving(_ channel: any Channel) {
        phase = .receiving
        gate.setIdle(channel, false)
        arm(channel, after: limits.requestTimeout, "request timeout")
    }

    private func arm(_ channel: any Channel, after delay: Duration, _ reason: String) {
        timer?.cancel()
        let logger = self.logger
        timer = channel.eventLoop.scheduleTask(in: TimeAmount(delay)) {
            logger.debug("closing http connection", metadata: ["reason": "\(reason)"])
            channel.close(promise: nil)
        }
    }
}

/// First in the pipeline: sees every byte a client sends, so a request is timed from its first byte.
final class RawBytesWatch: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let watch: ConnectionWatch

    init(_ watch: ConnectionWatch) { self.watch = watch }

    func channelActive(context: ChannelHandlerContext) {
        watch.started(context.channel)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        watch.bytesArrived(context.channel)
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        watch.stopped()
        context.fireChannelInactive()
    }
}

/// After the HTTP decoder: a request's `.end` stops its timer, a response's `.end` starts the idle one.
final class MessageWatch: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let watch: ConnectionWatch

    init(_ watch: ConnectionWatch) { self.watch = watch }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { watch.requestComplete() }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { watch.responseComplete(context.channel) }
        context.write(data, promise: promise)
    }
}
