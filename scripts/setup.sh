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
  python3 python3-jinja2             # tools/ scripts (chat-template fixtures)
  clang-16 libclang-rt-16-dev        # libFuzzer targets (scripts/fuzz.sh, run by CI)
)

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
