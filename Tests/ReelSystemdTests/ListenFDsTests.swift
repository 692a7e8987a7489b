import Glibc
@testable import ReelSystemd
import Testing

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
    }
}
