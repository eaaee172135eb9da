#!/usr/bin/env bash
# The README's "run" command: installs what is needed, builds, and serves the default model on
# http://127.0.0.1:8000 (OpenAI-compatible). Extra arguments are passed to `inferd` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The same preset (build dir and flags) as scripts/test.sh, so that running one after the other
# builds nothing twice.
PRESET="${INFERD_PRESET:-ci}"
cmake --preset "$PRESET" >/dev/null
cmake --build --preset "$PRESET" -j "$(nproc)" --target inferd
BIN="build/$PRESET/src/cli/inferd"
if [ $# -gt 0 ]; then exec "$BIN" "$@"; fi

# The default model: the project's small English demo model (models/demo, trained by
# tools/train_demo_model.py; see models/demo/README.md). `inferd serve` with no model argument
# serves it as "demo" (alias "default").
echo "serving models/demo on http://${HOST:-127.0.0.1}:${PORT:-8000}/v1 as model 'demo' (alias 'default');" \
  "chat page at http://${HOST:-127.0.0.1}:${PORT:-8000}/"
exec "$BIN" serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
