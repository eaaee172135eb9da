#!/usr/bin/env bash
# Issue 31 item 3 on the GPU machine: two Llama-3.1-8B-shaped models (bf16, --load-format dummy)
# behind one `inferd serve --model a=... --model b=...` whose memory budget holds only one of them
# (each takes --gpu-memory-utilization 0.6 of the GPU; the budget is the GPU's memory). Requests
# alternate between the two, so every one of them switches models: the idle one is unloaded, the
# other loaded. Then a burst of concurrent requests to both. Reports the switch times (request
# latency when the model had to be loaded, against a warm request) and that no request failed.
#
#   bash scripts/multimodel-gpu-check.sh      (about 3-5 minutes; MM_ROUNDS=N alternations, default 6)
#
# Device tool: carry [".carry", "tests/data/tokenizers/llama3_1"], timeout_s 600. The dummy model has
# no tokenizer; `inferd serve` needs one (the Llama 3.1 tokenizer, as scripts/gpu-check.sh uses).
# Builds build/gpu as scripts/gpu-check.sh does (MM_SKIP_BUILD=1 reuses it). What comes back in
# $OUT: summary.txt (the table) and logs.tgz (server log, every response, /v1/models, /metrics).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-/tmp/inferd-multimodel-out}"
W=/tmp/inferd-multimodel
rm -rf "$W"
mkdir -p "$OUT" "$W"
INFERD=${INFERD_BIN:-./build/gpu/src/cli/inferd}
MODEL=${MM_MODEL:-models/configs/llama-3.1-8b}
ROUNDS=${MM_ROUNDS:-6}
PORT=${MM_PORT:-8013}
pack() { tar czf "$OUT/logs.tgz" -C "$W" . 2>/dev/null; }
say() { echo "$*" | tee -a "$W/summary.txt"; }
# shellcheck source=scripts/gpu-serve-lib.sh
. scripts/gpu-serve-lib.sh

say_machine

# ---- build (the carried Debian packages as scripts/gpu-check.sh unpacks them)
if [ "${MM_SKIP_BUILD:-0}" != 1 ]; then
  gpu_build inferd
fi

find_tokenizer ""

# ---- the server: two models, a budget that holds one
t0=$(date +%s)
"$INFERD" serve --model "a=$MODEL" --model "b=$MODEL" --load-format dummy --device cuda \
  --max-model-len 4096 --gpu-memory-utilization 0.6 --tokenizer "$tok" --host 127.0.0.1 \
  --port "$PORT" --model-load-timeout 240 --idle-unload-seconds 0 --drain-timeout 5 \
  >"$W/server.log" 2>&1 &
spid=$!
trap 'kill -TERM $spid 2>/dev/null' EXIT
wait_ready "http://127.0.0.1:$PORT" "$spid" 60 "$W/server.log"
curl -s "http://127.0.0.1:$PORT/v1/models" >"$W/models_start.json"
say "server up in $(($(date +%s) - t0)) s; $(grep -o 'memory budget [0-9.]* GiB' "$W/server.log" | head -1)"
grep -E "needs about" "$W/server.log" | sed 's/.*info //' | cut -c1-120 | tee -a "$W/summary.txt"

# request MODEL TAG: one completion (32 tokens); prints "status seconds".
request() {
  curl -s -o "$W/resp_$2.json" -w '%{http_code} %{time_total}' --max-time 300 \
    "http://127.0.0.1:$PORT/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"model\":\"$1\",\"prompt\":\"Hello\",\"max_tokens\":32,\"ignore_eos\":true}"
}

fails=0
switch_times=()
warm_times=()
say ""
say "round  model  status  switch_s  warm_s   (round 1: a cold load, nothing to unload)"
for i in $(seq 1 "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then m=a; else m=b; fi
  read -r st1 t1 <<<"$(request "$m" "r${i}_switch")"
  read -r st2 t2 <<<"$(request "$m" "r${i}_warm")"
  [ "$st1" = 200 ] || fails=$((fails + 1))
  [ "$st2" = 200 ] || fails=$((fails + 1))
  switch_times+=("$t1")
  warm_times+=("$t2")
  say "$(printf '%5d  %5s  %3s/%3s  %8.2f  %6.3f' "$i" "$m" "$st1" "$st2" "$t1" "$t2")"
  pack
done

# ---- a burst: 8 concurrent requests, alternating models (they queue behind each other's loads)
t0=$(date +%s%3N)
pids=()
for j in $(seq 1 8); do
  if [ $((j % 2)) = 1 ]; then m=a; else m=b; fi
  (request "$m" "burst$j" >"$W/burst_$j.txt") &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
burst_ms=$(($(date +%s%3N) - t0))
burst_fail=0
for j in $(seq 1 8); do
  read -r st _ <"$W/burst_$j.txt"
  [ "$st" = 200 ] || burst_fail=$((burst_fail + 1))
done
fails=$((fails + burst_fail))
say ""
say "burst: 8 concurrent requests (4 a, 4 b) in $((burst_ms / 1000)).$(((burst_ms % 1000) / 100)) s, $burst_fail failed"

curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^inferd:model_" >"$W/metrics.txt"
curl -s "http://127.0.0.1:$PORT/v1/models" >"$W/models_end.json"
sorted=$(printf '%s\n' "${switch_times[@]}" | sort -n)
med=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
max=$(echo "$sorted" | tail -1)
say ""
say "switch (unload the other + load + 32 tokens): median $(printf '%.2f' "$med") s, max $(printf '%.2f' "$max") s over $ROUNDS"
say "load alone (the manager's 'loaded in'): $(grep -o 'loaded in [0-9.]* s' "$W/server.log" | awk '{print $3}' | tr '\n' ' ')"
say "warm request: $(printf '%s ' "${warm_times[@]}")"
say "$(grep -E 'unloads_total' "$W/metrics.txt" | tr '\n' ' ')"
say "failed requests: $fails"
kill -TERM "$spid" 2>/dev/null
for _ in $(seq 30); do kill -0 "$spid" 2>/dev/null || break; sleep 0.5; done
trap - EXIT
pack
cp "$W/summary.txt" "$OUT/summary.txt"
[ "$fails" = 0 ]
