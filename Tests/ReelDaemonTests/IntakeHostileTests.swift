import Foundation
import Glibc
import ReelTestKit
import Testing

extension DaemonIntakeTests {
    /// Everything a hostile or careless writer can put in incoming/, through the running daemon: it keeps running,
    /// moves each bad entry to rejected/ with a readable report (dotfiles are left alone), never follows a link,
    /// never takes a half-written file, and writes nothing outside its spool, state and output folders.
    ///
    /// Tests run as root, which reads any file; reeld runs here without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH so
    /// that a mode-000 file really is unreadable to it, as it would be to the `reel` user.
    @Test func hostileSpoolEntriesAreReportedAndTheDaemonSurvives() async throws {
        let outside = try IntakeKit.scratch()
        defer { try? FileManager.default.removeItem(at: outside) }
        let target = outside.appendingPathComponent("target.json").path
        try IntakeKit.manifest(batch: "outside", ids: ["secret"]).write(toFile: target, atomically: false, encoding: .utf8)
        let targetBefore = try Self.fingerprint(target)

        let config = ReeldProcess.fastConfig.replacingOccurrences(
            of: "rescan_interval = \"1s\"", with: "rescan_interval = \"100ms\"\nmax_manifest_bytes = 65536")
        let sandbox = try await SandboxProcess.start()
        defer { sandbox.stop() }
        let reeld = try ReeldProcess(providerURL: sandbox.url, extraConfig: config)
        reeld.launcher = ["/usr/bin/setpriv", "--inh-caps=-dac_override,-dac_read_search",
                          "--bounding-set=-dac_override,-dac_read_search"]
        try await reeld.start()
        defer { reeld.stop() }
        #expect(try await reeld.post("/v1/pause").status == 200)
        let pid = try #require(reeld.pid)
        let incoming = reeld.spool + "/incoming/"

        // Entries made in place (no rename, so only rescans find most of them).
        #expect(symlink(target, incoming + "link.json") == 0)
        #expect(mkfifo(incoming + "fifo.json", 0o644) == 0)
        #expect(mkdir(incoming + "x.json", 0o755) == 0)
        let device = mknod(incoming + "dev.json", S_IFCHR | 0o644, dev_t(1 << 8 | 3)) == 0  // 1:3, like /dev/null
        try Self.put(Array("{\"manifest_version\": 1, \"pad\": \"\(String(repeating: "x", count: 100_000))\"}".utf8),
                     as: Array("big.json".utf8), in: reeld)
        try Self.put([0xFF, 0x00, 0xFE, 0x7B, 0x22, 0x80], as: Array("garbage.json".utf8), in: reeld)
        let badName = Array("bad".utf8) + [0xFF] + Array(".json".utf8)
        try Self.put(Array(IntakeKit.manifest(batch: "badname", ids: ["j"]).utf8), as: badName, in: reeld)
        try Self.put(Array(IntakeKit.manifest(batch: "perm", ids: ["j"]).utf8), as: Array("perm.json".utf8), in: reeld,
                     mode: 0)
        try IntakeKit.manifest(batch: "hidden", ids: ["j"]).write(toFile: incoming + ".hidden.json", atomically: false,
                                                                   encoding: .utf8)

        // A writer that writes in place, slowly: several rescans pass while the file is half written.
        let slow = Array(IntakeKit.manifest(batch: "slow", ids: ["j"]).utf8)
        let fd = open(incoming + "slow.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        try #require(fd >= 0)
        #expect(write(fd, slow, slow.count / 2) == slow.count / 2)
        try await Task.sleep(for: .milliseconds(700))
        #expect(Array(slow.dropFirst(slow.count / 2)).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                == slow.count - slow.count / 2)
        close(fd)
        try reeld.drop(IntakeKit.manifest(batch: "good", ids: ["j"]), as: "good.json")

        var bad = ["link.json", "fifo.json", "x.json", "big.json", "garbage.json", "perm.json"]
        if device { bad.append("dev.json") }
        let reports = bad.map { String($0.dropLast(5)) + ".error.json" } + ["bad\u{FFFD}.error.json"]
        try await IntakeKit.wait("every bad entry in rejected/") {
            Set(reports).isSubset(of: IntakeKit.names(reeld.spool + "/rejected"))
        }
        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: 2, keep: [".hidden.json"])
        #expect(counts == ["queued": 2], "good and slow, nothing else: \(counts)")
        #expect(try await IntakeKit.sql(reeld, "SELECT batch FROM jobs ORDER BY batch") == "good\nslow")

        // The daemon is the same process and still answers.
        #expect(reeld.pid == pid && kill(pid, 0) == 0)
        #expect(try await reeld.get("/v1/status").status == 200)

        // Each refused entry was moved as it was (never opened as what it pretends to be) beside a report that
        // says what it is and what to do.
        let rejected = reeld.spool + "/rejected/"
        let expectations: [(name: String, type: mode_t, says: String)] = [
            ("link", S_IFLNK, "symbolic link"), ("fifo", S_IFIFO, "FIFO"), ("x", S_IFDIR, "directory"),
            ("big", S_IFREG, "cap of 65536 bytes"), ("garbage", S_IFREG, ""), ("perm", S_IFREG, "permission denied"),
        ] + (device ? [("dev", S_IFCHR, "device")] : [])
        for e in expectations {
            var st = stat()
            #expect(lstat(rejected + e.name + ".json", &st) == 0, "\(e.name).json moved to rejected/")
            #expect(st.st_mode & S_IFMT == e.type, "\(e.name).json keeps its type")
            let report = try IntakeKit.report(reeld, e.name + ".error.json")
            let issues = IntakeKit.issues(report)
            #expect(report["file"] as? String == e.name + ".json")
            #expect((report["errors"] as? Int ?? 0) >= 1 && !issues.isEmpty, "\(e.name): \(report)")
            #expect(issues.allSatisfy { !$0.hint.isEmpty }, "\(e.name): every issue has a hint")
            #expect(e.says.isEmpty || issues.contains { $0.message.contains(e.says) }, "\(e.name): \(issues)")
        }
        #expect(String(decoding: try Data(contentsOf: URL(fileURLWithPath: rejected + "link.json")), as: UTF8.self)
                == (try String(contentsOfFile: target, encoding: .utf8)), "the link still points at its target")
        let badReport = try IntakeKit.report(reeld, raw: Array("bad".utf8) + [0xFF] + Array(".error.json".utf8))
        #expect(IntakeKit.issues(badReport).contains { $0.message.contains("UTF-8") }, "\(badReport)")
        #expect(IntakeKit.entries(rejected).contains(badName), "moved under its own raw name")

