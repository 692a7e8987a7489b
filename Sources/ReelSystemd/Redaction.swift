import Synchronization

/// The log handler's second line of defence against leaking secrets: values under secret-looking metadata keys,
/// registered secret values (the API key once read), and token-shaped text (`sk-…`, `Bearer …`) are replaced by
/// `<redacted>`. The first line of defence is not logging secrets at all.
public final class LogRedactor: Sendable {
    /// The redactor used by default by ``JournalLogHandler``; `reeld` registers the API key here.
    public static let shared = LogRedactor()
    /// What a redacted value is replaced with.
    public static let mask = "<redacted>"

    private let secrets = Mutex<[String]>([])

    /// An empty redactor (tests); the daemon uses ``shared``.
    public init() {}

    /// Registers a secret value to be masked wherever it appears. Values shorter than 8 characters are ignored
    /// (masking them would garble ordinary words).
    public func add(secret: String) {
        guard secret.count >= 8 else { return }
        secrets.withLock { if !$0.contains(secret) { $0.append(secret) } }
    }

    /// True for metadata keys that name a secret: `api_key`, `authorization`, `token`, `password`, `secret`,
    /// `cookie`, and keys ending in `_token`, `_secret`, `_password`, `api_key` (case-insensitive, `-`/`.` = `_`).
    public static func isSecretKey(_ key: String) -> Bool {
        let k = String(key.lowercased().map { $0 == "-" || $0 == "." ? "_" : $0 })
        let exact: Set<String> = ["api_key", "apikey", "authorization", "token", "password", "passwd", "secret",
                                  "cookie", "set_cookie", "credential", "credentials", "bearer"]
        return exact.contains(k) || ["_token", "_secret", "_password", "api_key", "_apikey", "_credential"]
            .contains { k.hasSuffix($0) }
    }

    /// `text` with registered secrets and token-shaped substrings masked.
    public func scrub(_ text: String) -> String {
        var out = text
        for secret in secrets.withLock({ $0 }) where out.contains(secret) {
            out = out.replacing(secret, with: Self.mask)
        }
        out = Self.maskToken(after: "sk-", minLength: 16, in: out)
        return Self.maskToken(after: "Bearer ", minLength: 8, in: out)
    }

    /// Masks the run of token characters (ASCII letters, digits, `-_.+/=`) after each `marker` when it is at least
    /// `minLength` long; the marker itself stays, so the log still says what kind of thing was there.
    static func maskToken(after marker: String, minLength: Int, in text: String) -> String {
        guard text.contains(marker) else { return text }
        var out = ""
        var rest = text[...]
        while let r = rest.firstRange(of: marker) {
            out += rest[..<r.upperBound]
            let tail = rest[r.upperBound...]
            let token = tail.prefix { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.+/=".contains($0)) }
            if token.count >= minLength {
                out += mask
                rest = tail.dropFirst(token.count)
            } else {
                rest = tail
            }
        }
        return out + rest
    }
}
