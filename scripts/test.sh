#!/usr/bin/env bash
# The README's test command: installs what is needed, builds (warnings are errors) and runs
# every CPU test with CTest. GPU tests skip themselves when no GPU is present; they run in
# scripts/gpu-check.sh on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# The same preset as scripts/run.sh (one build serves both).
PRESET="${INFERD_PRESET:-ci}"
scripts/setup.sh
scripts/fetch-test-data.sh
scripts/install-e2e-deps.sh
cmake --preset "$PRESET"
cmake --build --preset "$PRESET" -j "$(nproc)"
ctest --preset "$PRESET" -j "$(nproc)" --timeout 900
