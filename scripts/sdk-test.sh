#!/usr/bin/env bash
# Runs the official dashscope Python SDK against reel-sandbox.
# Usage: scripts/sdk-test.sh [PATH/TO/reel-sandbox]   (default .build/debug/reel-sandbox, built if missing)
# Makes a venv at .venv (git-ignored) with `dashscope` the first time. Exits non-zero on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-.build/debug/reel-sandbox}"
if [ ! -x "$bin" ]; then swift build --product reel-sandbox; fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
if ! .venv/bin/python -c 'import dashscope' 2>/dev/null; then .venv/bin/pip install -q dashscope; fi
exec .venv/bin/python Tests/sdk/test_dashscope_sdk.py --sandbox "$bin"
