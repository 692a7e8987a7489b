import Foundation
import ReelCore
import ReelMedia
import ReelOutput
import Synchronization
import Testing

@Suite struct QCTests {
    /// Publishes `clip` for `spec` and expects a QC failure mentioning `expected`, with nothing left behind.
    func expectQCFailure(clip: String, spec: JobSpec, expected: String, expectedBytes: Int64? = nil,
                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let partial = try Fixture.stage(clip, tree, spec.key)
        do {
            _ = try await Delivery(tree: tree).publish(key: spec.key, spec: spec, partialPath: partial,
                                                       expectedBytes: expectedBytes ?? Fixture.size(partial))
            Issue.record("QC passed, expected a failure about \(expected)", sourceLocation: sourceLocation)
        } catch let DeliveryError.qcFailed(summary, problems) {
            #expect(problems.contains { $0.contains(expected) }, "\(summary): \(problems)", sourceLocation: sourceLocation)
        }
        let dir = try tree.batchDirectory(spec.key.batch)
        #expect(Fixture.all(dir).isEmpty, "left behind: \(Fixture.all(dir))", sourceLocation: sourceLocation)
    }

    @Test func rightClipPassesAndPublishesWithSha256OfSha256sum() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let spec = Fixture.spec()
        let clip = try await Clips.shared.clip()
        #expect(QC.check(try await FFprobe.probe(clip), spec: spec).isEmpty)

        let partial = try Fixture.stage(clip, tree, spec.key)
        let file = try await Delivery(tree: tree).publish(key: spec.key, spec: spec, partialPath: partial,
                                                          expectedBytes: Fixture.size(clip))
        #expect(file.path == "\(tmp.path)/spring/hero-001.mp4")
        #expect(file.bytes == Fixture.size(clip))
        #expect(file.probe.width == 1280 && file.probe.hasAudio)
        #expect(Fixture.all("\(tmp.path)/spring") == ["hero-001.mp4"])   // partial renamed, not copied
        let out = try await runProcess(which("sha256sum")!, [file.path])
        #expect(String(decoding: out.stdout, as: UTF8.self).hasPrefix(file.sha256 + "  "))
        #expect(try await Delivery.sha256(ofFile: clip) == file.sha256)

