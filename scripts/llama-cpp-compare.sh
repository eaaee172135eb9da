#!/usr/bin/env bash
# inferd against llama.cpp on the same GGUF file, the same threads and the same machine (issue 35):
# llama.cpp's llama-bench (prompt processing pN, token generation tgM) and inferd's
# `bench latency` (prefill and decode of one request), then a table with the ratios.
#
# llama.cpp is NOT part of inferd: build it from a copy fetched outside this tree (e.g. a release
# tarball or `git clone` into ~/src/llama.cpp); this script only builds and runs it there.
#
#   LLAMA_CPP_DIR=~/src/llama.cpp bash scripts/llama-cpp-compare.sh MODEL.gguf [more.gguf ...]
#
# Environment:
#   LLAMA_CPP_DIR   llama.cpp source tree (required)
#   LLAMA_CPP_BUILD its build directory (default $LLAMA_CPP_DIR/build-compare); built when
#                   llama-bench is missing there, with GGML_NATIVE=ON (and GGML_CUDA=ON for cuda)
#   DEVICE          cpu (default) or cuda (llama.cpp with -ngl 99, inferd --device cuda)
#   THREADS         CPU threads for both (default: nproc)
#   PROMPT, GEN     prompt tokens and generated tokens (default 128 and 64)
#   REPS            repetitions (default 3)
#   INFERD_BIN      the inferd binary (default build/ci/src/cli/inferd, else build/gpu/...)
#   OUT             where logs and compare.json go (default /tmp/inferd-llama-cpp-compare)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ $# -ge 1 ] || { sed -n 2,22p "$0"; exit 2; }
: "${LLAMA_CPP_DIR:?set LLAMA_CPP_DIR to a llama.cpp source tree (outside this project)}"
DEVICE=${DEVICE:-cpu}
THREADS=${THREADS:-$(nproc)}
PROMPT=${PROMPT:-128}
GEN=${GEN:-64}
REPS=${REPS:-3}
OUT=${OUT:-/tmp/inferd-llama-cpp-compare}
BUILD=${LLAMA_CPP_BUILD:-$LLAMA_CPP_DIR/build-compare}
mkdir -p "$OUT"
INFERD=${INFERD_BIN:-}
if [ -z "$INFERD" ]; then
  for b in build/ci/src/cli/inferd build/gpu/src/cli/inferd build/release/src/cli/inferd; do
    [ -x "$b" ] && INFERD=$b && break
  done
fi
[ -x "$INFERD" ] || { echo "no inferd binary (set INFERD_BIN)" >&2; exit 1; }

if [ ! -x "$BUILD/bin/llama-bench" ]; then
  cuda_flag=OFF
  [ "$DEVICE" = cuda ] && cuda_flag=ON
  echo "building llama.cpp in $BUILD (GGML_CUDA=$cuda_flag)" >&2
  cmake -S "$LLAMA_CPP_DIR" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DGGML_CUDA=$cuda_flag -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    ${LLAMA_CPP_CMAKE_ARGS:-} >"$OUT/llama-cpp-configure.log" 2>&1 &&
    cmake --build "$BUILD" -j "$(nproc)" --target llama-bench >"$OUT/llama-cpp-build.log" 2>&1 ||
    { echo "llama.cpp build failed: $OUT/llama-cpp-*.log" >&2; exit 1; }
fi

ngl=()
[ "$DEVICE" = cuda ] && ngl=(-ngl 99)
results="[]"
for model in "$@"; do
  name=$(basename "$model")
  "$BUILD/bin/llama-bench" -m "$model" -p "$PROMPT" -n "$GEN" -t "$THREADS" -r "$REPS" \
    "${ngl[@]}" -o json >"$OUT/$name.llama-bench.json" 2>"$OUT/$name.llama-bench.log" ||
    { echo "llama-bench failed on $model: $OUT/$name.llama-bench.log" >&2; continue; }
  "$INFERD" bench latency "$model" --device "$DEVICE" --threads "$THREADS" \
    --input-len "$PROMPT" --output-len "$GEN" --num-iters "$REPS" --num-warmups 1 \
    --max-model-len $((PROMPT + GEN + 16)) --json "$OUT/$name.inferd.json" \
    >"$OUT/$name.inferd.log" 2>&1 ||
    { echo "inferd failed on $model: $OUT/$name.inferd.log" >&2; continue; }
  results=$(python3 - "$OUT/$name.llama-bench.json" "$OUT/$name.inferd.json" "$name" "$results" <<'EOF'
import json, sys
lb, inf, name, acc = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3], json.loads(sys.argv[4])
pp = next(r["avg_ts"] for r in lb if r["n_prompt"] > 0 and r["n_gen"] == 0)
tg = next(r["avg_ts"] for r in lb if r["n_gen"] > 0 and r["n_prompt"] == 0)
acc.append({"file": name, "llama_cpp_prefill_tok_s": pp, "llama_cpp_decode_tok_s": tg,
            "inferd_prefill_tok_s": inf["prefill_tokens_per_s_mean"],
            "inferd_decode_tok_s": inf["decode_tokens_per_s_mean"],
            "llama_cpp_type": lb[0].get("model_type"), "cpu": lb[0].get("cpu_info"),
            "gpu": lb[0].get("gpu_info"), "threads": lb[0].get("n_threads"),
            "llama_cpp_commit": lb[0].get("build_commit")})
print(json.dumps(acc))
EOF
)
done
echo "$results" >"$OUT/compare.json"
python3 - "$OUT/compare.json" "$DEVICE" "$THREADS" "$PROMPT" "$GEN" <<'EOF'
import json, sys
rows, dev, th, p, g = json.load(open(sys.argv[1])), *sys.argv[2:]
print(f"device {dev}, threads {th}, prompt {p}, generated {g}")
if rows:
    print(f"cpu: {rows[0]['cpu']}  gpu: {rows[0]['gpu']}")
print(f"{'file':34} {'llama.cpp pp':>13} {'inferd pp':>10} {'ratio':>6} {'llama.cpp tg':>13} {'inferd tg':>10} {'ratio':>6}")
for r in rows:
    print(f"{r['file'][:34]:34} {r['llama_cpp_prefill_tok_s']:13.1f} {r['inferd_prefill_tok_s']:10.1f} "
          f"{r['inferd_prefill_tok_s'] / r['llama_cpp_prefill_tok_s']:6.2f} {r['llama_cpp_decode_tok_s']:13.2f} "
          f"{r['inferd_decode_tok_s']:10.2f} {r['inferd_decode_tok_s'] / r['llama_cpp_decode_tok_s']:6.2f}")
EOF
