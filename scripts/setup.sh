#!/usr/bin/env bash
# Installs every Debian package that building, running and testing inferd needs.
# Idempotent: packages already installed are skipped. Run as root (or with sudo available).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git clang-format
  libboost-dev libboost-system-dev   # Beast/Asio (HTTP server, bench client)
  nlohmann-json3-dev                 # JSON
  libpcre2-dev                       # tokenizer regexes (\p{L}, look-ahead), JIT
  libutf8proc-dev                    # Unicode normalization (NFC/NFKC)
  libcli11-dev                       # command line
  libspdlog-dev libfmt-dev           # logging, formatting
  libgtest-dev libgmock-dev          # tests
  libbenchmark-dev                   # micro-benchmarks
  nodejs npm                         # npm pack of tokenizer fixtures, openai client in e2e tests
  python3 python3-jinja2             # tools/ scripts (chat-template fixtures)
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

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
