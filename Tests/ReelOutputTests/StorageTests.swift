import Foundation
import ReelCore
import ReelMedia
import ReelOutput
import Testing

/// A real, small filesystem: a tmpfs mounted for the test (needs root and CAP_SYS_ADMIN, which this sandbox
/// grants). Where mounting is impossible these tests are skipped with a message.
struct Tmpfs {
    let path: String
    let tmp: TempDir

    static let available: Bool = {
        guard getuid() == 0, FileManager.default.isExecutableFile(atPath: "/bin/mount") else { return false }
        guard let t = try? TempDir() else { return false }
        defer { t.remove() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/mount")
        p.arguments = ["-t", "tmpfs", "-o", "size=64k", "tmpfs", t.path]
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            print("skipping storage tests: cannot mount a tmpfs here (not root or no CAP_SYS_ADMIN)")
            return false
        }
        let u = Process()
        u.executableURL = URL(fileURLWithPath: "/bin/umount")
        u.arguments = [t.path]
        try? u.run()
        u.waitUntilExit()
        return true
    }()

    /// Mounts a tmpfs of `kilobytes`, runs `body`, and always unmounts.
    static func with(kilobytes: Int, _ body: (Tmpfs) async throws -> Void) async throws {
        let tmp = try TempDir()
        defer { tmp.remove() }
        let dir = try tmp.sub("fs")
        let m = try await runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=\(kilobytes)k,mode=0755", "tmpfs", dir])
        try #require(m.status == 0, "mount: \(m.stderrText)")
        let fs = Tmpfs(path: dir, tmp: tmp)
        do {
            try await body(fs)
        } catch {
            _ = try? await runProcess("/bin/umount", [dir])
            throw error
        }
        _ = try await runProcess("/bin/umount", [dir])
    }

    func remount(readOnly: Bool) async throws {
        let r = try await runProcess("/bin/mount", ["-o", "remount,\(readOnly ? "ro" : "rw")", path])
        try #require(r.status == 0, "remount: \(r.stderrText)")
    }

    var freeBytes: Int64 {
        var s = statvfs()
        statvfs(path, &s)
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    /// Fills the filesystem until fewer than `leave` bytes are free; returns the ballast file's path.
    func fill(leaving leave: Int64) throws -> String {
        let ballast = "\(path)/ballast"
        let fd = open(ballast, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x5A, count: 4096)
        while freeBytes >= leave {
            if chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) <= 0 { break }
        }
        return ballast
    }
}

