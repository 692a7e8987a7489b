import Foundation
import Logging
import ReelCore
import ReelMedia
import ReelOutput
import ReelStore

// Delivery: download (resumable), verify (size, ffprobe QC), publish atomically with a sidecar; batch end.
extension Engine {
    func deliver(_ key: JobKey) async {
        guard var row = try? await store.job(key), [.downloading, .verifying].contains(row.state) else { return }
        var log = logger
        log[metadataKey: "job_id"] = "\(key)"
        if row.state == .verifying {
            _ = try? await store.transition(key, from: [.verifying], to: .downloading, cause: "restart: verify again", now: clock.now())
        }
        var qcFailures = 0
        var fetches = 0
        while fetches < options.downloadAttempts {
            fetches += 1
            guard let url = row.videoURL else {
                await finish(key, .failed, reason: "SUCCEEDED task without a result URL")
                return
            }
            let partial: String
            do {
                _ = try tree.prepare(key.batch)
                partial = try tree.partialPath(key)
            } catch {
                await finish(key, .failed, reason: "output path refused: \(error)")
                return
            }
            var expected: Int64?
            do {
                let result = try await api.download(url: url, to: partial)
                try? await store.recordAttempt(key, result.exchange, now: clock.now())
                guard result.isComplete else {
                    log.notice("download incomplete, resuming", metadata: ["bytes": "\(result.bytesOnDisk)",
                                                                             "expected": "\(result.expectedBytes ?? -1)"])
                    continue
                }
                expected = result.expectedBytes
            } catch let failure as ProviderFailure {
                try? await store.recordAttempt(key, failure.exchange, now: clock.now())
                if failure.exchange.httpStatus == 403 || failure.exchange.httpStatus == 404 {
                    if let fresh = await refreshResultURL(key, row: row) {
                        row = fresh
                        continue
                    }
                    return
                }
                log.notice("download failed, retrying", metadata: ["error": "\(failure)"])
                try? await Task.sleep(for: .seconds(min(30, Double(fetches * fetches))))
                continue
            } catch {
                log.notice("download failed, retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(min(30, Double(fetches * fetches))))
                continue
            }
            _ = try? await store.transition(key, from: [.downloading], to: .verifying, cause: "downloaded", now: clock.now())
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
                    await finish(key, .failed, reason: reason)
                    return
                }
                log.warning("result failed QC, downloading again once", metadata: ["reason": "\(reason)"])
                _ = try? await store.transition(key, from: [.verifying], to: .downloading, cause: reason, now: clock.now())
            } catch DeliveryError.sizeMismatch(let expected, let actual) {
                log.notice("download size mismatch, fetching again", metadata: ["expected": "\(expected)", "actual": "\(actual)"])
                _ = try? await store.transition(key, from: [.verifying], to: .downloading, cause: "size mismatch", now: clock.now())
            } catch let error as DeliveryError where error.isRetryable {
                // Storage trouble (disk full, read-only): nothing visible was left; retry after a pause.
                log.error("cannot write the result; will retry", metadata: ["error": "\(error)"])
                _ = try? await store.transition(key, from: [.verifying], to: .downloading, cause: "storage: \(error)", now: clock.now())
                fetches -= 1
                try? await Task.sleep(for: .seconds(30))
            } catch {
                await finish(key, .failed, reason: "delivery failed: \(error)")
                return
            }
        }
        await finish(key, .failed, reason: "download did not complete after \(options.downloadAttempts) attempts")
    }

    /// The result URL was refused: ask the provider again (a fresh URL while the task lives), else the job expired.
    private func refreshResultURL(_ key: JobKey, row: JobRow) async -> JobRow? {
        let now = clock.now()
        if let expires = row.urlExpiresAt, now > expires {
            await finish(key, .expired, reason: "the result's 24-hour window passed before it was downloaded: billed but lost")
            return nil
        }
        guard let taskID = row.taskID else { return nil }
        do {
            let (snapshot, exchange) = try await api.queryTask(taskID)
            try? await store.recordAttempt(key, exchange, now: clock.now())
            // A SUCCEEDED task's URL is worth another try even when it comes back unchanged (the provider signs it
            // once): the refusal may have been transient; the caller's attempt cap bounds the loop.
            if snapshot.status == .succeeded, let url = snapshot.videoURL {
                let cause = url == row.videoURL ? "result URL re-queried: unchanged, trying it again" : "fresh result URL"
                _ = try? await store.transition(key, from: [.downloading], to: .downloading, cause: cause,
                                          now: clock.now()) { $0.videoURL = url }
                return try? await store.job(key)
            }
            await finish(key, .expired, reason: "result URL expired (provider says \(snapshot.status.rawValue)); billed but lost")
        } catch {
            await finish(key, .expired, reason: "result URL expired and the task could not be queried again: \(error)")
        }
        return nil
    }

    private func complete(_ key: JobKey, row: JobRow, delivered: DeliveredFile) async throws {
        let now = clock.now()
        let cost = row.usage.flatMap { Cost.actual(usage: $0, spec: row.spec, pricing: options.pricing) }
        let attempts = ((try? await store.attempts(of: key)) ?? []).map { Sidecar.AttemptRecord($0.exchange, at: $0.at) }
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

    /// When every job of a batch is terminal: batch.json, SHA256SUMS, the hook and the webhook.
    func checkBatchEnd(_ batch: String) async {
        guard let summary = try? await store.batch(batch), summary.counts.total > 0,
              summary.counts.byState.allSatisfy({ $0.key.isTerminal || $0.value == 0 }) else { return }
        guard !completedBatches.contains(batch) else { return }
        completedBatches.insert(batch)
        var rows: [JobRow] = []
        var cursor: String?
        repeat {
            guard let page = try? await store.listJobs(batch: batch, limit: 1000, after: cursor) else { break }
            rows += page.rows
            cursor = page.nextCursor
        } while cursor != nil
        await batchEnd.batchEnded(batch, rows: rows, tree: tree, now: clock.now())
        publish(.batchCompleted(batch))
    }
}
