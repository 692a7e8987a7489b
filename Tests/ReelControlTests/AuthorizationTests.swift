import Foundation
import Glibc
import ReelTestKit
import Testing

/// SO_PEERCRED authorisation with real users: members of the socket's group read,
/// only admin-group members (and root, and the daemon's user) mutate; others cannot even connect.
@Suite(.serialized) struct AuthorizationTests {
    static let canCreateUsers = getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/useradd")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")

    @Test(.enabled(if: canCreateUsers, "needs root, useradd and setpriv to create throwaway users; skipped"))
    func readersReadAdminsMutateOthersCannotConnect() async throws {
        let tag = String(UUID().uuidString.prefix(6)).lowercased()
        let clients = "rt-cli-\(tag)", admins = "rt-adm-\(tag)"
        let reader = "rt-r-\(tag)", admin = "rt-a-\(tag)", outsider = "rt-o-\(tag)"
        defer {
            for u in [reader, admin, outsider] { _ = try? shBlocking("userdel \(u)") }
            for g in [clients, admins] { _ = try? shBlocking("groupdel \(g)") }
        }
        for command in ["groupadd \(clients)", "groupadd \(admins)",
                        "useradd -M -N -s /usr/sbin/nologin -g \(clients) \(reader)",
                        "useradd -M -N -s /usr/sbin/nologin -g \(clients) -G \(admins) \(admin)",
                        "useradd -M -N -s /usr/sbin/nologin \(outsider)"] {
            let r = try await sh(command)
            try #require(r.status == 0, "\(command): \(r.stderr)")
        }

        let reeld = try await pausedDaemon(providerURL: "http://127.0.0.1:9",
                                           extraConfig: ReeldProcess.fastConfig + "\n[control]\nadmin_group = \"\(admins)\"\n")
        defer { reeld.stop() }
        // The socket is 0660 owned by the daemon's group; hand it to the clients' group, as a unit's
        // SocketGroup= / RuntimeDirectory group would.
        var st = stat()
        try #require(stat(reeld.socket, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o660, "socket mode \(String(st.st_mode & 0o777, radix: 8))")
        let gid = try #require(getgrnam(clients)?.pointee.gr_gid)
        try #require(chown(reeld.socket, 0, gid) == 0)
        try #require(chmod(reeld.root.path, 0o755) == 0)
        try reeld.drop(manifest(batch: "auth", count: 2), as: "auth.json")
        _ = try await reeld.waitFor(timeout: 30, "2 jobs") { $0.values.reduce(0, +) == 2 }

        /// `curl` over the socket as `user`; returns (HTTP status or 0, body, curl exit status).
        func curl(as user: String, _ method: String, _ path: String) async throws -> (Int, String, Int32) {
            let r = try await sh("setpriv --reuid=\(user) --regid=$(id -g \(user)) --init-groups "
                + "curl -sS -X \(method) --unix-socket \(q(reeld.socket)) -w '\\n%{http_code}' http://reel\(path)")
            let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n") + r.stderr, r.status)
        }

        // The reader: every read works, every mutation is refused with 403 and a reason.
        for path in ["/v1/status", "/v1/jobs", "/v1/jobs/auth/j-00000", "/v1/batches", "/v1/batches/auth", "/v1/metrics"] {
            let (status, body, _) = try await curl(as: reader, "GET", path)
            #expect(status == 200, "reader GET \(path): \(status) \(body)")
        }
        for path in ["/v1/pause", "/v1/resume", "/v1/drain", "/v1/reload", "/v1/jobs/auth/j-00000/cancel",
                     "/v1/jobs/auth/j-00000/hold", "/v1/batches/auth/cancel"] {
            let (status, body, _) = try await curl(as: reader, "POST", path)
            #expect(status == 403, "reader POST \(path): \(status) \(body)")
            #expect(body.contains("\"code\":\"forbidden\"") && body.contains("may read but not change jobs")
                    && body.contains(admins), "403 names the reason and the admin group: \(body)")
        }
        #expect(try await reeld.counts()["held"] == nil, "nothing the reader asked for happened")

        // The admin-group member may mutate.
        let (held, heldBody, _) = try await curl(as: admin, "POST", "/v1/jobs/auth/j-00000/hold")
        #expect(held == 200, "admin hold: \(heldBody)")
        #expect(try await curl(as: admin, "POST", "/v1/pause").0 == 200)
        #expect(try await reeld.counts()["held"] == 1)

        // Someone outside the socket's group cannot connect at all.
        let (status, body, exit) = try await curl(as: outsider, "GET", "/v1/status")
        #expect(status == 0 && exit == 7, "outsider: \(status) \(exit) \(body)")
        #expect(body.lowercased().contains("permission denied") || body.contains("Couldn't connect"), "\(body)")
    }
}
