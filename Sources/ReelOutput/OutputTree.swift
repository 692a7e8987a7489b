import Foundation
import ReelCore
import ReelPosix

/// The layout of the output tree: `<root>/<batch>/<id>.mp4`, `<id>.json`, `batch.json`, `SHA256SUMS`.
///
/// Every path is built from identifiers checked with `Identifier.isValid` (no `/`, no leading dot, no NUL), so
/// none can leave the root; `prepare` additionally refuses a batch directory that is a symlink or resolves
/// outside the root, and the writers open it with `O_NOFOLLOW` and work relative to that descriptor.
public struct OutputTree: Sendable, Hashable {
    /// The output root as configured (`[paths] output`). It may itself be a symlink; batch directories may not.
    public let root: String

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    /// `<root>/<batch>`.
    public func batchDirectory(_ batch: String) throws -> String {
        try Self.checkIdentifier(batch, field: "batch")
        return "\(root)/\(batch)"
    }

    /// `<root>/<batch>/<id>.mp4`: the delivered video.
    public func videoPath(_ key: JobKey) throws -> String {
        "\(try batchDirectory(key.batch))/\(try Self.videoName(key.id))"
    }

    /// `<root>/<batch>/<id>.json`: the sidecar.
    public func sidecarPath(_ key: JobKey) throws -> String {
        "\(try batchDirectory(key.batch))/\(try Self.sidecarName(key.id))"
    }

    /// `<root>/<batch>/.<id>.mp4.part`: where the download goes. Same filesystem as the final name (so publishing
    /// is a rename), and a dotfile, so editors, globs and `sha256sum -c` never take it for a deliverable.
    public func partialPath(_ key: JobKey) throws -> String {
        "\(try batchDirectory(key.batch))/\(try Self.partialName(key.id))"
    }

    /// Creates `<root>/<batch>` (mode 0755) if needed and checks that it is a real directory inside the root:
    /// not a symlink, and its resolved path is the resolved root plus `/<batch>`. Call before any download.
    /// - Returns: the batch directory's path.
    @discardableResult
    public func prepare(_ batch: String) throws -> String {
        let fd = try openBatchDirectory(batch, create: true)
        close(fd)
        return try batchDirectory(batch)
    }

    // MARK: - Names

    static func videoName(_ id: String) throws -> String {
        try checkIdentifier(id, field: "job id")
        return "\(id).mp4"
    }

    static func sidecarName(_ id: String) throws -> String {
        try checkIdentifier(id, field: "job id")
        return "\(id).json"
    }

    static func partialName(_ id: String) throws -> String {
        try checkIdentifier(id, field: "job id")
        return ".\(id).mp4.part"
    }

    static func checkIdentifier(_ s: String, field: String) throws {
        guard Identifier.isValid(s) else {
            throw DeliveryError.unsafePath("\(field) \(String(reflecting: s)) is not a valid identifier "
                + "(\(Identifier.syntax)); output paths are built only from valid identifiers")
        }
    }

    // MARK: - Descriptors

    /// Opens (and with `create`, makes) the batch directory without following a symlink, after checking with
    /// realpath that it lies directly under the root. The caller closes the descriptor.
    func openBatchDirectory(_ batch: String, create: Bool) throws -> Int32 {
        let dir = try batchDirectory(batch)
        let rootFD = try deliveryCall("cannot open output root \(root)") { () throws(PosixError) in
            try Posix.open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        }
        defer { close(rootFD) }
        let name = Array(batch.utf8)
        func openBatch() throws(PosixError) -> Int32 {
            try Posix.openAt(rootFD, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, path: dir)
        }
        var opened = Result { () throws(PosixError) in try openBatch() }
        if case .failure(let error) = opened, error.code == ENOENT, create {
            do throws(PosixError) {
                try Posix.mkdirAt(rootFD, name, 0o755, path: dir)
            } catch where error.code == EEXIST {
                // Another writer made it meanwhile.
            } catch {
                throw DeliveryError.posix(error, "cannot create batch directory \(dir)")
            }
            opened = Result { () throws(PosixError) in try openBatch() }
        }
        let fd: Int32
        switch opened {
        case .success(let descriptor):
            fd = descriptor
        case .failure(let error) where error.code == ELOOP || error.code == ENOTDIR:
            throw DeliveryError.unsafePath("\(dir) is not a real directory (a symlink or a file); "
                + "remove it so Reel can create the batch directory itself")
        case .failure(let error):
            throw DeliveryError.posix(error, "cannot open batch directory \(dir)")
        }
        guard let realRoot = try? Posix.realPath(root), let realDir = try? Posix.realPath(dir), realDir == "\(realRoot)/\(batch)"
                || (realRoot == "/" && realDir == "/\(batch)") else {
            close(fd)
            throw DeliveryError.unsafePath("\(dir) does not resolve to a directory inside the output root \(root)")
        }
        return fd
    }
}
