import Foundation
import Logging
import ReelCore
import ReelMedia
import ReelPosix
import ReelOutput
import ReelStore

// Delivery: download (resumable), verify (size, ffprobe QC), publish atomically with a sidecar; batch end.
extension Engine {
    /// Delivers a SUCCEEDED job's result: fetches, verifies and publishes as its lifecycle asks, and tells it how
    /// each step ended; the lifecycle decides what comes next (resume, refresh the URL, fetch again, wait for the
    /// output filesystem, give up).
    func deliver(_ key: JobKey) async {
        guard let row = await readStore("job \(key)", { try await store.job(key) }),
              [.downloading, .verifying].contains(row.state) else { return }
        defer { storageWaits[key] = nil }
        var life = lifecycle(row)
        var effects = life.handle(.deliveryStarted, now: clock.now())
        var partial: String?
        var expected: Int64?
        var digest: ContentDigest?
        while true {
            let steps = await execute(effects, for: key)
            guard !steps.refused, let step = steps.next.first else { return }
            let event: LifecycleEvent
            switch step {
            case .fetch:
                let fetched = await fetchResult(key, url: life.facts.videoURL ?? "")
                partial = fetched.partial ?? partial
                expected = fetched.expected
                digest = fetched.digest
                event = .fetched(fetched.outcome)
            case .verify:
                event = .verified(await verifyResult(key, row: row, partial: partial ?? "", expected: expected,
                                                     digest: digest))
            case .queryResult:
                event = .resultQueried(await queryResult(key, taskID: life.facts.taskID ?? ""))
            default:
                return
            }
            effects = life.handle(event, now: clock.now())
        }
    }

    /// One download of the result into the hidden partial file, with the digest of the bytes as they arrived.
    private func fetchResult(_ key: JobKey, url: String) async
        -> (outcome: FetchOutcome, partial: String?, expected: Int64?, digest: ContentDigest?) {
        let partial: String
        do {
            _ = try tree.prepare(key.batch)
            partial = try tree.partialPath(key)
        } catch let error as DeliveryError where error.isRetryable {
            return (.folderRefused(retryable: true, error: "\(error)"), nil, nil, nil)
        } catch {
            return (.folderRefused(retryable: false, error: "\(error)"), nil, nil, nil)
        }
        do {
            let result = try await api.download(url: url, to: partial)
            await recordExchange(key, result.exchange)
            guard result.isComplete else {
                return (.incomplete(storageTrouble: outputStorageTrouble(key, result.exchange), bytes: result.bytesOnDisk,
                                    expected: result.expectedBytes), partial, nil, nil)
            }
            return (.complete, partial, result.expectedBytes, result.digest)
        } catch let failure as ProviderFailure {
            await recordExchange(key, failure.exchange)
            if failure.exchange.httpStatus == 403 || failure.exchange.httpStatus == 404 {
                return (.urlRefused, partial, nil, nil)
            }
            return (.failed(storageTrouble: outputStorageTrouble(key, failure.exchange), error: "\(failure)"), partial,
                    nil, nil)
        } catch {
            return (.failed(storageTrouble: nil, error: "\(error)"), partial, nil, nil)
        }
    }

    /// Verifies the downloaded file (size, ffprobe QC, sha256), publishes it and writes its sidecar.
    private func verifyResult(_ key: JobKey, row: JobRow, partial: String, expected: Int64?,
                              digest: ContentDigest?) async -> VerifyOutcome {
        do {
            let delivered = try await Delivery(tree: tree).publish(key: key, spec: row.spec, partialPath: partial,
                                                                   expectedBytes: expected, digest: digest)
            try await writeSidecar(key, row: row, delivered: delivered)
            return .delivered(path: delivered.path, sha256: delivered.sha256, bytes: delivered.bytes, costUSD: row.costUSD)
        } catch DeliveryError.qcFailed(let summary, let problems) {
            return .qcFailed("result failed QC: \(problems.joined(separator: "; ")) (probe: \(summary))")
        } catch DeliveryError.sizeMismatch(let expected, let actual) {
            return .sizeMismatch(expected: expected, actual: actual)
        } catch let error as DeliveryError where error.isRetryable {
            // Storage trouble (disk full, read-only): nothing visible was left.
            return .storageRefused("\(error)")
        } catch {
            return .broken("\(error)")
        }
    }

    /// The result URL was refused: what the provider says of the task now.
    private func queryResult(_ key: JobKey, taskID: String) async -> ResultQuery {
        do {
            let (snapshot, exchange) = try await api.queryTask(taskID)
            await recordExchange(key, exchange)
            return .answered(snapshot.status, videoURL: snapshot.videoURL)
        } catch {
            return .failed("\(error)")
        }
    }

