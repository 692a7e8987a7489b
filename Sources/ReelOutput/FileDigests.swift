import Foundation
import ReelPosix

/// sha256 of local files, computed at most once per file version, off the cooperative pool.
///
/// A version is (path, device, inode, size, mtime): the digest is reused until the file is replaced or rewritten.
/// Hashing runs on `BlockingThreads.hashing`; concurrent requests for one version share a single read (50 jobs
/// naming one 100 MB reference read it once).
public actor FileDigests {
    /// What identifies one version of a file's content without reading it.
    public struct Version: Hashable, Sendable {
        public var path: String
        public var device: UInt64
        public var inode: UInt64
        public var size: Int64
        public var mtimeSeconds: Int
        public var mtimeNanoseconds: Int
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String

        init(description: String) { self.description = description }

        /// "cannot open PATH: REASON", "cannot stat PATH: REASON".
        init(_ error: PosixError) {
            description = "cannot \(error.call == "open" ? "open" : "stat") \(error.path): \(error.reason)"
        }
    }

    private var known: [String: (version: Version, sha256: String)] = [:]
    private var running: [Version: Task<(Version, String), any Error>] = [:]
    /// How many times a file was actually read (tests check the cache with it).
    public private(set) var reads = 0

    public init() {}

    /// The lowercase hex sha256 of the file at `path` (symlinks followed).
    /// - Throws: `FileDigests.Failure` naming the path when it cannot be stat'ed or read, or when it changed while
    ///   it was being read.
    public func sha256(ofFile path: String) async throws -> String {
        let version = try await BlockingThreads.files.run { try Self.version(of: path) }
        if let entry = known[path], entry.version == version { return entry.sha256 }
        let task: Task<(Version, String), any Error>
        if let inFlight = running[version] {
            task = inFlight
        } else {
            reads += 1
            task = Task { try await BlockingThreads.hashing.run { try Self.hash(path) } }
            running[version] = task
        }
        defer { running[version] = nil }
        let (read, digest) = try await task.value
        known[path] = (read, digest)
        return digest
    }

    static func version(of path: String) throws -> Version {
        do throws(PosixError) { return version(path, try Posix.stat(path)) } catch { throw Failure(error) }
    }

    static func version(_ path: String, _ st: stat) -> Version {
        Version(path: path, device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                mtimeSeconds: Int(st.st_mtim.tv_sec), mtimeNanoseconds: Int(st.st_mtim.tv_nsec))
    }

    /// Reads the whole file through one descriptor; the version is taken from that descriptor before and after,
    /// and a file that changed meanwhile is refused rather than given a digest of mixed content.
    static func hash(_ path: String) throws -> (Version, String) {
        let fd: Int32, before: stat
        do throws(PosixError) { fd = try Posix.open(path, O_RDONLY | O_CLOEXEC) } catch { throw Failure(error) }
        defer { close(fd) }
        do throws(PosixError) { before = try Posix.fstat(fd, path: path) } catch { throw Failure(error) }
        let (hex, bytes) = try Delivery.digest(fd: fd, path: path)
        let version = Self.version(path, before)
        guard let after = try? Posix.fstat(fd, path: path), Self.version(path, after) == version, bytes == version.size else {
            throw Failure(description: "\(path) changed while it was being hashed; try again once it is complete")
        }
        return (version, hex)
    }
}
