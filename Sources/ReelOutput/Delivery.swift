import Crypto
import Foundation
import ReelCore
import ReelMedia
import ReelPosix

/// Why a delivery step failed, and what the caller should do about it.
public enum DeliveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file is not the video that was asked for. The partial has been removed: download once more, then fail
    /// the job with this description as its reason.
    case qcFailed(probeSummary: String, problems: [String])
    /// The download has a different size than the server announced. A shorter partial is kept (resume with
    /// `Range`); a longer one is removed (start over).
    case sizeMismatch(expected: Int64, actual: Int64)
    /// There is no partial file to publish (nothing was downloaded, or it was already published).
    case partialMissing(String)
    /// A passing local condition refused the write (`storageErrnos`): the output filesystem is full, read-only
    /// or failing, or the process or system is out of file descriptors. Nothing visible was left behind; retry
    /// the step once it clears. Never a reason to fail a job.
    case storage(errno: Int32, message: String)
    /// Any other system call failure (permissions, a missing output root).
    case io(errno: Int32, message: String)
    /// A name that would leave the output root, or a batch directory that is a symlink or outside the root.
    case unsafePath(String)
    /// A malformed argument from the caller (e.g. a checksum that is not 64 hex digits).
    case invalidArgument(String)

    /// True for the errors worth retrying without changing anything: storage trouble and a short download.
    public var isRetryable: Bool {
        switch self {
        case .storage, .sizeMismatch: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case let .qcFailed(summary, problems):
            "QC failed (\(summary)): \(problems.joined(separator: "; "))"
        case let .sizeMismatch(expected, actual):
            "download size mismatch: expected \(expected) bytes (Content-Length), got \(actual)"
        case let .partialMissing(path): "no downloaded file at \(path)"
        case let .storage(e, message): "\(message): \(Posix.describe(e)) (\(Self.storageTrouble(e)); retry when fixed)"
        case let .io(e, message): "\(message): \(Posix.describe(e))"
        case let .unsafePath(message): message
        case let .invalidArgument(message): message
        }
    }

    /// The errnos that mean a passing local condition, not a bad job: no space or quota, a read-only or failing
    /// filesystem, a file too large for it, and file-descriptor exhaustion (per process, EMFILE, or system-wide,
    /// ENFILE).
    public static let storageErrnos: Set<Int32> = [ENOSPC, EDQUOT, EROFS, EIO, EFBIG, EMFILE, ENFILE]

    /// Maps an errno from a failed system call onto `.storage` (`storageErrnos`) or `.io`.
    public static func posix(_ e: Int32, _ message: String) -> DeliveryError {
        storageErrnos.contains(e) ? .storage(errno: e, message: message) : .io(errno: e, message: message)
    }

    /// `posix(_:_:)` for a `PosixError`.
    public static func posix(_ error: PosixError, _ message: String) -> DeliveryError { posix(error.code, message) }

    /// What a `.storage` errno means for the operator.
    static func storageTrouble(_ e: Int32) -> String {
        e == EMFILE || e == ENFILE ? "out of file descriptors" : "output filesystem full, read-only or failing"
    }
}

/// A file published into the output tree.
public struct DeliveredFile: Sendable, Hashable, Codable {
    /// Absolute path of `<root>/<batch>/<id>.mp4`.
    public var path: String
    /// Lowercase hex sha256 of the content.
    public var sha256: String
    public var bytes: Int64
    public var probe: MediaProbe

    public init(path: String, sha256: String, bytes: Int64, probe: MediaProbe) {
        self.path = path
        self.sha256 = sha256
        self.bytes = bytes
        self.probe = probe
    }
}

/// A small file written atomically (sidecar, `batch.json`, `SHA256SUMS`).
public struct WrittenFile: Sendable, Hashable {
    public var path: String
    /// The name inside the batch directory, e.g. `hero-001.json`.
    public var name: String
    public var sha256: String
    public var bytes: Int64
}

/// Publishes verified videos, sidecars and batch-end files into an `OutputTree`.
///
/// Every file appears under its final name only complete and durable: content is written to a dotfile in the
/// same directory, fsynced, renamed, and the directory fsynced. Blocking file work runs on `BlockingThreads`,
/// never on Swift's cooperative pool.
public struct Delivery: Sendable {
    public let tree: OutputTree

