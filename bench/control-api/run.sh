#!/usr/bin/env bash
# Control API latency (issue #8, acceptance 5): GET /v1/status and GET /v1/jobs?limit=100 with JOBS jobs in the
# database and CLIENTS concurrent clients, each on its own keep-alive connection over the Unix socket.
# Prints p50/p90/p99/max per endpoint. Target: p99 <= 5 ms.
#
# Usage: bench/control-api/run.sh [JOBS=100000] [CLIENTS=8] [REQUESTS_PER_CLIENT=500]
#   BIN_DIR=.build-release/release   the binaries to use (default: release build if present, else .build/debug)
# The jobs are ingested through the spool while reeld is paused (so nothing is submitted), 10,000 per manifest.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-100000}; clients=${2:-8}; requests=${3:-500}
bin=${BIN_DIR:-}
if [ -z "$bin" ]; then
  if [ -x .build-release/release/reeld ]; then bin=.build-release/release; else bin=.build/debug; fi
fi
[ -x "$bin/reeld" ] || { echo "no reeld in $bin: swift build -c release --scratch-path .build-release"; exit 1; }
work=$(mktemp -d /tmp/reel-bench.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/spool/tmp" "$work/spool/incoming" "$work/output" "$work/state"
cat >"$work/reel.toml" <<TOML
[paths]
spool = "$work/spool"
output = "$work/output"
state = "$work/state"
socket = "$work/reel.sock"
[provider]
kind = "sandbox"
base_url = "http://127.0.0.1:9"
[log]
level = "warning"
TOML
DASHSCOPE_API_KEY=sk-bench "$bin/reeld" --config "$work/reel.toml" >"$work/reeld.log" 2>&1 &
pid=$!
sock="$work/reel.sock"
for _ in $(seq 300); do curl -sf --unix-socket "$sock" http://reel/v1/status >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf -X POST --unix-socket "$sock" http://reel/v1/pause >/dev/null

echo "ingesting $jobs jobs ($bin) ..."
start=$(date +%s.%N)
python3 - "$work/spool" "$jobs" <<'PY'
import json, os, sys
spool, total = sys.argv[1], int(sys.argv[2])
per = 10_000
for f in range((total + per - 1) // per):
    n = min(per, total - f * per)
    jobs = [{"id": f"j{f * per + i:06d}", "prompt": "character1 waves",
             "references": [{"url": "https://cdn.example.com/a.png"}]} for i in range(n)]
    doc = {"manifest_version": 1, "batch": f"bench-{f:02d}",
           "defaults": {"model": "wan2.6-r2v-flash", "resolution": "720p", "aspect_ratio": "16:9", "duration_s": 2},
           "jobs": jobs}
    tmp = os.path.join(spool, "tmp", f"bench-{f:02d}.json")
    with open(tmp, "w") as fh: json.dump(doc, fh)
    os.rename(tmp, os.path.join(spool, "incoming", f"bench-{f:02d}.json"))
PY
while true; do
  n=$(curl -sf --unix-socket "$sock" http://reel/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_jobs"])')
  [ "$n" -ge "$jobs" ] && break
  sleep 1
done
printf 'ingested %s jobs in %.1f s\n' "$n" "$(echo "$(date +%s.%N) - $start" | bc)"

python3 - "$sock" "$clients" "$requests" <<'PY'
import http.client, json, multiprocessing, socket, sys, time
sock, clients, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sock)
def client(path):
    conn = UnixConnection("reel")
    out = []
    for _ in range(20):  # warm-up
        conn.request("GET", path); conn.getresponse().read()
    for _ in range(requests):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse(); body = r.read()
        out.append(time.perf_counter() - t)
        assert r.status == 200, (r.status, body[:200])
    return out
def pct(xs, p): return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000
for path in ["/v1/status", "/v1/jobs?limit=100"]:
    t = time.perf_counter()
    with multiprocessing.Pool(clients) as pool:
        lat = sorted(x for xs in pool.map(client, [path] * clients) for x in xs)
    wall = time.perf_counter() - t
    print(f"{path:22s} {clients} clients x {requests}: p50 {pct(lat,50):.2f} ms  p90 {pct(lat,90):.2f} ms  "
          f"p99 {pct(lat,99):.2f} ms  max {lat[-1]*1000:.2f} ms  ({len(lat)/wall:.0f} req/s)")
PY
