import Dispatch
import Glibc
import ReelPosix
import Synchronization

/// What the watcher tells the intake loop.
public enum SpoolHint: Sendable, Hashable {
    /// `incoming/NAME` was renamed in or closed after writing; read it now (it may already be gone).
    case file(String)
    /// `incoming/NAME`, a regular file, was created or written in place and not yet closed: its writer is still
    /// at work, so leave it until a `.file` hint (its close) or until it has been quiet for a long while.
    case writing(String)
    /// List the directory: at start, periodically, and whenever hints may have been lost.
    case rescan(RescanReason)
}

public enum RescanReason: String, Sendable, Hashable {
    /// The first hint, after the watch is in place: files that arrived before it are found this way.
    case startup
    /// The periodic timer (inotify misses writes made over NFS and by other hosts).
    case periodic
    /// The kernel's event queue overflowed (IN_Q_OVERFLOW): events were lost.
    case overflow
    /// The hint buffer was full, so hints were dropped.
    case hintsDropped
    /// `incoming/` was deleted, moved or unmounted: the watch is dead. Re-run `SpoolLayout.prepare()` and make a
    /// new watcher; periodic rescans continue meanwhile.
    case directoryGone
    /// `requestRescan(after:)`.
    case requested
}

/// Watches `incoming/` with inotify (IN_MOVED_TO, IN_CLOSE_WRITE, IN_CREATE, IN_MODIFY, IN_Q_OVERFLOW,
/// IN_DELETE_SELF, IN_MOVE_SELF) on a dedicated dispatch queue, never on the cooperative pool, and delivers
/// `hints`: `.rescan(.startup)` first, `.file(name)` for each `*.json` non-dotfile with a UTF-8 name that arrives,
/// `.writing(name)` for each such regular file created or modified in place, `.rescan(.periodic)` every
/// `rescanInterval`, and `.rescan` whenever hints may have been lost.
///
/// The stream holds at most `bufferLimit` hints; when a hint has to be dropped, a `.rescan(.hintsDropped)` is
/// delivered as soon as there is room. Keep the watcher alive while consuming: `cancel()`, deinit, or ending
/// the iteration stops it and finishes the stream.
public final class SpoolWatcher: Sendable {
    public let hints: AsyncStream<SpoolHint>
    // DispatchSource is thread-safe but not Sendable in corelibs-dispatch (toolchain §7 pitfall 7); these are
    // set up in init and afterwards only cancelled.
    nonisolated(unsafe) private let source: any DispatchSourceRead
    nonisolated(unsafe) private let timer: (any DispatchSourceTimer)?
    private let feed: HintFeed

