#!/usr/bin/env bash
# Idle wake-ups: reeld with an empty queue (no provider calls), its threads' context switches over SECONDS
# seconds (from /proc/PID/task/*/status), then `strace -f -c` over the same span when strace is installed.
#
# Usage: bench/idle/run.sh        (from anywhere; about 2 × SECONDS)
# Environment (optional): SECONDS_=60; BIN=DIR with reeld (default .build-release/release, else .build/debug);
# NOTIFY=1 runs reeld under a fake $NOTIFY_SOCKET with WATCHDOG_USEC=10 s, as systemd would.
set -euo pipefail
cd "$(dirname "$0")/../.."
. bench/lib/reel-toml.sh
bin="${BIN:-}"
if [ -z "$bin" ]; then
    bin=.build-release/release
    [ -x "$bin/reeld" ] || bin=.build/debug
fi
[ -x "$bin/reeld" ] || { echo "no reeld in $bin: swift build first" >&2; exit 1; }
span=${SECONDS_:-60}
work=$(mktemp -d /tmp/reel-idle.XXXXXX)
pid=""
notify_pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "$notify_pid" ] && kill "$notify_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/spool" "$work/output" "$work/state"
reel_toml "$work" "http://127.0.0.1:9" >"$work/reel.toml"
env_extra=()
if [ "${NOTIFY:-0}" = 1 ]; then
  python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])
while True: s.recv(4096)' "$work/notify.sock" &
  notify_pid=$!
  sleep 0.5
  env_extra=(NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=10000000)
fi
env DASHSCOPE_API_KEY=sk-bench "${env_extra[@]}" "$bin/reeld" --config "$work/reel.toml" >"$work/reeld.log" 2>&1 &
pid=$!
for _ in $(seq 300); do curl -sf --unix-socket "$work/reel.sock" http://reel/v1/status >/dev/null 2>&1 && break; sleep 0.1; done
sleep 5   # start-up work (the first spool scan, the unlinker, READY) is over
kill -0 "$pid" 2>/dev/null || { echo "reeld exited:"; tail -20 "$work/reeld.log"; exit 1; }
switches() { cat /proc/$pid/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'; }
a=$(switches); sleep "$span"; b=$(switches)
echo "binary $bin/reeld; threads $(ls /proc/$pid/task | wc -l); context switches in ${span} s: $((b - a)) = $(echo "scale=2; ($b - $a) / $span" | bc)/s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
for t in /proc/$pid/task/*; do
  n=$(awk '/ctxt_switches/ { n += $2 } END { print n }' "$t/status")
  echo "  $(cat "$t/comm"): $n since start"
done
if command -v strace >/dev/null; then
  timeout -s INT "$span" strace -f -c -p "$pid" 2>&1 | head -25 || true
fi
