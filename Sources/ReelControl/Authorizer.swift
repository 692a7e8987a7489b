import Glibc
import ReelHTTPServer

/// Who may do what over the control socket. Reads: anyone who can connect (the socket's mode and group are the
/// read boundary). Mutations: root, the daemon's own user, and members of the configured admin group — decided
/// from the peer's credentials (SO_PEERCRED), which the kernel vouches for.
public struct Authorizer: Sendable {
    public var daemonUID: uid_t
    public var adminGID: gid_t?

    public init(daemonUID: uid_t = getuid(), adminGroup: String? = nil) {
        self.daemonUID = daemonUID
        self.adminGID = adminGroup.flatMap(Self.gid(ofGroup:))
    }

    public init(daemonUID: uid_t, adminGID: gid_t?) {
        self.daemonUID = daemonUID
        self.adminGID = adminGID
    }

    /// nil when allowed, else the reason for the 403.
    public func refusalToMutate(_ peer: PeerCredentials?) -> String? {
        guard let peer else {
            return "mutations are only accepted over the Unix socket, where the caller's identity is known"
        }
        if peer.uid == 0 || peer.uid == daemonUID { return nil }
        if let adminGID, Self.uid(peer.uid, isMemberOf: adminGID, primary: peer.gid) { return nil }
        let groupName = adminGID.flatMap(Self.name(ofGroup:)).map { "group \($0)" } ?? "no admin group configured"
        return "uid \(peer.uid) may read but not change jobs; mutations need root, the daemon's user, or membership of the admin group (\(groupName))"
    }

    static func gid(ofGroup name: String) -> gid_t? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &group, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return group.gr_gid
    }

    static func name(ofGroup gid: gid_t) -> String? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrgid_r(gid, &group, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return String(cString: group.gr_name)
    }

    /// Primary group, or a supplementary member listed in /etc/group (via the user's name).
    static func uid(_ uid: uid_t, isMemberOf gid: gid_t, primary: gid_t) -> Bool {
        if primary == gid { return true }
        var pw = passwd()
        var pwResult: UnsafeMutablePointer<passwd>?
        var pwBuffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &pw, &pwBuffer, pwBuffer.count, &pwResult) == 0, pwResult != nil else { return false }
        if pw.pw_gid == gid { return true }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(pw.pw_name, pw.pw_gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(pw.pw_name, pw.pw_gid, &groups, &count) >= 0 else { return false }
        }
        return groups.prefix(Int(count)).contains(gid)
    }
}