        // After a crash between the rename and the state change, the published file is re-verified in place.
        let adopted = try await Delivery(tree: tree).adopt(key: spec.key, spec: spec)
        #expect(adopted == file)
        await #expect(throws: DeliveryError.self) {
            try await Delivery(tree: tree).adopt(key: spec.key, spec: Fixture.spec(seconds: 5))
        }
        #expect(FileManager.default.fileExists(atPath: file.path))
    }

    @Test func digestFromTheDownloadIsUsedOnlyWhenItCoversTheFile() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let spec = Fixture.spec()
        let clip = try await Clips.shared.clip()
        let size = Fixture.size(clip)
        let actual = String(decoding: try await runProcess(which("sha256sum")!, [clip]).stdout.prefix(64), as: UTF8.self)

        // A digest of exactly the file's bytes is taken as is: the file is not read again.
        let given = String(repeating: "ab", count: 32)
        _ = try Fixture.stage(clip, tree, spec.key)
        let trusted = try await Delivery(tree: tree).publish(key: spec.key, spec: spec, expectedBytes: size,
                                                             digest: ContentDigest(sha256: given, bytes: size))
        #expect(trusted.sha256 == given)
        // The sidecar's probe fields come from the one ffprobe run of publishing, and say what the file is.
        let record = Sidecar.ProbeRecord(trusted.probe)
        #expect(record == Sidecar.ProbeRecord(try await FFprobe.probe(trusted.path)))
        #expect(record.codec == "h264" && record.width == 1280 && record.height == 720 && record.audio)
        #expect(abs(record.durationS - Double(spec.durationSeconds)) <= QC.durationTolerance)

        // One that covers a different number of bytes is not the file's: it is hashed from disk.
        try FileManager.default.removeItem(atPath: trusted.path)
        _ = try Fixture.stage(clip, tree, spec.key)
        let hashed = try await Delivery(tree: tree).publish(key: spec.key, spec: spec, expectedBytes: size,
                                                            digest: ContentDigest(sha256: given, bytes: size - 1))
        #expect(hashed.sha256 == actual)
    }

    @Test func wrongFrameSizeFails() async throws {
        try await expectQCFailure(clip: try await Clips.shared.clip(width: 640, height: 360), spec: Fixture.spec(),
                                  expected: "frame size: expected 1280x720, got 640x360")
    }

    @Test func wrongDurationFails() async throws {
        try await expectQCFailure(clip: try await Clips.shared.clip(seconds: 3), spec: Fixture.spec(seconds: 2),
                                  expected: "duration: expected 2 s ±0.1 s, got 3.0")
    }

    @Test func missingAudioFails() async throws {
        try await expectQCFailure(clip: try await Clips.shared.clip(audio: false), spec: Fixture.spec(),
                                  expected: "audio: expected an audio track, found none")
    }

    @Test func unexpectedAudioFails() async throws {
        try await expectQCFailure(clip: try await Clips.shared.clip(), spec: Fixture.spec(audio: false),
                                  expected: "audio: expected no audio track")
    }

    @Test func silentClipPassesWhenSilenceWasAsked() async throws {
        let probe = try await FFprobe.probe(try await Clips.shared.clip(audio: false))
        #expect(QC.check(probe, spec: Fixture.spec(audio: false)).isEmpty)
    }

    @Test func nonH264Fails() async throws {
        try await expectQCFailure(clip: try await Clips.shared.clip(codec: "mpeg4"), spec: Fixture.spec(),
                                  expected: "video codec: expected h264, got mpeg4")
    }

    @Test func truncatedFileFailsEvenWhenItsIndexIsIntact() async throws {
        // The sandbox renders with +faststart: the index comes first, so ffprobe alone would accept the cut file.
        let tmp = try TempDir()
        defer { tmp.remove() }
        let clip = try await Clips.shared.clip()
        let data = try Data(contentsOf: URL(fileURLWithPath: clip))
        let cut = "\(tmp.path)/cut.mp4"
        try data.prefix(data.count * 2 / 3).write(to: URL(fileURLWithPath: cut))
        try await expectQCFailure(clip: cut, spec: Fixture.spec(), expected: "truncated: box 'mdat'")
    }

    @Test func garbageFailsQC() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let junk = "\(tmp.path)/junk.mp4"
        try Data("<html>AccessDenied</html>".utf8).write(to: URL(fileURLWithPath: junk))
        try await expectQCFailure(clip: junk, spec: Fixture.spec(), expected: "truncated: box")
    }

    @Test func messagesNameExpectedAndActual() {
        let probe = MediaProbe(formatName: "mov,mp4", kind: .video, durationSeconds: 5.2, width: 1920, height: 1080,
                               videoCodec: "hevc", hasAudio: false, bytes: 10)
        let problems = QC.check(probe, spec: Fixture.spec(seconds: 5))
        #expect(problems == ["video codec: expected h264, got hevc",
                             "frame size: expected 1280x720, got 1920x1080",
                             "duration: expected 5 s ±0.1 s, got 5.200 s",
                             "audio: expected an audio track, found none"])
        let image = MediaProbe(formatName: "png_pipe", kind: .image, width: 10, height: 10, videoCodec: "png", bytes: 10)
        #expect(QC.check(image, spec: Fixture.spec()).first?.contains("found an image") == true)
    }

    @Test func shortDownloadIsKeptForResumeAndLongOneRemoved() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let spec = Fixture.spec()
        let clip = try await Clips.shared.clip()
        let partial = try Fixture.stage(clip, tree, spec.key)
        let size = Fixture.size(clip)
        let delivery = Delivery(tree: tree)
        await #expect(throws: DeliveryError.sizeMismatch(expected: size + 100, actual: size)) {
            try await delivery.publish(key: spec.key, spec: spec, partialPath: partial, expectedBytes: size + 100)
        }
        #expect(Fixture.size(partial) == size)
        await #expect(throws: DeliveryError.sizeMismatch(expected: size - 1, actual: size)) {
            try await delivery.publish(key: spec.key, spec: spec, partialPath: partial, expectedBytes: size - 1)
        }
        #expect(Fixture.all("\(tmp.path)/spring").isEmpty)
        await #expect(throws: DeliveryError.partialMissing(partial)) {
            try await delivery.publish(key: spec.key, spec: spec, partialPath: partial, expectedBytes: nil)
        }
    }
}

