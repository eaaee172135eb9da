#!/usr/bin/env bash
# One call on the GPU machine: build with CUDA, run the GPU tests (every CUDA op against the CPU
# reference, the goldens, a dummy Qwen2.5-0.5B through the CUDA backend), the benchmarks of
# DESIGN.md (Performance) on the Llama-3.1-8B shape, a per-kernel profile of the decode step, and
# write the performance record (issue 11). Prints a short table last.
#
#   bash scripts/gpu-check.sh           full run (about 6-9 minutes)
#   bash scripts/gpu-check.sh --quick   build, CUDA tests, latency 512/256, 200-request throughput
#
# Device tool: carry [".carry"] with .carry/llama3_1-tokenizer.tgz (below; carrying
# "tests/data/tokenizers/llama3_1" itself passes 64 MiB now), timeout_s 600. The tokenizer is
# for `inferd serve` (the dummy model has none; scripts/fetch-test-data.sh fetches it here); without
# it the serving benchmark is skipped. What comes back in $OUT (at most 8 files):
#   summary.txt                  the table printed last
#   h100.json or h200.json       docs/perf/<gpu>.json (tools/perf_record.py record), named after
#                                the GPU the run found (h100 or h200)
#   performance-section.md       a section for docs/performance.md
#   profile_b1.md, profile_b256.md  per-kernel tables of one decode step (scripts/ncu-profile.sh)
#   logs.tgz                     every log and JSON of the run (refreshed after each stage)
#   goldens-transformers.tgz     goldens made afresh with transformers (full mode)
# The script never edits the repository's docs: commit <gpu>.json and the section by hand.
#
# Everything runs against one deadline, GPU_CHECK_BUDGET_S (default 540 s from the start): each
# step's `timeout` is cut to what is left, and a step that no longer fits is skipped and says so,
# so the table still prints inside the device tool's 10 minutes. Steps run in order of importance.
# Switches (1 = on): GPU_CHECK_BENCH (GPU benchmarks), GPU_CHECK_SERVE, GPU_CHECK_PROFILE (full
# mode: 1, quick: 0), GPU_CHECK_GOLDENS (transformers goldens), GPU_CHECK_HF (HF baseline),
# GPU_CHECK_CPU (CPU goldens and CPU decode bench). GPU_CHECK_SKIP_BUILD=1 uses an existing build
# (INFERD_BIN, default build/gpu/src/cli/inferd) and skips the tests. GPU_CHECK_DEVICE / _MODEL
# change the device and model (a dry run on a CPU with a tiny model, for instance);
# GPU_CHECK_THROUGHPUT_PROMPTS / GPU_CHECK_SERVE_PROMPTS the number of requests.
#
# The GPU machine lacks the PCRE2 and utf8proc headers that CMake requires. When .carry/debs/ holds
# Debian packages (fetched on the dev machine, not committed:
#   mkdir -p .carry/debs && cd .carry/debs &&
#   apt-get download libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 \
#     libcurl4-openssl-dev libssl-dev libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16 libwebp-dev \
#     libyaml-cpp-dev libyaml-cpp0.7 )
# they are unpacked into a private prefix (scripts/carried-debs.sh, never into /) and CMake is pointed at it. libcurl and
# libcrypto themselves are the host's (Ubuntu's libcurl4t64 / libssl3t64): the carried -dev
# packages' lib*.so links are pointed at them.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
MODE=full
[ "${1:-}" = --quick ] && MODE=quick
T_START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
OUT="${OUT:-/tmp/inferd-gpu-check-out}"
W="${GPU_CHECK_WORK:-/tmp/inferd-gpu-check}"  # logs; packed into $OUT/logs.tgz
rm -rf "$W"
mkdir -p "$OUT" "$W"
INFERD=${INFERD_BIN:-./build/gpu/src/cli/inferd}
MODEL=${GPU_CHECK_MODEL:-models/configs/llama-3.1-8b}
DEV=${GPU_CHECK_DEVICE:-cuda}
export INFERD_BIN=$INFERD GPU_CHECK_MODEL=$MODEL GPU_CHECK_DEVICE=$DEV
if [ "$MODE" = quick ]; then def_profile=0; else def_profile=1; fi
RUN_BENCH=${GPU_CHECK_BENCH:-1}
RUN_SERVE=${GPU_CHECK_SERVE:-1}
RUN_PROFILE=${GPU_CHECK_PROFILE:-$def_profile}
RUN_GOLDENS=${GPU_CHECK_GOLDENS:-1}
RUN_HF=${GPU_CHECK_HF:-1}
RUN_CPU=${GPU_CHECK_CPU:-1}
if [ "$MODE" = quick ]; then RUN_SERVE=0 RUN_GOLDENS=0 RUN_HF=0 RUN_CPU=0; fi

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1 >"$W/gpu.txt"
else
  echo "no GPU (nvidia-smi not found)" >"$W/gpu.txt"
