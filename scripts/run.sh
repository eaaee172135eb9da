#!/usr/bin/env bash
# The README's "run" command: installs what is needed, builds, and serves the default model on
# http://127.0.0.1:8000 (OpenAI-compatible). Extra arguments are passed to `inferd` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target inferd
BIN=build/release/src/cli/inferd
if [ $# -gt 0 ]; then exec "$BIN" "$@"; fi

# The default model, until the project's own small trained model lands (issue 8): the real
# Qwen3-0.6B shape and the real Qwen3 tokenizer and chat template, with seeded random weights
# (`--load-format dummy`), so every route works but the answers are not language.
scripts/fetch-test-data.sh qwen3
MODEL=build/default-model
mkdir -p "$MODEL"
cp tests/data/tokenizers/qwen3/tokenizer.json tests/data/tokenizers/qwen3/tokenizer_config.json "$MODEL/"
cp models/configs/qwen3-0.6b/config.json "$MODEL/"
echo "serving $MODEL (random weights) on http://127.0.0.1:${PORT:-8000}/v1 as model 'default'"
exec "$BIN" serve "$MODEL" --load-format dummy --served-model-name default \
  --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}" --max-model-len 4096
