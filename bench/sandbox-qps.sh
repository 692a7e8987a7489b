#!/usr/bin/env bash
# Measures what serving status queries costs reel-sandbox: drives RATE queries/s (default 1000) for SECONDS
# (default 10) over keep-alive connections at a fixed pace, and reports the sandbox's CPU use from
# /proc/PID/stat (utime+stime over the window) as a percentage of one core.
# Usage: bench/sandbox-qps.sh [PATH/TO/reel-sandbox] [RATE] [SECONDS]
#   The binary defaults to .build/release/reel-sandbox if built, else .build/debug/reel-sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
    bin=.build/release/reel-sandbox
    [ -x "$bin" ] || bin=.build/debug/reel-sandbox
fi
rate="${2:-1000}"
seconds="${3:-10}"
out=$(mktemp)
# The account's 20 QPS limit would answer most queries with 429, so lift it for the measurement.
"$bin" --listen 127.0.0.1:0 --query-qps 1000000 --time-scale 1 > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
url=$(head -1 "$out" | sed 's/^listening on //')
python3 - "$url" "$pid" "$rate" "$seconds" "$bin" <<'PY'
import http.client, json, os, sys, time
url, pid, rate, seconds, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
host, port = url[len("http://"):].split(":")
H = {"Authorization": "Bearer sk-bench", "X-DashScope-Async": "enable", "Content-Type": "application/json"}
c = http.client.HTTPConnection(host, int(port))
c.request("POST", "/api/v1/services/aigc/video-generation/video-synthesis", json.dumps({
    "model": "wan2.6-r2v", "input": {"prompt": "bench", "reference_urls": ["https://e/a.png"]},
    "parameters": {"size": "1280*720", "duration": 5}}), H)
task = json.loads(c.getresponse().read())["output"]["task_id"]
tick = os.sysconf("SC_CLK_TCK")
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick   # utime + stime, seconds
# Worker processes (not threads: the GIL would cap the client before the sandbox), each pacing its share
# over one keep-alive connection.
import multiprocessing as mp
workers = 4
per = rate / workers
def worker(start, results):
    conn = http.client.HTTPConnection(host, int(port))
    n, statuses = 0, {}
    while True:
        due = start + n / per
        if due - start >= seconds: break
        now = time.monotonic()
        if due > now: time.sleep(due - now)
        conn.request("GET", f"/api/v1/tasks/{task}", headers={"Authorization": "Bearer sk-bench"})
        r = conn.getresponse(); r.read()
        statuses[r.status] = statuses.get(r.status, 0) + 1
        n += 1
    results.put((n, statuses))
start = time.monotonic() + 0.5
results = mp.Queue()
procs = [mp.Process(target=worker, args=(start, results)) for _ in range(workers)]
for p in procs: p.start()
time.sleep(max(0, start - time.monotonic()))
cpu0, t0 = cpu(), time.monotonic()
done = [results.get() for _ in procs]
cpu1, t1 = cpu(), time.monotonic()
for p in procs: p.join()
counts = [n for n, _ in done]
statuses = {}
for _, s in done:
    for k, v in s.items(): statuses[k] = statuses.get(k, 0) + v
wall = t1 - t0
print(f"binary: {binary}")
print(f"queries: {sum(counts)} in {wall:.2f} s = {sum(counts) / wall:.0f}/s (target {rate}/s), statuses {statuses}")
print(f"sandbox CPU: {cpu1 - cpu0:.2f} s over {wall:.2f} s = {100 * (cpu1 - cpu0) / wall:.1f}% of one core, "
      f"{1e6 * (cpu1 - cpu0) / max(1, sum(counts)):.0f} us per query")
PY
