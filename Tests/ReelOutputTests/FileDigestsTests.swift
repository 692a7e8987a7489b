import Foundation
import ReelOutput
import Testing

/// `FileDigests`: local reference files are hashed once per version (path, device, inode, size, mtime), off the
/// cooperative pool, and a rewritten or replaced file is hashed again.
@Suite struct FileDigestsTests {
    @Test func aFileIsReadOncePerVersion() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = dir.path + "/ref.bin"
        let first = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try first.write(to: URL(fileURLWithPath: path))
        let expected = try await Delivery.sha256(ofFile: path)
        let digests = FileDigests()

        // 20 jobs naming the same file at once: one read, one digest.
        let all = await withTaskGroup(of: String?.self) { group in
            for _ in 0..<20 { group.addTask { try? await digests.sha256(ofFile: path) } }
            return await group.reduce(into: [String?]()) { $0.append($1) }
        }
        #expect(Set(all) == [expected])
        #expect(await digests.reads == 1)
        #expect(try await digests.sha256(ofFile: path) == expected)
        #expect(await digests.reads == 1)

        // Rewritten in place (same inode, new content and size): hashed again.
        try Data("changed".utf8).write(to: URL(fileURLWithPath: path), options: [])
        let changed = try await digests.sha256(ofFile: path)
        #expect(changed == (try await Delivery.sha256(ofFile: path)) && changed != expected)
        #expect(await digests.reads == 2)

        // Replaced by a rename (new inode): hashed again.
        try first.write(to: URL(fileURLWithPath: path), options: .atomic)
        #expect(try await digests.sha256(ofFile: path) == expected)
        #expect(await digests.reads == 3)
    }

    @Test func aMissingFileIsNamedInTheError() async throws {
        let digests = FileDigests()
        await #expect {
            try await digests.sha256(ofFile: "/nonexistent/reel/ref.png")
        } throws: { error in
            "\(error)".contains("/nonexistent/reel/ref.png")
        }
    }
}
