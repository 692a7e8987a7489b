#!/usr/bin/env bash
# Control API latency (issue #8, acceptance 5): GET /v1/status and GET /v1/jobs?limit=100 with JOBS jobs in the
# database and CLIENTS concurrent clients, each on its own keep-alive connection over the Unix socket.
# Prints p50/p90/p99/max per phase (status; the same first page; distinct pages). Target: p99 <= 5 ms.
#
# Usage: bench/control-api/run.sh [JOBS=100000] [CLIENTS=8] [REQUESTS_PER_CLIENT=500]
#   BIN_DIR=.build-release/release   the binaries to use (default: release build if present, else .build/debug)
#   RUNNING=1                        renders run meanwhile: a reel-sandbox (time scale 60, 60-120 s renders, i.e.
#                                    1-2 s each) and reeld resumed after the ingest, so the store is written while
#                                    the clients read (the listing cache is invalidated by every write)
# The jobs are ingested through the spool while reeld is paused (so nothing is submitted), 10,000 per manifest.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/reel-toml.sh
jobs=${1:-100000}; clients=${2:-8}; requests=${3:-500}
bin=${BIN_DIR:-}
if [ -z "$bin" ]; then
  if [ -x .build-release/release/reeld ]; then bin=.build-release/release; else bin=.build/debug; fi
fi
[ -x "$bin/reeld" ] || { echo "no reeld in $bin: swift build -c release --scratch-path .build-release"; exit 1; }
work=$(mktemp -d /tmp/reel-bench.XXXXXX)
pid=""
sandbox_pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$sandbox_pid" ] && kill "$sandbox_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/spool/tmp" "$work/spool/incoming" "$work/output" "$work/state"
provider_url="http://127.0.0.1:9"
if [ "${RUNNING:-0}" = 1 ]; then
  "$bin/reel-sandbox" --listen 127.0.0.1:0 --time-scale 60 --run-time 60..120 --data "$work/sandbox" \
    >"$work/sandbox.out" 2>"$work/sandbox.log" &
  sandbox_pid=$!
  for _ in $(seq 100); do grep -q '^listening on ' "$work/sandbox.out" 2>/dev/null && break; sleep 0.1; done
  provider_url=$(sed -n 's/^listening on //p' "$work/sandbox.out" | head -1)
fi
reel_toml "$work" "$provider_url" >"$work/reel.toml"
if [ "${RUNNING:-0}" = 1 ]; then
  cat >>"$work/reel.toml" <<TOML
[polling]
expected_run_time = "1s..2s"   # the sandbox's 60-120 s renders at time scale 60
min_interval = "250ms"
TOML
fi
DASHSCOPE_API_KEY=sk-bench "$bin/reeld" --config "$work/reel.toml" >"$work/reeld.log" 2>&1 &
pid=$!
sock="$work/reel.sock"
for _ in $(seq 300); do curl -sf --unix-socket "$sock" http://reel/v1/status >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf -X POST --unix-socket "$sock" http://reel/v1/pause >/dev/null

