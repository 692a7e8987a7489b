#!/usr/bin/env bash
# Control API conformance: schemathesis fuzzes every operation of docs/openapi.json
# against a live, throwaway reeld (backed by reel-sandbox) over its Unix socket, in every phase (examples,
# coverage, fuzzing, and stateful sequences that follow the document's links), with every check that applies
# without auth: no 5xx; status codes, content types, headers and bodies as documented; schema-valid data accepted
# and invalid data rejected; 405 with Allow for a method a path lacks; resources that stay available.
#
# Usage: scripts/api-conformance.sh [MAX_EXAMPLES]     (default 10 per operation; build products in .build/debug)
# Makes a venv at .venv (git-ignored) with schemathesis the first time. schemathesis speaks TCP, so a small
# Python forwarder bridges 127.0.0.1:PORT to the socket. /v1/events is excluded (an endless stream); mutating
# endpoints are fuzzed too (the daemon is thrown away). Prints "api-conformance: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-10}"
bin=${BIN_DIR:-.build/debug}
for p in reeld reel-sandbox; do [ -x "$bin/$p" ] || swift build --product "$p"; done
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/python -c 'import schemathesis' 2>/dev/null; then .venv/bin/pip install -q schemathesis; fi

work=$(mktemp -d /tmp/reel-conformance.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A sandbox whose renders take milliseconds, and a reeld configured against it.
"$bin/reel-sandbox" --listen 127.0.0.1:0 --time-scale 1000 --run-time 1..2 >"$work/sandbox.out" 2>"$work/sandbox.log" &
pids+=($!)
for _ in $(seq 100); do grep -q 'http://' "$work/sandbox.out" 2>/dev/null && break; sleep 0.1; done
sandbox_url=$(grep -Eo 'http://[0-9.]+:[0-9]+' "$work/sandbox.out" | head -1)
[ -n "$sandbox_url" ] || { echo "reel-sandbox did not start:"; cat "$work/sandbox.log"; exit 1; }
mkdir -p "$work/spool" "$work/output" "$work/state"
cat >"$work/reel.toml" <<EOF
[paths]
spool = "$work/spool"
output = "$work/output"
state = "$work/state"
socket = "$work/reel.sock"
[provider]
kind = "sandbox"
base_url = "$sandbox_url"
[retry]
base_delay = "50ms"
max_delay = "500ms"
[polling]
expected_run_time = "50ms..500ms"
min_interval = "20ms"
max_interval = "500ms"
[pricing]
"wan2.6-r2v-flash".720p = 0.05
EOF
DASHSCOPE_API_KEY=sk-reel-test "$bin/reeld" --config "$work/reel.toml" >"$work/reeld.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  curl -sf --unix-socket "$work/reel.sock" http://reel/v1/status >/dev/null 2>&1 && break; sleep 0.1
done
curl -sf --unix-socket "$work/reel.sock" http://reel/v1/status >/dev/null || { echo "reeld did not start:"; tail -20 "$work/reeld.log"; exit 1; }

# Jobs named like the document's examples (spring-campaign/hero-001…), so the examples phase reaches real ones.
jobs=$(for i in 1 2 3 4 5 6; do printf '%s{"id":"hero-00%d","prompt":"character1 waves","references":[{"url":"https://cdn.example.com/a.png"}]}' "$([ "$i" = 1 ] || echo ,)" "$i"; done)
mkdir -p "$work/spool/tmp" "$work/spool/incoming"
printf '{"manifest_version":1,"batch":"spring-campaign","defaults":{"model":"wan2.6-r2v-flash","resolution":"720p","aspect_ratio":"16:9","duration_s":2},"jobs":[%s]}' "$jobs" >"$work/spool/tmp/spring-campaign.json"
mv "$work/spool/tmp/spring-campaign.json" "$work/spool/incoming/spring-campaign.json"
for _ in $(seq 100); do
  curl -sf --unix-socket "$work/reel.sock" http://reel/v1/batches/spring-campaign >/dev/null 2>&1 && break; sleep 0.1
done

# TCP → Unix socket forwarder (one thread pair per connection).
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/python - "$port" "$work/reel.sock" <<'PY' &
import socket, sys, threading
port, path = int(sys.argv[1]), sys.argv[2]
def pipe(a, b):
    try:
        while (data := a.recv(65536)):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
def serve(client):
    upstream = socket.socket(socket.AF_UNIX); upstream.connect(path)
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)
listener = socket.create_server(("127.0.0.1", port))
while True:
    c, _ = listener.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v1/status" >/dev/null 2>&1 && break; sleep 0.1; done

# A cursor is opaque: a schema-valid string that the API never issued is rightly a 400 (bad_cursor), so for the
# listing a 400 counts as acceptance of schema-valid data.
cat >"$work/schemathesis.toml" <<'EOF'
[[operations]]
include-operation-id = "listJobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400"]
EOF

set +e
.venv/bin/schemathesis --config-file "$work/schemathesis.toml" run docs/openapi.json \
  --url "http://127.0.0.1:$port" \
  --exclude-path /v1/events \
  --phases examples,coverage,fuzzing,stateful \
  --checks all \
  --exclude-checks ignored_auth,object_level_authorization \
  --max-examples "$examples" \
  --no-color 2>&1 | tee "$work/schemathesis.out"
status=${PIPESTATUS[0]}
set -e
if grep -qiE 'panic|fatal error' "$work/reeld.log"; then echo "reeld crashed:"; tail -30 "$work/reeld.log"; status=1; fi
kill -0 "${pids[1]}" 2>/dev/null || { echo "reeld died during the run:"; tail -30 "$work/reeld.log"; status=1; }

# One line for scripts/test: generated test cases that passed, and unique failures found.
passed=$(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$work/schemathesis.out" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' | tail -1 || true)
failed=$(grep -Eo '[0-9]+ unique failures?' "$work/schemathesis.out" | grep -Eo '^[0-9]+' | tail -1 || true)
passed=${passed:-0}; failed=${failed:-0}
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "api-conformance: $passed passed, $failed failed (schemathesis test cases; exit $status)"
exit "$status"
