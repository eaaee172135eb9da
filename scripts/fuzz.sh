#!/usr/bin/env bash
# Fuzzing (issues 17, 32; docs/fuzzing.md): installs Debian's clang 16 with its libFuzzer runtime,
# builds only the libFuzzer targets of tests/fuzz in the `fuzz` preset (build/fuzz: ASan + UBSan,
# CPU only; ccache reuses objects between runs) and runs each for SECONDS (default 30) on its
# committed seed corpus plus the inputs earlier runs kept. New inputs go to CORPUS/TARGET (kept
# between runs), crashes to build/fuzz/artifacts/. Prints one record line per target (target,
# seconds, executions, crashes, commit; the table of docs/fuzzing.md) and exits non-zero when a
# target crashes, leaks, times out (10 s per input) or runs out of memory (4 GiB).
#
#   scripts/fuzz.sh [SECONDS] [TARGET[=SECONDS]...]
#     scripts/fuzz.sh                      every target, 30 s each
#     scripts/fuzz.sh 1800                 every target, 30 minutes each (the recorded run)
#     scripts/fuzz.sh 600 fuzz_http fuzz_gbnf=120
#   FUZZ_JOBS=N      targets run N at a time (default 1; CI uses the number of cores)
#   FUZZ_NICE=1      nice -n 19 the fuzzers
#   FUZZ_RUNS=N      stop each after N executions instead of SECONDS
#   FUZZ_CORPUS=DIR  where the kept inputs live (default build/fuzz/corpus)
#   FUZZ_RECORD=F    also append the record lines to F (markdown table rows)
#   FUZZ_NO_SETUP=1  skip scripts/setup.sh (the caller ran it)
#   FUZZ_NO_BUILD=1  run the targets as built (no configure, no build)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-30}"
shift || true
ALL=(fuzz_http fuzz_request fuzz_tokenizer fuzz_chat_template fuzz_model_config fuzz_safetensors
  fuzz_gguf fuzz_gbnf fuzz_json_schema fuzz_regex fuzz_tool_calls fuzz_router)
SPECS=("$@")
[ ${#SPECS[@]} -eq 0 ] && SPECS=("${ALL[@]}")
TARGETS=()
declare -A SECS
for s in "${SPECS[@]}"; do
  t="${s%%=*}"
  TARGETS+=("$t")
  if [ "$s" != "$t" ]; then SECS[$t]="${s#*=}"; else SECS[$t]="$SECONDS_EACH"; fi
done
CORPUS="${FUZZ_CORPUS:-build/fuzz/corpus}"
JOBS="${FUZZ_JOBS:-1}"

if [ -z "${FUZZ_NO_SETUP:-}" ]; then
  scripts/setup.sh
fi

if [ -z "${FUZZ_NO_BUILD:-}" ]; then
  cmake --preset fuzz >/dev/null
  cmake --build build/fuzz -j "$(nproc)" --target "${TARGETS[@]}"
fi

mkdir -p build/fuzz/artifacts
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
prefix=()
[ -n "${FUZZ_NICE:-}" ] && prefix=(nice -n 19)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Built from a tree with changes to the code or the targets: the record says so.
git diff --quiet HEAD -- src include tests/fuzz 2>/dev/null || commit="$commit-dirty"

# One target; its exit status is libFuzzer's.
run_one() {
  local t="$1" secs="$2"
  local limit=(-max_total_time="$secs")
  [ -n "${FUZZ_RUNS:-}" ] && limit=(-runs="$FUZZ_RUNS")
  mkdir -p "$CORPUS/$t"
  "${prefix[@]}" "build/fuzz/tests/fuzz/$t" "${limit[@]}" -timeout=10 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-" \
    "$CORPUS/$t" "tests/fuzz/$t" >"build/fuzz/$t.log" 2>&1
}

# The record line of a finished target: | target | seconds | executions | crashes | commit |
record() {
  local t="$1" secs="$2" rc="$3" execs crashes=0
  execs=$(grep -oE "stat::number_of_executed_units: [0-9]+" "build/fuzz/$t.log" | tail -1 |
    grep -oE "[0-9]+$" || true)
  [ "$rc" -ne 0 ] && crashes=1
  echo "| $t | ${FUZZ_RUNS:+runs=$FUZZ_RUNS }$secs | ${execs:-?} | $crashes | $commit |"
}

status=0
declare -A PIDS
lines=()
finish() {  # waits for target $1 and reports it
  local t="$1" rc=0
  wait "${PIDS[$t]}" || rc=$?
  grep -E "ERROR|SUMMARY|Test unit written" "build/fuzz/$t.log" | head -20 || true
  if [ $rc -ne 0 ]; then
    echo "fuzz: $t FAILED (exit $rc; build/fuzz/$t.log)"
    status=1
  fi
  lines+=("$(record "$t" "${SECS[$t]}" "$rc")")
  echo "${lines[-1]}"
}
running=()
for t in "${TARGETS[@]}"; do
  echo "fuzz: $t (${FUZZ_RUNS:+$FUZZ_RUNS runs}${FUZZ_RUNS:-${SECS[$t]} s})"
  run_one "$t" "${SECS[$t]}" &
  PIDS[$t]=$!
  running+=("$t")
  if [ ${#running[@]} -ge "$JOBS" ]; then
    finish "${running[0]}"
    running=("${running[@]:1}")
  fi
done
for t in "${running[@]}"; do finish "$t"; done

echo "fuzz: | target | seconds | executions | crashes | commit |"
printf 'fuzz: %s\n' "${lines[@]}"
if [ -n "${FUZZ_RECORD:-}" ]; then printf '%s\n' "${lines[@]}" >>"$FUZZ_RECORD"; fi
exit $status
