import Glibc
import ReelPosix

/// Where the API key came from (safe to log: it never holds the key).
public enum CredentialSource: Sendable, Equatable, CustomStringConvertible {
    /// `$CREDENTIALS_DIRECTORY/<name>` (systemd `LoadCredential=`).
    case credential(path: String)
    /// The configured `api_key_file`.
    case file(path: String)
    /// An environment variable.
    case environment(name: String)

    public var description: String {
        switch self {
        case .credential(let path): "systemd credential \(path)"
        case .file(let path): "api_key_file \(path)"
        case .environment(let name): "$\(name)"
        }
    }
}

/// Why no API key could be read. Messages name the place and the fix, never the key.
public struct CredentialError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Reads the provider API key without ever putting it in an error or log message.
public enum Credentials {
    /// The environment variable consulted last.
    public static let environmentVariable = "DASHSCOPE_API_KEY"
    static let maxBytes = 64 * 1024

    /// The API key, from the first of: `$CREDENTIALS_DIRECTORY/<credentialName>` (systemd `LoadCredential=`),
    /// `apiKeyFile`, `$DASHSCOPE_API_KEY`. A trailing newline is trimmed. An `apiKeyFile` readable by every user
    /// is refused. A source that exists but is unusable (empty, unreadable, not one line) is an error, not skipped.
    /// - Throws: ``CredentialError`` naming the source and the fix.
    public static func apiKey(credentialName: String = "dashscope-api-key", apiKeyFile: String?,
                              environment: [String: String]) throws(CredentialError)
        -> (key: String, source: CredentialSource)
    {
        if let dir = environment["CREDENTIALS_DIRECTORY"], !dir.isEmpty {
            let path = dir.hasSuffix("/") ? dir + credentialName : dir + "/" + credentialName
            if let raw = try read(path, what: "systemd credential", refuseWorldReadable: false) {
                return (try clean(raw, from: .credential(path: path)), .credential(path: path))
            }
        }
        if let path = apiKeyFile, !path.isEmpty {
            guard let raw = try read(path, what: "api_key_file", refuseWorldReadable: true) else {
                throw CredentialError("api_key_file \(path) does not exist; create it (mode 0640, owner root, "
                                      + "group reel) or remove api_key_file from [provider]")
            }
            return (try clean(raw, from: .file(path: path)), .file(path: path))
        }
        if let value = environment[environmentVariable] {
            let source = CredentialSource.environment(name: environmentVariable)
            return (try clean(value, from: source), source)
        }
        throw CredentialError("no API key: add LoadCredential=\(credentialName):/etc/reel/credentials/\(credentialName)"
                              + " to reeld.service, or set [provider] api_key_file in reel.toml, or set "
                              + "$\(environmentVariable)")
    }

    /// The file's text, nil if it does not exist.
    private static func read(_ path: String, what: String, refuseWorldReadable: Bool) throws(CredentialError)
        -> String?
    {
        let fd: Int32
        do throws(PosixError) {
            fd = try Posix.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        } catch where error.code == ENOENT {
            return nil
        } catch {
            throw CredentialError("\(what) \(path) cannot be opened: \(error.reason)")
        }
        defer { close(fd) }
        guard let st = try? Posix.fstat(fd, path: path), Posix.fileType(st) == S_IFREG else {
            throw CredentialError("\(what) \(path) is not a regular file")
        }
        if refuseWorldReadable && st.st_mode & S_IROTH != 0 {
            let mode = String(st.st_mode & 0o7777, radix: 8)
            throw CredentialError("\(what) \(path) is readable by every user (mode 0\(mode)); "
                                  + "run: chmod o-rwx \(path)  (0640 root:reel is enough)")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let read = chunk.withUnsafeMutableBytes { buffer in
                Result { () throws(PosixError) in try Posix.read(fd, into: buffer, path: path) }
            }
            let n: Int
            switch read {
            case .success(let count): n = count
            case .failure(let error): throw CredentialError("\(what) \(path) cannot be read: \(error.reason)")
            }
            if n == 0 { break }
            bytes += chunk[..<n]
            guard bytes.count <= maxBytes else { throw CredentialError("\(what) \(path) is larger than 64 KiB") }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Trims one trailing newline (and trailing spaces); the key must then be one non-empty line of printable text.
    private static func clean(_ raw: String, from source: CredentialSource) throws(CredentialError) -> String {
        var key = Substring(raw)
        while let last = key.last, last.isWhitespace { key = key.dropLast() }
        guard !key.isEmpty else { throw CredentialError("\(source) is empty; put the API key in it") }
        guard key.allSatisfy({ !$0.isNewline && !($0.asciiValue.map { $0 < 0x20 || $0 == 0x7f } ?? false) }) else {
            throw CredentialError("\(source) must hold the key on one line, without control characters")
        }
        return String(key)
    }
}
