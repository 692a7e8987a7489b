import Foundation

/// Hooks for the daemon's own end-to-end tests. Compiled into debug builds only; a release build ignores them.
enum TestHooks {
    #if DEBUG
    /// `REEL_TEST_STALL_ENGINE=<file>`: while `<file>` exists, every scheduler tick that falls due waits before it
    /// runs. The engine actor stays responsive (the control API and `STATUS=` lines keep working) but its loop
    /// falls behind, which is exactly what the systemd watchdog gate must notice. See docs/systemd.md.
    private static let stallFile = ProcessInfo.processInfo.environment["REEL_TEST_STALL_ENGINE"]
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
}