@Suite struct PathSafetyTests {
    @Test func badIdentifiersAreRefused() throws {
        let tree = OutputTree(root: "/srv/reel/output")
        for (batch, id) in [("..", "x"), ("b", ".."), ("b", "../../etc/passwd"), ("b/c", "x"), ("b", "a/b"),
                            ("b", ".hidden"), ("", "x"), ("b", ""), ("b", "x\0y"), ("b", String(repeating: "a", count: 65))] {
            let key = JobKey(batch: batch, id: id)
            #expect(throws: DeliveryError.self) { try tree.videoPath(key) }
            #expect(throws: DeliveryError.self) { try tree.partialPath(key) }
            #expect(throws: DeliveryError.self) { try tree.sidecarPath(key) }
        }
        let key = JobKey(batch: "spring", id: "hero-001")
        #expect(try tree.videoPath(key) == "/srv/reel/output/spring/hero-001.mp4")
        #expect(try tree.sidecarPath(key) == "/srv/reel/output/spring/hero-001.json")
        #expect(try tree.partialPath(key) == "/srv/reel/output/spring/.hero-001.mp4.part")
        #expect(OutputTree(root: "/srv/out/").root == "/srv/out")
    }

    @Test func symlinkedBatchDirectoryIsRefused() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let root = try tmp.sub("out")
        let elsewhere = try tmp.sub("elsewhere")
        try FileManager.default.createSymbolicLink(atPath: "\(root)/evil", withDestinationPath: elsewhere)
        let tree = OutputTree(root: root)
        #expect(throws: DeliveryError.self) { try tree.prepare("evil") }
        let spec = Fixture.spec(batch: "evil")
        _ = FileManager.default.createFile(atPath: "\(elsewhere)/.hero-001.mp4.part", contents: Data("x".utf8))
        await #expect(throws: DeliveryError.self) {
            try await Delivery(tree: tree).publish(key: spec.key, spec: spec, expectedBytes: nil)
        }
        #expect(Fixture.all(elsewhere) == [".hero-001.mp4.part"])

        // A plain file where the batch directory should be is refused too; a real one is fine.
        _ = FileManager.default.createFile(atPath: "\(root)/file", contents: Data())
        #expect(throws: DeliveryError.self) { try tree.prepare("file") }
        #expect(try tree.prepare("spring") == "\(root)/spring")
        // The root itself may be a symlink (operators mount storage where they like).
        try FileManager.default.createSymbolicLink(atPath: "\(tmp.path)/link", withDestinationPath: root)
        #expect(try OutputTree(root: "\(tmp.path)/link").prepare("spring") == "\(tmp.path)/link/spring")
    }

    @Test func partialPathMustBeTheTreeOne() async throws {
        let spec = Fixture.spec()
        await #expect(throws: DeliveryError.self) {
            try await Delivery(tree: OutputTree(root: "/nonexistent")).publish(
                key: spec.key, spec: spec, partialPath: "/tmp/x.mp4", expectedBytes: nil)
        }
    }
}