fi
cat "$W/gpu.txt"
gpu=$(head -1 "$W/gpu.txt")
# The device tool may copy the working tree without .git: pass GPU_CHECK_COMMIT=<hash> then.
if [ -n "${GPU_CHECK_COMMIT:-}" ]; then
  commit=$GPU_CHECK_COMMIT
elif commit=$(git rev-parse --short HEAD 2>/dev/null); then
  git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && commit="$commit+dirty"
else
  commit=unknown
fi
jobs=$(nproc 2>/dev/null || echo 8)

# Seconds left before the deadline, keeping 20 s for the record and the table.
left() { echo $((T_START + BUDGET - 20 - $(date +%s))); }
# cap N: N, or what is left when less.
cap() { local l; l=$(left); if [ "$l" -lt "$1" ]; then echo "$l"; else echo "$1"; fi; }
# capt N: the same for a bare `timeout` (never below 5 s: `timeout 0` would mean no limit).
capt() { local t; t=$(cap "$1"); [ "$t" -lt 5 ] && t=5; echo "$t"; }
pack() { tar czf "$OUT/.logs.tgz" -C "$W" . 2>/dev/null && mv -f "$OUT/.logs.tgz" "$OUT/logs.tgz"; }
declare -A STEP  # step name -> "rc=N, Ts" or "skipped (...)"
STEPS=()
note() { STEPS+=("$1"); STEP[$1]=$2; echo "### $1: $2" >>"$W/bench.log"; }
# run_step NAME MAX_S MIN_S CMD...: CMD under `timeout` (MAX_S, cut to the deadline; skipped when
# less than MIN_S is left), output in $W/NAME.log; its result blocks are copied into bench.log.
run_step() {
  local name=$1 max=$2 min=$3 t s rc
  shift 3
  t=$(cap "$max")
  if [ "$t" -lt "$min" ]; then
    note "$name" "skipped (${t}s left before the deadline, needs ${min}s)"
    return 0
  fi
  echo "### $name (timeout ${t}s): $*" >>"$W/bench.log"
  s=$(date +%s)
  timeout -k 10 "$t" "$@" >"$W/$name.log" 2>&1
  rc=$?
  STEPS+=("$name")
  STEP[$name]="rc=$rc, $(($(date +%s) - s))s$([ "$rc" = 124 ] || [ "$rc" = 137 ] && echo ", TIMED OUT")"
  { grep -E "=====|:  |tok/s|TTFT|TPOT|rror" "$W/$name.log" | grep -v "^\["
    grep -iE "idle|captur" "$W/$name.log"; } | cut -c1-160 | tail -40 >>"$W/bench.log"
  echo "rc=$rc" >>"$W/bench.log"
  pack
  return 0
}

# shellcheck source=scripts/carried-debs.sh
. scripts/carried-debs.sh
cmake_extra=("${CARRIED_CMAKE_ARGS[@]}")