    public init(tree: OutputTree) { self.tree = tree }

    // MARK: - Videos

    /// Verifies the download at `tree.partialPath(key)` and publishes it as `<id>.mp4`.
    ///
    /// Steps: size against `expectedBytes` (the server's `Content-Length`, when known), MP4 box structure (catches a
    /// truncated file whose index is intact), ffprobe QC against `spec` (`QC.check`), sha256, fsync, rename,
    /// directory fsync. The sha256 is `digest`'s (the download hashed the bytes as they arrived) when it covers
    /// exactly the bytes the file holds at the rename; otherwise the file is read and hashed.
    /// - Throws: `DeliveryError.qcFailed` (partial removed; re-download once, then fail the job with the
    ///   description), `.sizeMismatch`, `.partialMissing`, `.storage` (retry once space returns), `.unsafePath`.
    public func publish(key: JobKey, spec: JobSpec, partialPath: String? = nil,
                        expectedBytes: Int64?, digest: ContentDigest? = nil) async throws -> DeliveredFile {
        let partial = try tree.partialPath(key)
        if let partialPath, partialPath != partial {
            throw DeliveryError.invalidArgument("partial path \(partialPath) is not \(partial): downloads must go "
                + "to OutputTree.partialPath(key) so publishing is a rename inside the batch directory")
        }
        let tree = self.tree
        let partialName = try OutputTree.partialName(key.id)
        let finalName = try OutputTree.videoName(key.id)
        let finalPath = try tree.videoPath(key)
        let batchPath = try tree.batchDirectory(key.batch)

        // 1. Size and structure, on a descriptor opened without following links.
        let (bytes, structure) = try await blocking { () throws -> (Int64, [String]) in
            try tree.withBatchDirectory(key.batch) { dir in
                let fd = try openExisting(dir, partialName, path: partial)
                defer { close(fd) }
                let st = try deliveryCall("cannot stat \(partial)") { () throws(PosixError) in try Posix.fstat(fd, path: partial) }
                guard Posix.fileType(st) == S_IFREG else {
                    throw DeliveryError.unsafePath("\(partial) is not a regular file")
                }
                let size = Int64(st.st_size)
                if let expectedBytes, size != expectedBytes {
                    if size > expectedBytes {
                        try deliveryCall("cannot remove \(partial)") { () throws(PosixError) in
                            try Posix.unlinkAt(dir, Array(partialName.utf8), path: partial)
                        }
                    }
                    throw DeliveryError.sizeMismatch(expected: expectedBytes, actual: size)
                }
                return (size, MP4Structure.problems(fd: fd, size: size))
            }
        }

        // 2. QC: structure first (ffprobe happily reads a file cut after an intact index), then the probe.
        let probe: MediaProbe
        do {
            probe = try await FFprobe.probe(partial)
        } catch {
            try await discard(key: key, partialName: partialName)
            throw DeliveryError.qcFailed(probeSummary: "\(error)",
                                         problems: structure.isEmpty ? ["ffprobe cannot read the file"] : structure)
        }
        let problems = structure + QC.check(probe, spec: spec)
        guard problems.isEmpty else {
            try await discard(key: key, partialName: partialName)
            throw DeliveryError.qcFailed(probeSummary: QC.summary(probe), problems: problems)
        }

        // 3. Hash, make durable, rename, make the rename durable.
        let sha = try await blocking { () throws -> String in
            try tree.withBatchDirectory(key.batch) { dir in
                let fd = try deliveryCall("cannot open \(partial)") { () throws(PosixError) in
                    try Posix.openAt(dir, Array(partialName.utf8), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, path: partial)
                }
                defer { close(fd) }
                let st = try deliveryCall("cannot stat \(partial)") { () throws(PosixError) in
                    try Posix.fstat(fd, path: partial)
                }
                let sha = if let digest, digest.bytes == Int64(st.st_size) { digest.sha256 }
                    else { try Self.sha256(fd: fd, path: partial) }
                try deliveryCall("cannot fsync \(partial)") { () throws(PosixError) in try Posix.fsync(fd, path: partial) }
                try deliveryCall("cannot rename \(partial) to \(finalPath)") { () throws(PosixError) in
                    try Posix.renameAt(dir, Array(partialName.utf8), dir, Array(finalName.utf8), path: finalPath)
                }
                do throws(PosixError) {
                    try Posix.fsync(dir, path: batchPath)
                } catch {
                    // Not durable: take it back out of sight so a retry starts from the partial again. The fsync's
                    // error is the one to report; if this rename fails too, a retry adopts the published file.
                    try? Posix.renameAt(dir, Array(finalName.utf8), dir, Array(partialName.utf8), path: partial)
                    throw DeliveryError.posix(error, "cannot fsync directory of \(finalPath)")
                }
                return sha
            }
        }
        return DeliveredFile(path: finalPath, sha256: sha, bytes: bytes, probe: probe)
    }