@Suite(.enabled(if: Tmpfs.available, "needs a mountable tmpfs (root)"), .serialized)
struct StorageTests {
    @Test func fullFilesystemFailsSidecarWithStorageErrorAndNothingVisibleThenSucceeds() async throws {
        let clip = try await Clips.shared.clip()
        let clipBytes = Fixture.size(clip)
        try await Tmpfs.with(kilobytes: Int(clipBytes / 1024) + 256) { fs in
            let tree = OutputTree(root: fs.path)
            let delivery = Delivery(tree: tree)
            let spec = Fixture.spec()
            _ = try Fixture.stage(clip, tree, spec.key)
            let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: clipBytes)
            let ballast = try fs.fill(leaving: 1)

            let sidecar = Fixture.sidecar(spec, file)
            do {
                try await delivery.writeSidecar(sidecar)
                Issue.record("sidecar written on a full filesystem")
            } catch let error as DeliveryError {
                guard case .storage(let e, _) = error else { Issue.record("expected .storage, got \(error)"); return }
                #expect(e == ENOSPC && error.isRetryable)
            }
            let manifest = BatchManifest(batch: "spring", jobs: [.init(id: spec.key.id, state: .succeeded, delivered: file)],
                                         generatedAt: 1_800_000_000)
            await #expect(throws: DeliveryError.self) { try await delivery.writeBatchEnd(batch: "spring", manifest: manifest, sums: [("hero-001.mp4", file.sha256)]) }
            #expect(Fixture.all("\(fs.path)/spring") == ["hero-001.mp4"])   // no sidecar, no temp files

            // Space returns: the retry succeeds.
            try FileManager.default.removeItem(atPath: ballast)
            try await delivery.writeSidecar(sidecar)
            try await delivery.finishBatch(manifest)
            #expect(Fixture.all("\(fs.path)/spring") == ["SHA256SUMS", "batch.json", "hero-001.json", "hero-001.mp4"])
        }
    }

    @Test func downloadCutByFullDiskIsNotDeliveredAndResumesWhenSpaceReturns() async throws {
        let clip = try await Clips.shared.clip()
        let bytes = try Data(contentsOf: URL(fileURLWithPath: clip))
        try await Tmpfs.with(kilobytes: bytes.count / 1024 + 128) { fs in
            let tree = OutputTree(root: fs.path)
            let delivery = Delivery(tree: tree)
            let spec = Fixture.spec()
            try tree.prepare("spring")
            let ballast = try fs.fill(leaving: Int64(bytes.count / 2))

            // The "download": write until the filesystem refuses, like the curl write callback would.
            let partial = try tree.partialPath(spec.key)
            let fd = open(partial, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            var written = 0
            var lastErrno: Int32 = 0
            while written < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, min(4096, bytes.count - written)) }
                if n < 0 { lastErrno = errno; break }
                written += n
            }
            close(fd)
            #expect(lastErrno == ENOSPC && written < bytes.count)
            await #expect(throws: DeliveryError.sizeMismatch(expected: Int64(bytes.count), actual: Int64(written))) {
                try await delivery.publish(key: spec.key, spec: spec, expectedBytes: Int64(bytes.count))
            }
            #expect(Fixture.visible("\(fs.path)/spring").isEmpty)

            // Space returns; the download resumes from `written` (Range) and publishing succeeds.
            try FileManager.default.removeItem(atPath: ballast)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: partial))
            try handle.seekToEnd()
            try handle.write(contentsOf: bytes[written...])
            try handle.close()
            let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: Int64(bytes.count))
            #expect(file.sha256 == (try await Delivery.sha256(ofFile: clip)))
            #expect(Fixture.all("\(fs.path)/spring") == ["hero-001.mp4"])
        }
    }

    @Test func readOnlyFilesystemRefusesPublishWithoutVisibleFileThenSucceeds() async throws {
        let clip = try await Clips.shared.clip()
        try await Tmpfs.with(kilobytes: Int(Fixture.size(clip) / 1024) + 256) { fs in
            let tree = OutputTree(root: fs.path)
            let delivery = Delivery(tree: tree)
            let spec = Fixture.spec()
            let partial = try Fixture.stage(clip, tree, spec.key)
            try await fs.remount(readOnly: true)
            do {
                _ = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: Fixture.size(clip))
                Issue.record("published on a read-only filesystem")
            } catch let error as DeliveryError {
                guard case .storage(let e, _) = error else { Issue.record("expected .storage, got \(error)"); return }
                #expect(e == EROFS)
            }
            #expect(Fixture.visible("\(fs.path)/spring").isEmpty)
            #expect(Fixture.size(partial) == Fixture.size(clip))   // kept: no re-download needed

            try await fs.remount(readOnly: false)
            let file = try await delivery.publish(key: spec.key, spec: spec, expectedBytes: Fixture.size(clip))
            #expect(FileManager.default.fileExists(atPath: file.path))
        }
    }
}

/// Which errnos are a passing local condition (delivery waits and retries) and which fail the step.
struct StorageErrnoTests {
    /// EMFILE as a real open(2) reports it: a child process lowers its own RLIMIT_NOFILE and opens until it fails
    /// (this test process keeps its descriptors), and the errno it saw is classified.
    @Test func descriptorExhaustionIsAWaitNotAFailure() async throws {
        let script = """
            import os, resource
            resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
            fds = []
            try:
                while True:
                    fds.append(os.open("/", os.O_RDONLY | os.O_DIRECTORY))
            except OSError as e:
                print(e.errno)
            """
        let run = try await runProcess("/usr/bin/env", ["python3", "-c", script])
        let seen = try #require(Int32(String(decoding: run.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)), "\(run.stderrText)")
        #expect(seen == EMFILE)
        let error = DeliveryError.posix(seen, "cannot open output root /srv/reel/output")
        #expect(error == .storage(errno: EMFILE, message: "cannot open output root /srv/reel/output"))
        #expect(error.isRetryable)
        #expect(error.description.contains("Too many open files") && error.description.contains("out of file descriptors"),
                "\(error)")
    }

    @Test func localConditionsAreStorageAndTheRestFail() {
        for e in [ENOSPC, EDQUOT, EROFS, EIO, EFBIG, EMFILE, ENFILE] {
            #expect(DeliveryError.posix(e, "x").isRetryable, "errno \(e)")
        }
        for e in [EACCES, EPERM, ENOENT, ENOTDIR] {
            #expect(!DeliveryError.posix(e, "x").isRetryable, "errno \(e)")
        }
        #expect(DeliveryError.posix(ENOSPC, "x").description.contains("output filesystem full"))
    }
}