echo "ingesting $jobs jobs ($bin) ..."
start=$(date +%s.%N)
python3 bench/lib/spool_jobs.py "$work/spool" "$jobs"
while true; do
  n=$(curl -sf --unix-socket "$sock" http://reel/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_jobs"])')
  [ "$n" -ge "$jobs" ] && break
  sleep 1
done
printf 'ingested %s jobs in %.1f s\n' "$n" "$(echo "$(date +%s.%N) - $start" | bc)"
if [ "${RUNNING:-0}" = 1 ]; then
  curl -sf -X POST --unix-socket "$sock" http://reel/v1/resume >/dev/null
  sleep 5   # renders under way: slots full, polls, downloads and deliveries writing the store
  echo "renders running: $(curl -sf --unix-socket "$sock" http://reel/v1/status | python3 -c 'import json,sys; d=json.load(sys.stdin)["jobs"]; print(", ".join(f"{k} {v}" for k, v in sorted(d.items())))')"
fi

# Every cursor of the full listing, for the phase in which each client walks pages no other client is reading.
curl -sf --unix-socket "$sock" http://reel/v1/jobs?limit=100 >/dev/null
python3 - "$sock" >"$work/cursors" <<'PY'
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
conn, cursor = C("reel"), None
while True:
    conn.request("GET", "/v1/jobs?limit=100" + (f"&cursor={cursor}" if cursor else ""))
    cursor = json.loads(conn.getresponse().read()).get("next_cursor")
    if not cursor: break
    print(cursor)
PY

# Each client is one curl process: every request on one keep-alive connection, curl's own per-transfer timer
# (%{time_total}: request sent to last body byte). curl is C and parses nothing, so what is measured is reeld,
# not the client — the earlier Python clients spent more CPU per request than reeld did on these 2 cores.
# Phases: the same status and first page for everyone (what watchers do; reeld answers a repeated page from its
# listing cache while nothing changed), then distinct pages (client c starts at page c x 1000/CLIENTS and walks
# on; no two clients read the same page at nearly the same time, so nearly every request is built from SQLite).
run_phase() {  # label, then which URLs: status | first | distinct
  local label=$1 kind=$2
  python3 - "$kind" "$clients" "$((requests + 20))" "$work" <<'PY'
import sys
kind, clients, n, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cursors = [l.strip() for l in open(f"{work}/cursors")]
for c in range(clients):
    if kind == "status": paths = ["/v1/status"] * n
    elif kind == "first": paths = ["/v1/jobs?limit=100"] * n
    else:  # client c starts at page c x pages/clients and walks on, wrapping around
        start = c * len(cursors) // clients
        paths = [f"/v1/jobs?limit=100&cursor={cursors[(start + i) % len(cursors)]}" for i in range(n)]
    with open(f"{work}/curl.{c}.cfg", "w") as f:
        f.writelines(f'url = "http://reel{p}"\noutput = "/dev/null"\n' for p in paths)
PY
  curls=()
  t0=$(date +%s.%N)
  for c in $(seq 0 $((clients - 1))); do
    curl -s --unix-socket "$sock" -K "$work/curl.$c.cfg" -w '%{http_code} %{time_total}\n' >"$work/lat.$c" &
    curls+=($!)
  done
  wait "${curls[@]}"
  t1=$(date +%s.%N)
  python3 - "$label" "$clients" "$requests" "$t0" "$t1" "$work"/lat.* <<'PY'
import sys
path, clients, requests, t0, t1 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
lat = []
for f in sys.argv[6:]:
    rows = [l.split() for l in open(f)]
    bad = [r for r in rows if r[0] != "200"]
    assert not bad, f"{path}: {len(bad)} non-200 answers, e.g. {bad[0]}"
    assert len(rows) == requests + 20, f"{f}: {len(rows)} answers"
    lat += [float(r[1]) for r in rows[20:]]   # the first 20 per client are warm-up
lat.sort()
def pct(p): return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000
total = clients * (requests + 20)
print(f"{path:28s} {clients} clients x {requests}: p50 {pct(50):.2f} ms  p90 {pct(90):.2f} ms  "
      f"p99 {pct(99):.2f} ms  max {lat[-1]*1000:.2f} ms  ({total/(t1-t0):.0f} req/s)")
PY
}
run_phase "/v1/status" status
run_phase "/v1/jobs?limit=100" first
run_phase "/v1/jobs?limit=100 (distinct)" distinct
if [ "${RUNNING:-0}" = 1 ]; then
  echo "after the phases: $(curl -sf --unix-socket "$sock" http://reel/v1/status | python3 -c 'import json,sys; d=json.load(sys.stdin)["jobs"]; print(", ".join(f"{k} {v}" for k, v in sorted(d.items())))')"
fi
