#!/usr/bin/env bash
# Hub names on the GPU machine (issue 31 items 1-2), against the local hub (tests/hub/fake_hub):
#  (a) the cache layout is huggingface_hub's: python's snapshot_download(local_files_only=True)
#      finds a model `inferd pull` fetched, and `inferd` with HF_HUB_OFFLINE=1 finds a model
#      python's snapshot_download fetched (HF_ENDPOINT=http://127.0.0.1:PORT);
#  (b) the cold-start figure: an 8B-shaped bf16 checkpoint (Llama-3.1-8B's tensors, ~16 GB of
#      random small values, 4 shards) served by fake_hub from this machine's disk; time to read
#      its files from disk (page cache emptied: drop_caches, else per-file POSIX_FADV_DONTNEED;
#      the line says which), then `inferd serve org/name` from an empty cache until /ready answers
#      (after the weights loaded as they downloaded, every sha256 passed and a warm-up step ran;
#      stricter than /health); one line with the ratio (must reach <= 1.2).
# Prints PASS / FAIL lines and a summary; exit status 1 when a check failed. Needs python3 with
# huggingface_hub, curl, the built inferd and fake_hub (scripts/gpu-check.sh's build dir:
# build/gpu; built here when missing and build/gpu is configured), ~34 GB free under the work dir.
# Environment: INFERD_BIN (build/gpu/src/cli/inferd), FAKE_HUB_BIN (build/gpu/tests/hub/fake_hub),
# HUB_CHECK_WORK (/tmp/inferd-hub-check; removed at the end unless HUB_CHECK_KEEP=1),
# HUB_CHECK_SKIP_COLD=1 (part (a) only), HUB_CHECK_SKIP_CROSS=1 (part (b) only: no python
# needed), HUB_CHECK_TOKENIZER (a folder with the Llama 3.1 tokenizer.json; default
# tests/data/tokenizers/llama3_1 or .carry/tokenizers/llama3_1), HUB_CHECK_CONFIG (the folder of
# the config.json to shape the checkpoint after; default models/configs/llama-3.1-8b; a Llama-
# family config), HUB_CHECK_MIN_FREE_GB (34), HUB_CHECK_SERVE_ARGS (extra `inferd serve` flags),
# HUB_CHECK_SHARD_BYTES (5000000000: shards of at most this many bytes); INFERD_HUB_WEIGHT_STREAMS
# (2) passes through to `inferd serve`: weight files downloaded at once while the model loads.
# A dry run on a CPU machine: HUB_CHECK_SKIP_CROSS=1 HUB_CHECK_CONFIG=models/demo
# HUB_CHECK_TOKENIZER=models/demo HUB_CHECK_MIN_FREE_GB=1 HUB_CHECK_SERVE_ARGS="--device cpu"
# HUB_CHECK_NO_DROP=1 (no dropping of the page cache).
# Whole run: ~3-6 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

INFERD=${INFERD_BIN:-./build/gpu/src/cli/inferd}
FAKE_HUB=${FAKE_HUB_BIN:-./build/gpu/tests/hub/fake_hub}
W=${HUB_CHECK_WORK:-/tmp/inferd-hub-check}
PY=${PYTHON:-python3}
T_START=$(date +%s)
FAILS=0
RESULTS=()
PIDS=()

say() { echo "hub-gpu-check: $*"; }
pass() { RESULTS+=("PASS $*"); echo "PASS $*"; }
failed() { RESULTS+=("FAIL $*"); echo "FAIL $*"; FAILS=$((FAILS + 1)); }
elapsed() { echo $(($(date +%s) - T_START)); }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }  # seconds since $1
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }              # $1 <= $2

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  if [ "${HUB_CHECK_KEEP:-0}" != 1 ]; then rm -rf "$W"; fi
}
trap cleanup EXIT

