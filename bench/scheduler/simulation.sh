#!/usr/bin/env bash
# CPU time of the scheduler simulation (issue #6 acceptance 2: 10,000 jobs over a virtual day in < 2 s CPU), in an
# optimised build: compiles Sources/ReelCore with bench/scheduler/simulation/main.swift into one -O whole-module
# binary (what `swift build -c release` does for the module) and runs it. The test SchedulerSimulationTests runs the
# same simulation and asserts its limits and utilisation; timing it there would measure a debug build.
#
# Usage: bench/scheduler/simulation.sh [JOBS [REPEATS]] [--per-task]     (from the repository root; ~1 minute)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.build-release/scheduler-simulation
mkdir -p .build-release
swiftc -O -wmo -swift-version 6 -enable-upcoming-feature ExistentialAny \
    -enable-upcoming-feature MemberImportVisibility -module-name ReelSimulation \
    $(find Sources/ReelCore -name '*.swift' | sort) bench/scheduler/simulation/main.swift -o "$out"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec "$out" "$@"
