import Foundation
import ReelCore
import ReelConfig
import ReelDaemon
import Testing

@Suite struct ConfigTests {
    /// The shipped example documents every key and must stay loadable.
    @Test func exampleConfigLoads() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../examples/reel.toml").standardized.path
        let config = try ReelConfig.load(path: path, environment: [:])
        #expect(config.paths.spool == "/var/spool/reel")
        #expect(config.limits.concurrency == nil)
        #expect(config.limits.models[.r2v] == .init(concurrency: 5, submitPerSecond: 5))
        #expect(config.limits.models[.r2vFlash] == .init(concurrency: 5, submitPerSecond: 5))
        #expect(config.limits.queryPerSecond == 20)
        #expect(config.retry.baseDelay == 15)
        #expect(config.retry.maxDelay == 900)
        #expect(config.pricing.rate(.r2v, .p1080) == 0.15)
        #expect(config.pricing.rate(.r2vFlash, .p720) == 0.05)
        #expect(config.retention == 30 * 86400)
        #expect(config.control.socketMode == 0o660)
        #expect(config.control.maxConnections == 256)
    }

    @Test func everyProblemIsListedWithItsKey() {
        let toml = """
        [paths]
        spool = "relative/spool"
        [limits]
        concurency = 5
        query_per_second = "fast"
        [retry]
        base_delay = "soon"
        max_attempts = 0
        [pricing]
        "wan2.7".1080p = 0.1
        [log]
        level = "loud"
        """
        do {
            _ = try ReelConfig.parse(toml)
            Issue.record("expected a ConfigError")
        } catch let error as ConfigError {
            let text = error.description
            #expect(error.problems.count == 7)
            #expect(text.contains("paths.spool: must be an absolute path"))
            #expect(text.contains("limits.concurency: unknown key (did you mean \"concurrency\"?)"))
            #expect(text.contains("limits.query_per_second: must be a number"))
            #expect(text.contains("retry.base_delay: must be a duration"))
            #expect(text.contains("retry.max_attempts: 0 is out of range"))
            #expect(text.contains("pricing.\"wan2.7\": unknown model"))
            #expect(text.contains("log.level: must be one of"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    /// Pools per model by default (the provider's 5 and 5/s); the top-level keys are optional overall caps, so a
    /// file written for one account-wide pool keeps its totals; the older `"model" = N` form sets a pool's slots.
    @Test func limitPoolsPerModelAndTheSinglePoolForm() throws {
        let none = Daemon.limits(try ReelConfig.parse(""))
        #expect(none.pool(PoolKey(model: .r2v)) == .provider && none.pool(PoolKey(model: .r2vFlash)) == .provider)
        #expect(none.concurrency == nil && none.submitPerSecond == nil && none.slotLimit == 10)

        let pools = Daemon.limits(try ReelConfig.parse("""
            [limits]
            concurrency = 8
            query_per_second = 15
            [limits.models."wan2.6-r2v"]
            concurrency = 4
            submit_per_second = 2.5
            [limits.models."wan2.6-r2v-flash"]
            submit_per_second = 3
            """))
        #expect(pools.pool(PoolKey(model: .r2v)) == PoolLimits(concurrency: 4, submitPerSecond: 2.5))
        #expect(pools.pool(PoolKey(model: .r2vFlash)) == PoolLimits(concurrency: 5, submitPerSecond: 3))
        #expect(pools.concurrency == 8 && pools.slotLimit == 8 && pools.queryPerSecond == 15)

        let single = Daemon.limits(try ReelConfig.parse("[limits]\nconcurrency = 5\nsubmit_per_second = 5\n"))
        #expect(single.concurrency == 5 && single.submitPerSecond == 5 && single.slotLimit == 5)
        #expect(single.pool(PoolKey(model: .r2v)) == .provider)

        let older = Daemon.limits(try ReelConfig.parse("[limits.models]\n\"wan2.6-r2v\" = 3\n"))
        #expect(older.pool(PoolKey(model: .r2v)) == PoolLimits(concurrency: 3, submitPerSecond: 5))

        #expect(throws: ConfigError.self) {
            try ReelConfig.parse("[limits.models.\"wan2.6-r2v\"]\nconcurency = 3\n")
        }
    }

    @Test func stateDirectoryComesFromSystemd() throws {
        let config = try ReelConfig.parse("", environment: ["STATE_DIRECTORY": "/var/lib/reel-x"])
        #expect(config.paths.state == "/var/lib/reel-x")
        let explicit = try ReelConfig.parse("[paths]\nstate = \"/srv/state\"", environment: ["STATE_DIRECTORY": "/x"])
        #expect(explicit.paths.state == "/srv/state")
    }

    @Test func durations() {
        #expect(ReelConfig.parseDuration("15s") == 15)
        #expect(ReelConfig.parseDuration("15m") == 900)
        #expect(ReelConfig.parseDuration("250ms") == 0.25)
        #expect(ReelConfig.parseDuration("2h") == 7200)
        #expect(ReelConfig.parseDuration("30d") == 2_592_000.0)
        #expect(ReelConfig.parseDuration("12") == 12)
        #expect(ReelConfig.parseDuration("-1s") == nil)
        #expect(ReelConfig.parseDuration("soon") == nil)
    }

    @Test func reloadClassifiesChanges() throws {
        let a = try ReelConfig.parse("")
        var b = a
        b.limits.concurrency = 3
        b.paths.output = "/elsewhere"
        let diff = a.reloadableDifferences(to: b)
        #expect(diff.reloadable == ["limits"])
        #expect(diff.needRestart == ["paths"])
    }
}
