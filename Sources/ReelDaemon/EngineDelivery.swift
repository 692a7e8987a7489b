import Foundation
import Logging
import ReelCore
import ReelMedia
import ReelPosix
import ReelOutput
import ReelStore

// Delivery: download (resumable), verify (size, ffprobe QC), publish atomically with a sidecar; batch end.
extension Engine {
    func deliver(_ key: JobKey) async {
        guard var row = await readStore("job \(key)", { try await store.job(key) }),
              [.downloading, .verifying].contains(row.state) else { return }
        var log = logger
        log[metadataKey: "job_id"] = "\(key)"
        if row.state == .verifying {
            await record(key, to: .downloading, from: [.verifying], cause: "restart: verify again")
        }
        var qcFailures = 0
        var fetches = 0
        var storagePauses = 0
        var sameURLRetried = false
        defer { storageWaits[key] = nil }
        /// Set when the output filesystem refused a write (full, read-only, failing, out of descriptors).
        var stalled: (what: String, error: String)?
        while fetches < options.downloadAttempts || stalled != nil {
            if let refusal = stalled {
                // Not a failed fetch: the job says why while delivery waits, then tries again.
                stalled = nil
                fetches -= 1
                storagePauses += 1
                await waitForStorage(key, refusal.what, refusal.error, pause: storagePauses)
            }
            fetches += 1
            guard let url = row.videoURL else {
                await giveUp(key, .failed, reason: "SUCCEEDED task without a result URL")
                return
            }
            let partial: String
            do {
                _ = try tree.prepare(key.batch)
                partial = try tree.partialPath(key)
            } catch let error as DeliveryError where error.isRetryable {
                stalled = ("cannot create the batch folder", "\(error)")
                continue
            } catch {
                await giveUp(key, .failed, reason: "output path refused: \(error)")
                return
            }
            var expected: Int64?
            do {
                let result = try await api.download(url: url, to: partial)
                await recordExchange(key, result.exchange)
                guard result.isComplete else {
                    if let trouble = outputStorageTrouble(key, result.exchange) {
                        // The disk refused the bytes, not the network.
                        stalled = ("cannot write the download", trouble)
                        continue
                    }
                    log.notice("download incomplete, resuming", metadata: ["bytes": "\(result.bytesOnDisk)",
                                                                             "expected": "\(result.expectedBytes ?? -1)"])
                    continue
                }
                expected = result.expectedBytes
                await storageAcceptsWrites(key, row: row)
            } catch let failure as ProviderFailure {
                await recordExchange(key, failure.exchange)
                if failure.exchange.httpStatus == 403 || failure.exchange.httpStatus == 404 {
                    if let fresh = await refreshResultURL(key, row: row, acceptSameURL: !sameURLRetried) {
                        sameURLRetried = sameURLRetried || fresh.videoURL == row.videoURL
                        row = fresh
                        continue
                    }
                    return
                }
                if let trouble = outputStorageTrouble(key, failure.exchange) {
                    stalled = ("cannot write the download", trouble)
                    continue
                }
                log.notice("download failed, retrying", metadata: ["error": "\(failure)"])
                try? await Task.sleep(for: .seconds(retryPause(fetches)))
                continue
            } catch {
                log.notice("download failed, retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(retryPause(fetches)))
                continue
            }
            await record(key, to: .verifying, from: [.downloading], cause: "downloaded")
            publish(.jobsChanged([key]))
            do {
                let delivered = try await Delivery(tree: tree).publish(key: key, spec: row.spec, partialPath: partial,
                                                                       expectedBytes: expected)
                try await complete(key, row: row, delivered: delivered)
                return
            } catch DeliveryError.qcFailed(let summary, let problems) {
                qcFailures += 1
                let reason = "result failed QC: \(problems.joined(separator: "; ")) (probe: \(summary))"
                if qcFailures >= 2 {
                    await giveUp(key, .failed, reason: reason)
                    return
                }
                log.warning("result failed QC, downloading again once", metadata: ["reason": "\(reason)"])
                await record(key, to: .downloading, from: [.verifying], cause: reason)
            } catch DeliveryError.sizeMismatch(let expected, let actual) {
                log.notice("download size mismatch, fetching again", metadata: ["expected": "\(expected)", "actual": "\(actual)"])
                await record(key, to: .downloading, from: [.verifying], cause: "size mismatch")
            } catch let error as DeliveryError where error.isRetryable {
                // Storage trouble (disk full, read-only): nothing visible was left; retry after a pause.
                await record(key, to: .downloading, from: [.verifying], cause: "storage: \(error)")
                stalled = ("cannot write the result", "\(error)")
                continue
            } catch {
                await giveUp(key, .failed, reason: "delivery failed: \(error)")
                return
            }
        }
        await giveUp(key, .failed, reason: "download did not complete after \(options.downloadAttempts) attempts")
    }

    /// Ends a delivery without publishing: the hidden partial is removed first, then the terminal state recorded.
    /// In that order a crash in between leaves the job `downloading` (it is fetched again after the restart) rather
    /// than a terminal job with a `.<id>.mp4.part` nobody will ever clean up.
    private func giveUp(_ key: JobKey, _ state: JobState, reason: String) async {
        do {
            try await Delivery(tree: tree).discardPartial(key)
        } catch {
            logger.warning("cannot remove the partial download", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
        await finish(key, state, reason: reason)
    }

    /// Why delivery is waiting for the output filesystem starts with this, in the job's `reason`.
    static let storageReasonPrefix = "waiting for the output filesystem: "

    /// Records that the output filesystem refused a write (full, read-only, failing, out of descriptors) — in
    /// `storageWaits` for status and metrics, in the job's `reason`, in the log — and pauses before storage
    /// retry `pause`.
    private func waitForStorage(_ key: JobKey, _ what: String, _ error: String, pause: Int) async {
        let seconds = retryPause(pause)
        storageWaits[key] = error
        logger.error("\(what); will retry", metadata: ["job_id": "\(key)", "error": "\(error)",
                                                     "retry_in_s": "\(seconds)"])
        let reason = "\(Self.storageReasonPrefix)\(what): \(error); next try in \(Self.seconds(seconds)) "
            + "(delivery resumes by itself once writes succeed)"
        await setDeliveryReason(key, reason)
        try? await Task.sleep(for: .seconds(seconds))
    }

    /// The output filesystem took a whole download: the job's storage wait (if any) is over.
    private func storageAcceptsWrites(_ key: JobKey, row: JobRow) async {
        let waited = storageWaits.removeValue(forKey: key) != nil
        guard waited || row.reason?.hasPrefix(Self.storageReasonPrefix) == true else { return }
        if waited { logger.notice("the output filesystem accepts writes again", metadata: ["job_id": "\(key)"]) }
        await setDeliveryReason(key, nil)
    }

    /// Sets the `reason` of a job in delivery, for `reelctl show` and the event stream.
    private func setDeliveryReason(_ key: JobKey, _ reason: String?) async {
        do {
            try await store.update(key, ifIn: [.downloading, .verifying], now: clock.now()) { $0.reason = reason }
            publish(.jobsChanged([key]))
        } catch {
            logger.warning("cannot record the job's delivery reason", metadata: ["job_id": "\(key)", "error": "\(error)"])
        }
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

    /// The pause before delivery retry `n` (1-based): exponential from 1 s, capped at 60 s, both bounded by the
    /// `[retry]` delays (so a configuration that retries in milliseconds also delivers again in milliseconds).
    func retryPause(_ n: Int) -> Double {
        let limits = options.limits
        let first = min(1, limits.baseDelay)
        return min(60, limits.maxDelay, first * pow(2, Double(max(0, n - 1))))
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

    /// The result URL was refused: ask the provider again (a fresh URL while the task lives), else the job expired.
    /// The provider may answer with the same URL (a stable link whose window has not passed by our clock): that is
    /// tried once more when `acceptSameURL`, since a one-off 403 must not lose a paid render.
    private func refreshResultURL(_ key: JobKey, row: JobRow, acceptSameURL: Bool) async -> JobRow? {
        let now = clock.now()
        if let expires = row.urlExpiresAt, now > expires {
            await giveUp(key, .expired, reason: "the result's 24-hour window passed before it was downloaded: billed but lost")
            return nil
        }
        guard let taskID = row.taskID else { return nil }
        do {
            let (snapshot, exchange) = try await api.queryTask(taskID)
            await recordExchange(key, exchange)
            if snapshot.status == .succeeded, let url = snapshot.videoURL, url != row.videoURL || acceptSameURL {
                // Recorded either way, so the job's history shows why the download was tried again.
                let cause = url == row.videoURL
                    ? "result URL refused; re-queried: unchanged and inside its window, trying it once more"
                    : "result URL refused; re-queried: fresh result URL"
                await record(key, to: .downloading, from: [.downloading], cause: cause) { $0.videoURL = url }
                return await readStore("job \(key)") { try await store.job(key) }
            }
            let why = snapshot.status == .succeeded ? "refused again with the same URL" : "provider says \(snapshot.status.rawValue)"
            await giveUp(key, .expired, reason: "result URL expired (\(why)); billed but lost")
        } catch {
            await giveUp(key, .expired, reason: "result URL expired and the task could not be queried again: \(error); billed but lost")
        }
        return nil
    }

    private func complete(_ key: JobKey, row: JobRow, delivered: DeliveredFile) async throws {
        let now = clock.now()
        let cost = row.costUSD ?? billedCost(row.spec, usage: row.usage)  // recorded at SUCCEEDED; older rows lack it
        let attempts = (await readStore("the attempts of \(key)") { try await store.attempts(of: key) } ?? [])
            .map { Sidecar.AttemptRecord($0.exchange, at: $0.at) }
        let timings = Sidecar.Timings(queued: row.createdAt, submitted: row.submittedAt, started: nil,
                                      finished: row.stateChangedAt, downloaded: now, delivered: now)
        let sidecar = Sidecar(spec: row.spec, delivered: delivered, providerTaskIDs: row.taskIDs, attempts: attempts,
                              timings: timings, usage: row.usage, pricing: options.pricing)
        _ = try await Delivery(tree: tree).writeSidecar(sidecar)
        _ = try await store.transition(key, from: [.verifying], to: .succeeded, cause: "delivered", now: now) {
            $0.outputPath = delivered.path
            $0.outputSHA256 = delivered.sha256
            $0.resultBytes = delivered.bytes
            $0.costUSD = cost
            $0.reason = nil
        }
        logger.info("delivered", metadata: ["job_id": "\(key)", "path": "\(delivered.path)", "sha256": "\(delivered.sha256)"])
        publish(.jobsChanged([key]))
        handle(.released(key))
        await checkBatchEnd(key.batch)
    }

    /// What the job's SUCCEEDED task is billed (`Cost.billed`), recorded on the job as its `costUSD` when the
    /// success is seen, so spend and budgets count it whether or not the file is ever delivered.
    func billedCost(_ spec: JobSpec, usage: TaskUsage?) -> Double? {
        Cost.billed(usage: usage, spec: spec, pricing: options.pricing)
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
