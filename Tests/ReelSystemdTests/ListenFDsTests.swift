import Foundation
import Glibc
@testable import ReelSystemd
import ReelTestKit
import Testing

let socketActivate = "/usr/bin/systemd-socket-activate"
let probeVariable = "REEL_SOCKET_ACTIVATION_PROBE"

extension SystemdTests {
    @Suite struct ListenFDsTests {
        @Test func fdsForAnotherProcessAreIgnoredAndTheVariablesConsumed() {
            setenv("LISTEN_PID", "1", 1)  // meant for PID 1, not us
            setenv("LISTEN_FDS", "1", 1)
            setenv("LISTEN_FDNAMES", "control", 1)
            #expect(ListenFDs.passed().isEmpty)
            #expect(ListenFDs.controlSocket() == nil)
            #expect(getenv("LISTEN_PID") == nil && getenv("LISTEN_FDS") == nil && getenv("LISTEN_FDNAMES") == nil)
        }

        @Test func withoutSocketActivationThereIsNoControlSocket() {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            #expect(ListenFDs.controlSocket() == nil)
        }

        @Test func theFdNamedControlWinsElseTheFirst() {
            #expect(ListenFDs.choose([(3, "metrics"), (4, "control")], name: "control") == 4)
            #expect(ListenFDs.choose([(3, "unknown"), (4, "other")], name: "control") == 3)
            #expect(ListenFDs.choose([], name: "control") == nil)
        }

        @Test func onlyAListeningUnixStreamSocketIsAccepted() throws {
            let tmp = try TempDir()
            defer { tmp.remove() }
            let listening = try bindUnix(path: tmp.path + "/l.sock", type: SOCK_STREAM, listen: true)
            let bound = try bindUnix(path: tmp.path + "/b.sock", type: SOCK_STREAM, listen: false)
            let datagram = try bindUnix(path: tmp.path + "/d.sock", type: SOCK_DGRAM, listen: false)
            var pipeFDs: [Int32] = [0, 0]
            #expect(pipe(&pipeFDs) == 0)
            defer { for fd in [listening, bound, datagram] + pipeFDs { close(fd) } }

            #expect(ListenFDs.isListeningUnixStream(listening))
            #expect(!ListenFDs.isListeningUnixStream(bound))
            #expect(!ListenFDs.isListeningUnixStream(datagram))
            #expect(!ListenFDs.isListeningUnixStream(pipeFDs[0]))
            #expect(!ListenFDs.isListeningUnixStream(-1))
        }

        /// End to end with Debian's `systemd-socket-activate`: it binds the path, waits for a client, then execs
        /// this test binary (filtered to this very test) with fd 3 and `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`.
        /// In that child, `ListenFDs.controlSocket()` must return fd 3 and accepting on it must reach our client.
        @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: socketActivate)))
        func socketActivationHandsTheListenerToAChildProcess() async throws {
            if getenv(probeVariable) != nil {  // the child
                let fd = try #require(ListenFDs.controlSocket())
                #expect(fd == 3)
                #expect(getenv("LISTEN_FDS") == nil, "consumed, so our own children never inherit it")
                let conn = accept(fd, nil, nil)
                #expect(conn >= 0)
                let reply = Array("adopted fd \(fd)\n".utf8)
                #expect(write(conn, reply, reply.count) == reply.count)
                close(conn)
                return
            }
            let tmp = try TempDir()
            defer { tmp.remove() }
            let path = tmp.path + "/reel.sock"
            let log = tmp.path + "/child.log"
            let child = try Child(socketActivate,
                                  ["-l", path, "--fdname=control", "-E", "\(probeVariable)=1",
                                   try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
                                   "--testing-library", "swift-testing",
                                   "--filter", "socketActivationHandsTheListenerToAChildProcess"],
                                  stdout: .file(log), stderr: .file(log))
            defer { child.stopBlocking(signal: SIGTERM, grace: 5) }

            let deadline = NotifyCapture.monotonic() + 10
            while !FileManager.default.fileExists(atPath: path) && NotifyCapture.monotonic() < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            let client = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            defer { close(client) }
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(client, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(connected == 0, "connect to \(path): errno \(errno)")
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            var buf = [UInt8](repeating: 0, count: 256)
            let n = poll(&pfd, 1, 30_000) == 1
                ? buf.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) } : -1
            let childLog = { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
            #expect(n > 0 && String(decoding: buf[..<max(n, 0)], as: UTF8.self) == "adopted fd 3\n", "\(childLog())")
            let status = await child.wait(timeout: 120) ?? child.killAndReap()
            #expect(status == .exited(0), "child test run failed (\(status)):\n\(childLog())")
        }
    }
}
