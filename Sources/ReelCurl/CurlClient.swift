import Dispatch
import Foundation
import ReelPosix
import Synchronization

/// Set from a task-cancellation handler, read by libcurl's progress callback, which then aborts the transfer.
/// A flag with a `parent` counts as cancelled when its parent is (the client's shutdown cancels every transfer).
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    private let parent: CancelFlag?
    init(parent: CancelFlag? = nil) { self.parent = parent }
    var isCancelled: Bool { flag.load(ordering: .relaxed) || parent?.isCancelled == true }
    func cancel() { flag.store(true, ordering: .relaxed) }
}

/// An HTTP client over libcurl. Transfers run on `threads` dedicated threads with reused easy handles (so
/// repeated calls to one host reuse the connection). Cancelling the calling task aborts its transfer.
public final class CurlClient: Sendable {
    /// The transfer threads, each owning one curl easy handle: blocking `curl_easy_perform` runs there, never on
    /// Swift's cooperative pool (2 threads on this machine) and never on an unbounded Dispatch queue.
    private let pool: WorkerThreads<EasyHandle>
    /// Parent of every transfer's cancel flag: `shutdown()` aborts them all.
    private let closing = CancelFlag()
    public let userAgent: String

    /// - Parameters:
    ///   - threads: how many transfers can run at once; further calls wait in a queue.
    ///   - userAgent: sent as `User-Agent` on every request.
    public init(threads: Int = 4, userAgent: String = "reel/1") {
        pool = WorkerThreads(threads: threads, name: "reel-curl") { EasyHandle() }
        self.userAgent = userAgent
    }

    deinit { pool.close() }

    /// Aborts every transfer (each ends within about a second: libcurl's progress callback sees the flag), fails
    /// calls still queued or made later with `CancellationError`, and returns once every transfer thread has
    /// freed its handle and exited. Call before the process exits: a thread still inside libcurl when `exit`
    /// runs the TLS library's cleanup handlers can crash the process.
    public func shutdown() {
        closing.cancel()
        pool.closeAndJoin()
    }

    /// Sends `spec` and returns the whole answer, whatever its status.
    /// - Throws: `TransportError` when no complete answer came; `CancellationError` when the task was cancelled.
    public func perform(_ spec: HTTPRequestSpec) async throws -> HTTPResult {
        try await perform(spec, beforeSend: nil)
    }

    /// `perform(_:)` that first awaits `beforeSend` once a transfer thread has been assigned, right before the
    /// request goes out; if it throws, nothing is sent and its error is rethrown. A caller that must record an
    /// intent durably before a non-idempotent request (the daemon's write-ahead create) does it here, so a
    /// crash while the call still waited for a free thread leaves no doubt about whether it was sent.
    public func perform(_ spec: HTTPRequestSpec,
                        beforeSend: (@Sendable () async throws -> Void)?) async throws -> HTTPResult {
        let userAgent = userAgent
        return try await run(beforeSend: beforeSend) { easy, cancel in
            Curl.perform(spec, userAgent: userAgent, on: easy, cancel: cancel)
        }
    }

    /// Streams the body of `spec` (usually a GET) into the file at `path`, never holding it in memory. When the
    /// file already has bytes, asks for the rest with `Range: bytes=N-`; a server that ignores the Range (200) gets
    /// the file truncated and rewritten. Returns whenever the server answered (check `isComplete`).
    /// - Throws: `TransportError` when no answer came at all (or the file cannot be opened);
    ///   `CancellationError` when the task was cancelled (the bytes received stay in the file).
    public func download(_ spec: HTTPRequestSpec, to path: String) async throws -> DownloadOutcome {
        let userAgent = userAgent
        return try await run { easy, cancel in
            Curl.download(spec, to: path, userAgent: userAgent, on: easy, cancel: cancel)
        }
    }

    /// `download(_:to:)` of a GET with redirects followed and a stall limit (under 1 KiB/s for 30 s aborts).
    public func download(url: String, to path: String, headers: [HTTPHeader] = [], timeout: Double = 1800,
                         connectTimeout: Double = 10) async throws -> DownloadOutcome {
        try await download(HTTPRequestSpec(url: url, headers: headers, timeout: timeout, connectTimeout: connectTimeout,
                                           lowSpeed: LowSpeedLimit(bytesPerSecond: 1024, seconds: 30),
                                           followRedirects: true),
                           to: path)
    }

    private func run<T: Sendable>(
        beforeSend: (@Sendable () async throws -> Void)? = nil,
        _ body: @escaping @Sendable (EasyHandle, CancelFlag) -> Result<T, any Error>
    ) async throws -> T {
        let cancel = CancelFlag(parent: closing)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                pool.submit({ easy in
                    if cancel.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else if let beforeSend, let refusal = Self.waitFor(beforeSend) {
                        continuation.resume(throwing: refusal)
                    } else {
                        continuation.resume(with: body(easy, cancel))
                    }
                }, refused: { continuation.resume(throwing: CancellationError()) })
            }
        } onCancel: {
            cancel.cancel()
        }
    }

    /// Runs `work` as a task and parks the calling transfer thread (a dedicated thread, never one of the
    /// cooperative pool's) until it is done. Returns the error it threw, if any.
    private static func waitFor(_ work: @escaping @Sendable () async throws -> Void) -> (any Error)? {
        let done = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        Task {
            do { try await work() } catch { failure.withLock { $0 = error } }
            done.signal()
        }
        done.wait()
        return failure.withLock { $0 }
    }
}