    /// Starts watching `directory`. Throws if it cannot be watched (missing, not a directory, no inotify).
    public init(directory: String, rescanInterval: Duration? = .seconds(60), bufferLimit: Int = 16_384) throws {
        let fd = try spoolCall(hint: "raise fs.inotify.max_user_instances") { () throws(PosixError) in
            try Posix.retrying("inotify_init1", directory) { inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC)) }
        }
        let mask = UInt32(IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_MODIFY | IN_Q_OVERFLOW | IN_DELETE_SELF
                          | IN_MOVE_SELF | IN_ONLYDIR)
        do throws(PosixError) {
            try Posix.retrying("inotify_add_watch", directory) { inotify_add_watch(fd, directory, mask) }
        } catch {
            close(fd)
            throw SpoolError(error, hint: "create the spool first (SpoolLayout.prepare) or raise "
                                 + "fs.inotify.max_user_watches")
        }
        let queue = DispatchQueue(label: "reel.spool.watcher")
        let (stream, continuation) = AsyncStream.makeStream(of: SpoolHint.self,
                                                            bufferingPolicy: .bufferingOldest(max(1, bufferLimit)))
        let feed = HintFeed(continuation: continuation, queue: queue)
        hints = stream
        self.feed = feed

        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler {
            // ≥ sizeof(inotify_event) + NAME_MAX + 1
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 8)
            defer { buffer.deallocate() }
            while true {
                // EAGAIN: drained. Any other failure ends this round; the periodic rescan covers what it missed.
                guard let n = try? Posix.read(fd, into: buffer, path: directory), n > 0 else { break }
                for hint in Self.hints(parsing: UnsafeRawBufferPointer(rebasing: buffer[..<n]), directory: directory) {
                    feed.send(hint)
                }
            }
        }
        source.setCancelHandler {
            close(fd)
            continuation.finish()
        }
        self.source = source

        if let rescanInterval {
            let timer = DispatchSource.makeTimerSource(queue: queue)
            let interval = DispatchTimeInterval.nanoseconds(Int(rescanInterval / .nanoseconds(1)))
            timer.schedule(deadline: .now() + interval, repeating: interval,
                           leeway: .nanoseconds(Int(rescanInterval / .nanoseconds(10))))
            timer.setEventHandler { feed.send(.rescan(.periodic)) }
            self.timer = timer
        } else {
            timer = nil
        }
        nonisolated(unsafe) let sources: [any DispatchSourceProtocol] = [source] + (timer.map { [$0] } ?? [])
        continuation.onTermination = { _ in sources.forEach { $0.cancel() } }
        queue.async { feed.send(.rescan(.startup)) }  // after the watch exists: nothing falls between the two
        // Activate before anything can release the sources (releasing an inactive source crashes, pitfall 8).
        source.activate()
        timer?.activate()
    }

    deinit { cancel() }

    /// Delivers `.rescan(.requested)` after `delay` (e.g. when a scan skipped files as `.settling`).
    public func requestRescan(after delay: Duration = .zero) {
        feed.queue.asyncAfter(deadline: .now() + .nanoseconds(Int(delay / .nanoseconds(1)))) { [feed] in
            feed.send(.rescan(.requested))
        }
    }

    /// Stops watching: closes the inotify descriptor and finishes `hints`.
    public func cancel() {
        source.cancel()
        timer?.cancel()
    }

    /// Turns a buffer of `struct inotify_event` records into hints. Each record is a 16-byte header (wd, mask,
    /// cookie, len) followed by `len` bytes of NUL-padded name (`char name[]` is not imported into Swift).
    /// A truncated trailing record is ignored. A created entry counts as `.writing` only if `directory/NAME` is an
    /// empty regular file; with `directory` nil every created entry does.
    static func hints(parsing buffer: UnsafeRawBufferPointer) -> [SpoolHint] { hints(parsing: buffer, directory: nil) }

    static func hints(parsing buffer: UnsafeRawBufferPointer, directory: String?) -> [SpoolHint] {
        let header = MemoryLayout<inotify_event>.size
        var hints: [SpoolHint] = []
        var offset = 0
        while offset + header <= buffer.count {
            let event = buffer.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
            let end = offset + header + Int(event.len)
            guard end <= buffer.count else { break }
            let name = Array(buffer[(offset + header)..<end].prefix(while: { $0 != 0 }))
            offset = end
            if event.mask & UInt32(IN_Q_OVERFLOW) != 0 {
                hints.append(.rescan(.overflow))
            } else if event.mask & UInt32(IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT) != 0 {
                hints.append(.rescan(.directoryGone))
            } else if event.mask & UInt32(IN_MOVED_TO | IN_CLOSE_WRITE) != 0, SpoolName.isCandidate(name),
                      let string = SpoolName.decode(name) {
                hints.append(.file(string))
            } else if event.mask & UInt32(IN_MODIFY | IN_CREATE) != 0, event.mask & UInt32(IN_ISDIR) == 0,
                      SpoolName.isCandidate(name), let string = SpoolName.decode(name) {
                if event.mask & UInt32(IN_CREATE) != 0, let directory {
                    // Only an empty regular file is a writer's file just opened: a hard link (a writer publishing
                    // with link + unlink) arrives with its content and never gets IN_CLOSE_WRITE, and a FIFO,
                    // symlink or socket has no writer to wait for. Writes to it bring IN_MODIFY anyway.
                    var st = stat()
                    guard lstat(directory + "/" + string, &st) == 0, Posix.fileType(st) == S_IFREG, st.st_size == 0
                    else { continue }
                }
                // A burst of writes arrives as one IN_MODIFY per write: one hint per name per buffer is enough.
                if hints.last != .writing(string) { hints.append(.writing(string)) }
            }
        }
        return hints
    }
}

/// The continuation plus the "a rescan is owed" flag, shared by the watcher's handlers on its queue.
final class HintFeed: Sendable {
    let continuation: AsyncStream<SpoolHint>.Continuation
    let queue: DispatchQueue
    private let owed = Mutex(false)

    init(continuation: AsyncStream<SpoolHint>.Continuation, queue: DispatchQueue) {
        self.continuation = continuation
        self.queue = queue
    }

    /// Yields `hint`; if the buffer is full, owes a rescan instead, retried until there is room. While a rescan
    /// is owed, hints are not yielded (the rescan covers them).
    func send(_ hint: SpoolHint) {
        let wasOwed = owed.withLock { $0 }
        if wasOwed, !payOwedRescan() { return }
        if case .dropped = continuation.yield(hint) {
            owed.withLock { $0 = true }
            if !wasOwed { retryLater() }
        }
    }

    private func payOwedRescan() -> Bool {
        if case .dropped = continuation.yield(.rescan(.hintsDropped)) { return false }
        owed.withLock { $0 = false }
        return true
    }

    private func retryLater() {
        queue.asyncAfter(deadline: .now() + .milliseconds(20)) { [self] in
            if owed.withLock({ $0 }), !payOwedRescan() { retryLater() }
        }
    }
}