# Starts fake_hub on a free port: start_hub DIR REPO LOG; sets HUB_URL and appends its pid to PIDS.
start_hub() {
  local dir=$1 repo=$2 log=$3
  "$FAKE_HUB" --dir "$dir" --repo "$repo" --port 0 >"$log" 2>&1 &
  PIDS+=("$!")
  local pid=$!
  HUB_URL=""
  for _ in $(seq 1200); do  # hashing 16 GB of shards may take a while
    HUB_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" 2>/dev/null | head -1 || true)
    [ -n "$HUB_URL" ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.2
  done
  return 1
}

stop_pid() {
  local p=$1
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# Empties the page cache before a timed read: all of it through /proc/sys/vm/drop_caches (root),
# else the pages of every file under $W (the repo and the caches) with POSIX_FADV_DONTNEED
# (GNU dd iflag=nocache count=0; no root needed, the files were synced). CACHES says which.
drop_caches() {
  sync
  if [ "${HUB_CHECK_NO_DROP:-0}" = 1 ]; then
    CACHES="warm (HUB_CHECK_NO_DROP=1)"
  elif { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
    CACHES="cold (drop_caches)"
  elif find "$W" -type f -exec dd if={} iflag=nocache count=0 status=none \; 2>/dev/null; then
    CACHES="cold (per-file POSIX_FADV_DONTNEED; /proc/sys/vm/drop_caches not writable)"
  else
    CACHES="warm (neither drop_caches nor POSIX_FADV_DONTNEED worked)"
  fi
}

# ---- prerequisites ------------------------------------------------------------------------------
if { [ ! -x "$INFERD" ] || [ ! -x "$FAKE_HUB" ]; } && [ -f build/gpu/build.ninja ]; then
  say "building inferd and fake_hub in build/gpu"
  cmake --build build/gpu --target inferd fake_hub -j "$(nproc)" >/tmp/hub-check-build.log 2>&1 ||
    { tail -20 /tmp/hub-check-build.log; failed "build (inferd fake_hub)"; exit 1; }
fi
[ -x "$INFERD" ] || { failed "prerequisite: $INFERD missing (build target inferd in build/gpu)"; exit 1; }
[ -x "$FAKE_HUB" ] || { failed "prerequisite: $FAKE_HUB missing (build target fake_hub)"; exit 1; }
command -v curl >/dev/null || { failed "prerequisite: curl missing"; exit 1; }
CROSS=1
[ "${HUB_CHECK_SKIP_CROSS:-0}" = 1 ] && CROSS=0
HFH_VERSION="not used"
if [ "$CROSS" = 1 ]; then
  if ! "$PY" -c "import huggingface_hub" 2>/dev/null; then
    failed "prerequisite: $PY cannot import huggingface_hub"
    exit 1
  fi
  HFH_VERSION=$("$PY" -c "import huggingface_hub as h; print(h.__version__)")
fi
say "huggingface_hub $HFH_VERSION, inferd $INFERD, fake_hub $FAKE_HUB"
rm -rf "$W"
mkdir -p "$W"
# No network here: nothing may try huggingface.co; no telemetry, no Xet / hf_transfer paths.
export HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1 HF_HUB_ENABLE_HF_TRANSFER=0
export HF_HUB_DISABLE_PROGRESS_BARS=1
unset HF_TOKEN HF_HOME HF_HUB_OFFLINE HF_ENDPOINT HF_HUB_CACHE || true

# ---- (a) cross-check with huggingface_hub on a small repo ------------------------------------------
if [ "$CROSS" = 1 ]; then
SMALL="$W/small-repo"
mkdir -p "$SMALL/sub"
if [ -f models/demo/config.json ]; then
  cp models/demo/config.json models/demo/model.safetensors models/demo/tokenizer.json "$SMALL/"
else
  cp models/configs/qwen2.5-0.5b/config.json "$SMALL/"
  head -c 3000000 /dev/urandom >"$SMALL/model.safetensors"
fi
echo '{}' >"$SMALL/generation_config.json"
head -c 4096 /dev/urandom >"$SMALL/pytorch_model.bin"  # not needed: inferd must skip it
start_hub "$SMALL" test-org/small "$W/hub_small.log" || { failed "(a) fake_hub did not start"; exit 1; }
SMALL_PID=${PIDS[-1]}
say "small repo at $HUB_URL"

# a1: inferd pulls, python reads offline.
C1="$W/cache-inferd"
if snap1=$(HF_HUB_CACHE="$C1" HF_ENDPOINT="$HUB_URL" "$INFERD" pull test-org/small 2>"$W/a1_pull.log"); then
  py1=$(HF_HUB_OFFLINE=1 HF_HUB_CACHE="$C1" "$PY" - <<'EOF' 2>"$W/a1_py.log" || true
from huggingface_hub import snapshot_download, hf_hub_download
import json, os
p = snapshot_download("test-org/small", local_files_only=True)
c = hf_hub_download("test-org/small", "config.json", local_files_only=True)
json.load(open(c))
assert os.path.getsize(os.path.join(p, "model.safetensors")) > 0
print(p)
EOF
)
  if [ -n "$py1" ] && [ "$(realpath "$py1")" = "$(realpath "$snap1")" ]; then
    pass "(a1) huggingface_hub offline finds the model inferd pulled ($py1)"
  else
    failed "(a1) huggingface_hub offline did not find inferd's snapshot $snap1 (got '$py1'; $(tail -3 "$W/a1_py.log" | tr '\n' ' '))"
  fi
  if [ -e "$snap1/pytorch_model.bin" ]; then failed "(a1) inferd fetched pytorch_model.bin"; fi
else
  failed "(a1) inferd pull from the fake hub: $(tail -3 "$W/a1_pull.log" | tr '\n' ' ')"
fi

# a2: python downloads from the fake hub, inferd reads offline (and serves a prompt with it).
C2="$W/cache-python"
py2=$(HF_HUB_CACHE="$C2" HF_ENDPOINT="$HUB_URL" "$PY" - <<'EOF' 2>"$W/a2_py.log" || true
from huggingface_hub import snapshot_download
print(snapshot_download("test-org/small", allow_patterns=["*.json", "*.safetensors"]))
EOF
)
if [ -z "$py2" ]; then
  failed "(a2) huggingface_hub snapshot_download from the fake hub: $(tail -3 "$W/a2_py.log" | tr '\n' ' ')"
else
  if snap2=$(HF_HUB_OFFLINE=1 HF_HUB_CACHE="$C2" "$INFERD" pull test-org/small 2>"$W/a2_inferd.log") &&
    [ "$(realpath "$snap2")" = "$(realpath "$py2")" ]; then
    pass "(a2) inferd with HF_HUB_OFFLINE=1 finds the model huggingface_hub downloaded ($snap2)"
  else
    failed "(a2) inferd offline did not find python's snapshot $py2: $(tail -3 "$W/a2_inferd.log" | tr '\n' ' ')"
  fi
  if [ -f models/demo/config.json ]; then
    if HF_HUB_OFFLINE=1 HF_HUB_CACHE="$C2" timeout 120 "$INFERD" run test-org/small "Hello" \
      --max-tokens 4 --device cpu >"$W/a2_run.log" 2>&1; then
      pass "(a2) inferd run test-org/small (offline, from python's cache) generated"
    else
      failed "(a2) inferd run from python's cache: $(tail -3 "$W/a2_run.log" | tr '\n' ' ')"
    fi
  fi
  if HF_HUB_CACHE="$C2" "$INFERD" ls | grep -q "test-org/small"; then
    pass "(a2) inferd ls lists python's download"
  else
    failed "(a2) inferd ls does not list test-org/small"
  fi
fi
stop_pid "$SMALL_PID"
fi

# ---- (b) cold start of an 8B-shaped checkpoint from the local hub --------------------------------
if [ "${HUB_CHECK_SKIP_COLD:-0}" = 1 ]; then
  say "cold start skipped (HUB_CHECK_SKIP_COLD=1)"
else
  free_gb=$(($(df -Pk "$W" | awk 'NR==2 {print $4}') / 1024 / 1024))
  tok=""
  for d in ${HUB_CHECK_TOKENIZER:-} tests/data/tokenizers/llama3_1 .carry/tokenizers/llama3_1; do
    [ -f "$d/tokenizer.json" ] && { tok=$d; break; }
  done
  min_free=${HUB_CHECK_MIN_FREE_GB:-34}
  if [ "$free_gb" -lt "$min_free" ]; then
    failed "(b) cold start: needs ~$min_free GB free under $W, has ${free_gb} GB (set HUB_CHECK_WORK)"
  elif [ -z "$tok" ]; then
    failed "(b) cold start: no Llama 3.1 tokenizer.json (carry tests/data/tokenizers/llama3_1)"
  else
    BIG="$W/big-repo"
    mkdir -p "$BIG"
    cp "${HUB_CHECK_CONFIG:-models/configs/llama-3.1-8b}/config.json" "$BIG/"
    cp "$tok/tokenizer.json" "$BIG/"
    [ -f "$tok/tokenizer_config.json" ] && cp "$tok/tokenizer_config.json" "$BIG/"
    t0=$(date +%s)
    # Llama-3.1-8B's tensors in bf16, ~5 GB shards and the index, as transformers saves them. The
    # values are random bf16 of magnitude ~0.01 (the high byte keeps the sign and a small exponent).
    "$PY" - "$BIG" "${HUB_CHECK_SHARD_BYTES:-5000000000}" <<'EOF' || { failed "(b) writing the 8B-shaped checkpoint"; exit 1; }
import json, os, struct, sys
out, shard_bytes = sys.argv[1], int(sys.argv[2])
cfg = json.load(open(os.path.join(out, "config.json")))
H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
V, NH, KV = cfg["vocab_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
D = cfg.get("head_dim") or H // NH
tensors = [("model.embed_tokens.weight", [V, H])]
for l in range(L):
    p = f"model.layers.{l}."
    tensors += [(p + "self_attn.q_proj.weight", [NH * D, H]), (p + "self_attn.k_proj.weight", [KV * D, H]),
                (p + "self_attn.v_proj.weight", [KV * D, H]), (p + "self_attn.o_proj.weight", [H, NH * D]),
                (p + "mlp.gate_proj.weight", [I, H]), (p + "mlp.up_proj.weight", [I, H]),
                (p + "mlp.down_proj.weight", [H, I]), (p + "input_layernorm.weight", [H]),
                (p + "post_attention_layernorm.weight", [H])]
tensors += [("model.norm.weight", [H])]
if not cfg.get("tie_word_embeddings", False):
    tensors += [("lm_head.weight", [V, H])]
shards, cur, size = [], [], 0
for name, shape in tensors:
    n = 2
    for d in shape: n *= d
    if cur and size + n > shard_bytes:
        shards.append(cur); cur, size = [], 0
    cur.append((name, shape, n)); size += n
shards.append(cur)
block = bytearray(os.urandom(64 << 20))
table = bytes((x & 0x80) | 0x3C for x in range(256))
block[1::2] = bytes(block[1::2]).translate(table)
block = bytes(block)
weight_map, total = {}, 0
for i, shard in enumerate(shards):
    fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, n in shard:
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
        off += n; weight_map[name] = fname
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, fname), "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h)
        left = off
        while left > 0:
            k = min(left, len(block)); f.write(block[:k]); left -= k
    total += off
json.dump({"metadata": {"total_size": total}, "weight_map": weight_map},
          open(os.path.join(out, "model.safetensors.index.json"), "w"), indent=2)
print(f"wrote {len(shards)} shards, {total / 1e9:.2f} GB")
EOF
    bytes=$(du -sb "$BIG" | awk '{print $1}')
    say "8B-shaped checkpoint: $((bytes / 1000000)) MB in $(($(date +%s) - t0)) s"
    start_hub "$BIG" test-org/llama-8b-shape "$W/hub_big.log" ||
      { failed "(b) fake_hub did not start on the 8B repo"; exit 1; }
    BIG_PID=${PIDS[-1]}
    say "8B repo at $HUB_URL (hashed in $(($(date +%s) - t0)) s since the write began)"

    # The floor: reading every file of the repo from disk once, all shards at once.
    drop_caches
    t_read0=$(now)
    readers=()
    for f in "$BIG"/*; do
      cat "$f" >/dev/null &
      readers+=("$!")
    done
    wait "${readers[@]}"  # not a bare wait: fake_hub runs in the background too
    t_read=$(since "$t_read0")
    say "read the files in ${t_read} s (caches $CACHES)"
    say "weight files downloaded at once while loading: ${INFERD_HUB_WEIGHT_STREAMS:-2} (INFERD_HUB_WEIGHT_STREAMS)"

    # Cold: an empty cache, `inferd serve org/name` until /ready.
    C3="$W/cache-serve"
    port=${HUB_CHECK_PORT:-8021}
    drop_caches
    t_serve0=$(now)
    # shellcheck disable=SC2086  # HUB_CHECK_SERVE_ARGS is a list of flags
    HF_HUB_CACHE="$C3" HF_ENDPOINT="$HUB_URL" "$INFERD" serve test-org/llama-8b-shape \
      --host 127.0.0.1 --port "$port" --max-model-len 4096 --drain-timeout 5 \
      ${HUB_CHECK_SERVE_ARGS:-} >"$W/serve.log" 2>&1 &
    SPID=$!
    PIDS+=("$SPID")
    ready=0
    while le "$(since "$t_serve0")" 300 && kill -0 "$SPID" 2>/dev/null; do
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ready" || true)
      [ "$code" = 200 ] && { ready=1; break; }
      sleep 0.1
    done
    t_serve=$(since "$t_serve0")
    dl_line=$(grep -E "downloading|in [0-9.]+s" "$W/serve.log" | tail -1 | tr '\r' '\n' | tail -1 || true)
    if grep -q "the weights load as they arrive" "$W/serve.log"; then
      say "the weights loaded while they downloaded (overlapped)"
    else
      say "the weights did not load while they downloaded (no overlap in the serve log)"
    fi
    if [ "$ready" = 1 ]; then
      ratio=$(awk -v a="$t_serve" -v b="$t_read" 'BEGIN { printf "%.3f", a / b }')
      line=$(printf "(b) cold serve test-org/llama-8b-shape to /ready %.1f s vs reading the files %.1f s: %.2fx (must reach <= 1.2x; caches %s)" \
        "$t_serve" "$t_read" "$ratio" "$CACHES")
      if le "$ratio" 1.2; then pass "$line"; else failed "$line"; fi
      if curl -s "http://127.0.0.1:$port/v1/models" | grep -q "test-org/llama-8b-shape"; then
        pass "(b) /v1/models serves the hub name test-org/llama-8b-shape"
      else
        failed "(b) /v1/models does not name test-org/llama-8b-shape"
      fi
    else
      failed "(b) inferd serve was not ready in $(printf %.0f "$t_serve") s: $(grep -iE "error" "$W/serve.log" | tail -3 | tr '\n' ' ')"
    fi
    say "serve log: $dl_line"
    stop_pid "$SPID"
    stop_pid "$BIG_PID"
  fi
fi

echo "==== hub-gpu-check summary ($(elapsed) s; $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || echo "no GPU named"))"
for r in "${RESULTS[@]}"; do echo "  $r"; done
[ "$FAILS" = 0 ] || exit 1
