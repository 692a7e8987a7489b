import Foundation
import Glibc
@testable import ReelSpool
import Synchronization
import Testing

/// A fresh spool under the temporary directory, removed (with `rm -rf`: it may hold FIFOs, sockets, devices and
/// non-UTF-8 names) when the fixture goes away.
final class TempSpool {
    let base: String
    let layout: SpoolLayout
    let spool: SpoolDirectory

    init(maxBytes: Int = SpoolDirectory.defaultMaxBytes, prepare: Bool = true,
         linkGraceSeconds: Double = SpoolDirectory.defaultLinkGraceSeconds) throws {
        base = FileManager.default.temporaryDirectory.appendingPathComponent("reelspool-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        layout = SpoolLayout(root: base + "/spool")
        if prepare { try layout.prepare() }
        spool = try SpoolDirectory(layout: layout, maxBytes: maxBytes, linkGraceSeconds: linkGraceSeconds)
    }

    var incoming: String { layout.incoming }
    var rejected: String { layout.rejected }

    deinit {
        let rm = Process()
        rm.executableURL = URL(fileURLWithPath: "/bin/rm")
        rm.arguments = ["-rf", base]
        try? rm.run()
        rm.waitUntilExit()
    }
}

/// Writes `text` to `path` (created or truncated), optionally with an mtime in whole seconds.
func put(_ path: String, _ text: String, mtime: Int? = nil) throws {
    try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    if let mtime { setMtime(path, mtime) }
}

func setMtime(_ path: String, _ seconds: Int) {
    var times = [timespec(tv_sec: seconds, tv_nsec: 0), timespec(tv_sec: seconds, tv_nsec: 0)]
    _ = utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW)
}

func text(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}

/// The file type (`S_IFREG`, `S_IFLNK`, …) of `path` itself, nil if absent.
func kind(_ path: String) -> mode_t? {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : nil
}

/// Names in a directory, raw.
func entries(_ path: String) -> [[UInt8]] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [[UInt8]] = []
    while let e = readdir(dir) {
        let raw = withUnsafeBytes(of: &e.pointee.d_name) { Array($0.prefix(while: { $0 != 0 })) }
        if raw != [0x2E], raw != [0x2E, 0x2E] { names.append(raw) }
    }
    return names
}

func names(_ path: String) -> Set<String> { Set(entries(path).map { String(decoding: $0, as: UTF8.self) }) }

/// A shared, locked value for closures that run elsewhere.
final class Locked<T: Sendable>: Sendable {
    let value: Mutex<T>
    init(_ initial: T) { value = Mutex(initial) }
}

/// Runs `body` off the cooperative pool and fails (instead of hanging the suite) if it takes over 5 s.
func withinFiveSeconds<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T? {
    let result = Locked<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        let value = body()
        result.value.withLock { $0 = value }
        done.signal()
    }
    guard done.wait(timeout: .now() + 5) == .success else { return nil }
    return result.value.withLock { $0 }
}

/// Consumes `stream` until `done` holds for everything seen, or `timeout` passes; returns what was seen.
/// The timeout only matters when a test is failing.
func collect(_ stream: AsyncStream<SpoolHint>, timeout: Duration = .seconds(10),
             until done: @escaping @Sendable ([SpoolHint]) -> Bool) async -> [SpoolHint] {
    let seen = Locked<[SpoolHint]>([])
    await withTaskGroup(of: Void.self) { group in
        group.addTask {
            for await hint in stream {
                if seen.value.withLock({ $0.append(hint); return done($0) }) { return }
            }
        }
        group.addTask { try? await Task.sleep(for: timeout) }
        await group.next()
        group.cancelAll()
    }
    return seen.value.withLock { $0 }
}

extension SpoolRead {
    var file: SpoolFile? { if case .ok(let f) = self { f } else { nil } }
    var refusal: SpoolRefusal? { if case .reject(let r) = self { r } else { nil } }
    var isNotReady: Bool { if case .notReady = self { true } else { false } }
}
