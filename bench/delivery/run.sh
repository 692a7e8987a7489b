#!/usr/bin/env bash
# CPU per delivered job: reeld's own CPU and its children's (ffprobe) over a batch rendered by a reel-sandbox.
#
# Usage: bench/delivery/run.sh      (from anywhere; about a minute)
# Environment (optional): JOBS=20; RESOLUTION=1080p; DURATION=10; BIN=DIR with reeld and reel-sandbox
# (default .build-release/release, else .build/debug).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${BIN:-}"
if [ -z "$bin" ]; then
    bin=.build-release/release
    [ -x "$bin/reeld" ] || bin=.build/debug
fi
[ -x "$bin/reeld" ] || { echo "no reeld in $bin: swift build first" >&2; exit 1; }
echo "binary: $bin/reeld" >&2
exec python3 bench/delivery/bench.py --bin "$bin" --jobs "${JOBS:-20}" --resolution "${RESOLUTION:-1080p}" \
    --duration "${DURATION:-10}"
