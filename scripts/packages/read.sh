#!/usr/bin/env bash
# Prints the packages of the lists named (scripts/packages/*.txt), one a line, without comments
# and blank lines: `scripts/packages/read.sh build image`. The one reader of the lists, for
# scripts/setup.sh, scripts/build-image.sh and the Containerfile.
set -euo pipefail
dir="$(dirname "$0")"
for list in "$@"; do
  [ -f "$dir/$list.txt" ] || { echo "read.sh: no list $dir/$list.txt" >&2; exit 1; }
  sed -e 's/#.*//' -e 's/[[:space:]]\+/\n/g' "$dir/$list.txt" | grep -v '^$' || true
done
