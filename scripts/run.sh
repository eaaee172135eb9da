#!/usr/bin/env bash
# The README's "run" command: installs what is needed, builds, and runs inferd on the default
# model. Extra arguments are passed to inferd.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target inferd
BIN=build/release/src/cli/inferd
if [ $# -gt 0 ]; then exec "$BIN" "$@"; fi
# Until `inferd serve` and the bundled demo model land (issues 5 and 8), the main job is a
# one-shot generation on a Qwen2.5-0.5B-shaped model with seeded random weights.
ids=$(seq -s, 1 64)
exec "$BIN" run models/configs/qwen2.5-0.5b --load-format dummy --prompt-ids "$ids" \
  --max-tokens 32 --ignore-eos --max-model-len 2048
