#!/usr/bin/env bash
# Memory per queued job and restart time: reeld (paused, so nothing is submitted) with JOBS queued jobs, measured
# after the ingest and again after a restart that restores them from the store.
# Prints, from /proc/PID/status: RssAnon (anonymous memory: what queued jobs cost), VmRSS and VmHWM (high-water);
# the anonymous bytes per queued job over an empty daemon; and the restart's time to the first /v1/status answer.
# Targets: <= 300 anonymous bytes per queued job after ingest and after restart; restart to first answer <= 1 s.
#
# Usage: bench/memory/run.sh [JOBS=100000]
#   BIN_DIR=.build-release/release   the binaries to use (default: release build if present, else .build/debug)
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/reel-toml.sh
jobs=${1:-100000}
bin=${BIN_DIR:-}
if [ -z "$bin" ]; then
  if [ -x .build-release/release/reeld ]; then bin=.build-release/release; else bin=.build/debug; fi
fi
[ -x "$bin/reeld" ] || { echo "no reeld in $bin: swift build -c release --scratch-path .build-release"; exit 1; }
work=$(mktemp -d /tmp/reel-bench.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/spool/tmp" "$work/spool/incoming" "$work/output" "$work/state"
reel_toml "$work" "http://127.0.0.1:9" >"$work/reel.toml"
sock="$work/reel.sock"

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$pid/status"; }
start_reeld() {  # sets pid, and took: seconds from exec to the first /v1/status answer
  local t0; t0=$(date +%s.%N)
  DASHSCOPE_API_KEY=sk-bench "$bin/reeld" --config "$work/reel.toml" >>"$work/reeld.log" 2>&1 &
  pid=$!
  until curl -sf --unix-socket "$sock" http://reel/v1/status >/dev/null 2>&1; do sleep 0.01; done
  took=$(echo "$(date +%s.%N) - $t0" | bc)
}
settle() { sleep 3; }   # let the allocator return what start-up freed
report() {  # label
  printf '%-22s RssAnon %7d KiB  VmRSS %7d KiB  VmHWM %7d KiB\n' "$1" "$(kib RssAnon)" "$(kib VmRSS)" "$(kib VmHWM)"
}

start_reeld
curl -sf -X POST --unix-socket "$sock" http://reel/v1/pause >/dev/null
settle
report "empty"
empty_anon=$(kib RssAnon)

python3 bench/lib/spool_jobs.py "$work/spool" "$jobs"
until [ "$(curl -sf --unix-socket "$sock" http://reel/v1/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_jobs"])')" -ge "$jobs" ]; do
  sleep 1
done
settle
report "after ingest"
ingest_anon=$(kib RssAnon)

kill -TERM "$pid"; wait "$pid" || true; pid=""
start_reeld
restart=$took
settle
report "after restart"
restore_anon=$(kib RssAnon)
printf 'restart to first answer: %.2f s (%d queued jobs restored)\n' "$restart" "$jobs"
printf 'anonymous bytes per queued job: %d after ingest, %d after restart (over the empty daemon)\n' \
  "$(( (ingest_anon - empty_anon) * 1024 / jobs ))" "$(( (restore_anon - empty_anon) * 1024 / jobs ))"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
