/// A minimal streaming JSON writer for the hand-written encoders of hot types: the control API's listings
/// (`ReelProtocol/WireJSON.swift`) and the store's canonical job specs (`Codec.spec`). Each is held byte for byte
/// to `JSONEncoder`'s output by a test. The caller writes keys in the order they should appear.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Whether the container being written still needs no comma before its next member.
    private var first = true
    /// `/` written as `\/` (what `JSONEncoder` does unless told `.withoutEscapingSlashes`).
    public let escapesSlashes: Bool

    public init(capacity: Int = 1024, escapesSlashes: Bool = false) {
        bytes.reserveCapacity(capacity)
        self.escapesSlashes = escapesSlashes
    }

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
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\")
                        || (c == UInt8(ascii: "/") && escapesSlashes) else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<i]))
                start = i + 1
                bytes.append(UInt8(ascii: "\\"))
                switch c {
                case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
                case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
                case UInt8(ascii: "/"): bytes.append(UInt8(ascii: "/"))
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

    /// Shortest round-tripping decimal (Swift's `description`) without a trailing `.0`: `JSONEncoder`'s rule.
    public mutating func double(_ x: Double) {
        separate()
        if !x.isFinite {
            bytes.append(contentsOf: "null".utf8)
        } else {
            var text = x.description
            if text.hasSuffix(".0") { text.removeLast(2) }
            bytes.append(contentsOf: text.utf8)
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
    public mutating func member(_ name: StaticString, _ n: Int?) { if let n { key(name); int(n) } }
    public mutating func member(_ name: StaticString, _ b: Bool?) { if let b { key(name); bool(b) } }

    private mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
    }
}

