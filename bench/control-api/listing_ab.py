"""The SQLite part of a listing page, A/B on one 100,000-job database: the summary statement through the (batch, id)
key index (each row then read from the table, its aspect ratio parsed from the spec JSON) against the covering
`jobs_listing` index of migration v3. 1,000 distinct 101-row pages in random order, each statement twice.
Usage: python3 bench/control-api/listing_ab.py   (from the repository root; ~30 s)"""
import sqlite3, json, time, random, os, tempfile
schema = open("Sources/ReelStore/Schema.swift").read()
v1 = schema.split('static let v1 = """')[1].split('"""')[0]
db = os.path.join(tempfile.mkdtemp(prefix="reel-listing-ab-"), "ab.sqlite3")
if os.path.exists(db): os.remove(db)
c = sqlite3.connect(db)
c.executescript(v1)
c.executescript("""ALTER TABLE jobs ADD COLUMN aspect_ratio TEXT;
CREATE INDEX jobs_listing ON jobs(batch, id, state, priority, model, resolution, aspect_ratio, duration_s,
  est_billed_seconds, attempt, task_id, reason, hold_reason, deadline, output_path, output_sha256, cost_usd,
  created_at, updated_at);""")
c.execute("INSERT INTO batches (name, priority, created_at) VALUES ('b', 'normal', 0)")
for f in range(10):
    c.execute("INSERT OR IGNORE INTO batches (name, priority, created_at) VALUES (?, 'normal', 0)", (f"bench-{f:02d}",))
rows = []
for i in range(100000):
    b = f"bench-{i // 10000:02d}"
    spec = json.dumps({"key": {"batch": b, "id": f"j{i:06d}"}, "model": "wan2.6-r2v-flash", "resolution": "720p",
                       "aspectRatio": "16:9", "durationSeconds": 2, "prompt": "character1 waves " * 4,
                       "references": [{"source": {"url": "https://cdn.example.com/a.png"}, "kind": "image"}],
                       "priority": "normal", "audio": True, "shotType": "single", "watermark": False, "seed": i})
    rows.append((b, f"j{i:06d}", spec, "d", "wan2.6-r2v-flash", "720p", "16:9", 2, 4.0, "normal", "queued", 1.8e9, 1.8e9, 1.8e9))
c.executemany("""INSERT INTO jobs (batch, id, spec, spec_digest, model, resolution, aspect_ratio, duration_s,
  est_billed_seconds, priority, state, created_at, updated_at, state_changed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""", rows)
c.commit()
cols = "state, priority, model, resolution, {ar}, duration_s, est_billed_seconds, attempt, task_id, reason, hold_reason, deadline, output_path, output_sha256, cost_usd, created_at, updated_at"
JX = "json_extract(spec, '$.aspectRatio')"
old = f"SELECT batch, id, {cols.format(ar=JX)} FROM jobs WHERE 1 AND (batch, id) > (?, ?) ORDER BY batch, id LIMIT 101"
new = f"SELECT batch, id, {cols.format(ar='aspect_ratio')} FROM jobs INDEXED BY jobs_listing WHERE 1 AND (batch, id) > (?, ?) ORDER BY batch, id LIMIT 101"
keys = [(f"bench-{i // 10000:02d}", f"j{i:06d}") for i in range(0, 100000, 100)]
random.seed(1)
random.shuffle(keys)
for name, sql in (("key index + table + json_extract (before)", old), ("covering jobs_listing (after)", new),
                  ("key index + table + json_extract (before)", old), ("covering jobs_listing (after)", new)):
    print(name, c.execute("EXPLAIN QUERY PLAN " + sql, keys[0]).fetchall()[0][3])
    c2 = sqlite3.connect(db)  # a fresh connection: statement and page cache start cold once, then warm
    t = []
    for k in keys:
        t0 = time.perf_counter(); r = c2.execute(sql, k).fetchall(); t.append(time.perf_counter() - t0)
        assert len(r) == 101 or k[1] >= "j099899"
    t.sort()
    print(f"  {len(t)} distinct pages: p50 {t[len(t)//2]*1e3:.3f} ms  p99 {t[int(len(t)*.99)]*1e3:.3f} ms  mean {sum(t)/len(t)*1e3:.3f} ms")
print("load", os.getloadavg())
os.remove(db)
