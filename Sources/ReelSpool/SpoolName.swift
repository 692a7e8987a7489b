import Glibc
import ReelCore
import ReelPosix

/// File names in the spool are raw bytes: a hostile writer may use any byte but `/` and NUL.
enum SpoolName {
    static let json = Array(".json".utf8)

    /// One path component, no `/`, no NUL, not `.` or `..`, at most NAME_MAX bytes: it cannot leave its directory.
    static func isPlain(_ name: [UInt8]) -> Bool {
        !name.isEmpty && name.count <= Int(NAME_MAX) && name != [0x2E] && name != [0x2E, 0x2E]
            && !name.contains(0x2F) && !name.contains(0)
    }

    /// The name as a String when it is valid UTF-8.
    static func decode(_ name: [UInt8]) -> String? { String(validating: name, as: UTF8.self) }

    /// A printable form for logs and reports: invalid bytes become `\xNN`.
    static func display(_ name: [UInt8]) -> String {
        if let s = decode(name) { return s }
        return name.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "\\x" + hex2($0) }.joined()
    }

    /// What a watcher hint or a scan keeps: UTF-8, no leading dot, ends in `.json` (with something before it).
    static func isCandidate(_ name: [UInt8]) -> Bool {
        name.first != 0x2E && name.count > json.count && name.suffix(json.count).elementsEqual(json)
            && decode(name) != nil
    }

    static func hex2(_ b: UInt8) -> String { Hex.string(CollectionOfOne(b)) }

    /// The spool's temporary files: `.reel.<random>.tmp` (a dotfile, so scans skip it; not derived from the final
    /// name, which may be NAME_MAX long).
    static let temporaryPrefix = Array(".reel.".utf8), temporarySuffix = Array(".tmp".utf8)

    static func newTemporary() -> [UInt8] { temporaryPrefix + Array(randomSuffix().utf8) + temporarySuffix }

    /// True for a name `newTemporary` makes.
    static func isTemporary(_ name: [UInt8]) -> Bool {
        name.count > temporaryPrefix.count + temporarySuffix.count && name.starts(with: temporaryPrefix)
            && name.suffix(temporarySuffix.count).elementsEqual(temporarySuffix)
            && name.dropFirst(temporaryPrefix.count).dropLast(temporarySuffix.count).allSatisfy {
                (0x30...0x39).contains($0) || (0x61...0x7A).contains($0)
            }
    }
}

/// A random suffix for temporary names, so two writers never pick the same one.
func randomSuffix() -> String { String(UInt64.random(in: .min ... .max), radix: 36) }

/// `fstatat` of `name` in `dir` without following a final symlink; nil when it cannot be examined (gone, or
/// replaced by something unreadable): the callers treat that as "not there" and the next step decides.
func lstatAt(_ dir: Int32, _ name: [UInt8]) -> stat? { try? Posix.lstatAt(dir, name, path: "") }