    /// Re-verifies an already published `<id>.mp4` (structure, QC, sha256) without moving it: for a restart
    /// that finds the job in `verifying` with the partial gone because the rename had happened before the crash.
    /// - Throws: `.qcFailed` (the file is left in place for the operator), `.partialMissing` when there is no
    ///   video either, `.storage`/`.io`.
    public func adopt(key: JobKey, spec: JobSpec) async throws -> DeliveredFile {
        let tree = self.tree
        let name = try OutputTree.videoName(key.id)
        let path = try tree.videoPath(key)
        let (bytes, structure, sha) = try await blocking { () throws -> (Int64, [String], String) in
            try tree.withBatchDirectory(key.batch) { dir in
                let fd = try openExisting(dir, name, path: path)
                defer { close(fd) }
                guard let st = try? Posix.fstat(fd, path: path), Posix.fileType(st) == S_IFREG else {
                    throw DeliveryError.unsafePath("\(path) is not a regular file")
                }
                let size = Int64(st.st_size)
                return (size, MP4Structure.problems(fd: fd, size: size), try Self.sha256(fd: fd, path: path))
            }
        }
        let probe: MediaProbe
        do {
            probe = try await FFprobe.probe(path)
        } catch {
            throw DeliveryError.qcFailed(probeSummary: "\(error)", problems: structure)
        }
        let problems = structure + QC.check(probe, spec: spec)
        guard problems.isEmpty else { throw DeliveryError.qcFailed(probeSummary: QC.summary(probe), problems: problems) }
        return DeliveredFile(path: path, sha256: sha, bytes: bytes, probe: probe)
    }

    /// Removes the partial download of `key` (after a QC failure, or to start a download over).
    public func discardPartial(_ key: JobKey) async throws {
        try await discard(key: key, partialName: try OutputTree.partialName(key.id))
    }

    private func discard(key: JobKey, partialName: String) async throws {
        let tree = self.tree
        try await blocking {
            try tree.withBatchDirectory(key.batch) { dir in
                do throws(PosixError) {
                    try Posix.unlinkAt(dir, Array(partialName.utf8), path: partialName)
                } catch where error.code == ENOENT {
                    // Already gone.
                } catch {
                    throw DeliveryError.posix(error, "cannot remove \(partialName)")
                }
            }
        }
    }

    // MARK: - Sidecars and batch end

    /// Writes `<batch>/<id>.json` atomically: pretty JSON, sorted keys, unescaped slashes.
    @discardableResult
    public func writeSidecar(_ sidecar: Sidecar) async throws -> WrittenFile {
        let key = JobKey(batch: sidecar.job.batch, id: sidecar.job.id)
        let name = try OutputTree.sidecarName(key.id)
        let data = try Self.encodeJSON(sidecar)
        let tree = self.tree
        return try await blocking {
            try tree.withBatchDirectory(key.batch) { dir in
                try Self.writeAtomically(data, name: name, dir: dir, dirPath: try tree.batchDirectory(key.batch))
            }
        }
    }

