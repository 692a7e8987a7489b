#!/usr/bin/env python3
"""The machine's raw intake floor (issue #4, acceptance 3): what 10,000 manifests cost with nothing but the
unavoidable work. Writers create N files in tmp/ (not timed), then the clock runs for: renaming all of them into
incoming/, listing incoming/, reading each file (O_NOFOLLOW, whole), one SQLite transaction inserting one row per
file (WAL, synchronous=FULL like reeld's intake commit; --sync NORMAL for the cheaper, less durable mode),
unlinking them and fsyncing the directory. No validation, no hashing beyond
sqlite's own work. It prints the floor as the issue defines it (rename + one batched insert) and the fuller one
(plus list, read, unlink, fsync). Compare reeld's manifests/s (first drop to last commit) against this number.

usage: bench/intake-floor/floor.py [N] [--dir DIR] [--sync FULL|NORMAL]
       (DIR must be on the spool's filesystem; default: a temp dir)
"""
import os, sqlite3, sys, tempfile, time, shutil

def main():
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 10_000
    base = args[args.index("--dir") + 1] if "--dir" in args else tempfile.gettempdir()
    sync = args[args.index("--sync") + 1].upper() if "--sync" in args else "FULL"
    if sync not in ("FULL", "NORMAL"):
        sys.exit("--sync must be FULL or NORMAL")
    root = tempfile.mkdtemp(prefix="reel-floor-", dir=base)
    tmp, incoming = os.path.join(root, "tmp"), os.path.join(root, "incoming")
    os.mkdir(tmp); os.mkdir(incoming)
    body = '{"manifest_version":1,"batch":"b%05d","jobs":[{"id":"j","prompt":"%s"}]}'
    names = ["m%05d.json" % i for i in range(n)]
    for i, name in enumerate(names):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(body % (i, "x" * 500))
    db = sqlite3.connect(os.path.join(root, "floor.sqlite3"))
    db.execute("PRAGMA journal_mode=WAL"); db.execute(f"PRAGMA synchronous={sync}")
    db.execute("CREATE TABLE jobs(batch TEXT, id TEXT, sha TEXT, body BLOB, PRIMARY KEY(batch, id))")

    t0 = time.perf_counter()
    for name in names:
        os.rename(os.path.join(tmp, name), os.path.join(incoming, name))
    t1 = time.perf_counter()
    dfd = os.open(incoming, os.O_RDONLY | os.O_DIRECTORY)
    rows = []
    for name in sorted(os.listdir(dfd)):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        data = os.read(fd, 1 << 22)
        os.close(fd)
        rows.append((name[:-5], "j", "", data))
    t2 = time.perf_counter()
    with db:
        db.executemany("INSERT INTO jobs VALUES (?,?,?,?)", rows)
    t3 = time.perf_counter()
    for name in names:
        os.unlink(name, dir_fd=dfd)
    os.fsync(dfd)
    t4 = time.perf_counter()
    os.close(dfd); db.close(); shutil.rmtree(root)
    total = t4 - t0
    print(f"n={n} synchronous={sync} rename={t1-t0:.3f}s list+read={t2-t1:.3f}s insert(1 txn)={t3-t2:.3f}s unlink+fsync={t4-t3:.3f}s")
    strict = (t1 - t0) + (t3 - t2)
    print(f"floor as issue #4 defines it (rename + one batched insert): {n/strict:,.0f} manifests/s ({strict:.3f} s)")
    print(f"floor with the reads and unlinks intake also needs: {n/total:,.0f} manifests/s ({total:.3f} s)")

main()