        // Dotfiles are a writer's work in progress: left alone, not rejected, not taken.
        #expect(IntakeKit.names(incoming) == [".hidden.json"])
        // The link's target was not followed: same bytes, same times; nothing else appeared beside it.
        #expect(try Self.fingerprint(target) == targetBefore)
        #expect(IntakeKit.names(outside.path) == ["target.json"])
        // Nothing written outside reeld's own folders.
        #expect(Set(IntakeKit.names(reeld.root.path)).isSubset(of: ["reel.toml", "reeld.log", "reel.sock", "spool",
                                                                     "state", "output"]),
                "\(IntakeKit.names(reeld.root.path))")
        #expect(IntakeKit.names(reeld.spool) == ["incoming", "rejected", "tmp"])
        #expect(IntakeKit.names(reeld.spool + "/tmp").isEmpty)
        #expect(IntakeKit.names(reeld.output).isEmpty)
        // The rejected/ folder holds exactly the moved entries and their reports.
        #expect(IntakeKit.entries(rejected).count == 2 * (bad.count + 1), "\(IntakeKit.names(rejected))")
    }

    /// Content, size and modification time of a file.
    static func fingerprint(_ path: String) throws -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw IntakeTestError("stat \(path): errno \(errno)") }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return "\(text.hashValue) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }

    /// Writes `bytes` as `tmp/NAME` (raw name bytes, mode `mode`) and renames it into `incoming/`.
    static func put(_ bytes: [UInt8], as name: [UInt8], in reeld: ReeldProcess, mode: mode_t = 0o644) throws {
        func path(_ dir: String) -> [CChar] { (Array((reeld.spool + dir).utf8) + name + [0]).map { CChar(bitPattern: $0) } }
        let tmp = path("/tmp/"), dest = path("/incoming/")
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw IntakeTestError("create tmp file: errno \(errno)") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == bytes.count, chmod(tmp, mode) == 0, rename(tmp, dest) == 0 else {
            throw IntakeTestError("put \(String(decoding: name, as: UTF8.self)): errno \(errno)")
        }
    }
}
