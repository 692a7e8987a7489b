import Synchronization

/// The log handler's second line of defence against leaking secrets: values under secret-looking metadata keys,
/// registered secret values (the API key once read), and text that has the shape of a credential are replaced by
/// `<redacted>`. The first line of defence is not logging secrets at all.
///
/// Secrets are recognised by what they are, never by a suffix that ordinary names can end in: an API token
/// `sk-…` only where it starts a word and carries a long random run; the value of a signature or credential query
/// parameter in a URL (`Signature=`, `OSSAccessKeyId=`, `x-oss-signature=`, `X-Amz-Signature=`, …); the
/// credentials after `Bearer ` and after an `Authorization:` scheme. Batch names, job and task ids, UUIDs and
/// paths pass unchanged (`task-id-x2` contains `sk-` but does not start with it).
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

    /// URL query parameters whose value is a signature or a credential (compared case-insensitively). `Expires`,
    /// `Date` and the like stay: they are not secret, and they say when a link stops working.
    static let secretQueryParameters: Set<String> = [
        "signature", "ossaccesskeyid", "x-oss-signature", "x-oss-credential", "x-oss-security-token",
        "security-token", "securitytoken", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
        "awsaccesskeyid", "sig", "access_token", "api_key", "apikey",
    ]

    /// `text` with registered secrets and credential-shaped substrings masked.
    public func scrub(_ text: String) -> String {
        var out = text
        for secret in secrets.withLock({ $0 }) where out.contains(secret) {
            out = out.replacing(secret, with: Self.mask)
        }
        out = Self.maskAPITokens(in: out)
        out = Self.maskQueryParameters(in: out)
        out = Self.maskCredential(after: "bearer ", minLength: 8, in: out)
        return Self.maskAuthorization(in: out)
    }

    // MARK: - Shapes

    /// Characters of a token: ASCII letters, digits, `-` and `_` (base64url and hex keys).
    private static func isTokenCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_")
    }

    /// Characters of a credential value (base64 too): token characters plus `.+/=`.
    private static func isCredentialCharacter(_ c: Character) -> Bool {
        isTokenCharacter(c) || c == "." || c == "+" || c == "/" || c == "="
    }

    /// True when `token` (what follows `sk-`) looks like a generated key: one `-`/`_`-separated run of at least 16
    /// ASCII letters and digits that mixes both (DashScope's `sk-` + 32 hex, `sk-proj-…`). Words joined by
    /// hyphens (`sk-holiday-promo-2026`) are names, not keys.
    static func isAPIKeyBody(_ token: Substring) -> Bool {
        token.split(whereSeparator: { $0 == "-" || $0 == "_" }).contains { run in
            run.count >= 16 && run.contains(where: \.isNumber) && run.contains(where: \.isLetter)
        }
    }

    /// Masks `sk-<key>` where `sk-` starts a word (not inside `task-id` or `disk-usage`) and the key has the
    /// shape of a generated one; `sk-` stays, so the log still says what kind of thing was there.
    static func maskAPITokens(in text: String) -> String {
        guard text.contains("sk-") else { return text }
        var out = ""
        var rest = text[...]
        while let r = rest.firstRange(of: "sk-") {
            let startsWord = r.lowerBound == text.startIndex
                || !isTokenCharacter(text[text.index(before: r.lowerBound)])
            out += rest[..<r.upperBound]
            let tail = rest[r.upperBound...]
            let token = tail.prefix(while: isTokenCharacter)
            if startsWord, isAPIKeyBody(token) {
                out += mask
                rest = tail.dropFirst(token.count)
            } else {
                rest = tail
            }
        }
        return out + rest
    }

    /// Masks the value of every secret query parameter (`?Signature=…`, `&OSSAccessKeyId=…`): the parameter
    /// must follow `?` or `&`, and its value runs to the next `&`, `#`, quote or whitespace.
    static func maskQueryParameters(in text: String) -> String {
        guard text.contains("=") && (text.contains("?") || text.contains("&")) else { return text }
        var out = ""
        var rest = text[...]
        while let sep = rest.firstIndex(where: { $0 == "?" || $0 == "&" }) {
            let afterSep = rest.index(after: sep)
            out += rest[..<afterSep]
            rest = rest[afterSep...]
            let name = rest.prefix { isTokenCharacter($0) || $0 == "." }
            guard rest.dropFirst(name.count).first == "=", secretQueryParameters.contains(name.lowercased())
            else { continue }
            let valueStart = rest.index(rest.startIndex, offsetBy: name.count + 1)
            let value = rest[valueStart...].prefix { !($0 == "&" || $0 == "#" || $0 == "\"" || $0 == "'"
                                                       || $0.isWhitespace) }
            out += rest[..<valueStart]
            if !value.isEmpty { out += mask }
            rest = rest[valueStart...].dropFirst(value.count)
        }
        return out + rest
    }

    /// Masks the credential after each `marker` (matched case-insensitively, at the start of a word) when it is
    /// at least `minLength` characters long; the marker itself stays.
    static func maskCredential(after marker: String, minLength: Int, in text: String) -> String {
        let lower = text.lowercased()
        guard lower.count == text.count, lower.contains(marker) else { return text }
        let chars = Array(text), lowerChars = Array(lower), m = Array(marker)
        var out = ""
        var i = 0
        while i < chars.count {
            if i + m.count <= chars.count, Array(lowerChars[i..<(i + m.count)]) == m,
               i == 0 || !isTokenCharacter(chars[i - 1]) {
                out += String(chars[i..<(i + m.count)])
                i += m.count
                var j = i
                while j < chars.count, isCredentialCharacter(chars[j]) { j += 1 }
                if j - i >= minLength {
                    out += mask
                    i = j
                }
                continue
            }
            out.append(chars[i])
            i += 1
        }
        return out
    }

    /// Masks the credentials of an `Authorization:` header in any scheme (`OSS keyid:signature`, `Basic …`):
    /// the scheme word stays, the rest of the value up to a quote, comma or line end is masked. `Bearer` is
    /// handled by `maskCredential` before, so an already masked value is left as it is.
    static func maskAuthorization(in text: String) -> String {
        let lower = text.lowercased()
        guard lower.count == text.count, lower.contains("authorization:") else { return text }
        let chars = Array(text), lowerChars = Array(lower), m = Array("authorization:")
        var out = ""
        var i = 0
        while i < chars.count {
            guard i + m.count <= chars.count, Array(lowerChars[i..<(i + m.count)]) == m else {
                out.append(chars[i])
                i += 1
                continue
            }
            var j = i + m.count
            while j < chars.count, chars[j] == " " { j += 1 }
            var schemeEnd = j
            while schemeEnd < chars.count, isTokenCharacter(chars[schemeEnd]) { schemeEnd += 1 }
            var valueStart = schemeEnd
            while valueStart < chars.count, chars[valueStart] == " " { valueStart += 1 }
            var end = valueStart
            while end < chars.count, !"\"',\n\r".contains(chars[end]) { end += 1 }
            let value = String(chars[valueStart..<end])
            out += String(chars[i..<valueStart])
            if value.count >= 8 && !value.contains(mask) {
                out += mask
            } else {
                out += value
            }
            i = end
        }
        return out
    }
}
