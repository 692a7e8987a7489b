import Foundation
import GRDB
import ReelCore
import Synchronization

/// The SQLite implementation of `JobStore`, Reel's default: one SQLite file in WAL mode, written through GRDB's
/// single writer queue.
///
/// Every method is `async`: GRDB runs the SQL on its own dispatch queues and the caller suspends, so no thread of
/// Swift's cooperative pool ever blocks on the disk. Every state change is a compare-and-set on the expected prior
/// state, written together with its `transitions` row in one transaction.
public final class Store: JobStore {
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
        Codec.digest(Codec.spec(spec))
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