# ---- build: only what this script runs (warnings are not errors here: another compiler may differ)
build_s=-
cuda_rc=- cuda_s=- cuda_line="not run" cuda_skipped=0
if [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  targets=(cuda_test cuda_fault_test cuda_lora_test cuda_moe_test cuda_gptoss_test cuda_int4_test inferd)
  [ "$MODE" = full ] && targets+=(model_test cpu_decode_bench)
  t0=$(date +%s)
  cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFERD_CUDA=ON \
    -DINFERD_BUILD_BENCH=ON "${cmake_extra[@]}" >"$W/configure.log" 2>&1 ||
    { tail -30 "$W/configure.log"; pack; exit 1; }
  timeout "$(capt 300)" cmake --build build/gpu --target "${targets[@]}" -j "$jobs" >"$W/build.log" 2>&1 ||
    { grep -E "error|Error" "$W/build.log" | head -30; pack; exit 1; }
  build_s=$(($(date +%s) - t0))
  grep -B1 -E "registers|spill" "$W/build.log" | grep -E "Function properties|registers|spill" \
    >"$W/ptxas.txt" 2>/dev/null
  pack

  # CUDA tests: kernels against the CPU backend / float64, goldens, dummy model vs CPU. One
  # process per test (ctest), so that a sticky CUDA error in one test cannot fail the others.
  t0=$(date +%s)
  timeout "$(capt 300)" ctest --test-dir build/gpu -R "Cuda" -V --timeout 240 >"$W/cuda_test.log" 2>&1
  cuda_rc=$?
  cuda_s=$(($(date +%s) - t0))
  # ctest says "100% tests passed, 0 tests failed out of 28" or "100% tests passed out of 28".
  cuda_line=$(grep -E "[0-9]+% tests passed(, [0-9]+ tests? failed)? out of [0-9]+" \
    "$W/cuda_test.log" | tail -1)
  cuda_skipped=$(grep -cE "\*\*\*Skipped|Not Run" "$W/cuda_test.log")
  pack
fi

# ---- the CPU goldens on the same build, as a sanity check of the machine (full mode)
cpu_gold_rc=- cpu_gold_line="not run"
if [ "$MODE" = full ] && [ "$RUN_CPU" = 1 ] && [ -x build/gpu/tests/model/model_test ]; then
  timeout "$(capt 120)" ./build/gpu/tests/model/model_test --gtest_filter='AllArchitectures/Goldens.*' \
    --gtest_color=no >"$W/cpu_goldens.log" 2>&1
  cpu_gold_rc=$?
  cpu_gold_line=$(grep -E "^\[  (PASSED|FAILED)  \] [0-9]+ test" "$W/cpu_goldens.log" | tr '\n' ' ')
fi

# ---- GPU benchmarks (Llama-3.1-8B shape, bf16, dummy weights), in order of importance.
B=("$INFERD" bench)
M=("$MODEL" --load-format dummy --device "$DEV" --max-model-len 4096)
if [ "$RUN_BENCH" = 1 ]; then
  run_step latency_512 150 40 "${B[@]}" latency "${M[@]}" --input-len 512 --output-len 256 \
    --json "$W/latency_512.json"
  if [ "$MODE" = full ]; then
    run_step latency_2048 120 30 "${B[@]}" latency "${M[@]}" --input-len 2048 --output-len 1 \
      --json "$W/latency_2048.json"
    n_thr=${GPU_CHECK_THROUGHPUT_PROMPTS:-1000}
  else
    n_thr=${GPU_CHECK_THROUGHPUT_PROMPTS:-200}
  fi
  run_step throughput 240 60 "${B[@]}" throughput "${M[@]}" --dataset sharegpt-like \
    --num-prompts "$n_thr" --json "$W/throughput.json"
fi

# ---- serving: `inferd serve` in the background, `inferd bench serve` against it. The dummy model
# has no tokenizer, and `inferd serve` needs one (tokenizer.json): the Llama 3.1 tokenizer (its
# 128,256 ids are the model's vocabulary). The client builds its token-exact prompts with the same
# tokenizer locally (--tokenizer) instead of asking the server's /tokenize for every prompt.
serve_tok=""
# The working tree with .carry and the tokenizer directory can pass the device tool's 64 MiB: a
# gzipped copy in .carry (tar czf .carry/llama3_1-tokenizer.tgz -C tests/data/tokenizers llama3_1,
# ~2 MB) is unpacked here instead.
if [ -f .carry/llama3_1-tokenizer.tgz ] && [ ! -f .carry/tokenizers/llama3_1/tokenizer.json ]; then
  mkdir -p .carry/tokenizers && tar xzf .carry/llama3_1-tokenizer.tgz -C .carry/tokenizers
fi
for d in ${INFERD_SERVE_TOKENIZER:-} tests/data/tokenizers/llama3_1 .carry/tokenizers/llama3_1; do
  [ -f "$d/tokenizer.json" ] && { serve_tok=$d; break; }
done
if [ "$RUN_BENCH" = 1 ] && [ "$RUN_SERVE" = 1 ]; then
  if [ -z "$serve_tok" ]; then
    note serve "skipped (no tokenizer: carry tests/data/tokenizers/llama3_1)"
  elif [ "$(left)" -lt 120 ]; then
    note serve "skipped ($(left)s left before the deadline, needs 120s)"
  else
    port=${GPU_CHECK_PORT:-8011}
    t0=$(date +%s)
    "$INFERD" serve "${M[@]}" --host 127.0.0.1 --port "$port" --tokenizer "$serve_tok" \
      --drain-timeout 5 >"$W/serve_server.log" 2>&1 &
    spid=$!
    ready=0
    while [ $(($(date +%s) - t0)) -lt 120 ] && kill -0 "$spid" 2>/dev/null; do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ready")
      [ "$code" = 200 ] && { ready=1; break; }
      sleep 1
    done
    echo "server ready=$ready after $(($(date +%s) - t0)) s" >>"$W/serve_server.log"
    if [ "$ready" = 1 ]; then
      run_step serve 240 60 "${B[@]}" serve --base-url "http://127.0.0.1:$port" \
        --dataset sharegpt-like --num-prompts "${GPU_CHECK_SERVE_PROMPTS:-1000}" --max-concurrency 256 \
        --tokenizer "$serve_tok" --json "$W/serve.json" --no-progress
    else
      note serve "skipped (server not ready in $(($(date +%s) - t0)) s; serve_server.log)"
    fi
    kill -TERM "$spid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$spid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    pack
  fi
fi

# ---- per-kernel profile of one decode step at batch 1 and 256 (scripts/ncu-profile.sh says how)
if [ "$RUN_PROFILE" = 1 ]; then
  for c in b1 b256; do
    t=$(cap 150)
    if [ "$t" -lt 60 ]; then
      note "profile_$c" "skipped (${t}s left before the deadline, needs 60s)"
      continue
    fi
    s=$(date +%s)
    bash scripts/ncu-profile.sh "$c" "$W" "$t" >"$W/profile_$c.log" 2>&1
    rc=$?
    STEPS+=("profile_$c")
    STEP[profile_$c]="rc=$rc, $(($(date +%s) - s))s: $(grep -E "^ncu-" "$W/profile_$c.log" | tail -1 | cut -c1-90)"
    pack
  done
fi

# ---- goldens made afresh with transformers (tools/make_goldens.py checks its own implementation
# against transformers within 1e-4 and writes the models and expected outputs); the CPU and CUDA
# golden tests then run against them. The new goldens come back as goldens-transformers.tgz:
# commit them over tests/data/goldens/ when both pass.
tf_line="not run"
if [ "$RUN_GOLDENS" = 1 ] && [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  if [ "$(left)" -lt 90 ]; then
    tf_line="skipped ($(left)s left before the deadline)"
  elif timeout "$(capt 180)" python3 tools/make_goldens.py --out /tmp/goldens-tf --require-transformers \
    >>"$W/tf_goldens.log" 2>&1; then
    tar czf "$OUT/goldens-transformers.tgz" -C /tmp goldens-tf
    INFERD_GOLDENS_DIR=/tmp/goldens-tf timeout "$(capt 120)" ./build/gpu/tests/model/model_test \
      --gtest_filter='AllArchitectures/Goldens.*' --gtest_color=no >>"$W/tf_goldens.log" 2>&1
    tf_cpu=$?
    INFERD_GOLDENS_DIR=/tmp/goldens-tf timeout "$(capt 240)" ./build/gpu/tests/backend/cuda_test \
      --gtest_filter='*CudaGoldens*' --gtest_color=no >>"$W/tf_goldens.log" 2>&1
    tf_cuda=$?
    tf_line="made; CPU goldens rc=$tf_cpu, CUDA goldens rc=$tf_cuda"
  else
    tf_line="make_goldens.py failed or timed out (see tf_goldens.log)"
  fi
  pack
fi
# ---- vision (issue 34): transformers' image processors, SiglipVisionModel + Gemma 3's projector
# and Qwen2.5-VL's vision tower against the committed fixtures' own references (each tool asserts
# the agreement; the files it writes come back as vlm-transformers.tgz).
vlm_line="not run"
if [ "$RUN_GOLDENS" = 1 ] && [ "$(left)" -ge 60 ]; then
  mkdir -p /tmp/vlm-tf/gemma3_tiny /tmp/vlm-tf/qwen25vl_tiny
  if timeout "$(capt 120)" sh -c 'python3 tools/make_vlm_fixtures.py --reference transformers \
      --out /tmp/vlm-tf && python3 tools/make_vlm_goldens.py --out /tmp/vlm-tf/gemma3_tiny &&
      python3 tools/make_qwen_vl_goldens.py --out /tmp/vlm-tf/qwen25vl_tiny' \
    >>"$W/vlm_transformers.log" 2>&1; then
    tar czf "$OUT/vlm-transformers.tgz" -C /tmp vlm-tf
    vlm_line="transformers agrees ($(grep -h -o 'transformers [0-9.]* agrees' /tmp/vlm-tf/*/golden.json | head -1))"
  else
    vlm_line="failed (see vlm_transformers.log)"
  fi
  pack
fi

# ---- HF transformers baseline (batch 128, 128 in / 128 out) and the CPU decode of the 0.5B shape
if [ "$RUN_HF" = 1 ]; then
  run_step hf_baseline 240 90 python3 tools/hf_baseline.py --config "$MODEL/config.json" \
    --batch 128 --input-len 128 --output-len 128
fi
cpu_line="not run"
if [ "$RUN_CPU" = 1 ] && [ "$MODE" = full ] && [ -x build/gpu/bench/cpu_decode_bench ]; then
  run_step cpu_decode 90 30 ./build/gpu/bench/cpu_decode_bench models/configs/qwen2.5-0.5b \
    --prompt 128 --tokens 48
  cpu_line=$(grep -E "decode / floor" "$W/cpu_decode.log" | tail -1)
fi

# ---- the record: docs/perf/<gpu>.json and the docs/performance.md section, written into $OUT only
case "$gpu" in
  *H100*) rec=h100.json ;;
  *) rec=h200.json ;;
