#!/usr/bin/env bash
# One call on the GPU machine: build with CUDA, run the GPU tests (every CUDA op against the CPU
# reference, the goldens and a dummy Qwen2.5-0.5B through the CUDA backend) and the benchmarks,
# print a short table last. Usage (device tool, with carry [".carry"]): bash scripts/gpu-check.sh
# Full logs go under $OUT.
#
# The GPU machine lacks the PCRE2 and utf8proc headers that CMake requires. When .carry/debs/ holds
# Debian packages (fetched on the dev machine, not committed:
#   mkdir -p .carry/debs && cd .carry/debs &&
#   apt-get download libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 )
# they are unpacked into a private prefix (never into /) and CMake is pointed at it.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/inferd-gpu-check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
jobs=$(nproc 2>/dev/null || echo 8)

cmake_extra=()
if compgen -G ".carry/debs/*.deb" >/dev/null; then
  deps=/tmp/inferd-deps
  mkdir -p "$deps"
  for f in .carry/debs/*.deb; do dpkg-deb -x "$f" "$deps"; done
  for pc in "$deps"/usr/lib/*/pkgconfig/*.pc; do
    sed -i "s|^prefix=/usr\$|prefix=$deps/usr|" "$pc"
  done
  libdir=$(echo "$deps"/usr/lib/*-linux-gnu)
  export PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cmake_extra+=("-DCMAKE_PREFIX_PATH=$deps/usr")
  echo "using carried packages: $(ls .carry/debs | tr '\n' ' ')"
fi

# Build only what this script runs (warnings are not errors here: another compiler may differ).
t0=$(date +%s)
cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFERD_CUDA=ON \
  -DINFERD_BUILD_BENCH=ON "${cmake_extra[@]}" >"$OUT/configure.log" 2>&1 ||
  { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build build/gpu --target cuda_test model_test inferd cpu_decode_bench -j "$jobs" >"$OUT/build.log" 2>&1 ||
  { grep -E "error|Error" "$OUT/build.log" | head -30; exit 1; }
build_s=$(($(date +%s) - t0))
grep -A2 "attention_kernel\|rms_norm_kernel" "$OUT/build.log" | grep -E "registers|stack" \
  >"$OUT/ptxas.txt" 2>/dev/null

# CUDA tests: kernels against the CPU backend / float64, goldens, dummy model vs CPU. One process
# per test (ctest), so that a sticky CUDA error in one test cannot fail the others.
t0=$(date +%s)
timeout 480 ctest --test-dir build/gpu -R "Cuda" -V --timeout 240 >"$OUT/cuda_test.log" 2>&1
cuda_rc=$?
cuda_s=$(($(date +%s) - t0))
cuda_line=$(grep -E "tests passed, [0-9]+ tests? failed" "$OUT/cuda_test.log" | tail -1)
cuda_skipped=$(grep -cE "\*\*\*Skipped|Not Run" "$OUT/cuda_test.log")

# The CPU goldens on the same build, as a sanity check of the machine.
timeout 120 ./build/gpu/tests/model/model_test --gtest_filter='AllArchitectures/Goldens.*' \
  --gtest_color=no >"$OUT/cpu_goldens.log" 2>&1
cpu_gold_rc=$?
cpu_gold_line=$(grep -E "^\[  (PASSED|FAILED)  \] [0-9]+ test" "$OUT/cpu_goldens.log" | tr '\n' ' ')

# Goldens made afresh with transformers (tools/make_goldens.py checks its own implementation
# against transformers within 1e-4 and writes the models and expected outputs); the CPU and CUDA
# golden tests then run against them. The new goldens come back as goldens-transformers.tgz: commit
# them over tests/data/goldens/ when both pass.
tf_line="not run"
if timeout 180 python3 tools/make_goldens.py --out /tmp/goldens-tf --require-transformers \
    >>"$OUT/cpu_goldens.log" 2>&1; then
  tar czf "$OUT/goldens-transformers.tgz" -C /tmp goldens-tf
  INFERD_GOLDENS_DIR=/tmp/goldens-tf timeout 120 ./build/gpu/tests/model/model_test \
    --gtest_filter='AllArchitectures/Goldens.*' --gtest_color=no >>"$OUT/cpu_goldens.log" 2>&1
  tf_cpu=$?
  INFERD_GOLDENS_DIR=/tmp/goldens-tf timeout 240 ./build/gpu/tests/backend/cuda_test \
    --gtest_filter='*CudaGoldens*' --gtest_color=no >>"$OUT/cpu_goldens.log" 2>&1
  tf_cuda=$?
  tf_line="made; CPU goldens rc=$tf_cpu, CUDA goldens rc=$tf_cuda"
else
  tf_line="make_goldens.py failed (see cpu_goldens.log)"
fi

# Benchmarks (Llama-3.1-8B shape, bf16, dummy weights) on the GPU, each bounded in time; and the
# CPU decode of the 0.5B shape on this machine's cores. GPU_CHECK_BENCH=0 skips the GPU ones.
bench() { echo "### $*" >>"$OUT/bench.log"; timeout "$@" >>"$OUT/bench.log" 2>&1; echo "rc=$?" >>"$OUT/bench.log"; }
L8B=models/configs/llama-3.1-8b
if [ "${GPU_CHECK_BENCH:-1}" = 1 ]; then
  bench 150 ./build/gpu/src/cli/inferd bench latency $L8B --load-format dummy --device cuda \
    --input-len 512 --output-len 256 --max-model-len 4096
  bench 120 ./build/gpu/src/cli/inferd bench latency $L8B --load-format dummy --device cuda \
    --input-len 2048 --output-len 1 --max-model-len 4096
  bench 240 ./build/gpu/src/cli/inferd bench throughput $L8B --load-format dummy --device cuda \
    --dataset sharegpt-like --num-prompts 1000 --max-model-len 4096
fi
if [ "${GPU_CHECK_HF:-1}" = 1 ]; then
  bench 240 python3 tools/hf_baseline.py --config $L8B/config.json --batch 128 --input-len 128 \
    --output-len 128
fi
bench 90 ./build/gpu/bench/cpu_decode_bench models/configs/qwen2.5-0.5b --prompt 128 --tokens 48
cpu_line=$(grep -E "decode / floor" "$OUT/bench.log" | tail -1)

if [ "$cuda_rc" != 0 ]; then
  echo "--- CUDA test failures (first lines; full log in cuda_test.log) ---"
  grep -E -A3 "Failure|rror|what\(\)|Expected|Which is" "$OUT/cuda_test.log" | cut -c1-200 | head -60
fi
echo
echo "== inferd gpu-check ($commit, $(date -u +%F)) =="
printf "%-30s %s\n" "GPU" "$(head -1 "$OUT/gpu.txt")"
printf "%-30s %s\n" "build (s)" "$build_s"
printf "%-30s %s\n" "CUDA tests (rc=$cuda_rc, ${cuda_s}s)" "${cuda_line:-no summary (see log)}, skipped $cuda_skipped"
sed -n '/The following tests FAILED/,$p' "$OUT/cuda_test.log" | grep -E "^\s+[0-9]+ - " | head -20
grep -oE "\[cuda-golden\] .*" "$OUT/cuda_test.log" | sed 's/^\[cuda-golden\] /  /'
printf "%-30s %s\n" "CPU goldens (rc=$cpu_gold_rc)" "$cpu_gold_line"
printf "%-30s %s\n" "transformers goldens" "$tf_line"
printf "%-30s %s\n" "CPU 0.5B decode (16 cores)" "$cpu_line"
echo "GPU benchmarks (bench.log):"
grep -E "^### |rc=|tok/s|Output|Total|TTFT" "$OUT/bench.log" | cut -c1-150 | head -40
[ "$cuda_rc" = 0 ] && [ "$cpu_gold_rc" = 0 ]
