#!/usr/bin/env python3
"""Intake benchmark (issue #4 acceptance 3): N valid one-job manifests renamed at once from spool/tmp into
spool/incoming of a running, paused reeld; manifests/s from the first rename to the last commit (the newest
jobs.created_at in reeld's store once /v1/status counts N jobs). Then the machine's raw floor for the same work:
rename the same N files, and insert the same rows (batches, jobs, transitions, manifests; reeld's own schema, copied
from its database) in one SQLite transaction. Invoked by bench/intake/run.sh.
"""
import argparse, hashlib, json, os, shutil, signal, sqlite3, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from reel_bench import call, start_reeld  # noqa: E402


def manifest(i):
    return json.dumps({
        "manifest_version": 1, "batch": "intake-bench",
        "defaults": {"model": "wan2.6-r2v", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 5},
        "jobs": [{"id": f"shot-{i:05d}", "prompt": f"character1 walks along a rainy street at dusk, take {i}",
                  "references": [{"url": "https://cdn.example.com/anna.png"}]}],
    }, indent=1).encode()


def write_files(folder, n):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        with open(f"{folder}/m{i:05d}.json", "wb") as f:
            f.write(manifest(i))


FLOOR_SYNC = "FULL"


def floor(work, n, db_path):
    """Raw floor: rename the N files, then one transaction inserting the rows reeld's intake commits for them."""
    src, dst = f"{work}/floor/tmp", f"{work}/floor/incoming"
    write_files(src, n)
    os.makedirs(dst)
    os.sync()
    t0 = time.perf_counter()
    for i in range(n):
        os.rename(f"{src}/m{i:05d}.json", f"{dst}/m{i:05d}.json")
    t1 = time.perf_counter()
    schema = [r[0] for r in sqlite3.connect(db_path).execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
    floor_db = f"{work}/floor/floor.sqlite3"
    db = sqlite3.connect(floor_db, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    # reeld commits each intake chunk with synchronous = FULL (the WAL is fsynced before the files are unlinked),
    # so the floor's one transaction is made just as durable.
    db.execute(f"PRAGMA synchronous = {FLOOR_SYNC}")
    for sql in schema:
        db.execute(sql)
    source = sqlite3.connect(db_path)  # the very rows reeld wrote, read before the clock starts
    batches = source.execute("SELECT * FROM batches").fetchall()
    jobs = source.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
    transitions = source.execute("SELECT * FROM transitions").fetchall()
    manifests = source.execute("SELECT * FROM manifests").fetchall()
    def insert(table, rows):
        if rows:
            db.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * len(rows[0]))})", rows)
    t2 = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    insert("batches", batches)
    insert("jobs", jobs)
    insert("transitions", transitions)
    insert("manifests", manifests)
    db.execute("COMMIT")
    t3 = time.perf_counter()
    return t1 - t0, t3 - t2, len(jobs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=10000)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reel-bench-intake-")
    reeld = None
    try:
        # The provider is never called (reeld is paused); the URL only has to parse.
        reeld, sock, _ = start_reeld(a.bin, work, "http://127.0.0.1:9")
        call(sock, "POST", "/v1/pause")
        write_files(f"{work}/spool/tmp", a.count)
        os.sync()
        names = [f"m{i:05d}.json" for i in range(a.count)]
        def cpu():  # reeld's utime + stime, seconds
            f = open(f"/proc/{reeld.pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        cpu0 = cpu()
        first_drop = time.time()
        for name in names:
            os.rename(f"{work}/spool/tmp/{name}", f"{work}/spool/incoming/{name}")
        last_drop = time.time()
        deadline = time.monotonic() + 1800
        while True:
            status = call(sock, "GET", "/v1/status")
            if status["total_jobs"] >= a.count:
                break
            if time.monotonic() > deadline:
                sys.exit(f"timed out with {status['total_jobs']} of {a.count} jobs committed")
            time.sleep(0.5)  # the end time comes from the store, so a coarse poll costs no precision
        seen = time.time()
        left = len(os.listdir(f"{work}/spool/incoming"))
        while os.listdir(f"{work}/spool/incoming"):  # committed files are unlinked after their commit
            if time.monotonic() > deadline:
                sys.exit("timed out waiting for incoming/ to empty")
            time.sleep(0.02)
        emptied = time.time()
        reeld_cpu = cpu() - cpu0
        db_path = f"{work}/state/reel.sqlite3"
        last_commit = sqlite3.connect(db_path).execute("SELECT max(created_at) FROM jobs").fetchone()[0]
        rejected = len(os.listdir(f"{work}/spool/rejected")) if os.path.isdir(f"{work}/spool/rejected") else 0
        if rejected:
            sys.exit(f"{rejected} files rejected: see {work}/spool/rejected")
        elapsed = last_commit - first_drop
        rename_s, insert_s, rows = floor(work, a.count, db_path)
        floor_s = rename_s + insert_s
        rate, floor_rate = a.count / elapsed, a.count / floor_s
        print(f"| {a.count} one-job manifests | seconds | manifests/s |")
        print("|---|---|---|")
        print(f"| reeld: first drop -> last commit | {elapsed:.2f} | {rate:,.0f} |")
        print(f"| (the drop itself: {a.count} renames by this script) | {last_drop - first_drop:.2f} | |")
        print(f"| (reeld: first drop -> incoming/ empty, every file unlinked) | {emptied - first_drop:.2f} | "
              f"{a.count / (emptied - first_drop):,.0f} |")
        print(f"| floor: rename the same files | {rename_s:.3f} | |")
        print(f"| floor: one transaction (synchronous = {FLOOR_SYNC}) inserting the same {rows} jobs + rows "
              f"| {insert_s:.3f} | |")
        print(f"| floor: total | {floor_s:.3f} | {floor_rate:,.0f} |")
        load = open("/proc/loadavg").read().split()[:3]
        print(f"\nload average at the end: {' '.join(load)}")
        print(f"reeld reached {100 * rate / floor_rate:.1f}% of the floor; the status poll saw the last job "
              f"{seen - last_commit:.2f} s after its commit; {left} files still in incoming/ at that moment.")
        print(f"reeld used {reeld_cpu:.2f} s of CPU (user + system) until incoming/ was empty: "
              f"{100 * reeld_cpu / (emptied - first_drop):.0f}% of one "
              f"core, {1e6 * reeld_cpu / a.count:.0f} us per manifest.")
        print(f"targets: >= 5,000 manifests/s: {'met' if rate >= 5000 else 'NOT met'}; >= 50% of the floor: "
              f"{'met' if rate >= 0.5 * floor_rate else 'NOT met'}")
    finally:
        if reeld and reeld.poll() is None:
            reeld.send_signal(signal.SIGTERM)
            try:
                reeld.wait(60)
            except subprocess.TimeoutExpired:
                reeld.kill()
        if os.environ.get("REEL_BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
