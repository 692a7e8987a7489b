import ReelCore

/// The hot wire types written straight to bytes, for the listing and status endpoints the control API serves most.
///
/// Foundation's `JSONEncoder` was a quarter of reeld's CPU on `GET /v1/jobs` (it boxes every value through its
/// container machinery). The output here is the same JSON `Wire.encoder()` writes — keys sorted, nil fields left
/// out, `/` not escaped — byte for byte; `WireJSONTests` holds the two to that.
public protocol WireJSONEncodable {
    func writeJSON(to w: inout JSONWriter)
}

extension WireJSONEncodable {
    /// The value as one JSON document.
    public func wireJSON() -> [UInt8] {
        var w = JSONWriter()
        writeJSON(to: &w)
        return w.bytes
    }
}

extension ETAView: WireJSONEncodable {
    public func writeJSON(to w: inout JSONWriter) {
        w.object { w in
            w.key("p50"); w.string(p50)
            w.key("p90"); w.string(p90)
        }
    }
}

extension JobView: WireJSONEncodable {
    public func writeJSON(to w: inout JSONWriter) {
        w.object { w in
            w.key("aspect_ratio"); w.string(aspect_ratio)
            w.key("attempt"); w.int(attempt)
            w.key("batch"); w.string(batch)
            w.member("cost_usd", cost_usd)
            w.key("created_at"); w.string(created_at)
            w.member("deadline", deadline)
            w.key("duration_s"); w.int(duration_s)
            w.member("estimated_cost_usd", estimated_cost_usd)
            if let eta { w.key("eta"); eta.writeJSON(to: &w) }
            w.key("id"); w.string(id)
            w.key("job"); w.string(job)
            w.key("model"); w.string(model)
            w.member("output", output)
            w.key("priority"); w.string(priority)
            w.member("reason", reason)
            w.key("resolution"); w.string(resolution)
            w.member("sha256", sha256)
            w.key("state"); w.string(state)
            w.member("task_id", task_id)
            w.key("updated_at"); w.string(updated_at)
        }
    }
}

extension JobPage: WireJSONEncodable {
    public func writeJSON(to w: inout JSONWriter) {
        w.object { w in
            w.key("jobs"); w.array(jobs) { w, job in job.writeJSON(to: &w) }
            w.member("next_cursor", next_cursor)
        }
    }
}

extension StatusResponse: WireJSONEncodable {
    public func writeJSON(to w: inout JSONWriter) {
        w.object { w in
            w.key("batches"); w.int(batches)
            w.key("billed_not_delivered_jobs"); w.int(billed_not_delivered_jobs)
            w.key("billed_not_delivered_usd"); w.double(billed_not_delivered_usd)
            w.key("jobs"); w.object { w in
                for (state, n) in jobs.sorted(by: { $0.key < $1.key }) { w.key(state); w.int(n) }
            }
            w.key("mode"); w.string(mode)
            w.key("pid"); w.int(Int(pid))
            w.key("provider"); w.object { w in
                w.key("concurrency_cap"); w.int(provider.concurrency_cap)
                w.key("concurrency_limit"); w.int(provider.concurrency_limit)
                w.key("creates"); w.int(provider.creates)
                w.member("detail", provider.detail)
                w.key("health"); w.string(provider.health)
                w.key("polls"); w.int(provider.polls)
                if let pools = provider.pools {
                    w.key("pools"); w.array(pools) { w, pool in
                        w.object { w in
                            w.key("concurrency_cap"); w.int(pool.concurrency_cap)
                            w.key("concurrency_limit"); w.int(pool.concurrency_limit)
                            w.key("model"); w.string(pool.model)
                            w.key("queued"); w.int(pool.queued)
                            w.key("slots_in_use"); w.int(pool.slots_in_use)
                            w.key("submit_per_second"); w.double(pool.submit_per_second)
                            w.member("throttled_until", pool.throttled_until)
                            w.key("throttles"); w.int(pool.throttles)
                        }
                    }
                }
                if let q = provider.query_per_second { w.key("query_per_second"); w.double(q) }
                w.key("slots_in_use"); w.int(provider.slots_in_use)
                w.key("throttles"); w.int(provider.throttles)
            }
            w.key("spend_usd"); w.double(spend_usd)
            w.key("started_at"); w.string(started_at)
            w.key("storage"); w.object { w in
                w.member("detail", storage.detail)
                w.key("health"); w.string(storage.health)
                w.key("waiting_jobs"); w.int(storage.waiting_jobs)
            }
            w.key("total_jobs"); w.int(total_jobs)
            w.key("uptime_s"); w.double(uptime_s)
            w.key("version"); w.string(version)
            w.key("warnings"); w.array(warnings) { w, s in w.string(s) }
        }
    }
}
