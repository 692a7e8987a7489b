/// A JSON document as the manifest validator sees it: objects keep their members in file order *with*
/// duplicates (so a repeated key can be reported instead of silently winning), and numbers keep their text
/// (so `5`, `5.0` and `true` stay distinguishable).
///
/// Parsed by ``JSONValue/parse(_:)``, a strict RFC 8259 parser over raw bytes: UTF-8 only (a leading BOM is
/// skipped), no trailing commas, no comments, nesting at most ``JSONValue/maxDepth`` deep.
enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    /// Deeper nesting is refused: a manifest needs four levels; a hostile file must not exhaust the stack.
    static let maxDepth = 64

    /// The name of the value's JSON type, for messages ("expected a string, got a number").
    var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// A JSON number: its source text and its value as a Double.
struct JSONNumber: Sendable {
    var text: String
    var value: Double

    /// The value when it is a whole number (JSON Schema's definition of "integer": `5` and `5.0` both are),
    /// nil for fractions, and for magnitudes beyond 2^53 where a Double no longer counts in ones.
    var integer: Int? {
        guard value.isFinite, value.rounded() == value, abs(value) <= 9_007_199_254_740_992 else { return nil }
        return Int(value)
    }
}

/// Why a byte sequence is not JSON, with the place (1-based line and column, in bytes) where it stopped.
struct JSONSyntaxError: Error, Sendable, Equatable {
    var message: String
    var line: Int
    var column: Int
    var offset: Int
}

extension JSONValue {
    /// Parses one JSON text. Throws ``JSONSyntaxError`` at the first syntax error.
    static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes)
        return try parser.document()
    }
}

private struct JSONParser {
    let b: [UInt8]
    var i = 0

    init(_ bytes: [UInt8]) {
        b = bytes
        if b.count >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { i = 3 }
    }

    mutating func document() throws(JSONSyntaxError) -> JSONValue {
        skipSpace()
        guard i < b.count else { throw fail("the file is empty") }
        let v = try value(depth: 0)
        skipSpace()
        guard i == b.count else { throw fail("unexpected \(describeHere()) after the end of the JSON value") }
        return v
    }

    func fail(_ message: String) -> JSONSyntaxError {
        var line = 1
        var lineStart = 0
        for k in 0..<min(i, b.count) where b[k] == 0x0A {
            line += 1
            lineStart = k + 1
        }
        return JSONSyntaxError(message: message, line: line, column: i - lineStart + 1, offset: i)
    }

    func describeHere() -> String {
        guard i < b.count else { return "end of file" }
        let c = b[i]
        if c >= 0x21 && c < 0x7F { return "'\(Character(Unicode.Scalar(c)))'" }
        return "byte 0x\(String(c, radix: 16, uppercase: true))"
    }

    mutating func skipSpace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth < JSONValue.maxDepth else { throw fail("nesting deeper than \(JSONValue.maxDepth) levels") }
        guard i < b.count else { throw fail("unexpected end of file, expected a value") }
        switch b[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail("unexpected \(describeHere()), expected a value")
        }
    }

    mutating func literal(_ word: String) throws(JSONSyntaxError) {
        let n = word.utf8.count
        guard i + n <= b.count, b[i..<(i + n)].elementsEqual(word.utf8) else { throw fail("unexpected \(describeHere()), expected a value") }
        i += n
    }

    mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        i += 1
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("unexpected \(describeHere()), expected a member name in double quotes") }
            let key = try string()
            skipSpace()
            guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("unexpected \(describeHere()), expected ':' after a member name") }
            i += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of file inside an object") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("unexpected \(describeHere()), expected ',' or '}'")
        }
    }

    mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        i += 1
        var items: [JSONValue] = []
        skipSpace()
        if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            guard i < b.count else { throw fail("unexpected end of file inside an array") }
            if b[i] == UInt8(ascii: ",") { i += 1; continue }
            if b[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("unexpected \(describeHere()), expected ',' or ']'")
        }
    }

    mutating func number() throws(JSONSyntaxError) -> JSONNumber {
        let start = i
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.b.count, p.b[p.i] >= 0x30, p.b[p.i] <= 0x39 { p.i += 1 }
            return p.i - s
        }
        if b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, b[i] >= 0x30, b[i] <= 0x39 else { throw fail("a number needs digits after '-'") }
        if b[i] == 0x30 {
            i += 1
            if i < b.count, b[i] >= 0x30, b[i] <= 0x39 { throw fail("numbers may not have leading zeros") }
        } else {
            _ = digits(&self)
        }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw fail("a number needs digits after '.'") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw fail("a number needs digits in its exponent") }
        }
        let text = String(decoding: b[start..<i], as: UTF8.self)
        // Double(text) accepts every JSON number; out-of-range magnitudes become ±infinity, caught by range checks.
        return JSONNumber(text: text, value: Double(text) ?? .nan)
    }

    mutating func string() throws(JSONSyntaxError) -> String {
        i += 1
        let start = i
        // Fast path: no escapes, plain UTF-8.
        while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 { i += 1 }
        if i < b.count, b[i] == UInt8(ascii: "\"") {
            let slice = b[start..<i]
            i += 1
            return try decodeUTF8(slice, at: start)
        }
        var out: [UInt8] = Array(b[start..<i])
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c < 0x20 { throw fail("control character 0x\(String(c, radix: 16)) inside a string (write it as an escape such as \\n)") }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            i += 1
            guard i < b.count else { throw fail("unterminated string") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw fail("lone UTF-16 surrogate \\u\(String(scalar, radix: 16)) in a string")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw fail("invalid UTF-16 surrogate pair in a string") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw fail("lone UTF-16 surrogate \\u\(String(scalar, radix: 16)) in a string")
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                i -= 1
                throw fail("invalid escape \\\(describeHere()) in a string")
            }
        }
        return try decodeUTF8(out[...], at: start)
    }

    mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("\\u needs four hex digits") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("\\u needs four hex digits")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    func decodeUTF8(_ bytes: ArraySlice<UInt8>, at offset: Int) throws(JSONSyntaxError) -> String {
        // String(decoding:) is the fast path; it repairs bad UTF-8, so a non-ASCII result must round-trip exactly.
        let s = String(decoding: bytes, as: UTF8.self)
        if bytes.allSatisfy({ $0 < 0x80 }) || s.utf8.elementsEqual(bytes) { return s }
        var p = self
        p.i = offset
        throw p.fail("a string is not valid UTF-8 (save the file as UTF-8)")
    }
}
