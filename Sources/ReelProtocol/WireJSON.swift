import ReelCore

/// The hot wire types written straight to bytes, for the listing and status endpoints the control API serves most.
///
/// Foundation's `JSONEncoder` was a quarter of reeld's CPU on `GET /v1/jobs` (it boxes every value through its
/// container machinery). The output here is the same JSON `Wire.encoder()` writes — keys sorted, nil fields left
/// out, `/` not escaped — byte for byte except where the two print the same number differently (`2.0` vs `2`);
/// `WireJSONTests` holds the two to that.
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

/// A minimal streaming JSON writer: the caller writes keys in the order they should appear.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Whether the container being written still needs no comma before its next member.
    private var first = true

    public init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        first = true
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    public mutating func array<S: Sequence>(_ elements: S, _ body: (inout JSONWriter, S.Element) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "["))
        first = true
        for e in elements { body(&self, e) }
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    /// A member's name; the value written next belongs to it.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        first = true   // the value follows without a comma
    }

    /// A member whose name is data (a dictionary key), escaped like any string.
    public mutating func key(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    public mutating func string(_ s: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var start = 0
            for i in 0..<utf8.count {
                let c = utf8[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                start = i + 1
                bytes.append(UInt8(ascii: "\\"))
                switch c {
                case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
                case 0x0A: bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(UInt8(ascii: "t"))
                case 0x08: bytes.append(UInt8(ascii: "b"))
                case 0x0C: bytes.append(UInt8(ascii: "f"))
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes.append(contentsOf: [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                              hex[Int(c >> 4)], hex[Int(c & 0xF)]])
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        }
        bytes.append(UInt8(ascii: "\""))
        first = false
    }

    public mutating func int(_ n: Int) {
        separate()
        bytes.append(contentsOf: String(n).utf8)
        first = false
    }

    /// Shortest round-tripping decimal; whole numbers without a fraction (as `JSONEncoder` prints them).
    public mutating func double(_ x: Double) {
        separate()
        if !x.isFinite {
            bytes.append(contentsOf: "null".utf8)
        } else if x == x.rounded(), abs(x) < 1e15 {
            bytes.append(contentsOf: String(Int64(x)).utf8)
        } else {
            bytes.append(contentsOf: x.description.utf8)
        }
        first = false
    }

    public mutating func bool(_ b: Bool) {
        separate()
        bytes.append(contentsOf: (b ? "true" : "false").utf8)
        first = false
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
        first = false
    }

    // Optional members: left out when nil, as synthesized `Codable` does.
    public mutating func member(_ name: StaticString, _ s: String?) { if let s { key(name); string(s) } }
    public mutating func member(_ name: StaticString, _ x: Double?) { if let x { key(name); double(x) } }

    private mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
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
                w.key("slots_in_use"); w.int(provider.slots_in_use)
                w.key("throttles"); w.int(provider.throttles)
            }
            w.key("spend_usd"); w.double(spend_usd)
            w.key("started_at"); w.string(started_at)
            w.key("total_jobs"); w.int(total_jobs)
            w.key("uptime_s"); w.double(uptime_s)
            w.key("version"); w.string(version)
            w.key("warnings"); w.array(warnings) { w, s in w.string(s) }
        }
    }
}
