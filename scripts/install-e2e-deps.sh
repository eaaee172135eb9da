#!/usr/bin/env bash
# Installs what the end-to-end server tests (tests/e2e/) need: the official `openai` npm client,
# into tests/node_modules (git-ignored). Cached: does nothing when the pinned version is there.
set -euo pipefail
cd "$(dirname "$0")/.."
OPENAI_VERSION=6.30.1  # the newest major that runs on Node 20 (7.x needs Node 22)
if [ -f tests/node_modules/openai/package.json ] &&
  grep -q "\"version\": \"$OPENAI_VERSION\"" tests/node_modules/openai/package.json; then
  exit 0
fi
npm install --prefix tests --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
  --loglevel=error "openai@$OPENAI_VERSION"
echo "install-e2e-deps: openai $OPENAI_VERSION"
