# shellcheck shell=bash
# Sourced by the GPU-machine scripts that time `inferd serve` (sleep-gpu-check.sh,
# lora-gpu-check.sh, multimodel-gpu-check.sh): the machine line, the build of build/gpu with the
# carried Debian packages (scripts/carried-debs.sh), the tokenizer to serve the dummy shapes
# with, and the wait for /ready. The caller sets W (its work folder) and defines say and pack.

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }

# The GPU (name, memory, driver) and the commit, said once.
say_machine() {
  if command -v nvidia-smi >/dev/null; then
    say "GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  else
    say "GPU: none"
  fi
  say "commit: $(git rev-parse --short HEAD 2>/dev/null || echo "${GPU_CHECK_COMMIT:-unknown}")"
}

# gpu_build TARGET...: configures and builds build/gpu (CUDA, bench on); on failure the errors
# are printed, the logs packed, and the script exits.
gpu_build() {
  # shellcheck source=scripts/carried-debs.sh
  . scripts/carried-debs.sh
  local t0
  t0=$(now_ms)
  cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DINFERD_CUDA=ON \
    -DINFERD_BUILD_BENCH=ON "${CARRIED_CMAKE_ARGS[@]}" >"$W/configure.log" 2>&1 ||
    { tail -30 "$W/configure.log"; pack; exit 1; }
  timeout 300 cmake --build build/gpu --target "$@" -j "$(nproc)" >"$W/build.log" 2>&1 ||
    { grep -E "error|Error" "$W/build.log" | head -30; pack; exit 1; }
  say "build: $(secs $(($(now_ms) - t0))) s"
}

# find_tokenizer [MODEL]: the directory with a tokenizer.json to serve with (the model's own,
# $INFERD_SERVE_TOKENIZER, or the carried Llama 3.1 one), in $tok; exits when there is none.
# shellcheck disable=SC2034,SC2120
find_tokenizer() {
  tok=""
  for d in ${1:-} ${INFERD_SERVE_TOKENIZER:-} tests/data/tokenizers/llama3_1 \
    .carry/tokenizers/llama3_1; do
    [ -n "$d" ] && [ -f "$d/tokenizer.json" ] && { tok=$d; return 0; }
  done
  say "no tokenizer (carry tests/data/tokenizers/llama3_1)"
  pack
  exit 1
}

# wait_ready URL PID SECONDS LOG: polls URL/ready until 200; exits (with LOG's tail) when the
# server dies or the time runs out.
wait_ready() {
  local t0
  t0=$(now_ms)
  while [ $(($(now_ms) - t0)) -lt $(($3 * 1000)) ]; do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/ready")" = 200 ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  say "server not ready after $(secs $(($(now_ms) - t0))) s ($4):"
  tail -20 "$4"
  pack
  exit 1
}
