#!/usr/bin/env bash
# Fuzzing (issue 17): installs Debian's clang 16 with its libFuzzer runtime, builds the libFuzzer
# targets of tests/fuzz in the `fuzz` preset (build/fuzz: ASan + UBSan, CPU only) and runs each,
# one after the other, for SECONDS (default 30) on its committed seed corpus. New inputs go to
# build/fuzz/corpus/TARGET (kept between runs), crashes to build/fuzz/artifacts/. Exits non-zero
# when a target crashes, leaks, times out (10 s per input) or runs out of memory (4 GiB).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 600 fuzz_http
#   FUZZ_NICE=1 nice the fuzzers; FUZZ_RUNS=N stops each after N executions instead of SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-30}"
shift || true
ALL=(fuzz_http fuzz_request fuzz_tokenizer fuzz_chat_template fuzz_model_config fuzz_safetensors fuzz_gguf)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")

scripts/setup.sh
need=()
for p in clang-16 libclang-rt-16-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "fuzz: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

cmake --preset fuzz
cmake --build build/fuzz -j "$(nproc)" --target "${TARGETS[@]}"

mkdir -p build/fuzz/artifacts
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
limit=(-max_total_time="$SECONDS_EACH")
[ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
prefix=()
[ -n "${FUZZ_NICE:-}" ] && prefix=(nice -n 10)
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "build/fuzz/corpus/$t"
  echo "fuzz: $t (${FUZZ_RUNS:-$SECONDS_EACH s})"
  rc=0
  "${prefix[@]}" "build/fuzz/tests/fuzz/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
    "build/fuzz/corpus/$t" "tests/fuzz/$t" >"build/fuzz/$t.log" 2>&1 || rc=$?
  grep -E "^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|SUMMARY|number_of_executed_units|Test unit written" \
    "build/fuzz/$t.log" || true
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc; build/fuzz/$t.log)"
    status=1
  fi
done
exit $status
