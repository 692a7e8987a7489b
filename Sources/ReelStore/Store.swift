import Crypto
import Foundation
import GRDB
import ReelCore
import Synchronization

/// Reel's durable state: one SQLite file in WAL mode, written through GRDB's single writer queue.
///
/// Every method is `async`: GRDB runs the SQL on its own dispatch queues and the caller suspends, so no thread of
/// Swift's cooperative pool ever blocks on the disk. Every state change is a compare-and-set on the expected prior
/// state, written together with its `transitions` row in one transaction.
public final class Store: Sendable {
    let pool: DatabasePool
    /// Bumped after every write transaction that may change jobs returns: a value read while it stood still is
    /// still the truth.
    private let writes = Atomic<Int>(0)
    /// `counts()` as of a `writes` value (status and metrics ask for it many times a second; it changes only
    /// when something is written).
    let countsCache = Mutex<(writes: Int, value: JobCounts)?>(nil)

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    ///
    /// Connections use WAL, `busy_timeout` 5 s, `synchronous = NORMAL` (the two submission commits
    /// are made with `FULL`, see `beginSubmission`) and foreign keys. A new file uses incremental auto-vacuum.
    public init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(5)
        config.foreignKeysEnabled = true
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = 67108864")
        }
        pool = try DatabasePool(path: path, configuration: config)
        try pool.barrierWriteWithoutTransaction { db in
            // auto_vacuum can only be chosen before the first table exists.
            if try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") == 0 {
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                try db.execute(sql: "VACUUM")
            }
        }
        try Schema.migrator.migrate(pool)
    }

    /// Hex sha256 of the canonical encoding of `spec` (`Codec.spec`: JSONEncoder's bytes with sorted keys): the
    /// job's content identity.
    public static func specDigest(_ spec: JobSpec) throws -> String {
        hex(SHA256.hash(data: Codec.spec(spec)))
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        Hex.string(digest)
    }

    // MARK: access

    /// A write transaction. `touchesJobs: false` promises that `body` changes no row of `jobs` (and so none of
    /// `job_counts`, `batches`' derived state or a listing): the caches keyed on `writeGeneration` then stay valid.
    /// Only writers that provably touch other tables (attempts, uploads, run-time samples) pass false.
    func write<T: Sendable>(touchesJobs: Bool = true,
                            _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        defer { if touchesJobs { wrote() } }
        return try await pool.write(body)
    }

    /// How many write transactions that may change jobs have returned so far. Equal values bracket a span in
    /// which no such write completed, so an answer read in it may be served again (see `ListingCache` in the
    /// daemon).
    public var writeGeneration: Int { writes.load(ordering: .acquiring) }

    /// Called after each write that may change jobs returns (committed or rolled back), before its caller sees
    /// the result.
    func wrote() { writes.add(1, ordering: .releasing) }

    /// `read(body)` answered from the last answer while no write that may change jobs has returned since it was
    /// read. The generation is taken *before* the read, so an answer read across a commit is never reused after it.
    func cachedRead<T: Sendable>(_ cache: borrowing Mutex<(writes: Int, value: T)?>,
                                 _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let generation = writes.load(ordering: .acquiring)
        if let hit = cache.withLock({ $0 }), hit.writes == generation { return hit.value }
        let value = try await read(body)
        cache.withLock { $0 = (generation, value) }
        return value
    }

    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.read(body)
    }

    /// A write whose commit is fsynced before it returns (`synchronous = FULL` for this one transaction), so that
    /// it survives a power loss, not only a process crash.
    func durableWrite<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        defer { wrote() }
        return try await pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            defer { try? db.execute(sql: "PRAGMA synchronous = NORMAL") }
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// Facts about the open database (journal mode, applied migrations, size) and the writer connection's pragmas
    /// (GRDB gives its reader connections a 10 s busy timeout of their own).
    public func storageInfo() async throws -> StorageInfo {
        try await pool.writeWithoutTransaction { db in
            func int(_ pragma: String) throws -> Int { try Int.fetchOne(db, sql: "PRAGMA \(pragma)") ?? -1 }
            return StorageInfo(
                journalMode: try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "",
                synchronous: try int("synchronous"), autoVacuum: try int("auto_vacuum"),
                foreignKeys: try int("foreign_keys") == 1, busyTimeoutMilliseconds: try int("busy_timeout"),
                migrations: try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"),
                pageCount: try int("page_count"), freePages: try int("freelist_count"),
                pageSize: try int("page_size"))
        }
    }
}

extension Database {
    /// Runs one statement through GRDB's statement cache (inserting a job also compiles its triggers: worth
    /// doing once per connection, not once per job).
    func run(_ sql: String, _ arguments: StatementArguments = []) throws {
        try cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

/// JSON as stored: sorted keys, so equal values always encode to equal bytes.
enum Codec {
    /// A job spec's canonical encoding (stored, and hashed into its `spec_digest`): exactly the bytes of
    /// `data(spec)` — `JSONEncoder` with sorted keys — written directly, because `JSONEncoder` was a tenth of
    /// intake's CPU. `CanonicalSpecTests` holds the two to each other byte for byte; digests of stored jobs must
    /// never change.
    static func spec(_ s: JobSpec) -> [UInt8] {
        var w = JSONWriter(capacity: 384, escapesSlashes: true)
        w.object { w in
            w.key("aspectRatio"); w.string(s.aspectRatio.rawValue)
            w.member("audio", s.audio)
            w.member("budgetUSD", s.budgetUSD)
            w.member("deadline", s.deadline)
            w.key("durationSeconds"); w.int(s.durationSeconds)
            w.key("key"); w.string(s.key.description)
            w.key("model"); w.string(s.model.rawValue)
            w.member("negativePrompt", s.negativePrompt)
            w.key("priority"); w.string(s.priority.rawValue)
            w.key("prompt"); w.string(s.prompt)
            w.key("references"); w.array(s.references) { w, r in
                w.object { w in
                    w.member("bytes", r.bytes.map { Int($0) })
                    w.member("durationSeconds", r.durationSeconds)
                    w.member("kind", r.kind?.rawValue)
                    w.member("sha256", r.sha256)
                    w.key("source"); w.object { w in
                        switch r.source {
                        case .path(let p): w.key("path"); w.string(p)
                        case .url(let u): w.key("url"); w.string(u)
                        }
                    }
                }
            }
            w.key("resolution"); w.string(s.resolution.rawValue)
            w.member("seed", s.seed)
            w.member("shotType", s.shotType?.rawValue)
            w.member("watermark", s.watermark)
        }
        return w.bytes
    }

    static func data<T: Encodable>(_ value: T) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        return try e.encode(value)
    }

    static func text<T: Encodable>(_ value: T) throws -> String { String(decoding: try data(value), as: UTF8.self) }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String, _ what: String,
                                     with decoder: JSONDecoder = JSONDecoder()) throws -> T {
        do {
            return try decoder.decode(type, from: Data(text.utf8))
        } catch {
            throw StoreError.corrupt("\(what): \(error)")
        }
    }
}

/// Decoding a stored enum, naming the column when the value is unknown (a newer schema, or damage).
func decodeEnum<E: RawRepresentable>(_ type: E.Type, _ raw: String, _ column: String) throws -> E
where E.RawValue == String {
    guard let v = E(rawValue: raw) else { throw StoreError.corrupt("\(column) = \"\(raw)\"") }
    return v
}
