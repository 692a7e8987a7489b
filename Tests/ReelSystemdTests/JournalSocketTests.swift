import Foundation
import Glibc
import Logging
@testable import ReelSystemd
import ReelTestKit
import Testing

let journalProbeVariable = "REEL_JOURNAL_PROBE"

/// Parses journald's native protocol: `NAME=value\n`, or `NAME\n<le64 length><bytes>\n` for values with newlines.
func parseNativeEntry(_ data: [UInt8]) -> [String]? {
    var fields: [String] = []
    var i = 0
    while i < data.count {
        guard let end = data[i...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\n") })
        else { return nil }
        let name = String(decoding: data[i..<end], as: UTF8.self)
        if data[end] == UInt8(ascii: "=") {
            guard let nl = data[(end + 1)...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
            fields.append(name + "=" + String(decoding: data[(end + 1)..<nl], as: UTF8.self))
            i = nl + 1
        } else {
            guard end + 9 <= data.count else { return nil }
            let length = data[(end + 1)..<(end + 9)].reversed().reduce(0) { $0 << 8 | Int($1) }
            let start = end + 9
            guard start + length < data.count, data[start + length] == UInt8(ascii: "\n") else { return nil }
            fields.append(name + "=" + String(decoding: data[start..<(start + length)], as: UTF8.self))
            i = start + length + 1
        }
    }
    return fields
}

extension SystemdTests {
    /// `sd_journal_sendv` for real. This machine has no journald (/run/systemd/journal/socket is absent), so the test
    /// re-runs itself under `unshare --mount` with a private tmpfs on /run, where the child binds the journal socket
    /// itself, logs through `JournalLogHandler(mode: .journal)`, and parses what libsystemd sent. Needs root.
    @Suite struct JournalSocketTests {
        static let canUnshare = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")

        @Test func nativeProtocolRoundTrip() throws {
            let raw = Array("MESSAGE=hi\nMULTI\n".utf8) + [5, 0, 0, 0, 0, 0, 0, 0] + Array("a\nb c\nJOB_ID=x/y\n".utf8)
            #expect(parseNativeEntry(raw) == ["MESSAGE=hi", "MULTI=a\nb c", "JOB_ID=x/y"])
        }

        @Test(.enabled(if: canUnshare)) func handlerSendsNativeFieldsThroughSdJournalSendv() async throws {
            if getenv(journalProbeVariable) != nil {  // the child, in its own mount namespace
                try FileManager.default.createDirectory(atPath: "/run/systemd/journal",
                                                        withIntermediateDirectories: true)
                let fd = try bindUnix(path: "/run/systemd/journal/socket", type: SOCK_DGRAM, listen: false)
                defer { close(fd) }
                var logger = Logger(label: "reel.scheduler") {
                    JournalLogHandler(label: $0, mode: .journal, redactor: LogRedactor(), stderrFD: -1)
                }
                logger[metadataKey: "job_id"] = "summer/clip-007"
                logger.warning("render failed\nprovider said 500", metadata: ["attempt": "2", "api_key": "sk-x"])
                var buf = [UInt8](repeating: 0, count: 65536)
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                try #require(poll(&pfd, 1, 5000) == 1, "nothing arrived on the journal socket")
                let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                let fields = try #require(parseNativeEntry(Array(buf[..<max(n, 0)])))
                #expect(fields.contains("MESSAGE=render failed\nprovider said 500"))
                #expect(fields.contains("PRIORITY=4"))
                #expect(fields.contains("SYSLOG_IDENTIFIER=reeld"))
                #expect(fields.contains("LOGGER=reel.scheduler"))
                #expect(fields.contains("JOB_ID=summer/clip-007"))
                #expect(fields.contains("ATTEMPT=2"))
                #expect(fields.contains("API_KEY=<redacted>"))
                #expect(fields.contains { $0.hasPrefix("CODE_FILE=") && $0.hasSuffix("JournalSocketTests.swift") })
                return
            }
            let tmp = try TempDir()
            defer { tmp.remove() }
            let log = tmp.path + "/child.log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            let child = try Child("/usr/bin/unshare",
                                  ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                   "mount -t tmpfs tmpfs /run && exec \"$0\" \"$@\"",
                                   try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
                                   "--testing-library", "swift-testing",
                                   "--filter", "handlerSendsNativeFieldsThroughSdJournalSendv"],
                                  environment: Child.inheritedEnvironment(adding: [journalProbeVariable: "1"]),
                                  stdout: .file(log), stderr: .file(log))
            let status = await child.wait(timeout: 120) ?? child.killAndReap()
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(status == .exited(0), "child failed (\(status)):\n\(output)")
            #expect(output.contains("1 test"), "the child must have run the probe:\n\(output)")
        }
    }
}