@Suite struct RecordsTests {
    @Test func sidecarIsAtomicPrettySortedSecretFreeAndValid() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let spec = Fixture.spec()
        let clip = try await Clips.shared.clip()
        _ = try Fixture.stage(clip, tree, spec.key)
        let delivery = Delivery(tree: tree)
        let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: nil)
        let written = try await delivery.writeSidecar(Fixture.sidecar(spec, file))
        #expect(written.path == "\(tmp.path)/spring/hero-001.json")
        #expect(Fixture.all("\(tmp.path)/spring") == ["hero-001.json", "hero-001.mp4"])

        let text = try String(contentsOfFile: written.path, encoding: .utf8)
        for secret in ["Signature", "Expires", "OSSAccessKeyId", "pw@", "?"] {
            #expect(!text.contains(secret), "sidecar leaks \(secret)")
        }
        #expect(text.contains("\"location\" : \"https://cdn.example.com/refs/ben.png\""))
        #expect(!text.contains("\\/"))
        #expect(text.contains("\"sidecar_version\" : 1"))
        #expect(text.contains("\"cost_usd\" : 0.45"))     // usage.duration 4.5 s × 0.10 USD
        #expect(text.contains("\"queued\" : \"2027-01-15T07:59:50.000Z\""))
        let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(keys == keys.sorted() && keys.count == 12)

        let decoded = try Delivery.decodeJSON(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: written.path)))
        #expect(decoded == Fixture.sidecar(spec, file))
        #expect(decoded.mp4.sha256 == file.sha256 && decoded.mp4.file == "hero-001.mp4")
        #expect(written.sha256 == (try await Delivery.sha256(ofFile: written.path)))
        if let errors = try await Fixture.schemaErrors(written.path, schema: "sidecar.schema.json") {
            #expect(errors == "")
        }
    }

    @Test func redactionDropsCredentialsQueryAndFragment() {
        #expect(Redact.url(Fixture.signedURL) == "https://cdn.example.com/refs/ben.png")
        #expect(Redact.url("oss://dashscope-instant/abc/ref.mp4") == "oss://dashscope-instant/abc/ref.mp4")
        #expect(Redact.url("https://h.example/a#frag") == "https://h.example/a")
        #expect(Redact.url("https://h.example?X-Amz-Signature=1") == "https://h.example")
        #expect(Redact.url("/srv/refs/a.mp4") == "/srv/refs/a.mp4")
    }

    @Test func batchEndChecksumsPassSha256sumAndRewriteReplacesBoth() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let delivery = Delivery(tree: tree)
        let clip = try await Clips.shared.clip()
        var outcomes: [BatchManifest.JobOutcome] = []
        for id in ["b-002", "a-001"] {
            let spec = Fixture.spec(id: id)
            _ = try Fixture.stage(clip, tree, spec.key)
            let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: nil)
            let sidecar = Fixture.sidecar(spec, file)
            try await delivery.writeSidecar(sidecar)
            outcomes.append(.init(id: id, state: .succeeded, delivered: file, timings: sidecar.timings, costUSD: sidecar.costUsd))
        }
        outcomes.append(.init(id: "c-003", state: .failed,
                              reason: "QC failed twice (h264 640x360 2.000 s): frame size: expected 1280x720, got 640x360",
                              timings: .init(queued: 1_800_000_000)))
        // A stray partial of a running job must not disturb the check.
        _ = try Fixture.stage(clip, tree, JobKey(batch: "spring", id: "d-004"))

        let manifest = BatchManifest(batch: "spring", jobs: outcomes, generatedAt: 1_800_000_200)
        #expect(manifest.complete && manifest.totals.succeeded == 2 && manifest.totals.failed == 1)
        #expect(manifest.totalCostUsd == 0.9)
        let (json, written) = try await delivery.finishBatch(manifest)
        let sums = try #require(written)
        let dir = "\(tmp.path)/spring"
        let lines = try String(contentsOfFile: sums.path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: " ").last! }
        #expect(lines == ["a-001.json", "a-001.mp4", "b-002.json", "b-002.mp4"])
        var check = try await runProcess(which("env")!, ["-C", dir, "sha256sum", "--strict", "-c", "SHA256SUMS"])
        #expect(check.status == 0, "\(String(decoding: check.stdout, as: UTF8.self)) \(check.stderrText)")
        if let errors = try await Fixture.schemaErrors(json.path, schema: "batch.schema.json") { #expect(errors == "") }
        let decoded = try Delivery.decodeJSON(BatchManifest.self, from: Data(contentsOf: URL(fileURLWithPath: json.path)))
        #expect(decoded == manifest)

        // The batch gains a job: both files are replaced, the new video is in the sums, and the check still passes.
        let spec = Fixture.spec(id: "d-004")
        let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: nil)
        try await delivery.writeSidecar(Fixture.sidecar(spec, file))
        let bigger = BatchManifest(batch: "spring", jobs: outcomes + [.init(id: "d-004", state: .succeeded, delivered: file)],
                                   generatedAt: 1_800_000_300)
        try await delivery.finishBatch(bigger)
        #expect(try String(contentsOfFile: sums.path, encoding: .utf8).contains("  d-004.mp4\n"))
        #expect(try Delivery.decodeJSON(BatchManifest.self, from: Data(contentsOf: URL(fileURLWithPath: json.path))).jobs.count == 4)
        check = try await runProcess(which("env")!, ["-C", dir, "sha256sum", "--strict", "-c", "SHA256SUMS"])
        #expect(check.status == 0)
        #expect(Fixture.all(dir).filter { $0.hasPrefix(".") }.isEmpty)   // no temp files left

        // Corrupting a delivered file is what the check is for.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: "\(dir)/a-001.mp4"))
        try handle.seek(toOffset: 100)
        handle.write(Data([0xFF, 0xFF, 0xFF]))
        try handle.close()
        check = try await runProcess(which("env")!, ["-C", dir, "sha256sum", "-c", "SHA256SUMS"])
        #expect(check.status != 0)
    }

    /// `sha256sum -c` fails on an empty list ("no properly formatted checksum lines found"): a batch that delivered
    /// nothing has no SHA256SUMS and batch.json says why; the file appears once a job is delivered after a retry.
    @Test func batchWithNothingDeliveredHasNoSumsUntilAJobIsDelivered() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let tree = OutputTree(root: tmp.path)
        let delivery = Delivery(tree: tree)
        let dir = "\(tmp.path)/spring"
        let failed = BatchManifest.JobOutcome(id: "hero-001", state: .failed,
                                              reason: "the provider refused the prompt (DataInspectionFailed)")
        let (json, sums) = try await delivery.finishBatch(BatchManifest(batch: "spring", jobs: [failed],
                                                                        generatedAt: 1_800_000_000))
        #expect(sums == nil)
        #expect(Fixture.all(dir) == ["batch.json"])
        if let errors = try await Fixture.schemaErrors(json.path, schema: "batch.schema.json") { #expect(errors == "") }
        let first = try Delivery.decodeJSON(BatchManifest.self, from: Data(contentsOf: URL(fileURLWithPath: json.path)))
        #expect(first.checksums.file == nil && first.checksums.entries == 0)
        #expect(first.checksums.note?.contains("no file of this batch was delivered") == true)
        let raw = try String(contentsOfFile: json.path, encoding: .utf8)
        #expect(raw.contains("\"checksums\" : {") && !raw.contains("\"file\" : null"))

        // A later job of the batch is delivered (a retry): SHA256SUMS appears and checks.
        let clip = try await Clips.shared.clip()
        let spec = Fixture.spec(id: "hero-002")
        _ = try Fixture.stage(clip, tree, spec.key)
        let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: nil)
        try await delivery.writeSidecar(Fixture.sidecar(spec, file))
        let (_, later) = try await delivery.finishBatch(BatchManifest(
            batch: "spring", jobs: [failed, .init(id: "hero-002", state: .succeeded, delivered: file)],
            generatedAt: 1_800_000_100))
        #expect(later?.name == "SHA256SUMS")
        #expect(Fixture.all(dir) == ["SHA256SUMS", "batch.json", "hero-002.json", "hero-002.mp4"])
        let check = try await runProcess(which("env")!, ["-C", dir, "sha256sum", "--strict", "-c", "SHA256SUMS"])
        #expect(check.status == 0, "\(check.stderrText)")
        let second = try Delivery.decodeJSON(BatchManifest.self, from: Data(contentsOf: URL(fileURLWithPath: json.path)))
        #expect(second.checksums == BatchManifest.Checksums(entries: 2))
        #expect(second.checksums.file == "SHA256SUMS" && second.checksums.note == nil)
        if let errors = try await Fixture.schemaErrors(json.path, schema: "batch.schema.json") { #expect(errors == "") }
    }

    /// The names a crash can leave in a batch directory between create and rename are recognised, and nothing
    /// else: a partial download is resumed, not swept.
    @Test func temporaryNamesAreRecognisedExactly() {
        #expect(Delivery.isTemporaryName(Array(".job-064.json.tmp-28228-3378129899".utf8)))
        #expect(Delivery.isTemporaryName(Array(".SHA256SUMS.tmp-1-2".utf8)))
        #expect(Delivery.isTemporaryName(Array(".batch.json.tmp-7-0".utf8)))
        for kept in ["job-064.json", ".job-064.mp4.part", "batch.json", ".tmp-1-2", "x.json.tmp-1-2",
                     ".x.json.tmp-1", ".x.json.tmp-a-2", ".x.json.tmp-1-2-3", ".x.json.tmp--2"] {
            #expect(!Delivery.isTemporaryName(Array(kept.utf8)), "\(kept)")
        }
    }

    @Test func sumsRejectBadEntries() throws {
        let sha = String(repeating: "0", count: 64)
        #expect(throws: DeliveryError.self) { try Delivery.sha256sumsText([("../x.mp4", sha)]) }
        #expect(throws: DeliveryError.self) { try Delivery.sha256sumsText([("x.mp4", "ABC")]) }
        #expect(throws: DeliveryError.self) { try Delivery.sha256sumsText([("x.txt", sha)]) }
        #expect(throws: DeliveryError.self) { try Delivery.sha256sumsText([("x.mp4", sha), ("x.mp4", sha)]) }
        #expect(try Delivery.sha256sumsText([("b.mp4", sha), ("B.mp4", sha), ("a.json", sha)])
                == "\(sha)  B.mp4\n\(sha)  a.json\n\(sha)  b.mp4\n")
    }

    @Test func costEstimateAndActual() {
        let spec = Fixture.spec()   // 2 s output; one 4 s video among two references: capped at 2.5 s
        #expect(spec.estimatedBilledSeconds == 4.5)
        #expect(Cost.estimate(spec: spec, pricing: Fixture.pricing) == 0.45)
        #expect(Cost.actual(usage: TaskUsage(duration: 4.5), spec: spec, pricing: Fixture.pricing) == 0.45)
        #expect(Cost.actual(usage: TaskUsage(inputVideoDuration: 1.65, outputVideoDuration: 5), spec: spec,
                            pricing: Fixture.pricing) == 0.665)
        #expect(Cost.actual(usage: TaskUsage(outputVideoDuration: 3), spec: spec, pricing: Fixture.pricing) == 0.3)
        #expect(Cost.actual(usage: TaskUsage(), spec: spec, pricing: Fixture.pricing) == nil)
        #expect(Cost.estimate(spec: spec, pricing: PricingTable()) == nil)
    }
}

