#!/usr/bin/env python3
"""Scheduler benchmark (issue #6 acceptance 3): one batch through reeld and through the SDK baseline, each against
a fresh reel-sandbox with the same seed (hence the same run-time draws), both runs at the same time.

Measured from each sandbox's request journal (/__sandbox/requests) and the list rows' gmt_create/end_time (epoch ms):
  makespan   first create -> the query that detects the last task's end (downloads excluded for both clients)
  ratio      makespan / (sum of run times / 5), run time = end_time - gmt_create (the slot time at the provider)
  queries    GET /api/v1/tasks/{id} plus GET /api/v1/tasks (list) requests, per job
  latency    task end_time -> the client's first query after it that covers the task (its GET or a list)
  bound      makespan of a zero-latency greedy schedule of the same run times in creation order
  FIFO bound the same in manifest order (with --run-time-model: run time depends on the job, so a client that starts
             the long renders first can end below it; the rows' prompts name the job, from --list-extras)
Invoked by bench/scheduler/run.sh, which documents the options.
"""
import argparse, http.client, json, os, shutil, signal, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from reel_bench import call, start_reeld  # noqa: E402

def http_json(base, path):
    host, port = base[len("http://"):].split(":")
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request("GET", path, headers={"Authorization": "Bearer sk-bench"})
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def start_sandbox(binary, args, log):
    out = open(log, "w+")
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0"] + args, stdout=out, stderr=subprocess.STDOUT)
    for _ in range(300):
        out.seek(0)
        line = out.readline()
        if line.startswith("listening on "):
            return p, line.split()[-1]
        if p.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"reel-sandbox did not start: {open(log).read()}")


def journal(base):
    entries, since = [], 0
    while True:
        page = http_json(base, f"/__sandbox/requests?since={since}")
        entries += page["requests"]
        if not page["requests"] or page["next"] == since:
            return entries
        since = page["next"]


def greedy_makespan(runs, concurrency):
    """The makespan of a zero-latency greedy list schedule over `runs` in this order: each task starts the instant a
    slot frees. No client that does not know run times in advance can do better with the same draws in the same
    order (the k-th create gets the k-th draw in the sandbox)."""
    import heapq
    slots = [0.0] * concurrency
    end = 0.0
    for r in runs:
        start = heapq.heappop(slots)
        end = max(end, start + r)
        heapq.heappush(slots, start + r)
    return end


def measure(base, jobs, concurrency, fifo=False):
    """Metrics of one client's run, from its sandbox's journal and task records."""
    entries = journal(base)  # before this script's own list calls below, which the journal would record too
    creates = [e for e in entries if e["method"] == "POST" and e["path"].endswith("/video-synthesis")]
    accepted = sorted((e for e in creates if e["status"] == 200 and e.get("task_id")), key=lambda e: e["time"])
    queries, lists = {}, []
    for e in entries:
        if e["method"] != "GET":
            continue
        if e["path"].startswith("/api/v1/tasks/") and e.get("task_id"):
            queries.setdefault(e["task_id"], []).append(e["time"])
        elif e["path"].rstrip("/") == "/api/v1/tasks":
            lists.append(e["time"])
    lists.sort()
    tasks, page = {}, 1
    while True:  # the list API: one query per 100 tasks, well inside the sandbox's 20 queries/s
        listing = http_json(base, f"/api/v1/tasks?page_no={page}&page_size=100")
        tasks.update({t["task_id"]: t for t in listing["data"]})
        if page >= listing["total_page"]:
            break
        page += 1
    run, lat, ends, detects, by_job = [], [], [], [], {}
    for e in accepted:
        t = tasks[e["task_id"]]
        if fifo:
            by_job[int(t["prompt"].rsplit(" ", 1)[-1])] = t["end_time"] / 1000 - t["gmt_create"] / 1000
        if t["status"] != "SUCCEEDED":
            sys.exit(f"task {e['task_id']} ended {t['status']}")
        start, end = t["gmt_create"] / 1000, t["end_time"] / 1000
        run.append(end - start)
        # Detected by the first query after the end that covers the task: its own GET or a list (which covers
        # every running task).
        own = [q for q in queries.get(e["task_id"], []) if q >= end]
        listed = next((q for q in lists if q >= end), None)
        seen = min(own + ([listed] if listed is not None else []))
        lat.append(seen - end)
        ends.append(end)
        detects.append(seen)
    first = accepted[0]["time"]
    makespan = max(detects) - first
    bound = greedy_makespan(run, concurrency)
    # Where the idle slot time goes: 5 x makespan - sum(run) = start-up (the first wave's creates after the first)
    # + turnovers (a slot frees at an end, the next create takes it: detection latency + dispatch) + the tail (slots
    # idle after their last task, up to the last detection). Ends are matched to later creates in time order.
    ends_sorted = sorted(ends)
    create_times = [e["time"] for e in accepted]
    startup = sum(t - first for t in create_times[:concurrency])
    turnovers = list(zip(ends_sorted, create_times[concurrency:]))
    gaps = [c - e for e, c in turnovers]
    queued_lat = [d - e for e, d in sorted(zip(ends, detects))[:len(turnovers)]]
    tail = concurrency * makespan - sum(run) - startup - sum(gaps)
    total_queries = sum(len(v) for v in queries.values()) + len(lists)
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * len(lat) + 0.5)) - 1)]  # nearest-rank
    fifo_bound = greedy_makespan([by_job[i] for i in sorted(by_job)], concurrency) if fifo else bound
    return {
        "fifo_bound_s": fifo_bound, "ratio_to_fifo_bound": makespan / fifo_bound,
        "tasks": len(accepted), "creates": len(creates), "throttled_creates": len(creates) - len(accepted),
        "makespan_s": makespan, "sum_run_s": sum(run),
        "ratio": makespan / (sum(run) / concurrency),
        "greedy_bound_s": bound, "bound_over_sum": bound / (sum(run) / concurrency), "ratio_to_bound": makespan / bound,
        "task_gets": sum(len(v) for v in queries.values()), "list_gets": len(lists),
        "polls": total_queries, "polls_per_job": total_queries / jobs,
        "task_gets_per_job": sum(len(v) for v in queries.values()) / jobs, "list_gets_per_job": len(lists) / jobs,
        "latency_p50_s": statistics.median(lat), "latency_p95_s": p95, "latency_mean_s": statistics.fmean(lat),
        "latency_max_s": lat[-1],
        "idle_startup_s": startup / concurrency, "idle_turnover_s": sum(gaps) / concurrency,
        "idle_tail_s": tail / concurrency,
        "turnover_gap_mean_s": statistics.fmean(gaps) if gaps else 0.0,
        "turnover_detection_mean_s": statistics.fmean(queued_lat) if queued_lat else 0.0,
    }


