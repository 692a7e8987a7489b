/// Names that come from manifests and end up in paths, URLs and logs.
///
/// `batch` and job `id` share one syntax, `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`, which is what lets the output
/// writer use them as file names without ever leaving the output root: no `/`, no leading dot, no NUL.
public enum Identifier {
    public static let maxLength = 64
    public static let syntax = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

    /// True when `s` is a valid batch name or job id.
    public static func isValid(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        guard let first = bytes.first, bytes.count <= maxLength, isAlnum(first) else { return false }
        for b in bytes.dropFirst() where !(isAlnum(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")) {
            return false
        }
        return true
    }

    private static func isAlnum(_ b: UInt8) -> Bool {
        (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
    }
}

/// A job's address everywhere: `BATCH/ID`.
public struct JobKey: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public let batch: String
    public let id: String

    public init(batch: String, id: String) {
        self.batch = batch
        self.id = id
    }

    /// Parses `BATCH/ID`; nil unless both halves are valid identifiers.
    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, Identifier.isValid(String(parts[0])), Identifier.isValid(String(parts[1])) else {
            return nil
        }
        self.init(batch: String(parts[0]), id: String(parts[1]))
    }

    public var description: String { "\(batch)/\(id)" }

    public static func < (a: JobKey, b: JobKey) -> Bool { (a.batch, a.id) < (b.batch, b.id) }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let key = JobKey(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected BATCH/ID, got \(text)")
        }
        self = key
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
