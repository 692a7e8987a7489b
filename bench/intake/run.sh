#!/usr/bin/env bash
# Intake benchmark (issue #4 acceptance 3). Starts reeld on a scratch spool, pauses it (POST /v1/pause: nothing is
# submitted), writes COUNT valid one-job manifests into spool/tmp, renames them all into spool/incoming at once, and
# reports manifests/s from the first rename to the last job commit, next to the machine's raw floor (rename of the
# same files + one SQLite transaction inserting the same rows into reeld's own schema).
#
# Usage: bench/intake/run.sh        (from anywhere; about a minute)
# Environment (optional): COUNT=10000; BIN=DIR with reeld (default .build-release/release, else .build/debug).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${BIN:-}"
if [ -z "$bin" ]; then
    bin=.build-release/release
    [ -x "$bin/reeld" ] || bin=.build/debug
fi
[ -x "$bin/reeld" ] || { echo "no reeld in $bin: swift build first" >&2; exit 1; }
echo "binary: $bin/reeld" >&2
exec python3 bench/intake/bench.py --bin "$bin" --count "${COUNT:-10000}"
