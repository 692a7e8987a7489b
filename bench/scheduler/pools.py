#!/usr/bin/env python3
"""Limit pools benchmark: one batch of JOBS jobs, half wan2.6-r2v and half wan2.6-r2v-flash, through reeld against a
fresh reel-sandbox, twice: with reeld's default per-model pools (5 + 5) and with one account-wide pool
([limits] concurrency = 5, submit_per_second = 5). Each run gets its own sandbox with the same seed and options.

Measured from the sandbox (request journal and list rows, gmt_create/end_time in epoch ms):
  peak       most tasks PENDING or RUNNING at once at the sandbox, in all and per model
  makespan   first create -> the last task's end_time
  throttled  creates the sandbox answered with 429

Usage (from the repository root, after `swift build`):
  python3 bench/scheduler/pools.py --bin .build/debug [--jobs 40] [--scale 10] [--run-time 30..90]
      [--sandbox-args "--concurrency 10 --submit-rps 10"]
The sandbox options stand in for the provider: a sandbox that enforces per-model pools takes its own options for
them; one that has a single pool per account is given 10 slots and 10 creates/s, so that only reeld limits per model.
"""
import argparse, os, shlex, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from bench import http_json, journal, start_sandbox  # noqa: E402
from reel_bench import call, start_reeld  # noqa: E402


def manifest(jobs):
    return {
        "manifest_version": 1, "batch": "pools",
        "defaults": {"resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
        "jobs": [{"id": f"job-{i:03d}", "model": "wan2.6-r2v" if i % 2 else "wan2.6-r2v-flash",
                  "prompt": f"character1 walks through a sunlit park, take {i}",
                  "references": [{"url": "https://cdn.example.com/anna.png"}]} for i in range(1, jobs + 1)],
    }


def peak(intervals):
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = n = 0
    for _, d in edges:
        n += d
        best = max(best, n)
    return best


def run_once(a, work, name, limits_toml):
    os.makedirs(work)
    sb, url = start_sandbox(f"{a.bin}/reel-sandbox",
                            ["--time-scale", str(a.scale), "--run-time", a.run_time, "--queue-delay", "0",
                             "--seed", str(a.seed), "--data", f"{work}/sb"] + shlex.split(a.sandbox_args),
                            f"{work}/sandbox.log")
    reeld = None
    try:
        lo, hi = (float(x) / a.scale for x in a.run_time.split(".."))
        reeld, sock, _ = start_reeld(a.bin, f"{work}/reel", url,
                                     f'[polling]\nexpected_run_time = "{lo:g}s..{hi:g}s"\n{limits_toml}')
        import json
        with open(f"{work}/reel/spool/tmp/m.json", "w") as f:
            json.dump(manifest(a.jobs), f)
        os.rename(f"{work}/reel/spool/tmp/m.json", f"{work}/reel/spool/incoming/m.json")
        started = time.monotonic()
        while True:
            jobs = call(sock, "GET", "/v1/status")["jobs"]
            if sum(jobs.get(s, 0) for s in ("succeeded", "failed", "cancelled", "expired")) >= a.jobs:
                break
            if time.monotonic() - started > 3600:
                sys.exit(f"{name}: timed out: {jobs}")
            time.sleep(0.5)
        if jobs.get("succeeded", 0) != a.jobs:
            sys.exit(f"{name}: not every job succeeded: {jobs}")
        entries = journal(url)
        creates = [e for e in entries if e["method"] == "POST" and e["path"].endswith("/video-synthesis")]
        throttled = sum(1 for e in creates if e["status"] == 429)
        rows, page = [], 1
        while True:
            listing = http_json(url, f"/api/v1/tasks?page_no={page}&page_size=100")
            rows += listing["data"]
            if page >= listing["total_page"]:
                break
            page += 1
        spans = {}
        for t in rows:
            spans.setdefault(t["model_name"], []).append((t["gmt_create"] / 1000, t["end_time"] / 1000))
        everything = [s for v in spans.values() for s in v]
        first = min(s for s, _ in everything)
        return {"name": name, "tasks": len(rows), "peak": peak(everything),
                "peak_by_model": {m: peak(v) for m, v in sorted(spans.items())},
                "makespan_s": max(e for _, e in everything) - first, "throttled_creates": throttled,
                "creates": len(creates)}
    finally:
        for p in (reeld, sb):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--scale", type=float, default=10)
    ap.add_argument("--run-time", default="30..90")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--sandbox-args", default="--concurrency 10 --submit-rps 10")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reel-bench-pools-")
    try:
        load_start = os.getloadavg()
        pools = run_once(a, f"{work}/pools", "per-model pools (default)", "")
        single = run_once(a, f"{work}/single", "one pool (concurrency = 5, submit_per_second = 5)",
                          "[limits]\nconcurrency = 5\nsubmit_per_second = 5\n")
        load_end = os.getloadavg()
        print(f"load average (1/5/15 min) at start {' '.join(f'{x:.1f}' for x in load_start)}, "
              f"at end {' '.join(f'{x:.1f}' for x in load_end)}")
        print(f"| {a.jobs} jobs (half flash), run time {a.run_time} s, time scale {a.scale:g}, seed {a.seed}, "
              f"sandbox {a.sandbox_args} | peak at the sandbox (per model) | makespan (s, real) | 429s / creates |")
        print("|---|---|---|---|")
        for r in (pools, single):
            per = ", ".join(f"{m} {n}" for m, n in r["peak_by_model"].items())
            print(f"| {r['name']} | {r['peak']} ({per}) | {r['makespan_s']:.1f} | "
                  f"{r['throttled_creates']} / {r['creates']} |")
        print(f"\nmakespan per-model pools / one pool: {pools['makespan_s'] / single['makespan_s']:.2f}")
    finally:
        if os.environ.get("REEL_BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
