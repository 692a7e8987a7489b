import Glibc
import Logging
import ReelPosix
import Synchronization

/// swift-log level → syslog priority (`<N>` prefix and journald `PRIORITY=`).
public func syslogPriority(_ level: Logger.Level) -> Int {
    switch level {
    case .trace, .debug: 7
    case .info: 6
    case .notice: 5
    case .warning: 4
    case .error: 3
    case .critical: 2
    }
}

/// Builds journald entries as `FIELD=value` strings, without talking to journald (so it can be tested anywhere).
public enum JournalFields {
    /// Field names the handler sets itself; metadata under these names is dropped.
    public static let reserved: Set<String> = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE",
                                               "CODE_FUNC", "LOGGER", "ERROR"]

    /// The journal field name for a metadata key: upper-cased, `.` and `-` mapped to `_`; nil when the result is not
    /// a valid journald name (`[A-Z0-9_]`, not starting with `_`, at most 64 characters) or is ``reserved``.
    /// So `logger[metadataKey: "job_id"]` becomes `JOB_ID=`, searchable with `journalctl -u reeld JOB_ID=…`.
    public static func fieldName(forMetadataKey key: String) -> String? {
        let name = String(key.uppercased().map { $0 == "." || $0 == "-" ? "_" : $0 })
        guard !name.isEmpty, name.count <= 64, !name.hasPrefix("_"), !reserved.contains(name),
              name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isUppercase || $0.isNumber)) })
        else { return nil }
        return name
    }

    /// One entry: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE/LINE/FUNC, LOGGER, ERROR (when present), then
    /// every metadata key that maps to a valid name, sorted. Values under secret keys are masked and all text goes
    /// through `redactor`.
    public static func build(message: String, level: Logger.Level, identifier: String, label: String,
                             file: String, line: UInt, function: String, metadata: Logger.Metadata,
                             error: (any Error)? = nil, redactor: LogRedactor = .shared) -> [String] {
        var fields = [
            "MESSAGE=\(redactor.scrub(message))",
            "PRIORITY=\(syslogPriority(level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(file)",
            "CODE_LINE=\(line)",
            "CODE_FUNC=\(function)",
            "LOGGER=\(label)",
        ]
        if let error { fields.append("ERROR=\(redactor.scrub(String(describing: error)))") }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            guard let name = fieldName(forMetadataKey: key) else { continue }
            fields.append("\(name)=\(render(key, value, redactor))")
        }
        return fields
    }

    /// A metadata value as text, masked when its key names a secret.
    static func render(_ key: String, _ value: Logger.MetadataValue, _ redactor: LogRedactor) -> String {
        LogRedactor.isSecretKey(key) ? LogRedactor.mask : redactor.scrub(value.description)
    }

    /// One plain-text line (no trailing newline): `[<N>][timestamp ]level label: message key=value…`, with
    /// newlines escaped so a record never splits, and values quoted when they contain spaces, quotes or `=`.
    public static func textLine(message: String, level: Logger.Level, label: String, metadata: Logger.Metadata,
                                error: (any Error)? = nil, syslogPrefix: Bool, timestamp: String?,
                                redactor: LogRedactor = .shared) -> String {
        var line = syslogPrefix ? "<\(syslogPriority(level))>" : ""
        if let timestamp { line += timestamp + " " }
        line += "\(level) \(label): \(escape(redactor.scrub(message)))"
        if let error { line += " error=\(quote(escape(redactor.scrub(String(describing: error)))))" }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            line += " \(escape(key))=\(quote(escape(render(key, value, redactor))))"
        }
        return line
    }

    static func escape(_ s: String) -> String {
        guard s.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return s }
        return s.replacing("\r\n", with: "\\r\\n").replacing("\n", with: "\\n").replacing("\r", with: "\\r")
    }

    static func quote(_ s: String) -> String {
        guard s.isEmpty || s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\t" }) else { return s }
        return "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
    }
}

