import Foundation
import Glibc
import ReelTestKit
import Testing

/// Spool intake through the real reeld: real inotify, real SQLite, real files. The daemon is paused, so nothing
/// is submitted and the store's job counts are exactly what intake took.
@Suite(.serialized) struct DaemonIntakeTests {
    /// A paused reeld against a sandbox (which it never calls while paused).
    static func pausedDaemon(extraConfig: String = ReeldProcess.fastConfig) async throws
        -> (SandboxProcess, ReeldProcess)
    {
        let sandbox = try await SandboxProcess.start()
        let reeld = try ReeldProcess(providerURL: sandbox.url, extraConfig: extraConfig)
        try await reeld.start()
        let pause = try await reeld.post("/v1/pause")
        #expect(pause.status == 200, "POST /v1/pause: \(pause.text)")
        return (sandbox, reeld)
    }

    /// 1,000 manifests renamed into incoming/ at once are all taken, each exactly once.
    @Test func thousandManifestsDroppedAtOnceAreEachTakenOnce() async throws {
        let (sandbox, reeld) = try await Self.pausedDaemon()
        defer { sandbox.stop(); reeld.stop() }
        let (files, jobs) = IntakeKit.manyManifests(1000, prefix: "k")
        try IntakeKit.dropAll(files, into: reeld)

        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: jobs)
        #expect(counts == ["queued": jobs], "every job queued once, nothing submitted while paused")
        #expect(IntakeKit.names(reeld.spool + "/rejected").isEmpty)
        #expect(IntakeKit.names(reeld.spool + "/incoming").isEmpty)
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*), count(DISTINCT sha256) FROM manifests") == "1000|1000")
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*), count(DISTINCT batch || '/' || id) FROM jobs")
                == "\(jobs)|\(jobs)")
        // Each file was read and committed once: no second pass met an already-ingested file.
        let log = IntakeKit.log(reeld)
        #expect(IntakeKit.occurrences(of: "manifest accepted", in: log) == 1000)
        #expect(IntakeKit.occurrences(of: "already ingested", in: log) == 0)
        #expect(try await sandbox.journal().isEmpty, "a paused daemon calls nothing")
    }

    /// SIGKILL while 2,000 manifests are being ingested, then restart: every job exactly once, and the
    /// window between a commit and its file's removal is really crossed (the restarted daemon meets files it
    /// had already committed and recognises them by content hash).
    @Test func sigkillMidIntakeIngestsEachJobExactlyOnce() async throws {
        let (sandbox, reeld) = try await Self.pausedDaemon()
        defer { sandbox.stop(); reeld.stop() }
        // Dropped while reeld is down, so the restarted daemon takes them by scanning, in chunks (64 files first,
        // each next one at most twice the previous): commit each chunk's jobs, then remove the chunk's files. The
        // window between the two lasts about a millisecond, so a kill timed from outside mostly misses it (CI
        // proved that); the debug-only hook REEL_TEST_HOLD_INTAKE_AFTER parks intake inside the window once 300
        // manifests are committed, and the SIGKILL lands there. Before that chunk fewer than 300 were committed,
        // and it is at most twice the one before, so it holds fewer than 600 files: never all 2,000.
        #expect(reeld.stop() == 0)
        let (files, jobs) = IntakeKit.manyManifests(2000, prefix: "crash")
        try IntakeKit.dropAll(files, into: reeld)

        let plain = reeld.environment
        reeld.environment["REEL_TEST_HOLD_INTAKE_AFTER"] = "300"
        try await reeld.start()
        try await IntakeKit.wait("intake held between commit and unlink", timeout: 60) {
            IntakeKit.log(reeld).contains("test hook: intake holding between commit and unlink")
        }
        reeld.crash()
        reeld.environment = plain
        let before = Int(try await IntakeKit.sql(reeld, "SELECT count(*) FROM manifests")) ?? 0
        #expect(before >= 300 && before < files.count, "killed mid-intake (\(before) of \(files.count) committed)")
        let taken = Set(try await IntakeKit.sql(reeld, "SELECT file_name FROM manifests").split(separator: "\n")
                            .map(String.init))
        let leftovers = taken.intersection(IntakeKit.names(reeld.spool + "/incoming"))
        // The held chunk's files, plus any of the earlier chunks' files whose unlinks still trailed behind.
        #expect(!leftovers.isEmpty && leftovers.count <= before,
                "the kill left committed files in incoming/ (\(leftovers.count) of \(before) committed)")
        try await reeld.start()  // (a start begins a fresh reeld.log)

        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: jobs)
        #expect(counts == ["queued": jobs], "\(counts)")
        #expect(IntakeKit.names(reeld.spool + "/rejected").isEmpty)
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*), count(DISTINCT sha256) FROM manifests")
                == "\(files.count)|\(files.count)")
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*), count(DISTINCT batch || '/' || id) FROM jobs")
                == "\(jobs)|\(jobs)")
        // One creation transition per job: none was taken twice.
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*) FROM transitions WHERE from_state IS NULL") == "\(jobs)")
        // The paused setting survived every crash: nothing was submitted.
        #expect(try await sandbox.journal().isEmpty)
        // The restarted daemon recognised each leftover by its content hash.
        #expect(reeld.stop() == 0)
        let recognised = IntakeKit.occurrences(of: "already ingested", in: IntakeKit.log(reeld))
        #expect(recognised == leftovers.count, "\(recognised) of \(leftovers.count) leftovers logged as already ingested")
    }

    /// Committed files leave `incoming/` behind the commits (intake's unlinker). While a name waits for its unlink,
    /// passes do not read it again; a new file renamed in under that name meanwhile is taken once the unlinker is
    /// done with the name, not at the next periodic rescan (an hour away here).
    @Test func aNameReusedWhileItsCommittedFileAwaitsUnlinkIsTaken() async throws {
        let slowRescan = ReeldProcess.fastConfig.replacingOccurrences(
            of: "rescan_interval = \"1s\"", with: "rescan_interval = \"1h\"")
        let (sandbox, reeld) = try await Self.pausedDaemon(extraConfig: slowRescan)
        defer { sandbox.stop(); reeld.stop() }
        #expect(reeld.stop() == 0)
        let hold = reeld.spool + "/../hold-unlink"
        #expect(FileManager.default.createFile(atPath: hold, contents: Data()))
        reeld.environment["REEL_TEST_HOLD_UNLINK"] = hold
        try await reeld.start()

        // Written a minute ago, so a pass that listed it again would find it settled and read it.
        let first = reeld.spool + "/tmp/same.json"
        try IntakeKit.manifest(batch: "reuse", ids: ["one"]).write(toFile: first, atomically: false, encoding: .utf8)
        let old = Date().addingTimeInterval(-60)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: first)
        #expect(rename(first, reeld.spool + "/incoming/same.json") == 0)
        _ = try await IntakeKit.waitUntilTaken(reeld, jobs: 1, keep: ["same.json"])
        try await IntakeKit.wait("the unlinker held") {
            IntakeKit.log(reeld).contains("test hook: unlinker holding")
        }
        #expect(IntakeKit.names(reeld.spool + "/incoming") == ["same.json"], "committed, not yet unlinked")
        // Another file's hint pass lists incoming/ while same.json is pending: it must not read it again.
        try reeld.drop(IntakeKit.manifest(batch: "reuse", ids: ["two"]), as: "other.json")
        _ = try await IntakeKit.waitUntilTaken(reeld, jobs: 2, keep: ["same.json", "other.json"])
        #expect(IntakeKit.occurrences(of: "already ingested", in: IntakeKit.log(reeld)) == 0)
        // A new file under the pending name: taken after the unlinker finds the name holds another file now.
        try reeld.drop(IntakeKit.manifest(batch: "reuse", ids: ["three"]), as: "same.json")
        // A later drop's job in the store means a pass listed incoming/ after the rename above, while same.json
        // was still pending: that pass skipped it.
        try reeld.drop(IntakeKit.manifest(batch: "reuse", ids: ["four"]), as: "later.json")
        _ = try await IntakeKit.waitUntilTaken(reeld, jobs: 3, keep: ["same.json", "other.json", "later.json"])
        #expect(unlink(hold) == 0)
        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: 4)
        #expect(counts == ["queued": 4], "\(counts)")
        try await IntakeKit.wait("incoming/ empty") { IntakeKit.names(reeld.spool + "/incoming").isEmpty }
        #expect(try await IntakeKit.sql(reeld, "SELECT count(*) FROM manifests WHERE file_name = 'same.json'") == "2")
        #expect(IntakeKit.names(reeld.spool + "/rejected").isEmpty)
    }

    /// Identity: the same BATCH/ID with the same content in another file is a no-op; with different
    /// content the whole file is rejected with a hint naming `reelctl cancel` and a new id.
    @Test func sameJobTwiceIsANoOpAndChangedContentIsRejected() async throws {
        let (sandbox, reeld) = try await Self.pausedDaemon()
        defer { sandbox.stop(); reeld.stop() }
        try reeld.drop(IntakeKit.manifest(batch: "ident", ids: ["hero"]), as: "first.json")
        _ = try await IntakeKit.waitUntilTaken(reeld, jobs: 1)

        // Same job, same content, different bytes (another job beside it, other spacing): hero is unchanged,
        // extra is new.
        let again = IntakeKit.manifest(batch: "ident", ids: ["hero", "extra"]).replacingOccurrences(of: ", ", with: ",  ")
        try reeld.drop(again, as: "second.json")
        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: 2)
        #expect(counts == ["queued": 2])
        // And the very same file again: recognised by its hash.
        try reeld.drop(IntakeKit.manifest(batch: "ident", ids: ["hero"]), as: "third.json")
        try await IntakeKit.wait("third.json taken") { IntakeKit.names(reeld.spool + "/incoming").isEmpty }
        #expect(try await reeld.counts() == ["queued": 2])
        #expect(IntakeKit.names(reeld.spool + "/rejected").isEmpty)

        // Different content under the same id: rejected, nothing from the file is taken (not even its new job).
        try reeld.drop(IntakeKit.manifest(batch: "ident", ids: ["fresh", "hero"], prompt: "character1 jumps"),
                       as: "changed.json")
        try await IntakeKit.wait("changed.error.json") {
            FileManager.default.fileExists(atPath: reeld.spool + "/rejected/changed.error.json")
        }
        let issues = IntakeKit.issues(try IntakeKit.report(reeld, "changed.error.json"))
        #expect(issues.count == 1, "\(issues)")
        // Only hero conflicts; "fresh" differs from nothing (its prompt differs from hero's, not from a stored job).
        let hero = issues.first { $0.pointer == "/jobs/1/id" }
        #expect(hero != nil, "\(issues)")
        #expect(hero?.message.contains("ident/hero") == true)
        #expect(hero?.hint.contains("reelctl cancel ident/hero") == true)
        #expect(hero?.hint.contains("new id") == true)
        #expect(FileManager.default.fileExists(atPath: reeld.spool + "/rejected/changed.json"))
        #expect(try await reeld.counts() == ["queued": 2], "nothing from a rejected file is taken")
        #expect(try await IntakeKit.sql(reeld, "SELECT id FROM jobs ORDER BY id") == "extra\nhero")

        // Once the job is finished (here: cancelled), cancelling is no longer the way: the hint says new id only.
        #expect(try await reeld.post("/v1/jobs/ident/hero/cancel").status == 200)
        try reeld.drop(IntakeKit.manifest(batch: "ident", ids: ["hero"], prompt: "character1 sits"), as: "late.json")
        try await IntakeKit.wait("late.error.json") {
            FileManager.default.fileExists(atPath: reeld.spool + "/rejected/late.error.json")
        }
        let late = IntakeKit.issues(try IntakeKit.report(reeld, "late.error.json"))
        #expect(late.count == 1 && late.first?.pointer == "/jobs/0/id", "\(late)")
        #expect(late.first?.message.contains("cancelled") == true && late.first?.hint.contains("new id") == true)
        #expect(late.first?.hint.contains("reelctl cancel") == false, "\(late)")
    }

    /// Temporary files a crash left in the output tree (`.job-064.json.tmp-28228-3378129899`) and in the spool are
    /// removed when reeld starts; a partial download and everything else stay.
    @Test func startRemovesTemporariesACrashLeft() async throws {
        let (sandbox, reeld) = try await Self.pausedDaemon()
        defer { sandbox.stop(); reeld.stop() }
        #expect(reeld.stop() == 0)
        let batch = reeld.output + "/crash"
        try FileManager.default.createDirectory(atPath: batch, withIntermediateDirectories: true)
        let stale = [batch + "/.job-064.json.tmp-28228-3378129899", batch + "/.SHA256SUMS.tmp-1-2",
                     reeld.spool + "/rejected/.reel.3f9a2b.tmp"]
        let kept = [batch + "/.job-065.mp4.part", batch + "/job-063.json"]
        for path in stale + kept { try Data("x".utf8).write(to: URL(fileURLWithPath: path)) }
        try await reeld.start()
        for path in stale { #expect(!FileManager.default.fileExists(atPath: path), "\(path) survived the start") }
        for path in kept { #expect(FileManager.default.fileExists(atPath: path), "\(path) was removed") }
        #expect(IntakeKit.log(reeld).contains("removed temporary files left by an earlier crash"))
    }

    /// A slow writer writing a valid manifest in place in incoming/, in chunks 3 s apart (longer than the 2 s a
    /// rescan waits for a file to settle, with rescans every second): the file is taken once its writer closes
    /// it, and is not rejected half-written.
    @Test func aSlowWriterInPlaceIsTakenWhenItClosesNotRejected() async throws {
        let (sandbox, reeld) = try await Self.pausedDaemon()
        defer { sandbox.stop(); reeld.stop() }
        let json = IntakeKit.manifest(batch: "slow", ids: ["s-1", "s-2"])
        let third = json.utf8.count / 3
        let parts = [String(json.prefix(third)), String(json.dropFirst(third).prefix(third)),
                     String(json.dropFirst(2 * third))]
        #expect(parts.joined() == json)
        let writer = try await Child.run("/bin/sh", ["-c",
            #"{ printf '%s' "$1"; sleep 3; printf '%s' "$2"; sleep 3; printf '%s' "$3"; } > "$4""#,
            "writer", parts[0], parts[1], parts[2], reeld.spool + "/incoming/slow.json"])
        #expect(writer.status == 0)
        let counts = try await IntakeKit.waitUntilTaken(reeld, jobs: 2)
        #expect(counts == ["queued": 2])
        #expect(IntakeKit.names(reeld.spool + "/rejected").isEmpty, "\(IntakeKit.log(reeld).suffix(2000))")
        #expect(IntakeKit.names(reeld.spool + "/incoming").isEmpty)
    }
}
