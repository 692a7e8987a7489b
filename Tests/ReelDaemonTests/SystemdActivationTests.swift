import Foundation
import Glibc
import ReelTestKit
import Testing

/// Socket activation with a real launcher.
@Suite(.serialized) struct SystemdActivationTests {
    static let launcher = "/usr/bin/systemd-socket-activate"

    /// `systemd-socket-activate -l PATH --fdname=control reeld …` binds PATH, waits for the first client, then
    /// execs reeld with `LISTEN_FDS=1`, `LISTEN_PID` and `LISTEN_FDNAMES=control` (the same PID, as under systemd).
    /// reeld serves on the passed fd (never binding its configured path), is READY, and leaves PATH in place on
    /// exit: the socket belongs to the service manager.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: launcher)))
    func controlSocketPassedBySystemdSocketActivate() async throws {
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let notify = try NotifyCapture()
        defer { notify.close() }
        let reeld = try ReeldProcess(providerURL: sandbox.url)  // config, folders and helpers; launched below
        let binary = try #require(SandboxProcess.binaryPath(named: "reeld"))
        let listen = reeld.root.appendingPathComponent("activated.sock").path
        // systemd-socket-activate passes only the variables named with -E (as systemd passes only its own).
        var setenv = ["DASHSCOPE_API_KEY=sk-reel-test", "NOTIFY_SOCKET=\(notify.path)"]
        for name in ["PATH", "HOME", "TMPDIR"] where ProcessInfo.processInfo.environment[name] != nil {
            setenv.append(name)
        }
        let launched = try LaunchedProcess(Self.launcher,
                                           ["-l", listen, "--fdname=control"] + setenv.flatMap { ["-E", $0] }
                                               + [binary, "--config", reeld.configPath],
                                           environment: [:], logPath: reeld.logPath)
        defer { launched.child.stopBlocking(signal: SIGTERM, grace: 5) }
        try await eventually("the launcher to bind \(listen)") { UnixSocket.accepts(path: listen) }
        #expect(notify.messages.isEmpty, "reeld starts only when the first client connects")

        // The first client: plain curl, as the spec promises. It waits in the listen queue while reeld starts.
        let curl = try await Child.run("/usr/bin/curl", ["-sS", "--max-time", "60", "--unix-socket", listen,
                                                         "http://reel/v1/status"], timeout: 70)
        let status = try JSONSerialization.jsonObject(with: Data(curl.stdout)) as? [String: Any]
        #expect(status?["pid"] as? Int == Int(launched.pid),
                "the exec'd reeld answered: \(curl.stdoutText) \(curl.stderrText)\n\(launched.log)")
        try await notify.waitFor("READY=1") { $0.isReady }
        #expect(launched.log.contains("control socket passed by systemd"), "\(launched.log)")
        #expect(!FileManager.default.fileExists(atPath: reeld.socket), "reeld must not bind its configured path")
        // reelctl over the same socket.
        let ctl = try await BinaryRun.launch("reelctl", ["status"], environment: ["REEL_SOCKET": listen])
        #expect(ctl.status == 0, "reelctl: \(ctl.stderr)")

        let (exit, _) = await launched.stop(SIGTERM)
        #expect(exit == 0, "reeld exits 0 on SIGTERM by itself (not killed after the grace period): \(launched.log)")
        var st = stat()
        #expect(lstat(listen, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK,
                "the activated socket's path must survive reeld's exit (it belongs to the socket unit)")
    }
}
