import Crypto
import Foundation
import ReelCore

/// JSON as stored: sorted keys, so equal values always encode to equal bytes.
enum Codec {
    /// A job spec's canonical encoding (stored, and hashed into its `spec_digest`): exactly the bytes of
    /// `data(spec)` — `JSONEncoder` with sorted keys — written directly, because `JSONEncoder` was a tenth of
    /// intake's CPU. `CanonicalSpecTests` holds the two to each other byte for byte; digests of stored jobs must
    /// never change.
    static func spec(_ s: JobSpec) -> [UInt8] {
        var w = JSONWriter(capacity: 384, escapesSlashes: true)
        w.object { w in
            w.key("aspectRatio"); w.string(s.aspectRatio.rawValue)
            w.member("audio", s.audio)
            w.member("budgetUSD", s.budgetUSD)
            w.member("deadline", s.deadline)
            w.key("durationSeconds"); w.int(s.durationSeconds)
            w.key("key"); w.string(s.key.description)
            w.key("model"); w.string(s.model.rawValue)
            w.member("negativePrompt", s.negativePrompt)
            w.key("priority"); w.string(s.priority.rawValue)
            w.key("prompt"); w.string(s.prompt)
            w.key("references"); w.array(s.references) { w, r in
                w.object { w in
                    w.member("bytes", r.bytes.map { Int($0) })
                    w.member("durationSeconds", r.durationSeconds)
                    w.member("kind", r.kind?.rawValue)
                    w.member("sha256", r.sha256)
                    w.key("source"); w.object { w in
                        switch r.source {
                        case .path(let p): w.key("path"); w.string(p)
                        case .url(let u): w.key("url"); w.string(u)
                        }
                    }
                }
            }
            w.key("resolution"); w.string(s.resolution.rawValue)
            w.member("seed", s.seed)
            w.member("shotType", s.shotType?.rawValue)
            w.member("watermark", s.watermark)
        }
        return w.bytes
    }

    /// Hex sha256 of `bytes` (a spec's `spec_digest` is the digest of `spec(_:)`).
    static func digest(_ bytes: [UInt8]) -> String { Hex.string(SHA256.hash(data: bytes)) }

    static func data<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return try e.encode(value)
    }

    static func text<T: Encodable>(_ value: T) throws -> String { String(decoding: try data(value), as: UTF8.self) }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String, _ what: String,
                                     with decoder: JSONDecoder = JSONDecoder()) throws -> T {
        do {
            return try decoder.decode(type, from: Data(text.utf8))
        } catch {
            throw StoreError.corrupt("\(what): \(error)")
        }
    }
}

/// Decoding a stored enum, naming the column when the value is unknown (a newer schema, or damage).
func decodeEnum<E: RawRepresentable>(_ type: E.Type, _ raw: String, _ column: String) throws -> E
where E.RawValue == String {
    guard let v = E(rawValue: raw) else { throw StoreError.corrupt("\(column) = \"\(raw)\"") }
    return v
}
