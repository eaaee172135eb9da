#!/usr/bin/env bash
# Sleep mode on the GPU machine (issue 31): builds build/gpu (as scripts/gpu-check.sh does), runs
# the CUDA sleep tests (cuda_test --gtest_filter='*CudaSleep*'), then times `inferd serve
# --enable-sleep-mode` on the Llama-3.1-8B shape (bf16, --load-format dummy): cold start to
# /ready, POST /sleep?level=1 and /wake_up (twice: the first sleep also pins the host buffer),
# /sleep?level=2 and /wake_up, each checked by a greedy completion that must equal the one before
# the first sleep, and prints each time with its ratio to the cold start. Must reach: level-1
# wake <= 2 s on an H100. About 2-4 minutes.
#
#   bash scripts/sleep-gpu-check.sh
#
# Device tool: carry [".carry", "tests/data/tokenizers/llama3_1"] (`inferd serve` needs a
# tokenizer; the dummy model has none), timeout_s 600. Writes $OUT/sleep-summary.txt and
# $OUT/sleep-logs.tgz. Switches: SLEEP_CHECK_SKIP_BUILD=1 (use INFERD_BIN, default
# build/gpu/src/cli/inferd; no tests), SLEEP_CHECK_MODEL (default models/configs/llama-3.1-8b),
# SLEEP_CHECK_DEVICE (default cuda; cpu with a small model is a dry run), SLEEP_CHECK_PORT,
# SLEEP_CHECK_MAX_MODEL_LEN (default 4096), INFERD_SERVE_TOKENIZER (a directory with tokenizer.json).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-/tmp/inferd-sleep-check-out}"
W=/tmp/inferd-sleep-check
rm -rf "$W"
mkdir -p "$OUT" "$W"
INFERD=${INFERD_BIN:-./build/gpu/src/cli/inferd}
MODEL=${SLEEP_CHECK_MODEL:-models/configs/llama-3.1-8b}
DEV=${SLEEP_CHECK_DEVICE:-cuda}
PORT=${SLEEP_CHECK_PORT:-8012}
URL="http://127.0.0.1:$PORT"
SUM="$W/sleep-summary.txt"
pack() { tar czf "$OUT/sleep-logs.tgz" -C "$W" . 2>/dev/null; cp -f "$SUM" "$OUT/" 2>/dev/null; }
say() { echo "$*" | tee -a "$SUM"; }
# shellcheck source=scripts/gpu-serve-lib.sh
. scripts/gpu-serve-lib.sh
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }

say_machine

# ---- build and the CUDA sleep tests -----------------------------------------------------------
if [ "${SLEEP_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  gpu_build inferd cuda_test
  timeout 180 ./build/gpu/tests/backend/cuda_test --gtest_filter='*CudaSleep*' --gtest_color=no \
    >"$W/cuda_sleep_test.log" 2>&1
  say "CUDA sleep tests: rc=$? $(grep -E '^\[  (PASSED|FAILED)  \]' "$W/cuda_sleep_test.log" | tr '\n' ' ')"
  grep -oE "\[cuda-golden\] sleep.*" "$W/cuda_sleep_test.log" | tee -a "$SUM"
  pack
fi

# ---- timings through `inferd serve` -----------------------------------------------------------
find_tokenizer ""

completion() {  # greedy text of a fixed prompt
  curl -s --max-time 60 "$URL/v1/completions" -H 'Content-Type: application/json' \
    -d '{"model": "m", "prompt": "The capital of France is", "max_tokens": 32, "temperature": 0, "ignore_eos": true}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])' 2>/dev/null
}
# post PATH: the POST's wall time in ms (on stdout); its status and body go to $W/post.log.
post() {
  local t0 code
  t0=$(now_ms)
  code=$(curl -s -o "$W/post.body" -w '%{http_code}' --max-time 120 -X POST "$URL$1")
  echo "POST $1 -> $code $(cat "$W/post.body")" >>"$W/post.log"
  [ "$code" = 200 ] || { echo "POST $1 failed: $code $(cat "$W/post.body")" >&2; echo -1; return; }
  echo $(($(now_ms) - t0))
}
gpu_used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits 2>/dev/null | head -1; }

t0=$(now_ms)
"$INFERD" serve "$MODEL" --load-format dummy --device "$DEV" --max-model-len "${SLEEP_CHECK_MAX_MODEL_LEN:-4096}" \
  --served-model-name m --tokenizer "$tok" --host 127.0.0.1 --port "$PORT" --enable-sleep-mode \
  --drain-timeout 30 >"$W/serve.log" 2>&1 &
spid=$!
trap 'kill -TERM $spid 2>/dev/null' EXIT
wait_ready "$URL" "$spid" 150 "$W/serve.log"
cold=$(($(now_ms) - t0))
say "cold start to /ready: $(secs "$cold") s (GPU memory used: $(gpu_used) MiB)"
want=$(completion)
[ -n "$want" ] || { say "the first completion failed (serve.log)"; pack; exit 1; }

check() {  # check LABEL: the greedy text after a wake equals the one before the first sleep
  local got
  got=$(completion)
  if [ "$got" = "$want" ]; then echo "same text"; else echo "DIFFERENT TEXT: '$got' vs '$want'"; fi
}
fails=0
for round in "1 first" "1 second" "2 first"; do
  read -r level which <<<"$round"
  s=$(post "/sleep?level=$level")
  used=$(gpu_used)
  asleep=$(curl -s "$URL/is_sleeping")
  w=$(post "/wake_up")
  c=$(check)
  [ "$s" -lt 0 ] || [ "$w" -lt 0 ] || [ "$c" != "same text" ] && fails=$((fails + 1))
  say "level $level ($which): sleep $(secs "$s") s (GPU memory used asleep: $used MiB, $asleep), wake $(secs "$w") s = $(ratio "$w" "$cold") x cold start; $c"
  [ "$level" = 1 ] && [ "$which" = second ] && wake1=$w
done
grep -E "sleep level|woke up" "$W/serve.log" | sed 's/^.*\] //' | tee -a "$SUM"
if [ -n "${wake1:-}" ] && [ "$wake1" -ge 0 ] && [ "$wake1" -le 2000 ]; then
  say "level-1 wake $(secs "$wake1") s: within the 2 s target"
else
  say "level-1 wake $(secs "${wake1:--1}") s: OVER the 2 s target"; fails=$((fails + 1))
fi
kill -TERM "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
pack
[ "$fails" = 0 ]
