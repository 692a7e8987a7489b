import Foundation
import Glibc
import Logging
@testable import ReelSystemd
import Testing

extension SystemdTests {
    /// The journald field builder and the stderr formatter. (This machine has no /run/systemd/journal/socket, so
    /// sd_journal_sendv itself is not exercised here: libsystemd silently drops entries when journald is absent.)
    @Suite struct JournalTests {
        @Test func metadataKeysBecomeJournalFieldNames() {
            #expect(JournalFields.fieldName(forMetadataKey: "job_id") == "JOB_ID")
            #expect(JournalFields.fieldName(forMetadataKey: "task.id") == "TASK_ID")
            #expect(JournalFields.fieldName(forMetadataKey: "http-status") == "HTTP_STATUS")
            #expect(JournalFields.fieldName(forMetadataKey: "Attempt2") == "ATTEMPT2")
            let tooLong = String(repeating: "x", count: 65)
            for bad in ["_hidden", "", "a b", "jöb", "job/id", "priority", "MESSAGE", tooLong] {
                #expect(JournalFields.fieldName(forMetadataKey: bad) == nil, "\(bad)")
            }
        }

        @Test func syslogPriorities() {
            let levels: [Logger.Level] = [.trace, .debug, .info, .notice, .warning, .error, .critical]
            #expect(levels.map(syslogPriority) == [7, 7, 6, 5, 4, 3, 2])
        }

        @Test func entryHasStandardFieldsSortedMetadataAndNoSecrets() {
            let redactor = LogRedactor()
            redactor.add(secret: "hunter2-long-secret")
            let fields = JournalFields.build(
                message: "created task\nsecond line with hunter2-long-secret", level: .warning, identifier: "reeld",
                label: "reel.scheduler", file: "ReelDaemon/Scheduler.swift", line: 42, function: "tick()",
                metadata: ["job_id": "b1/j1", "batch": "b1", "attempt": .stringConvertible(2),
                           "api_key": "sk-0123456789abcdef0123", "bad key": "dropped", "_x": "dropped"],
                redactor: redactor)
            #expect(fields == [
                "MESSAGE=created task\nsecond line with <redacted>",
                "PRIORITY=4",
                "SYSLOG_IDENTIFIER=reeld",
                "CODE_FILE=ReelDaemon/Scheduler.swift",
                "CODE_LINE=42",
                "CODE_FUNC=tick()",
                "LOGGER=reel.scheduler",
                "API_KEY=<redacted>",
                "ATTEMPT=2",
                "BATCH=b1",
                "JOB_ID=b1/j1",
            ])
        }

        @Test func errorsBecomeAnErrorField() {
            struct Boom: Error, CustomStringConvertible {
                var description: String { "HTTP 401 Bearer abcdefgh12345678" }
            }
            let fields = JournalFields.build(message: "m", level: .error, identifier: "reeld", label: "l", file: "f",
                                             line: 1, function: "g", metadata: [:], error: Boom(),
                                             redactor: LogRedactor())
            #expect(fields.contains("ERROR=HTTP 401 Bearer <redacted>"))
        }

        @Test func textLineIsOneEscapedLine() {
            let line = JournalFields.textLine(
                message: "two\nlines", level: .error, label: "reel.spool",
                metadata: ["path": "/var/spool/reel/incoming/a b.json", "job_id": "b/j", "token": "abc"],
                syslogPrefix: true, timestamp: nil, redactor: LogRedactor())
            #expect(line == "<3>error reel.spool: two\\nlines job_id=b/j "
                + "path=\"/var/spool/reel/incoming/a b.json\" token=<redacted>")
            let plain = JournalFields.textLine(message: "ok", level: .info, label: "x", metadata: [:],
                                               syslogPrefix: false, timestamp: "2026-01-01T00:00:00Z",
                                               redactor: LogRedactor())
            #expect(plain == "2026-01-01T00:00:00Z info x: ok")
        }

        @Test func redactorMasksSecretKeysValuesAndTokens() {
            for key in ["api_key", "API-Key", "x-api-key", "Authorization", "token", "refresh_token", "password",
                        "dashscope_api_key", "client_secret"] {
                #expect(LogRedactor.isSecretKey(key), "\(key)")
            }
            for key in ["job_id", "job_key", "task_id", "batch", "tokens_used_count"] {
                #expect(!LogRedactor.isSecretKey(key), "\(key)")
            }
            let r = LogRedactor()
            r.add(secret: "short")  // too short to mask safely: ignored
            r.add(secret: "my-very-secret-value")
            #expect(r.scrub("a short my-very-secret-value b") == "a short <redacted> b")
            #expect(r.scrub("Authorization: Bearer sk-abcdefghijklmnopqrstuvwxyz123456")
                == "Authorization: Bearer sk-<redacted>")
            #expect(r.scrub("key=sk-0123456789abcdef0123 rest") == "key=sk-<redacted> rest")
            #expect(r.scrub("risk-free sk-short task-id") == "risk-free sk-short task-id")
        }

        @Test func journalStreamMatchesOnlyTheRightDeviceAndInode() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let fd = open(tmp.path + "/stream", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            #expect(fd >= 0)
            defer { close(fd) }
            var st = stat()
            #expect(fstat(fd, &st) == 0)
            #expect(JournalLogHandler.stream("\(st.st_dev):\(st.st_ino)", matches: fd))
            #expect(!JournalLogHandler.stream("\(st.st_dev):\(st.st_ino + 1)", matches: fd))
            #expect(!JournalLogHandler.stream("garbage", matches: fd))
            #expect(!JournalLogHandler.stream(nil, matches: fd))
        }

        @Test func handlerWritesOneRedactedLinePerRecord() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let fd = open(tmp.path + "/stderr", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
            defer { close(fd) }
            let redactor = LogRedactor()
            redactor.add(secret: "sk-registeredkey0123456789")
            let level = LogLevelSetting(.info)
            var logger = Logger(label: "reel.test") {
                JournalLogHandler(label: $0, mode: .stderr, level: level, redactor: redactor, stderrFD: fd)
            }
            logger[metadataKey: "job_id"] = "b1/j1"
            logger.debug("hidden at info")
            logger.info("using key sk-registeredkey0123456789", metadata: ["authorization": "Bearer x"])
            level.level = .debug  // what SIGHUP does
            logger.debug("now visible\nsecond")
            let text = try String(contentsOfFile: tmp.path + "/stderr", encoding: .utf8)
            let lines = text.split(separator: "\n")
            #expect(lines.count == 2)
            #expect(lines.first?.hasSuffix(
                "info reel.test: using key <redacted> authorization=<redacted> job_id=b1/j1") == true)
            #expect(lines.last?.hasSuffix("debug reel.test: now visible\\nsecond job_id=b1/j1") == true)
            #expect(!text.contains("registeredkey"))
        }
    }
}
