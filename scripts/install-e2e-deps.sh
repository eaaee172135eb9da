#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e/) need: the official `openai` npm client, into
# tests/node_modules (git-ignored), and from Debian tmux (the `inferd chat` terminal test) and
# chromium (the chat page test, headless). Cached: does nothing when all of it is there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "install-e2e-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

OPENAI_VERSION=6.30.1  # the newest major that runs on Node 20 (7.x needs Node 22)
if [ -f tests/node_modules/openai/package.json ] &&
  grep -q "\"version\": \"$OPENAI_VERSION\"" tests/node_modules/openai/package.json; then
  exit 0
fi
npm install --prefix tests --no-save --no-package-lock --no-audit --no-fund --ignore-scripts \
  --loglevel=error "openai@$OPENAI_VERSION"
echo "install-e2e-deps: openai $OPENAI_VERSION"
