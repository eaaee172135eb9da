#!/usr/bin/env bash
# Installs every Debian package that building, running and testing inferd needs.
# Idempotent: packages already installed are skipped. Run as root (or with sudo available).
set -euo pipefail

# The lists live in scripts/packages/ (build.txt: build and test; image.txt: the container image's
# build and smoke test; fuzz.txt: the libFuzzer targets CI runs), shared with the Containerfile
# and scripts/build-image.sh.
mapfile -t PACKAGES < <("$(dirname "$0")/packages/read.sh" build image fuzz)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js + npm (npm pack of tokenizer fixtures, the openai client in e2e tests, the reference
# tokenizers library): any installation will do (NodeSource's nodejs bundles npm and conflicts
# with Debian's npm package), so only install Debian's when the commands are absent.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
