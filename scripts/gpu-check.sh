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
cmake --build build/gpu --target cuda_test model_test inferd -j "$jobs" >"$OUT/build.log" 2>&1 ||
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

# Benchmarks: CPU decode on the GPU machine's cores (the CLI has no CUDA device flag yet).
ids=$(python3 -c "print(','.join(str(i*7%150000+10) for i in range(512)))")
timeout 60 ./build/gpu/src/cli/inferd run models/configs/qwen2.5-0.5b --load-format dummy \
  --prompt-ids "$ids" --max-tokens 64 --ignore-eos --max-model-len 4096 \
  >"$OUT/cpu_decode.log" 2>&1
cpu_line=$(grep -E "decode" "$OUT/cpu_decode.log" | tail -1)

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
printf "%-30s %s\n" "CPU 0.5B dummy 512/64" "$cpu_line"
[ "$cuda_rc" = 0 ] && [ "$cpu_gold_rc" = 0 ]
