import Foundation
import ReelMedia
import Testing

/// `runProcess` (ffprobe, ffmpeg, the batch hook): posix_spawn with a clean signal state and descriptors, a
/// dedicated thread per child, and a timeout that holds even when the child closes its output early.
@Suite struct SubprocessTests {
    @Test func aChildStartsWithDefaultSignalsAndOnlyItsStandardDescriptors() async throws {
        // The test runner (like reeld under swift-service-lifecycle) blocks or ignores some signals; none of that
        // may reach the child.
        let out = try await runProcess("/bin/sh", ["-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd"])
        #expect(out.status == 0, "\(out.stderrText)")
        let lines = String(decoding: out.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        // Signals 1–31 (glibc keeps its two internal real-time signals, 32 and 33, to itself).
        func mask(_ name: String) -> UInt64? {
            lines.first { $0.hasPrefix(name + ":") }.flatMap { UInt64($0.split(separator: "\t").last ?? "", radix: 16) }
        }
        #expect(mask("SigBlk").map { $0 & 0x7fff_ffff } == 0, "\(lines)")
        #expect(mask("SigIgn").map { $0 & 0x7fff_ffff } == 0, "\(lines)")
        // ls's own descriptors: 0, 1, 2 and the one it opened to list the directory.
        let fds = lines.compactMap { Int($0) }
        #expect(fds.filter { $0 > 3 }.isEmpty, "descriptors leaked into the child: \(fds)")
    }

    @Test func outputExitStatusAndTimeouts() async throws {
        let ok = try await runProcess("/bin/sh", ["-c", "printf out; printf err >&2; exit 3"])
        #expect(ok.status == 3 && String(decoding: ok.stdout, as: UTF8.self) == "out" && ok.stderrText == "err")

        let start = ContinuousClock.now
        await #expect(throws: SubprocessError.self) {
            try await runProcess("/bin/sleep", ["30"], timeout: 0.5)
        }
        // A child that closes its output and keeps running is still killed at the timeout.
        await #expect(throws: SubprocessError.self) {
            try await runProcess("/bin/sh", ["-c", "exec >/dev/null 2>&1; exec sleep 30"], timeout: 0.5)
        }
        // Well under the children's 30 s: the timeouts worked (the margin is for a loaded machine, not a target).
        #expect(ContinuousClock.now - start < .seconds(25))

        // A child that exits while a background job still holds its output returns promptly.
        let quick = ContinuousClock.now
        let detached = try await runProcess("/bin/sh", ["-c", "sleep 60 & echo started"], timeout: 120)
        #expect(detached.status == 0 && String(decoding: detached.stdout, as: UTF8.self) == "started\n")
        // Waiting for the background job would take 60 s; promptly is far less even on a loaded machine.
        #expect(ContinuousClock.now - quick < .seconds(30))
    }
}
