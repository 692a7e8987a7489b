#!/usr/bin/env bash
# Scheduler benchmark (issue #6 acceptance 3). Renders one batch of JOBS identical jobs (720p, 2 s) through reeld and
# through the official-SDK baseline ../shared/peers/sdk_batch.py, each against its own fresh reel-sandbox with the
# same --seed (so both see the same run-time draws), both at once, and prints a Markdown table: makespan ÷ (Σ run
# time ÷ 5), polls per job and detection latency, measured from each sandbox's request journal.
#
# Usage: bench/scheduler/run.sh            (from the repository root; takes ~7 minutes at the defaults)
# Environment (all optional):
#   SCALE=2          sandbox --time-scale (see docs/benchmarks.md for why 2)
#   RUN_TIME=20..60  sandbox --run-time, sandbox seconds
#   JOBS=100  SEED=6
#   POLLING=bench/scheduler/polling.toml   reeld [polling] keys (also polling-pressure.toml, polling-per-task.toml)
#   BIN=DIR          where reeld and reel-sandbox are (default .build-release/release, else .build/debug)
#   SDK_BATCH=PATH   default ../shared/peers/sdk_batch.py (relative to the repository)
#   JSON=FILE        also write the raw results as JSON
#   RUN_TIME_MODEL=1 sandbox --run-time-model with a mixed manifest (models, resolutions, 2-10 s): run time depends
#                    on the job; adds the greedy FIFO bound in manifest order
# Needs .venv with the dashscope SDK; it is created (`pip install dashscope`) if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${BIN:-}"
if [ -z "$bin" ]; then
    bin=.build-release/release
    [ -x "$bin/reeld" ] || bin=.build/debug
fi
[ -x "$bin/reeld" ] && [ -x "$bin/reel-sandbox" ] || { echo "no reeld/reel-sandbox in $bin: swift build first" >&2; exit 1; }
sdk="${SDK_BATCH:-../shared/peers/sdk_batch.py}"
[ -f "$sdk" ] || { echo "$sdk not found (set SDK_BATCH)" >&2; exit 1; }
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import dashscope' 2>/dev/null; then
    python3 -m venv .venv && .venv/bin/pip install -q dashscope
fi
echo "binaries: $bin" >&2
exec python3 bench/scheduler/bench.py --bin "$bin" --sdk "$sdk" --python .venv/bin/python \
    --polling "${POLLING:-bench/scheduler/polling.toml}" --jobs "${JOBS:-100}" --scale "${SCALE:-2}" \
    --run-time "${RUN_TIME:-20..60}" --seed "${SEED:-6}" ${JSON:+--json "$JSON"} ${RUN_TIME_MODEL:+--run-time-model}
