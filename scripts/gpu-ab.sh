#!/usr/bin/env bash
# A/B speed check on the GPU machine: the same benchmarks on a baseline build and on this tree's,
# in one session on one GPU, alternating, so a refactor can show it lost no speed (issue 23:
# within 3 %). The baseline is a source tree made on the dev machine and carried:
#   rm -rf .carry/base && mkdir -p .carry/base &&
#   git archive <commit> src include CMakeLists.txt CMakePresets.json models/configs bench tools scripts |
#     tar -x -C .carry/base
# (and .carry/debs as scripts/gpu-check.sh says). Device tool: carry [".carry"].
#
#   bash scripts/gpu-ab.sh build    build both (inferd only; this tree in build/gpu, the base in
#                                   build/base)
#   bash scripts/gpu-ab.sh bench    latency 512/256 (AB_LATENCY_REPS times each, default 2) and
#                                   throughput (AB_THROUGHPUT_PROMPTS sharegpt-like, default 1000,
#                                   AB_THROUGHPUT_REPS times each, default 1), base first each round
# Logs and JSON under $OUT (AB_OUT); a table of both builds' figures and their ratio last.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-${AB_OUT:-/tmp/inferd-ab}}"
mkdir -p "$OUT"
MODEL=${AB_MODEL:-models/configs/llama-3.1-8b}
jobs=$(nproc 2>/dev/null || echo 8)

# shellcheck source=scripts/carried-debs.sh
. scripts/carried-debs.sh
deps_args=("${CARRIED_CMAKE_ARGS[@]}")

build_one() {  # build_one SRC_DIR BUILD_DIR LOG [CMAKE_ARGS...]: the inferd binary only
  local src=$1 dir=$2 log=$3
  shift 3
  cmake -S "$src" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFERD_CUDA=ON \
    "${deps_args[@]}" "$@" >"$log" 2>&1 && cmake --build "$dir" --target inferd -j "$jobs" >>"$log" 2>&1
}

if [ "${1:-}" = build ]; then
  t0=$(date +%s)
  # This tree as scripts/gpu-check.sh configures it (so its later build reuses build/gpu).
  build_one . build/gpu "$OUT/build_head.log" -DINFERD_BUILD_BENCH=ON ||
    { tail -30 "$OUT/build_head.log"; exit 1; }
  build_one .carry/base build/base "$OUT/build_base.log" -DINFERD_BUILD_TESTS=OFF \
    -DINFERD_BUILD_BENCH=OFF || { tail -30 "$OUT/build_base.log"; exit 1; }
  echo "built head and base in $(($(date +%s) - t0)) s"
  exit 0
fi

M=("$MODEL" --load-format dummy --device cuda --max-model-len 4096)
run() {  # run NAME BIN ARGS...
  local name=$1 bin=$2
  shift 2
  "$bin" bench "$@" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1
  echo "$name rc=$?"
}
for r in $(seq "${AB_LATENCY_REPS:-2}"); do
  for v in base gpu; do
    run "latency_${v}_$r" "build/$v/src/cli/inferd" latency "${M[@]}" --input-len 512 --output-len 256
  done
done
for r in $(seq "${AB_THROUGHPUT_REPS:-1}"); do
  for v in base gpu; do
    run "throughput_${v}_$r" "build/$v/src/cli/inferd" throughput "${M[@]}" \
      --dataset sharegpt-like --num-prompts "${AB_THROUGHPUT_PROMPTS:-1000}"
  done
done
python3 - "$OUT" <<'PY'
import glob, json, os, re, sys
out = sys.argv[1]
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return None
def find(d, key):
    v = d.get(key) if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) else None
rows = {}
for p in sorted(glob.glob(os.path.join(out, "*.json"))):
    name = os.path.basename(p)[:-5]
    m = re.match(r"(latency|throughput)_(base|gpu)_(\d+)", name)
    if not m:
        continue
    j = load(p)
    if j is None:
        continue
    kind, ver, rep = m.groups()
    if kind == "latency":
        vals = {"decode tok/s": find(j, "decode_tokens_per_s_mean"),
                "prefill tok/s": find(j, "prefill_tokens_per_s_mean")}
    else:
        vals = {"output tok/s": find(j, "output_tokens_per_s"),
                "total tok/s": find(j, "total_tokens_per_s")}
    for k, v in vals.items():
        rows.setdefault((kind, k), {}).setdefault(ver, []).append(v)
print(f"{'metric':34s} {'base':>22s} {'head':>22s} {'head/base':>9s}")
for (kind, k), d in rows.items():
    b = [x for x in d.get("base", []) if x]
    h = [x for x in d.get("gpu", []) if x]
    fmt = lambda xs: ", ".join(f"{x:,.1f}" for x in xs) or "-"
    ratio = (sum(h) / len(h)) / (sum(b) / len(b)) if b and h else float("nan")
    print(f"{kind + ' ' + k:34s} {fmt(b):>22s} {fmt(h):>22s} {ratio:9.3f}")
PY