    /// Removes the hidden partial download of a delivery that ends without publishing.
    func discardPartial(_ key: JobKey) async {
        do {
            try await Delivery(tree: tree).discardPartial(key)
        } catch {
            logger.warning("cannot remove the partial download", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
    }

    /// Records that the output filesystem refused a write (full, read-only, failing, out of descriptors) — in
    /// `storageWaits` for status and metrics, in the job's `reason`, in the log — and pauses `seconds`.
    func waitForStorage(_ key: JobKey, _ what: String, _ error: String, seconds: Double) async {
        storageWaits[key] = error
        logger.error("\(what); will retry", metadata: ["job_id": "\(key)", "error": "\(error)",
                                                     "retry_in_s": "\(seconds)"])
        let reason = "\(JobLifecycle.storageReasonPrefix)\(what): \(error); next try in \(Self.seconds(seconds)) "
            + "(delivery resumes by itself once writes succeed)"
        await setDeliveryReason(key, reason)
        try? await Task.sleep(for: .seconds(seconds))
    }

    /// The output filesystem took a whole download after refusing writes: the job's storage wait is over.
    func storageAcceptsWrites(_ key: JobKey) async {
        if storageWaits.removeValue(forKey: key) != nil {
            logger.notice("the output filesystem accepts writes again", metadata: ["job_id": "\(key)"])
        }
        await setDeliveryReason(key, nil)
    }

    /// Sets the `reason` of a job in delivery, for `reelctl show` and the event stream.
    private func setDeliveryReason(_ key: JobKey, _ reason: String?) async {
        let changed = await durably("record a delivery reason", job: key) {
            try await store.update(key, ifIn: [.downloading, .verifying], now: clock.now()) { $0.reason = reason }
        }
        if changed == true { publish(.jobsChanged([key])) }
    }

    /// `0.5 s`, `2 s`, `60 s`.
    private static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : String(format: "%.1f s", s)
    }

    /// How many deliveries wait for the output filesystem, and the text of one refusal (the same one while the
    /// set of waiting jobs is unchanged).
    public func storageWaiting() -> (jobs: Int, detail: String?) {
        (storageWaits.count, storageWaits.values.sorted().first)
    }

    /// Why a download stopped on our side: the output filesystem refused the bytes (full, read-only, out of
    /// descriptors), as the transfer reported or as the filesystem says now, with the folder concerned. nil when
    /// the trouble was the network or the server.
    private func outputStorageTrouble(_ key: JobKey, _ exchange: Exchange) -> String? {
        guard let dir = try? tree.batchDirectory(key.batch) else { return nil }
        if let text = exchange.transportError, text.contains("write to file failed") || text.contains("cannot open") {
            return text.contains(dir) ? text : "\(text) (\(dir))"
        }
        // A filesystem that cannot be examined says nothing either way: the transfer's own error stands.
        guard let refusal = (try? Posix.filesystem(at: dir))?.writeRefusal else { return nil }
        return "\(refusal.reason) (\(dir))"
    }

    /// Writes the delivered file's sidecar (its spec, provider tasks, attempts, timings, usage and pricing).
    private func writeSidecar(_ key: JobKey, row: JobRow, delivered: DeliveredFile) async throws {
        let now = clock.now()
        let attempts = (await readStore("the attempts of \(key)") { try await store.attempts(of: key) } ?? [])
            .map { Sidecar.AttemptRecord($0.exchange, at: $0.at) }
        let timings = Sidecar.Timings(queued: row.createdAt, submitted: row.submittedAt, started: nil,
                                      finished: row.stateChangedAt, downloaded: now, delivered: now)
        let sidecar = Sidecar(spec: row.spec, delivered: delivered, providerTaskIDs: row.taskIDs, attempts: attempts,
                              timings: timings, usage: row.usage, pricing: options.pricing)
        _ = try await Delivery(tree: tree).writeSidecar(sidecar)
    }

    /// When every job of a batch is terminal: batch.json, SHA256SUMS, the hook and the webhook.
    func checkBatchEnd(_ batch: String) async {
        guard let summary = await readStore("batch \(batch)", { try await store.batch(batch) }), summary.counts.total > 0,
              summary.counts.byState.allSatisfy({ $0.key.isTerminal || $0.value == 0 }) else { return }
        guard !completedBatches.contains(batch) else { return }
        completedBatches.insert(batch)
        var rows: [JobRow] = []
        var cursor: String?
        repeat {
            guard let page = await readStore("the jobs of batch \(batch)", {
                try await store.listJobs(batch: batch, limit: 1000, after: cursor)
            }) else { break }
            rows += page.rows
            cursor = page.nextCursor
        } while cursor != nil
        await batchEnd.batchEnded(batch, rows: rows, tree: tree, now: clock.now())
        publish(.batchCompleted(batch))
    }
}