    /// Writes `SHA256SUMS` then `batch.json` into the batch directory, each atomically; a later call (the batch
    /// gained jobs, or a job was delivered after a retry) replaces both. `sums` lists the files to checksum
    /// (delivered mp4s and their sidecars), as `(name inside the batch directory, lowercase hex sha256)`; they are
    /// written sorted by name in `sha256sum`'s format, so `sha256sum -c SHA256SUMS` passes in that folder. With
    /// no sums there is no `SHA256SUMS` (an empty one fails `sha256sum -c`): any earlier one is removed, and
    /// `batch.json`'s `checksums` says why there is none. `batch.json` is written last and is not in the sums:
    /// its presence marks the end of the batch.
    /// - Returns: `batch.json`, and `SHA256SUMS` unless nothing was delivered.
    @discardableResult
    public func writeBatchEnd(batch: String, manifest: BatchManifest,
                              sums: [(name: String, sha256: String)]) async throws -> (manifest: WrittenFile, sums: WrittenFile?) {
        guard manifest.batch == batch else {
            throw DeliveryError.invalidArgument("manifest is for batch \(manifest.batch), not \(batch)")
        }
        let text = try Self.sha256sumsText(sums)
        var manifest = manifest
        manifest.checksums = BatchManifest.Checksums(entries: sums.count)
        let json = try Self.encodeJSON(manifest)
        let tree = self.tree
        let sumsName = BatchManifest.Checksums.fileName
        return try await blocking {
            try tree.withBatchDirectory(batch) { dir in
                let path = try tree.batchDirectory(batch)
                var s: WrittenFile?
                if sums.isEmpty {
                    do {
                        try Posix.unlinkAt(dir, Array(sumsName.utf8), path: "\(path)/\(sumsName)")
                        try deliveryCall("cannot fsync directory \(path)") { () throws(PosixError) in
                            try Posix.fsync(dir, path: path)
                        }
                    } catch let error as PosixError where error.code == ENOENT {
                        // None to remove.
                    } catch let error as PosixError {
                        throw DeliveryError.posix(error, "cannot remove \(path)/\(sumsName)")
                    }
                } else {
                    s = try Self.writeAtomically(Data(text.utf8), name: sumsName, dir: dir, dirPath: path)
                }
                let m = try Self.writeAtomically(json, name: "batch.json", dir: dir, dirPath: path)
                return (m, s)
            }
        }
    }

    /// Batch end in one call: `SHA256SUMS` over every succeeded job's video (hash from the manifest) and
    /// sidecar (hashed now from disk), then `batch.json`. Call when `manifest.complete`, and again whenever the
    /// batch changes afterwards.
    @discardableResult
    public func finishBatch(_ manifest: BatchManifest) async throws -> (manifest: WrittenFile, sums: WrittenFile?) {
        var sums: [(name: String, sha256: String)] = []
        let dir = try tree.batchDirectory(manifest.batch)
        for job in manifest.jobs {
            guard let output = job.output, let sha = job.sha256 else { continue }
            sums.append((output, sha))
            if let sidecar = job.sidecar {
                _ = try OutputTree.sidecarName(job.id)
                sums.append((sidecar, try await Self.sha256(ofFile: "\(dir)/\(sidecar)")))
            }
        }
        return try await writeBatchEnd(batch: manifest.batch, manifest: manifest, sums: sums)
    }