esac
logs=()
for f in latency_512 latency_2048 throughput serve serve_server; do
  [ -f "$W/$f.log" ] && logs+=(--log "$W/$f.log")
done
# The committed record first: sections of other runs (its "fp8") are carried over.
cp "docs/perf/$rec" "$OUT/$rec" 2>/dev/null || true
python3 tools/perf_record.py record --mode "$MODE" --commit "$commit" --gpu "$gpu" \
  --latency "$W/latency_512.json" --prefill "$W/latency_2048.json" \
  --throughput "$W/throughput.json" --serve "$W/serve.json" --hf-log "$W/hf_baseline.log" \
  --profile-b1 "$W/profile_b1.json" --profile-b256 "$W/profile_b256.json" \
  --profile-b1-md "$W/profile_b1.md" --profile-b256-md "$W/profile_b256.md" "${logs[@]}" \
  --out-json "$OUT/$rec" --out-md "$OUT/performance-section.md" >"$W/record.txt" 2>&1
for c in b1 b256; do [ -f "$W/profile_$c.md" ] && cp "$W/profile_$c.md" "$OUT/"; done

# ---- the table (last: the device tool returns the tail of the output)
{
  if [ "$cuda_rc" != 0 ] && [ "$cuda_rc" != - ]; then
    echo "--- CUDA test failures (first lines; full log in cuda_test.log) ---"
    grep -E -A3 "Failure|rror|what\(\)|Expected|Which is" "$W/cuda_test.log" | cut -c1-200 | head -60
  fi
  echo
  echo "== inferd gpu-check $MODE ($commit, $(date -u +%F), $(($(date +%s) - T_START)) s) =="
  printf "%-30s %s\n" "GPU" "$gpu"
  printf "%-30s %s\n" "build (s)" "$build_s"
  printf "%-30s %s\n" "CUDA tests (rc=$cuda_rc, ${cuda_s}s)" "${cuda_line:-no summary (see log)}, skipped $cuda_skipped"
  [ -f "$W/cuda_test.log" ] && sed -n '/The following tests FAILED/,$p' "$W/cuda_test.log" |
    grep -E "^\s+[0-9]+ - " | head -20
  [ -f "$W/cuda_test.log" ] && grep -oE "\[cuda-golden\] .*" "$W/cuda_test.log" | sed 's/^\[cuda-golden\] /  /'
  printf "%-30s %s\n" "CPU goldens (rc=$cpu_gold_rc)" "$cpu_gold_line"
  printf "%-30s %s\n" "transformers goldens" "$tf_line"
  printf "%-30s %s\n" "vision fixtures (issue 34)" "$vlm_line"
  printf "%-30s %s\n" "CPU 0.5B decode" "$cpu_line"
  echo "steps (logs.tgz has each NAME.log):"
  for s in "${STEPS[@]}"; do printf "  %-16s %s\n" "$s" "${STEP[$s]}"; done
  echo "figures ($OUT/$rec; section: performance-section.md):"
  sed 's/^/  /' "$W/record.txt"
} | tee "$OUT/summary.txt"
pack
[ "$cuda_rc" = 0 ] || [ "$cuda_rc" = - ]
cuda_ok=$?
[ "$cpu_gold_rc" = 0 ] || [ "$cpu_gold_rc" = - ]
exit $((cuda_ok | $?))