@Suite struct HookTests {
    let summary = BatchSummary(batch: "spring", jobs: 3, succeeded: 2, failed: 1, cancelled: 0, costUSD: 0.9)

    @Test func commandGetsTheBatchEnvironmentWithoutAShell() async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let out = "\(tmp.path)/env.txt"
        // `env` itself is the hook: argv is exec'd as given; the `>` here would be a literal argument.
        let r = await BatchHook.run(command: ["/bin/sh", "-c", "env > \"$0\"; echo done >&2", out],
                                    batchPath: "\(tmp.path)/spring", summary: summary, timeout: 10)
        #expect(r.succeeded && !r.timedOut && r.error == nil)
        #expect(r.stderrTail == "done\n")
        let env = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n").map(String.init)
        for line in ["REEL_BATCH=spring", "REEL_BATCH_DIR=\(tmp.path)/spring", "REEL_BATCH_JSON=\(tmp.path)/spring/batch.json",
                     "REEL_JOBS_SUCCEEDED=2", "REEL_JOBS_FAILED=1", "REEL_JOBS_TOTAL=3", "REEL_COST_USD=0.900000"] {
            #expect(env.contains(line), "missing \(line)")
        }

        let literal = await BatchHook.run(command: ["echo", "a;", "b", ">", "\(tmp.path)/nope"], batchPath: tmp.path,
                                          summary: summary, timeout: 10)
        #expect(literal.succeeded)
        #expect(!FileManager.default.fileExists(atPath: "\(tmp.path)/nope"))
    }

    @Test func failingMissingAndHangingCommandsAreRecorded() async throws {
        let failing = await BatchHook.run(command: ["/bin/sh", "-c", "echo boom >&2; exit 3"], batchPath: "/tmp",
                                          summary: summary, timeout: 10)
        #expect(failing.exitStatus == 3 && !failing.succeeded && failing.stderrTail == "boom\n")

        let missing = await BatchHook.run(command: ["reel-no-such-hook"], batchPath: "/tmp", summary: summary, timeout: 1)
        #expect(missing.exitStatus == nil && missing.error?.contains("not found") == true)

        let hanging = await BatchHook.run(command: ["/bin/sleep", "30"], batchPath: "/tmp", summary: summary, timeout: 0.3)
        #expect(hanging.timedOut && hanging.exitStatus == nil)
        // `timedOut` with no exit status proves the kill at the timeout; the duration has no upper bound here because
        // in the parallel test run the 2-thread pool can take tens of seconds to resume this task on a loaded machine.
        #expect(hanging.durationSeconds >= 0.3)
    }

    @Test func webhookSignatureMatchesPythonHMAC() async throws {
        let body = Data(#"{"batch":"spring","succeeded":2}"#.utf8)
        let sig = Webhook.signature(body: body, secret: Array("s3cret".utf8), timestamp: 1_800_000_000)
        let out = try await runProcess(which("python3")!, ["-c", """
            import hmac, hashlib, sys
            print("sha256=" + hmac.new(b"s3cret", b"1800000000." + sys.argv[1].encode(), hashlib.sha256).hexdigest())
            """, String(decoding: body, as: UTF8.self)])
        #expect(String(decoding: out.stdout, as: UTF8.self) == sig + "\n")
        let h = Webhook(url: "http://127.0.0.1:1/hook", secret: Array("s3cret".utf8)).headers(body: body, timestamp: 1_800_000_000)
        #expect(h["X-Reel-Signature"] == sig && h["X-Reel-Timestamp"] == "1800000000")
    }

    /// Answers with scripted statuses; the fault timing is the only fake here.
    final class ScriptedTransport: WebhookTransport, Sendable {
        let statuses: Mutex<[Int]>
        let seen = Mutex<[[String: String]]>([])
        init(_ statuses: [Int]) { self.statuses = Mutex(statuses) }
        func post(url: String, headers: [String: String], body: Data, timeout: Double) async throws -> Int {
            seen.withLock { $0.append(headers) }
            let s = statuses.withLock { $0.isEmpty ? 200 : $0.removeFirst() }
            if s == 0 { throw DeliveryError.invalidArgument("connection refused") }
            return s
        }
    }

    @Test func webhookRetriesWithBackoffAndStopsOnPermanentErrors() async throws {
        let hook = Webhook(url: "http://127.0.0.1:1/hook", secret: Array("k".utf8), attempts: 4, baseDelay: 2, maxDelay: 5)
        let slept = Mutex<[Double]>([])
        let clock = Mutex<Double>(1_800_000_000)
        let transport = ScriptedTransport([503, 0, 200])
        let r = await hook.deliver(body: Data("{}".utf8), transport: transport,
                                   now: { clock.withLock { $0 } },
                                   sleep: { d in slept.withLock { $0.append(d) }; clock.withLock { $0 += d } })
        #expect(r.delivered && r.attempts.map(\.httpStatus) == [503, 0, 200])
        #expect(slept.withLock { $0 } == [2, 4])
        let stamps = transport.seen.withLock { $0.map { $0["X-Reel-Timestamp"]! } }
        #expect(stamps == ["1800000000", "1800000002", "1800000006"])   // each try signed afresh

        let gone = await hook.deliver(body: Data("{}".utf8), transport: ScriptedTransport([404]), now: { 0 }, sleep: { _ in })
        #expect(!gone.delivered && gone.attempts.count == 1)
        let down = await hook.deliver(body: Data("{}".utf8), transport: ScriptedTransport([500, 500, 500, 500, 500]),
                                      now: { 0 }, sleep: { _ in })
        #expect(!down.delivered && down.attempts.count == 4)
        #expect(hook.delay(after: 3) == 5)
    }
}
