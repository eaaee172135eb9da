#!/usr/bin/env bash
# Per-kernel profile of one decode step on the GPU (issue 11, "Record"), with Nsight Compute:
#   scripts/ncu-profile.sh b1|b256 WORKDIR [TIMEOUT_S]
# writes WORKDIR/ncu_<case>.log (ncu's CSV and messages), ncu_<case>.app.log (the program's own
# output), profile_<case>.md (the table) and profile_<case>.json (its figures, for
# tools/perf_record.py). scripts/gpu-check.sh calls it twice; it can also run alone on the GPU
# machine after a build (INFERD_BIN, default build/gpu/src/cli/inferd). Exit status 0 when the
# table was made.
#
# What is profiled (Llama-3.1-8B shape, bf16, dummy weights):
#   b1    inferd bench latency: 512 prompt tokens, 6 generated, one iteration, no warm-up, and
#         --max-num-seqs 1 (so the engine captures and tunes for batch 1 only): start-up, one
#         prefill step, 5 decode steps (CUDA graph replays; ncu's default --graph-profiling node
#         profiles every kernel node of a replay as a kernel of its own).
#   b256  inferd bench throughput: 256 random prompts of 128 tokens, 10 generated each,
#         --max-num-batched-tokens 32768 (every prompt is prefilled in ONE step, so that all 256
#         sequences then decode together, give or take the first step, which may start
#         before every request is queued), --max-num-seqs 256,
#         and --enforce-eager when this build has it: without graphs the start-up captures no
#         graph per batch size, whose warm-up launches ncu would otherwise profile one by one.
#         Eager or replayed, a decode step runs the same kernels.
#
# How the decode steps are found. ncu can only select launches by position (--launch-skip /
# --launch-count, counted from the start of the process), by name or by NVTX range, and inferd
# has no NVTX ranges; how many launches the start-up makes (weight fill, GEMM tuning, graph
# capture) changes with every engine change, so a fixed skip would silently profile the wrong
# thing. Instead the whole run is profiled from its first launch (NCU_<CASE>_SKIP, default 0) up
# to a cap (NCU_<CASE>_COUNT launches, default 8000; after the cap the program runs on at full
# speed), and `tools/perf_record.py ncu-table` finds the decode steps afterwards: the longest
# stretch of kernels that repeats with a fixed period (name, grid and block compared), at least
# two periods long. Prefill steps (other grids, other GEMM kernels) and the start-up do not repeat
# that way; the per-step table is the mean over every decode step found. The runs are kept short
# (6 and 10 generated tokens) because ncu serialises and times each profiled kernel, a few ms
# apiece. If the table says no step was found, move the window (e.g. NCU_B256_SKIP=20000) or
# raise the count; ncu_<case>.log lists what was profiled.
# ncu options: --clock-control none (leave the clocks alone: the GPU machine's advice),
# --cache-control none (no L2 flush before each kernel, as in a real step), one metric
# (gpu__time_duration.sum, one pass, so no replay of the kernel's memory).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
case_name=${1:?usage: scripts/ncu-profile.sh b1|b256 WORKDIR [TIMEOUT_S]}
W=${2:?usage: scripts/ncu-profile.sh b1|b256 WORKDIR [TIMEOUT_S]}
limit=${3:-120}
mkdir -p "$W"
INFERD=${INFERD_BIN:-./build/gpu/src/cli/inferd}
MODEL=${GPU_CHECK_MODEL:-models/configs/llama-3.1-8b}
DEV=${GPU_CHECK_DEVICE:-cuda}
log="$W/ncu_$case_name.log"
app="$W/ncu_$case_name.app.log"
md="$W/profile_$case_name.md"
js="$W/profile_$case_name.json"

NCU=${NCU:-$(command -v ncu || ls -d /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | tail -1)}
fail_table() {
  printf '#### Per-kernel profile: %s\n\nNot available: %s\n' "$1" "$2" >"$md"
  printf '{"label": "%s", "found": false, "error": "%s"}\n' "$1" "$2" >"$js"
  echo "ncu-profile $case_name: $2"
  exit 1
}

common=(--load-format dummy --device "$DEV" --max-model-len 4096)
case "$case_name" in
  b1)
    label="decode, batch 1 (latency 512 in / 6 out)"
    batch=1
    skip=${NCU_B1_SKIP:-0}
    count=${NCU_B1_COUNT:-8000}
    # shellcheck disable=SC2206
    cmd=("$INFERD" bench latency "$MODEL" "${common[@]}" --input-len 512 --output-len 6
      --num-iters 1 --num-warmups 0 --max-num-seqs 1 ${NCU_B1_ARGS:-})
    ;;
  b256)
    label="decode, batch 256 (throughput, 256 × 128 in / 10 out)"
    batch=256
    skip=${NCU_B256_SKIP:-0}
    count=${NCU_B256_COUNT:-8000}
    eager=()
    if [ "${NCU_EAGER:-1}" = 1 ] && "$INFERD" bench throughput --help 2>&1 | grep -q -- --enforce-eager; then
      eager=(--enforce-eager)
    fi
    # shellcheck disable=SC2206
    cmd=("$INFERD" bench throughput "$MODEL" "${common[@]}" --dataset random --input-len 128
      --output-len 10 --num-prompts 256 --max-num-seqs 256 --max-num-batched-tokens 32768
      "${eager[@]}" ${NCU_B256_ARGS:-})
    ;;
  *) echo "unknown case '$case_name' (b1 or b256)" >&2; exit 2 ;;
esac

{ [ -n "$NCU" ] && [ -x "$NCU" ]; } || fail_table "$label" "ncu not found"
[ -x "$INFERD" ] || fail_table "$label" "no inferd binary at $INFERD"

help=$("$NCU" --help 2>&1)
opts=(--clock-control none --metrics gpu__time_duration.sum --csv)
grep -q -- "--cache-control" <<<"$help" && opts+=(--cache-control none)
grep -q -- "--print-units" <<<"$help" && opts+=(--print-units base)
grep -q -- "--graph-profiling" <<<"$help" && opts+=(--graph-profiling node)
[ "$skip" -gt 0 ] && opts+=(--launch-skip "$skip")
[ "$count" -gt 0 ] && opts+=(--launch-count "$count")

echo "$NCU ${opts[*]} ${cmd[*]}" >"$app"
t0=$(date +%s)
# SIGINT first: ncu then ends the program and still reports what it has profiled.
timeout -s INT -k 20 "$limit" "$NCU" "${opts[@]}" --log-file "$log" "${cmd[@]}" >>"$app" 2>&1
rc=$?
echo "ncu rc=$rc after $(($(date +%s) - t0)) s (limit $limit s)" >>"$app"
[ -s "$log" ] || fail_table "$label" "ncu wrote nothing (rc=$rc): $(tail -3 "$app" | tr '\n' ' ' | tr -d '"\\' | cut -c1-300)"

shown="ncu ${opts[*]} $(printf '%s ' "${cmd[@]}" | sed "s|$INFERD|inferd|")"
python3 tools/perf_record.py ncu-table --csv "$log" --batch "$batch" --label "$label" --skip "$skip" \
  --cmd "${shown% }" --out-md "$md" --out-json "$js"
python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1])).get("found") else 1)' "$js"