def manifest(jobs, mixed=False, seed=6):
    if mixed:  # both models, both resolutions, 2-10 s: what the sandbox's run-time model makes run times depend on
        import random
        rng = random.Random(seed)
        return {
            "manifest_version": 1, "batch": "bench", "defaults": {"aspect_ratio": "16:9"},
            "jobs": [{"id": f"job-{i:03d}", "model": rng.choice(["wan2.6-r2v", "wan2.6-r2v-flash"]),
                      "resolution": rng.choice(["720p", "1080p"]), "duration_s": rng.randint(2, 10),
                      "prompt": f"character1 walks through a sunlit park, take {i}",
                      "references": [{"url": "https://cdn.example.com/anna.png"}]} for i in range(1, jobs + 1)],
        }
    return {
        "manifest_version": 1, "batch": "bench",
        "defaults": {"model": "wan2.6-r2v", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
        "jobs": [{"id": f"job-{i:03d}", "prompt": f"character1 walks through a sunlit park, take {i}",
                  "references": [{"url": "https://cdn.example.com/anna.png"}]} for i in range(1, jobs + 1)],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sdk", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--polling", required=True, help="keys of reeld's [polling] table, one a line (expected_run_time is set from --run-time/--scale)")
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--scale", type=float, default=2)
    ap.add_argument("--run-time", default="20..60")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--run-time-model", action="store_true",
                    help="sandbox --run-time-model and a mixed manifest (models, resolutions, 2-10 s); reeld capped "
                         "at 5 slots and 5 creates/s in all, as the sandbox's one pool and the SDK's 5 threads")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="reel-bench-sched-")
    procs = []

    def cleanup():
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    try:
        sandbox_args = ["--time-scale", str(a.scale), "--run-time", a.run_time, "--queue-delay", "0",
                        "--seed", str(a.seed)] + (["--run-time-model", "--list-extras"] if a.run_time_model else [])
        sb_reel, url_reel = start_sandbox(f"{a.bin}/reel-sandbox", sandbox_args + ["--data", f"{work}/sb-reel"],
                                          f"{work}/sandbox-reel.log")
        procs.append(sb_reel)
        sb_sdk, url_sdk = start_sandbox(f"{a.bin}/reel-sandbox", sandbox_args + ["--data", f"{work}/sb-sdk"],
                                        f"{work}/sandbox-sdk.log")
        procs.append(sb_sdk)
        # The run-time prior is the sandbox's range in real seconds (what an operator would know of their renders);
        # the scheduler replaces it with the learned distribution after five finishes.
        lo, hi = (float(x) / a.scale for x in a.run_time.split(".."))
        prior = f"{lo:g}s..{hi:g}s"
        polling = "\n".join(l for l in open(a.polling).read().splitlines() if l.strip() and not l.startswith("#"))
        m = manifest(a.jobs, a.run_time_model, a.seed)
        with open(f"{work}/bench.json", "w") as f:
            json.dump(m, f)
        reeld, sock, env = start_reeld(a.bin, work, url_reel,
                                       f'[polling]\nexpected_run_time = "{prior}"\n{polling}\n'
                                       + ("[limits]\nconcurrency = 5\nsubmit_per_second = 5\n" if a.run_time_model else ""))
        procs.append(reeld)
        sdk_env = dict(env, DASHSCOPE_HTTP_BASE_URL=f"{url_sdk}/api/v1")
        sdk = subprocess.Popen([a.python, a.sdk, "--out", f"{work}/sdk-out", f"{work}/bench.json"],
                               stdout=open(f"{work}/sdk.log", "w"), stderr=subprocess.STDOUT, env=sdk_env)
        procs.append(sdk)
        shutil.copy(f"{work}/bench.json", f"{work}/spool/tmp/bench.json")
        os.rename(f"{work}/spool/tmp/bench.json", f"{work}/spool/incoming/bench.json")
        started = time.monotonic()
        load_start = os.getloadavg()
        while True:
            jobs = call(sock, "GET", "/v1/status")["jobs"]
            done = sum(jobs.get(s, 0) for s in ("succeeded", "failed", "cancelled", "expired"))
            if done >= a.jobs and sdk.poll() is not None:
                break
            if time.monotonic() - started > 3600:
                sys.exit(f"timed out: reeld {jobs}, sdk running={sdk.poll() is None}")
            time.sleep(1)
        if jobs.get("succeeded", 0) != a.jobs:
            sys.exit(f"reeld: not every job succeeded: {jobs}")
        if sdk.returncode != 0:
            sys.exit(f"sdk_batch.py failed: {open(f'{work}/sdk.log').read()[-3000:]}")
        status = call(sock, "GET", "/v1/status")
        results = {"reel": measure(url_reel, a.jobs, 5, a.run_time_model),
                   "sdk": measure(url_sdk, a.jobs, 5, a.run_time_model)}
        results["reel"]["scheduler_polls"] = status["provider"]["polls"]
        load_end = os.getloadavg()
        results["params"] = {"load_average_start": load_start, "load_average_end": load_end,
                             "jobs": a.jobs, "scale": a.scale, "run_time": a.run_time, "seed": a.seed,
                             "polling": f'expected_run_time = "{prior}"; ' + "; ".join(polling.splitlines())}
        r, s = results["reel"], results["sdk"]
        rows = [("makespan (s, real)", "makespan_s", "{:.1f}"), ("sum of run times (s, real)", "sum_run_s", "{:.1f}"),
                ("makespan / (sum / 5)", "ratio", "{:.3f}"),
                ("greedy zero-latency bound / (sum / 5)", "bound_over_sum", "{:.3f}"),
                ("makespan / greedy bound", "ratio_to_bound", "{:.3f}"),
                ("greedy FIFO bound, manifest order (s)", "fifo_bound_s", "{:.1f}"),
                ("makespan / greedy FIFO bound", "ratio_to_fifo_bound", "{:.3f}"),
                ("queries per job (task GETs + list GETs)", "polls_per_job", "{:.2f}"),
                ("  task GETs per job", "task_gets_per_job", "{:.2f}"), ("  list GETs per job", "list_gets_per_job", "{:.2f}"),
                ("detection latency p50 (s)", "latency_p50_s", "{:.2f}"),
                ("detection latency p95 (s)", "latency_p95_s", "{:.2f}"),
                ("detection latency mean (s)", "latency_mean_s", "{:.2f}"),
                ("detection latency max (s)", "latency_max_s", "{:.2f}"),
                ("slot turnover: end -> next create, mean (s)", "turnover_gap_mean_s", "{:.2f}"),
                ("  of which detection latency, mean (s)", "turnover_detection_mean_s", "{:.2f}"),
                ("makespan lost to start-up (s)", "idle_startup_s", "{:.1f}"),
                ("makespan lost to turnovers (s)", "idle_turnover_s", "{:.1f}"),
                ("makespan lost to the tail (s)", "idle_tail_s", "{:.1f}"),
                ("throttled creates", "throttled_creates", "{}")]
        print(f"load average (1/5/15 min) at start {' '.join(f'{x:.1f}' for x in load_start)}, "
              f"at end {' '.join(f'{x:.1f}' for x in load_end)}")
        print(f"| {a.jobs} jobs, run time {a.run_time} s, time scale {a.scale:g}, seed {a.seed} | Reel | SDK |")
        print("|---|---|---|")
        for label, key, fmt in rows:
            print(f"| {label} | {fmt.format(r[key])} | {fmt.format(s[key])} |")
        print(f"\ntargets: makespan ratio {r['ratio']:.3f} <= 1.02: {'met' if r['ratio'] <= 1.02 else 'NOT met'} "
              f"(greedy bound {r['bound_over_sum']:.3f}; Reel / bound {r['ratio_to_bound']:.3f}); "
              f"queries {r['polls_per_job'] / s['polls_per_job']:.2f} x the SDK's <= 0.25: "
              f"{'met' if r['polls_per_job'] <= 0.25 * s['polls_per_job'] else 'NOT met'}; "
              f"p95 latency {r['latency_p95_s']:.2f} s <= SDK's {s['latency_p95_s']:.2f} s: "
              f"{'met' if r['latency_p95_s'] <= s['latency_p95_s'] else 'NOT met'}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
    finally:
        cleanup()
        if os.environ.get("REEL_BENCH_KEEP"):
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
