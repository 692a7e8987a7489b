import Foundation
import ReelCore
import ReelOutput
import ReelStore

/// `GET /v1/metrics` in the Prometheus text exposition format.
enum Metrics {
    static func render(store: any JobStore, engine: Engine, now: Timestamp, startedAt: Timestamp) async throws -> String {
        let counts = try await store.counts()
        let s = await engine.schedulerSnapshot
        let limits = await engine.options.limits
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                out += "\(name)\(labels.isEmpty ? "" : "{\(labels)}") \(value.isFinite ? String(value) : "NaN")\n"
            }
        }
        var byStateModel: [(String, Double)] = []
        for state in JobState.allCases {
            for model in RenderModel.allCases {
                let n = counts.groups.filter { $0.state == state && $0.model == model }.reduce(0) { $0 + $1.jobs }
                byStateModel.append(("state=\"\(state.rawValue)\",model=\"\(model.rawValue)\"", Double(n)))
            }
        }
        metric("reel_jobs", "gauge", "Jobs by state and model.", byStateModel)
        metric("reel_slots_in_use", "gauge", "Render slots held (submitting, in doubt, pending, running).", [("", Double(s.slotsHeld))])
        metric("reel_concurrency_limit", "gauge", "Configured account concurrency (the pools' sum inside the overall cap).",
               [("", Double(limits.slotLimit))])
        metric("reel_concurrency_cap", "gauge", "Concurrency in force after adaptive throttling.", [("", Double(s.concurrencyCap))])
        let pools = s.pools.map { "model=\"\($0.key.model.rawValue)\"" }
        metric("reel_pool_concurrency_limit", "gauge", "Configured render slots of each model's pool.",
               Array(zip(pools, s.pools.map { Double($0.limits.concurrency) })))
        metric("reel_pool_concurrency_cap", "gauge", "Render slots of each model's pool in force after throttling.",
               Array(zip(pools, s.pools.map { Double($0.concurrencyCap) })))
        metric("reel_pool_slots_in_use", "gauge", "Render slots held per model's pool.",
               Array(zip(pools, s.pools.map { Double($0.slotsHeld) })))
        metric("reel_pool_throttles_total", "counter", "Throttled creates per model's pool since start.",
               Array(zip(pools, s.pools.map { Double($0.throttles) })))
        if let p50 = s.runTimeErrorP50, let p90 = s.runTimeErrorP90 {
            metric("reel_run_time_prediction_error_ratio", "gauge",
                   "|predicted - observed| / observed run time over the latest renders, by quantile.",
                   [("quantile=\"0.5\"", p50), ("quantile=\"0.9\"", p90)])
        }
        metric("reel_queued", "gauge", "Jobs waiting for a slot (scheduler view).", [("", Double(s.queued))])
        metric("reel_downloads_in_progress", "gauge", "Results being downloaded or verified.", [("", Double(s.downloading))])
        metric("reel_throttles_total", "counter", "Throttling answers from the provider since start.", [("", Double(s.throttleCount))])
        metric("reel_polls_total", "counter", "Status queries issued since start.", [("", Double(s.pollsIssued))])
        metric("reel_creates_total", "counter", "Create calls issued since start.", [("", Double(s.submitsIssued))])
        let breakerOpen: Double = if case .open = s.breaker { 1 } else { 0 }
        metric("reel_provider_breaker_open", "gauge", "1 while the provider breaker is open.", [("", breakerOpen)])
        metric("reel_account_blocked", "gauge", "1 while submission is stopped by an account error.", [("", s.accountBlock == nil ? 0 : 1)])
        metric("reel_task_list_polling", "gauge", "1 while task-list polling is on, 0 while it is off after failures.",
               [("", s.listPollingOffUntil.map { $0 > now ? 0 : 1 } ?? (limits.polling.useTaskList ? 1 : 0))])
        metric("reel_call_failures_in_row", "gauge", "Failed provider calls in a row, by call class.",
               [("call=\"list\"", Double(s.listFailuresInRow)), ("call=\"query\"", Double(s.queryFailuresInRow)),
                ("call=\"create\"", Double(s.breakerTrips))])
        metric("reel_in_doubt_awaiting_operator", "gauge", "In-doubt jobs reconciliation could not settle.",
               [("", Double(s.awaitingOperator))])
        metric("reel_tasks_unknown", "gauge", "Tasks answering UNKNOWN inside their 24-hour window, being re-queried.",
               [("", Double(s.unknownTasks))])
        metric("reel_state_store_refusing_writes", "gauge",
               "1 while the state store refuses writes (degraded: no new creates; work waits for its writes).",
               [("", s.storeTrouble == nil ? 0 : 1)])
        let health = SchedulerHealth(s, limits: limits, now: now)
        metric("reel_health_ok", "gauge", "1 while provider health is ok.", [("", health.health == "ok" ? 1 : 0)])
        metric("reel_spend_usd_total", "counter", "USD billed for renders whose task SUCCEEDED, delivered or not (from provider usage).",
               [("", Cost.rounded(counts.costUSD))])
        let undelivered = counts.billedNotDelivered
        metric("reel_billed_not_delivered_usd", "gauge", "USD billed for jobs that ended without a delivered file.",
               [("", Cost.rounded(undelivered.usd))])
        metric("reel_billed_not_delivered_jobs", "gauge", "Jobs billed that ended without a delivered file.",
               [("", Double(undelivered.jobs))])
        metric("reel_storage_waiting_jobs", "gauge", "Deliveries waiting for the output filesystem (full, read-only, out of descriptors).",
               [("", Double(await engine.storageWaiting().jobs))])
        var etas: [(String, Double)] = []
        let forecast = await engine.forecast()
        for summary in try await store.batches() where !summary.isComplete {
            if let eta = forecast.batches[summary.name] {
                etas.append(("batch=\"\(summary.name)\",quantile=\"0.5\"", max(0, eta.p50 - now)))
                etas.append(("batch=\"\(summary.name)\",quantile=\"0.9\"", max(0, eta.p90 - now)))
            }
        }
        metric("reel_batch_eta_seconds", "gauge", "Seconds until an unfinished batch is expected to finish.", etas)
        metric("reel_uptime_seconds", "gauge", "Seconds since reeld started.", [("", now - startedAt)])
        return out
    }
}