/// A log level shared by every handler made from it, so SIGHUP can change the level of all loggers at once.
public final class LogLevelSetting: Sendable {
    private let value: Mutex<Logger.Level>
    public init(_ level: Logger.Level = .info) { value = Mutex(level) }
    /// The current level.
    public var level: Logger.Level {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}

/// A swift-log handler for a daemon under systemd: native journald fields via `sd_journal_sendv` when stderr is
/// the journal, one plain line per record on stderr otherwise. Bootstrap it once in `main`:
/// ```swift
/// let mode = JournalLogHandler.detectMode()
/// LoggingSystem.bootstrap { JournalLogHandler(label: $0, mode: mode, level: levels) }
/// ```
public struct JournalLogHandler: LogHandler {
    /// Where records go.
    public enum Mode: Sendable, Equatable {
        /// Native journald fields; if `sd_journal_sendv` fails, `<N>`-prefixed lines on stderr.
        case journal
        /// Plain lines on stderr with an ISO-8601 UTC timestamp.
        case stderr
    }

    /// Metadata attached to every record of this logger (`logger[metadataKey:]`).
    public var metadata: Logger.Metadata = [:]
    /// Contextual metadata (task-local values), merged under `metadata`.
    public var metadataProvider: Logger.MetadataProvider?
    /// Reads the shared ``LogLevelSetting`` unless this handler's level was set directly.
    public var logLevel: Logger.Level {
        get { ownLevel ?? shared.level }
        set { ownLevel = newValue }
    }

    private var ownLevel: Logger.Level?
    private let shared: LogLevelSetting
    private let label: String
    private let identifier: String
    private let mode: Mode
    private let redactor: LogRedactor
    private let stderrFD: Int32

    /// - Parameters:
    ///   - label: the logger's label (becomes `LOGGER=`).
    ///   - identifier: `SYSLOG_IDENTIFIER=` (what `journalctl -t` matches).
    ///   - mode: usually ``detectMode()``.
    ///   - level: the shared level; change it on SIGHUP.
    ///   - redactor: masks secrets; `reeld` registers the API key with ``LogRedactor/shared``.
    ///   - stderrFD: where plain lines go (default 2; tests pass a file).
    public init(label: String, identifier: String = "reeld", mode: Mode, level: LogLevelSetting = LogLevelSetting(),
                redactor: LogRedactor = .shared, metadataProvider: Logger.MetadataProvider? = nil,
                stderrFD: Int32 = 2) {
        self.stderrFD = stderrFD
        self.label = label
        self.identifier = identifier
        self.mode = mode
        self.shared = level
        self.redactor = redactor
        self.metadataProvider = metadataProvider
    }

    /// `.journal` when `$JOURNAL_STREAM` names stderr's device and inode (systemd connected stderr to journald),
    /// else `.stderr`.
    public static func detectMode() -> Mode {
        stream(getenv("JOURNAL_STREAM").map { String(cString: $0) }, matches: 2) ? .journal : .stderr
    }

    /// True if `journalStream` (`"<dev>:<inode>"`, decimal) names the file open on `fd`.
    public static func stream(_ journalStream: String?, matches fd: Int32) -> Bool {
        guard let parts = journalStream?.split(separator: ":"), parts.count == 2,
              let dev = UInt64(parts[0]), let ino = UInt64(parts[1]) else { return false }
        guard let st = try? Posix.fstat(fd, path: "fd \(fd)") else { return false }
        return UInt64(st.st_dev) == dev && UInt64(st.st_ino) == ino
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let own = event.metadata { all.merge(own) { _, new in new } }
        let message = event.message.description
        if mode == .journal {
            let fields = JournalFields.build(message: message, level: event.level, identifier: identifier,
                                             label: label, file: event.file, line: event.line,
                                             function: event.function, metadata: all, error: event.error,
                                             redactor: redactor)
            if LibSystemd.journalSend(fields) >= 0 { return }
        }
        let line = JournalFields.textLine(message: message, level: event.level, label: label, metadata: all,
                                          error: event.error, syslogPrefix: mode == .journal,
                                          timestamp: mode == .journal ? nil : Self.utcTimestamp(),
                                          redactor: redactor)
        Self.write(line + "\n", to: stderrFD)
    }

    /// One `write(2)` per record, so concurrent records do not interleave (lines under PIPE_BUF). A log line that
    /// cannot be written (stderr closed, a full disk behind a redirect) has nowhere to be reported, so it is dropped.
    private static func write(_ text: String, to fd: Int32) {
        try? Posix.writeAll(fd, Array(text.utf8), path: "stderr")
    }

    private static func utcTimestamp() -> String {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buf = [CChar](repeating: 0, count: 32)
        let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
