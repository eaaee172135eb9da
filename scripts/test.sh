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
# The CPU container image (issue 36) for the e2e_image smoke test: a CPU-only inferd (preset
# image-cpu; ccache makes it mostly cache hits after the build above), debootstrap's base cached in
# build/image-cache. Needs root (debootstrap, chroot); without, e2e_image skips and says why.
if [ "$(id -u)" -eq 0 ] && [ "${INFERD_IMAGE:-1}" != 0 ]; then
  INFERD_SKIP_SETUP=1 scripts/build-image.sh cpu
else
  echo "test.sh: not building the container image (needs root; INFERD_IMAGE=0 turns it off)"
fi
ctest --preset "$PRESET" -j "$(nproc)" --timeout 900
# Fuzzing (issues 17, 32; docs/fuzzing.md): every libFuzzer target for INFERD_FUZZ_SECONDS seconds,
# as many at once as there are cores (CI sets 30). It builds only the fuzz targets in a second,
# sanitized tree (clang 16, installed by setup.sh); see docs/fuzzing.md for what it adds to a run.
if [ -n "${INFERD_FUZZ_SECONDS:-}" ]; then
  FUZZ_NO_SETUP=1 FUZZ_JOBS="${FUZZ_JOBS:-$(nproc)}" scripts/fuzz.sh "$INFERD_FUZZ_SECONDS"
fi
