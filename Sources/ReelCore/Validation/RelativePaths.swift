extension ManifestValidator {
    /// Makes every relative reference `path` absolute by prefixing `directory` (the user's working directory):
    /// what `reelctl validate` and `reelctl submit` do before validating or copying a file into the spool, so
    /// `{"path": "refs/anna.png"}` means the same as it does in the user's shell. The daemon never resolves
    /// relative paths (its working directory is not the user's) and refuses them.
    ///
    /// Returns `data` unchanged (byte for byte) when it is not a parseable manifest object or has no relative
    /// path; otherwise the document re-serialized with two-space indentation, member order, number text and
    /// duplicate members kept. Paths starting with `~` are left alone (no shell expands them; the validator
    /// reports them).
    public static func resolvingRelativePaths(_ data: [UInt8], against directory: String) -> [UInt8] {
        guard directory.hasPrefix("/"), case .object(var top)? = try? JSONValue.parse(data),
              let jobsAt = top.firstIndex(where: { $0.key == "jobs" }), case .array(var jobs) = top[jobsAt].value
        else { return data }
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        var changed = false
        for j in jobs.indices {
            guard case .object(var job) = jobs[j],
                  let refsAt = job.firstIndex(where: { $0.key == "references" }),
                  case .array(var refs) = job[refsAt].value else { continue }
            for r in refs.indices {
                guard case .object(var ref) = refs[r] else { continue }
                for m in ref.indices where ref[m].key == "path" {
                    guard case .string(let p) = ref[m].value, !p.isEmpty, !p.hasPrefix("/"), !p.hasPrefix("~"),
                          !p.utf8.contains(0) else { continue }
                    var rel = Substring(p)
                    while rel.hasPrefix("./") { rel = rel.dropFirst(2).drop(while: { $0 == "/" }) }
                    ref[m].value = .string(base + rel)
                    changed = true
                }
                refs[r] = .object(ref)
            }
            job[refsAt].value = .array(refs)
            jobs[j] = .object(job)
        }
        guard changed else { return data }
        top[jobsAt].value = .array(jobs)
        var out: [UInt8] = []
        JSONValue.object(top).write(to: &out, indent: 0)
        out.append(0x0A)
        return out
    }
}

extension JSONValue {
    /// Writes the value as JSON text, objects and arrays indented by two spaces per level.
    func write(to out: inout [UInt8], indent: Int) {
        func newline(_ level: Int) {
            out.append(0x0A)
            out.append(contentsOf: repeatElement(0x20, count: level * 2))
        }
        switch self {
        case .null: out += "null".utf8
        case .bool(let b): out += (b ? "true" : "false").utf8
        case .number(let n): out += n.text.utf8
        case .string(let s): Self.writeString(s, to: &out)
        case .array(let items):
            guard !items.isEmpty else { out += "[]".utf8; return }
            out.append(UInt8(ascii: "["))
            for (k, item) in items.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                item.write(to: &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            guard !members.isEmpty else { out += "{}".utf8; return }
            out.append(UInt8(ascii: "{"))
            for (k, m) in members.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                newline(indent + 1)
                Self.writeString(m.key, to: &out)
                out += ": ".utf8
                m.value.write(to: &out, indent: indent + 1)
            }
            newline(indent)
            out.append(UInt8(ascii: "}"))
        }
    }

    static func writeString(_ s: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out += "\\\"".utf8
            case UInt8(ascii: "\\"): out += "\\\\".utf8
            case 0x0A: out += "\\n".utf8
            case 0x0D: out += "\\r".utf8
            case 0x09: out += "\\t".utf8
            case 0..<0x20:
                out += "\\u00".utf8
                out += [hex[Int(c >> 4)], hex[Int(c & 15)]]
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
