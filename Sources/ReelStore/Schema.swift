import GRDB

/// The schema, as named append-only migrations. Never edit a registered migration: add a new one.
enum Schema {
    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-schema") { db in try db.execute(sql: v1) }
        m.registerMigration("v2-billed-counts") { db in try db.execute(sql: v2) }
        m.registerMigration("v3-listing-index") { db in try db.execute(sql: v3) }
        return m
    }

    /// `job_counts` is kept by triggers so that status, metrics and batch summaries read a handful of rows
    /// instead of counting 100,000 jobs. Money is summed in integer micro-USD and billed time in centiseconds so
    /// that adding and removing the same job leaves the sums exact.
    static let v1 = """
        CREATE TABLE batches (
          name TEXT PRIMARY KEY NOT NULL,
          priority TEXT NOT NULL,
          deadline REAL,
          budget_usd REAL,
          paused INTEGER NOT NULL DEFAULT 0,
          created_at REAL NOT NULL,
          started_at REAL,
          completed_at REAL,
          manifest_count INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE manifests (
          sha256 TEXT PRIMARY KEY NOT NULL,
          file_name TEXT NOT NULL,
          batch TEXT NOT NULL,
          job_count INTEGER NOT NULL,
          added_count INTEGER NOT NULL,
          ingested_at REAL NOT NULL
        );
        CREATE INDEX manifests_batch ON manifests(batch);
        CREATE TABLE jobs (
          seq INTEGER PRIMARY KEY,
          batch TEXT NOT NULL REFERENCES batches(name),
          id TEXT NOT NULL,
          spec TEXT NOT NULL,
          spec_digest TEXT NOT NULL,
          model TEXT NOT NULL,
          resolution TEXT NOT NULL,
          duration_s INTEGER NOT NULL,
          est_billed_seconds REAL NOT NULL,
          priority TEXT NOT NULL,
          deadline REAL,
          state TEXT NOT NULL,
          hold_reason TEXT,
          attempt INTEGER NOT NULL DEFAULT 0,
          request_fingerprint TEXT,
          task_id TEXT,
          task_ids TEXT NOT NULL DEFAULT '[]',
          video_url TEXT,
          url_expires_at REAL,
          result_bytes INTEGER,
          output_path TEXT,
          output_sha256 TEXT,
          usage TEXT,
          cost_usd REAL,
          reason TEXT,
          next_attempt_at REAL,
          created_at REAL NOT NULL,
          updated_at REAL NOT NULL,
          state_changed_at REAL NOT NULL,
          create_started_at REAL,
          submitted_at REAL,
          finished_at REAL,
          UNIQUE (batch, id)
        );
        CREATE INDEX jobs_state_key ON jobs(state, batch, id);
        CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
        CREATE TABLE task_owners (
          task_id TEXT PRIMARY KEY NOT NULL,
          job_seq INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
          at REAL NOT NULL
        );
        CREATE INDEX task_owners_job ON task_owners(job_seq);
        CREATE TABLE transitions (
          seq INTEGER PRIMARY KEY,
          job_seq INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
          from_state TEXT,
          to_state TEXT NOT NULL,
          cause TEXT NOT NULL,
          at REAL NOT NULL
        );
        CREATE INDEX transitions_job ON transitions(job_seq);
        CREATE TABLE attempts (
          seq INTEGER PRIMARY KEY,
          job_seq INTEGER REFERENCES jobs(seq) ON DELETE CASCADE,
          kind TEXT NOT NULL,
          http_status INTEGER NOT NULL,
          provider_code TEXT,
          request_id TEXT,
          duration_ms INTEGER NOT NULL,
          transport_error TEXT,
          at REAL NOT NULL
        );
        CREATE INDEX attempts_job ON attempts(job_seq);
        CREATE INDEX attempts_kind ON attempts(kind, at);
        CREATE INDEX attempts_orphan ON attempts(at) WHERE job_seq IS NULL;
        CREATE TABLE uploads (
          sha256 TEXT NOT NULL,
          model TEXT NOT NULL,
          oss_url TEXT NOT NULL,
          uploaded_at REAL NOT NULL,
          expires_at REAL NOT NULL,
          PRIMARY KEY (sha256, model)
        ) WITHOUT ROWID;
        CREATE TABLE settings (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
        CREATE TABLE runtime_samples (
          seq INTEGER PRIMARY KEY,
          model TEXT NOT NULL,
          resolution TEXT NOT NULL,
          duration_s INTEGER NOT NULL,
          seconds REAL NOT NULL,
          at REAL NOT NULL
        );
        CREATE INDEX runtime_samples_class ON runtime_samples(model, resolution, duration_s, at);
        CREATE TABLE job_counts (
          batch TEXT NOT NULL,
          model TEXT NOT NULL,
          resolution TEXT NOT NULL,
          state TEXT NOT NULL,
          jobs INTEGER NOT NULL,
          cost_micros INTEGER NOT NULL,
          est_centis INTEGER NOT NULL,
          PRIMARY KEY (batch, model, resolution, state)
        ) WITHOUT ROWID;
        CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
          INSERT INTO job_counts VALUES (new.batch, new.model, new.resolution, new.state, 1,
            CAST(round(ifnull(new.cost_usd, 0) * 1e6) AS INTEGER), CAST(round(new.est_billed_seconds * 100) AS INTEGER))
          ON CONFLICT DO UPDATE SET jobs = jobs + 1, cost_micros = cost_micros + excluded.cost_micros,
            est_centis = est_centis + excluded.est_centis;
        END;
        CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
          UPDATE job_counts SET jobs = jobs - 1,
            cost_micros = cost_micros - CAST(round(ifnull(old.cost_usd, 0) * 1e6) AS INTEGER),
            est_centis = est_centis - CAST(round(old.est_billed_seconds * 100) AS INTEGER)
          WHERE batch = old.batch AND model = old.model AND resolution = old.resolution AND state = old.state;
        END;
        CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, cost_usd ON jobs
        WHEN old.state IS NOT new.state OR old.cost_usd IS NOT new.cost_usd BEGIN
          UPDATE job_counts SET jobs = jobs - 1,
            cost_micros = cost_micros - CAST(round(ifnull(old.cost_usd, 0) * 1e6) AS INTEGER),
            est_centis = est_centis - CAST(round(old.est_billed_seconds * 100) AS INTEGER)
          WHERE batch = old.batch AND model = old.model AND resolution = old.resolution AND state = old.state;
          INSERT INTO job_counts VALUES (new.batch, new.model, new.resolution, new.state, 1,
            CAST(round(ifnull(new.cost_usd, 0) * 1e6) AS INTEGER), CAST(round(new.est_billed_seconds * 100) AS INTEGER))
          ON CONFLICT DO UPDATE SET jobs = jobs + 1, cost_micros = cost_micros + excluded.cost_micros,
            est_centis = est_centis + excluded.est_centis;
        END;
        """

    /// `job_counts.billed`: how many of the group's jobs carry a recorded cost (`cost_usd IS NOT NULL`), so that
    /// status and batch views can say how many jobs in `failed`, `expired` or `cancelled` were billed without
    /// scanning jobs. The triggers are those of v1 plus that column; existing groups are recounted once.
    static let v2 = """
        ALTER TABLE job_counts ADD COLUMN billed INTEGER NOT NULL DEFAULT 0;
        UPDATE job_counts SET billed = (SELECT count(*) FROM jobs j WHERE j.batch = job_counts.batch
          AND j.model = job_counts.model AND j.resolution = job_counts.resolution AND j.state = job_counts.state
          AND j.cost_usd IS NOT NULL);
        DROP TRIGGER jobs_count_insert;
        DROP TRIGGER jobs_count_delete;
        DROP TRIGGER jobs_count_update;
        CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
          INSERT INTO job_counts VALUES (new.batch, new.model, new.resolution, new.state, 1,
            CAST(round(ifnull(new.cost_usd, 0) * 1e6) AS INTEGER), CAST(round(new.est_billed_seconds * 100) AS INTEGER),
            new.cost_usd IS NOT NULL)
          ON CONFLICT DO UPDATE SET jobs = jobs + 1, cost_micros = cost_micros + excluded.cost_micros,
            est_centis = est_centis + excluded.est_centis, billed = billed + excluded.billed;
        END;
        CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
          UPDATE job_counts SET jobs = jobs - 1,
            cost_micros = cost_micros - CAST(round(ifnull(old.cost_usd, 0) * 1e6) AS INTEGER),
            est_centis = est_centis - CAST(round(old.est_billed_seconds * 100) AS INTEGER),
            billed = billed - (old.cost_usd IS NOT NULL)
          WHERE batch = old.batch AND model = old.model AND resolution = old.resolution AND state = old.state;
        END;
        CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, cost_usd ON jobs
        WHEN old.state IS NOT new.state OR old.cost_usd IS NOT new.cost_usd BEGIN
          UPDATE job_counts SET jobs = jobs - 1,
            cost_micros = cost_micros - CAST(round(ifnull(old.cost_usd, 0) * 1e6) AS INTEGER),
            est_centis = est_centis - CAST(round(old.est_billed_seconds * 100) AS INTEGER),
            billed = billed - (old.cost_usd IS NOT NULL)
          WHERE batch = old.batch AND model = old.model AND resolution = old.resolution AND state = old.state;
          INSERT INTO job_counts VALUES (new.batch, new.model, new.resolution, new.state, 1,
            CAST(round(ifnull(new.cost_usd, 0) * 1e6) AS INTEGER), CAST(round(new.est_billed_seconds * 100) AS INTEGER),
            new.cost_usd IS NOT NULL)
          ON CONFLICT DO UPDATE SET jobs = jobs + 1, cost_micros = cost_micros + excluded.cost_micros,
            est_centis = est_centis + excluded.est_centis, billed = billed + excluded.billed;
        END;
        """

    /// `jobs_listing`: an index holding every column a listing shows, in listing order, so a page is one range
    /// scan of the index that never visits the table (and never parses a spec). The aspect ratio, until now read
    /// from the spec's JSON, gets a plain column (filled at intake; existing jobs are filled here once).
    static let v3 = """
        ALTER TABLE jobs ADD COLUMN aspect_ratio TEXT;
        UPDATE jobs SET aspect_ratio = json_extract(spec, '$.aspectRatio');
        CREATE INDEX jobs_listing ON jobs(batch, id, state, priority, model, resolution, aspect_ratio, duration_s,
          est_billed_seconds, attempt, task_id, reason, hold_reason, deadline, output_path, output_sha256, cost_usd,
          created_at, updated_at);
        """
}
