import Foundation
import Logging

/// Hooks for the daemon's own end-to-end tests. Compiled into debug builds only; a release build ignores them.
enum TestHooks {
    #if DEBUG
    /// `REEL_TEST_STALL_ENGINE=<file>`: while `<file>` exists, every scheduler tick that falls due waits before it
    /// runs. The engine actor stays responsive (the control API and `STATUS=` lines keep working) but its loop
    /// falls behind, which is exactly what the systemd watchdog gate must notice. See docs/systemd.md.
    private static let stallFile = ProcessInfo.processInfo.environment["REEL_TEST_STALL_ENGINE"]
    /// `REEL_TEST_HOLD_INTAKE_AFTER=<n>`: once this process has committed at least `n` manifests, intake stops for
    /// good between a chunk's commit and the removal of its files from `incoming/`, and says so in the log. A test
    /// SIGKILLs reeld there to prove the restart recognises committed files by content hash, without racing a
    /// window that lasts a millisecond.
    private static let holdIntakeAfter = ProcessInfo.processInfo.environment["REEL_TEST_HOLD_INTAKE_AFTER"]
        .flatMap { Int($0) }
    /// `REEL_TEST_HOLD_UNLINK=<file>`: while `<file>` exists, intake's unlinker waits before each batch, so committed
    /// files stay pending in `incoming/` for as long as a test needs.
    private static let holdUnlinkFile = ProcessInfo.processInfo.environment["REEL_TEST_HOLD_UNLINK"]
    #endif

    /// Holds a due tick while the stall file exists (debug builds with `REEL_TEST_STALL_ENGINE` set only).
    static func holdTickIfAsked() async {
        #if DEBUG
        guard let file = stallFile else { return }
        while !Task.isCancelled && FileManager.default.fileExists(atPath: file) {
            try? await Task.sleep(for: .milliseconds(50))
        }
        #endif
    }

    /// Holds intake forever between commit and unlink once `committed` reaches `REEL_TEST_HOLD_INTAKE_AFTER`
    /// (debug builds only).
    static func holdIntakeBeforeUnlinkIfAsked(committed: Int, logger: Logger) async {
        #if DEBUG
        guard let limit = holdIntakeAfter, committed >= limit else { return }
        logger.notice("test hook: intake holding between commit and unlink", metadata: ["committed": "\(committed)"])
        while !Task.isCancelled { try? await Task.sleep(for: .seconds(1)) }
        #endif
    }

    /// Blocks the calling thread (intake's unlinker queue, never the cooperative pool) while the hold file exists
    /// (debug builds with `REEL_TEST_HOLD_UNLINK` set only).
    static func holdUnlinkIfAsked(logger: Logger) {
        #if DEBUG
        guard let file = holdUnlinkFile, FileManager.default.fileExists(atPath: file) else { return }
        logger.notice("test hook: unlinker holding")
        while FileManager.default.fileExists(atPath: file) { Thread.sleep(forTimeInterval: 0.02) }
        #endif
    }
}