    /// The `SHA256SUMS` text for `sums`: `<sha256>  <name>\n` per file, sorted by name (bytewise).
    public static func sha256sumsText(_ sums: [(name: String, sha256: String)]) throws -> String {
        var seen = Set<String>()
        for (name, sha) in sums {
            let dot = name.lastIndex(of: ".")
            let base = dot.map { String(name[..<$0]) } ?? ""
            let ext = dot.map { String(name[name.index(after: $0)...]) } ?? ""
            guard Identifier.isValid(base), ["mp4", "json"].contains(ext) else {
                throw DeliveryError.invalidArgument("checksum entry \(String(reflecting: name)) is not <id>.mp4 or <id>.json")
            }
            guard sha.utf8.count == 64, sha.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                throw DeliveryError.invalidArgument("checksum of \(name) is not 64 lowercase hex digits: \(sha)")
            }
            guard seen.insert(name).inserted else {
                throw DeliveryError.invalidArgument("checksum entry \(name) is listed twice")
            }
        }
        return sums.sorted { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }
            .map { "\($0.sha256)  \($0.name)\n" }.joined()
    }

    // MARK: - Helpers

    /// Lowercase hex sha256 of the file at `path`, read in 1 MiB chunks.
    public static func sha256(ofFile path: String) async throws -> String {
        try await BlockingThreads.hashing.run {
            let fd = try deliveryCall("cannot open \(path)") { () throws(PosixError) in
                try Posix.open(path, O_RDONLY | O_CLOEXEC)
            }
            defer { close(fd) }
            return try sha256(fd: fd, path: path)
        }
    }

    static func sha256(fd: Int32, path: String) throws -> String { try digest(fd: fd, path: path).hex }

    /// sha256 of everything `fd` holds from offset 0 (read with `pread`, 1 MiB at a time), and the bytes read.
    static func digest(fd: Int32, path: String) throws -> (hex: String, bytes: Int64) {
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var offset: off_t = 0
        while true {
            let n = try deliveryCall("cannot read \(path)") { () throws(PosixError) in
                try Posix.pread(fd, into: buffer, at: offset, path: path)
            }
            if n == 0 { break }
            hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            offset += off_t(n)
        }
        return (Hex.string(hasher.finalize()), Int64(offset))
    }

    /// JSON as Reel writes it to disk: pretty, sorted keys, `/` unescaped, snake_case keys, final newline.
    public static func encodeJSON<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        var data = try encoder.encode(value)
        data.append(0x0A)
        return data
    }

    /// The decoder matching `encodeJSON`.
    public static func decodeJSON<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: data)
    }

    /// The dotfile `writeAtomically` writes `name` through: `.<name>.tmp-<pid>-<random>`.
    static func temporaryName(for name: String) -> String {
        ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// True for a name `temporaryName(for:)` makes (any pid): what a crash between create and rename leaves in a
    /// batch directory. Partial downloads (`.<id>.mp4.part`) are not temporaries: a restart resumes them.
    public static func isTemporaryName(_ name: [UInt8]) -> Bool {
        guard let text = String(validating: name, as: UTF8.self), text.first == ".",
              let marker = text.range(of: ".tmp-", options: .backwards), marker.lowerBound > text.index(after: text.startIndex)
        else { return false }
        let numbers = text[marker.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        return numbers.count == 2 && numbers.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    /// `AtomicFile.write` through `temporaryName(for:)`: on any failure the temporary file is removed and the
    /// previous version (if any) stays in place.
    static func writeAtomically(_ data: Data, name: String, dir: Int32, dirPath: String) throws -> WrittenFile {
        let path = "\(dirPath)/\(name)"
        try deliveryCall("cannot write \(path)") { () throws(PosixError) in
            try AtomicFile.write(data, in: dir, as: Array(name.utf8), through: Array(temporaryName(for: name).utf8),
                                 mode: 0o644, directoryPath: dirPath)
        }
        let sha = Hex.string(SHA256.hash(data: data))
        return WrittenFile(path: path, name: name, sha256: sha, bytes: Int64(data.count))
    }
}

/// Opens `dir/name` for reading without following a link; `.partialMissing(path)` when there is none.
private func openExisting(_ dir: Int32, _ name: String, path: String) throws(DeliveryError) -> Int32 {
    do throws(PosixError) {
        return try Posix.openAt(dir, Array(name.utf8), O_RDONLY | O_NOFOLLOW | O_CLOEXEC, path: path)
    } catch where error.code == ENOENT {
        throw .partialMissing(path)
    } catch {
        throw .posix(error, "cannot open \(path)")
    }
}

/// Runs `body`, turning the `PosixError` it throws into a `DeliveryError` (`.storage` or `.io`) saying `message`.
func deliveryCall<T>(_ message: @autoclosure () -> String,
                     _ body: () throws(PosixError) -> T) throws(DeliveryError) -> T {
    do throws(PosixError) { return try body() } catch { throw .posix(error, message()) }
}

extension OutputTree {
    /// Runs `body` with a descriptor of the (created, checked) batch directory.
    func withBatchDirectory<T>(_ batch: String, _ body: (Int32) throws -> T) throws -> T {
        let fd = try openBatchDirectory(batch, create: true)
        defer { close(fd) }
        return try body(fd)
    }
}

/// Runs blocking file work on Reel's dedicated file threads, so neither Swift's cooperative pool (2 threads here)
/// nor libdispatch's shared global threads are parked in a read, fsync or rename.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BlockingThreads.files.run(body)
}
