#!/usr/bin/env python3
"""CPU per delivered job (own + children). Starts a reel-sandbox (time scale 60, 60-120 s renders: 1-2 real
seconds) and a paused reeld pointed at it, drops one manifest of N jobs, renders one warm-up job first so the
sandbox has made its result clip (ffmpeg, on the sandbox's CPU, not reeld's), then resumes reeld and reads
reeld's /proc/PID/stat (utime, stime, cutime, cstime: its own CPU and that of the children it reaped, i.e.
ffprobe) from the resume until every job has succeeded. Invoked by bench/delivery/run.sh.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from reel_bench import call, start_reeld  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    """(own, children) CPU seconds of `pid` from /proc/PID/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def drop(work, batch, n, resolution, duration):
    doc = {"manifest_version": 1, "batch": batch,
           "defaults": {"model": "wan2.6-r2v-flash", "resolution": resolution, "aspect_ratio": "16:9",
                        "duration_s": duration},
           "jobs": [{"id": f"j{i:04d}", "prompt": "character1 waves",
                     "references": [{"url": "https://cdn.example.com/a.png"}]} for i in range(n)]}
    tmp = f"{work}/spool/tmp/{batch}.json"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.rename(tmp, f"{work}/spool/incoming/{batch}.json")


def wait_succeeded(sock, batch, n, limit=600):
    end = time.time() + limit
    while time.time() < end:
        counts = call(sock, "GET", f"/v1/batches/{batch}")["jobs"]
        if counts.get("succeeded", 0) >= n:
            return
        bad = {k: v for k, v in counts.items() if k in ("failed", "expired", "cancelled", "held") and v}
        if bad:
            sys.exit(f"batch {batch}: {bad}")
        time.sleep(0.2)
    sys.exit(f"batch {batch} not done after {limit} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--resolution", default="1080p")
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reel-delivery-")
    sandbox = reeld = None
    try:
        sandbox = subprocess.Popen([f"{a.bin}/reel-sandbox", "--listen", "127.0.0.1:0", "--time-scale", "60",
                                    "--run-time", "60..120", "--data", f"{work}/sandbox"],
                                   stdout=subprocess.PIPE, stderr=open(f"{work}/sandbox.log", "w"), text=True)
        url = sandbox.stdout.readline().strip().removeprefix("listening on ")
        reeld, sock, _ = start_reeld(a.bin, work, url,
                                     '[polling]\nexpected_run_time = "1s..2s"\nmin_interval = "250ms"\n')
        drop(work, "warm", 1, a.resolution, a.duration)
        while call(sock, "GET", "/v1/status")["total_jobs"] < 1:
            time.sleep(0.1)
        wait_succeeded(sock, "warm", 1)
        call(sock, "POST", "/v1/pause")
        drop(work, "bench", a.jobs, a.resolution, a.duration)
        while call(sock, "GET", "/v1/status")["total_jobs"] < a.jobs + 1:
            time.sleep(0.1)
        own0, kids0 = cpu(reeld.pid)
        t0 = time.time()
        call(sock, "POST", "/v1/resume")
        wait_succeeded(sock, "bench", a.jobs)
        wall = time.time() - t0
        own1, kids1 = cpu(reeld.pid)
        size = os.path.getsize(f"{work}/output/bench/j0000.mp4")
        own, kids = (own1 - own0) / a.jobs, (kids1 - kids0) / a.jobs
        print(f"{a.jobs} jobs {a.resolution} {a.duration} s ({size / 1e6:.1f} MB each) in {wall:.1f} s; "
              f"CPU per delivered job: {1000 * (own + kids):.0f} ms = reeld {1000 * own:.0f} ms + children "
              f"(ffprobe) {1000 * kids:.0f} ms; load average {os.getloadavg()[0]:.1f}")
    finally:
        for p in (reeld, sandbox):
            if p and p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
