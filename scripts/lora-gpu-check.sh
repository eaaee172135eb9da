#!/usr/bin/env bash
# LoRA adapters loaded at run time while serving (issue 29's third must-reach): `inferd serve` of
# the Llama-3.1-8B shape (bf16, --load-format dummy) with --enable-lora and
# --enable-runtime-lora-updating, driven by `inferd bench serve` twice with the same requests:
# run A as is, run B while adapters are loaded and unloaded through POST /v1/load_lora_adapter and
# /v1/unload_lora_adapter (and requests sent to each new adapter). Must reach: no request fails
# in either run (nor the adapter requests), and B's P99 TPOT <= 1.2x A's. The adapters are random
# PEFT adapters of rank 16 on all seven projections (tools/make_dummy_lora.py; numpy).
#
#   bash scripts/lora-gpu-check.sh         (about 2-3 minutes after the build)
#
# Device tool: carry [".carry", "tests/data/tokenizers/llama3_1"]. Writes $OUT/lora-summary.txt and
# $OUT/lora-logs.tgz. Switches: LORA_CHECK_SKIP_BUILD=1 (use INFERD_BIN, default
# build/gpu/src/cli/inferd), LORA_CHECK_MODEL (default models/configs/llama-3.1-8b),
# LORA_CHECK_DEVICE (default cuda; cpu with models/demo is a dry run), LORA_CHECK_PROMPTS (default
# 400), LORA_CHECK_CONCURRENCY (default 32), LORA_CHECK_INPUT_LEN / _OUTPUT_LEN (512 / 128).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-/tmp/inferd-lora-check-out}"
W=/tmp/inferd-lora-check
rm -rf "$W"
mkdir -p "$OUT" "$W"
INFERD=${INFERD_BIN:-./build/gpu/src/cli/inferd}
MODEL=${LORA_CHECK_MODEL:-models/configs/llama-3.1-8b}
DEV=${LORA_CHECK_DEVICE:-cuda}
PORT=${LORA_CHECK_PORT:-8013}
URL="http://127.0.0.1:$PORT"
SUM="$W/lora-summary.txt"
N=${LORA_CHECK_PROMPTS:-400}
C=${LORA_CHECK_CONCURRENCY:-32}
pack() { tar czf "$OUT/lora-logs.tgz" -C "$W" --exclude='ad*' . 2>/dev/null; cp -f "$SUM" "$OUT/" 2>/dev/null; }
say() { echo "$*" | tee -a "$SUM"; }
# shellcheck source=scripts/gpu-serve-lib.sh
. scripts/gpu-serve-lib.sh

say_machine

if [ "${LORA_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  gpu_build inferd
fi

find_tokenizer "$MODEL"

for i in 1 2 3; do
  python3 tools/make_dummy_lora.py "$MODEL" "$W/ad$i" --seed "$i" >>"$W/adapters.log" 2>&1 ||
    { say "tools/make_dummy_lora.py failed: $(tail -3 "$W/adapters.log")"; pack; exit 1; }
done
say "adapters: $(tail -1 "$W/adapters.log")"

load_fmt=()
[ "$MODEL" = models/demo ] || load_fmt=(--load-format dummy --max-model-len 4096)
"$INFERD" serve "$MODEL" "${load_fmt[@]}" --device "$DEV" --served-model-name m \
  --tokenizer "$tok" --host 127.0.0.1 --port "$PORT" --enable-lora --max-loras 4 \
  --max-lora-rank 16 --enable-runtime-lora-updating --lora-modules "a1=$W/ad1" \
  >"$W/serve.log" 2>&1 &
spid=$!
trap 'kill -TERM $spid 2>/dev/null' EXIT
wait_ready "$URL" "$spid" 200 "$W/serve.log"

bench() {  # bench LABEL [N]: one bench serve run of the base model's requests
  "$INFERD" bench serve --base-url "$URL" --model m --tokenizer "$tok" --dataset random \
    --input-len "${LORA_CHECK_INPUT_LEN:-512}" --output-len "${LORA_CHECK_OUTPUT_LEN:-128}" \
    --num-prompts "${2:-$N}" --max-concurrency "$C" --seed 7 --no-progress >"$W/bench_$1.log" 2>&1
}
field() { grep -E "^$2" "$W/bench_$1.log" | awk '{print $NF}' | head -1; }
post() {  # post PATH BODY: the HTTP status
  curl -s -o "$W/post.body" -w '%{http_code}' --max-time 120 -X POST "$URL$1" \
    -H 'Content-Type: application/json' -d "$2"
}
adapter_request() {  # a completion from adapter $1: the HTTP status
  curl -s -o "$W/req.body" -w '%{http_code}' --max-time 120 "$URL/v1/completions" \
    -H 'Content-Type: application/json' \
    -d "{\"model\": \"$1\", \"prompt\": \"The capital of France is\", \"max_tokens\": 16, \"temperature\": 0}"
}
bench warm "$C" >/dev/null 2>&1 || true  # first requests: lazily loaded kernels, allocator warm-up
bench A || say "bench A failed: $(tail -3 "$W/bench_A.log")"
bench B &
bpid=$!
fails=0
events=0
sleep 2
for round in 1 2 3; do
  for a in ad2 ad3; do
    code=$(post /v1/load_lora_adapter "{\"lora_name\": \"$a\", \"lora_path\": \"$W/$a\"}")
    echo "load $a -> $code $(cat "$W/post.body")" >>"$W/events.log"
    [ "$code" = 200 ] || fails=$((fails + 1))
    for k in 1 2; do
      code=$(adapter_request "$a")
      echo "request $a -> $code" >>"$W/events.log"
      [ "$code" = 200 ] || fails=$((fails + 1))
    done
    events=$((events + 1))
  done
  sleep 1
  for a in ad2 ad3; do
    code=$(post /v1/unload_lora_adapter "{\"lora_name\": \"$a\"}")
    echo "unload $a -> $code $(cat "$W/post.body")" >>"$W/events.log"
    [ "$code" = 200 ] || fails=$((fails + 1))
  done
  kill -0 "$bpid" 2>/dev/null || break
done
wait "$bpid" || say "bench B failed: $(tail -3 "$W/bench_B.log")"
for r in A B; do
  say "run $r: $(field $r 'Successful requests:') ok, $(field $r 'Failed requests:') failed," \
    "output $(field $r 'Output token throughput') tok/s, TPOT p50 $(field $r 'P50 TPOT') ms," \
    "p99 $(field $r 'P99 TPOT') ms"
done
pa=$(field A 'P99 TPOT')
pb=$(field B 'P99 TPOT')
ratio=$(awk -v a="$pa" -v b="$pb" 'BEGIN { if (a > 0) printf "%.3f", b / a; else print "-" }')
say "adapter loads during run B: $events (each followed by 2 requests to it), failures: $fails"
say "TPOT p99 while loading / without: $ratio (must reach <= 1.2)"
fa=$(field A 'Failed requests:')
fb=$(field B 'Failed requests:')
ok=$(awk -v r="$ratio" 'BEGIN { print (r != "-" && r <= 1.2) ? 1 : 0 }')
[ "$fails" = 0 ] && [ "${fa:-1}" = 0 ] && [ "${fb:-1}" = 0 ] && [ "$ok" = 1 ] &&
  say "PASS" || say "FAIL"
kill -TERM "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
pack
grep -q PASS "$SUM"
