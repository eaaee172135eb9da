#!/usr/bin/env bash
# The CUDA container image on a GPU (issue 36): runs the CUDA image's own `inferd`, from its
# unpacked root file system (chroot), against the GPU, and checks /health, a completion and the
# SIGTERM drain. Prints PASS/FAIL lines; exit 0 when all pass.
#
# The image is over 1 GB, nearly all CUDA toolkit libraries, so it travels in two parts:
#
#   scripts/image-gpu-check.sh pack [ARCHIVE]   (here, after scripts/build-image.sh cuda)
#       unpacks ARCHIVE (build/image/inferd-cuda.oci.tar) and writes .carry-image/: the root file
#       system without the toolkit libraries and without the demo model, trimmed to what running
#       inferd needs (the ldd closure of inferd, sh, env, bash, ldd, ldconfig; /etc), xz-compressed
#       (rootfs.tar.xz), with cuda-libs.txt (the toolkit libraries the image holds: soname, bytes,
#       sha256) and image-config.sh (the image's user, working directory, environment, command).
#
#   scripts/image-gpu-check.sh [--carry DIR] [--cuda DIR] [--model DIR] [--keep]   (on the GPU machine, root)
#       unpacks DIR/rootfs.tar.xz (.carry-image), copies in the toolkit libraries of cuda-libs.txt
#       from --cuda (/usr/local/cuda; each one's soname must be the one the image expects), binds
#       the host driver's libraries (libcuda.so.1, ...) and /dev/nvidia* into it the way
#       nvidia-container-toolkit does (scripts/image-run.sh --gpu), serves --model (models/demo,
#       bind-mounted read-only) with `--device cuda` as the image's user and checks /health, one
#       completion and the drain. Without a GPU it stops after the checks that need none, saying so
#       (exit 2).
set -euo pipefail
cd "$(dirname "$0")/.."
src_dir="$PWD"

fails=0
pass() { echo "PASS $*"; }
failx() { echo "FAIL $*"; exit 1; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# ---- pack ------------------------------------------------------------------------------------
pack() {
  local archive="${1:-build/image/inferd-cuda.oci.tar}" out="${INFERD_CARRY_DIR:-.carry-image}"
  [ -f "$archive" ] || failx "pack: $archive not found (scripts/build-image.sh cuda writes it)"
  command -v umoci >/dev/null || failx "pack: umoci not found (scripts/setup.sh installs it)"
  local ref r
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  mkdir "$tmp/oci"
  tar -C "$tmp/oci" -xf "$archive"
  ref="$(grep -o '"org.opencontainers.image.ref.name":"[^"]*"' "$tmp/oci/index.json" | head -1 | cut -d'"' -f4)"
  umoci unpack --image "$tmp/oci:$ref" "$tmp/bundle" >/dev/null
  r="$tmp/bundle/rootfs"

  # The toolkit libraries the image holds (the GPU machine brings its own copies).
  mkdir -p "$out"
  rm -f "$out"/rootfs.tar.xz "$out"/cuda-libs.txt "$out"/image-config.sh
  local f
  for f in "$r"/usr/local/cuda/lib64/*; do
    echo "$(basename "$f") $(stat -c %s "$f") $(sha256sum < "$f" | cut -d' ' -f1)"
  done > "$out/cuda-libs.txt"

  # Keep: the ldd closure (inside the image) of inferd and of the tools the check runs there.
  local keep="$tmp/keep" exe lib
  : > "$keep"
  add() {  # a path inside the image, its symlink chain and its target (directories resolved)
    local p="$1"
    while [ -n "$p" ]; do
      p="$(chroot "$r" readlink -f "$(dirname "$p")")/$(basename "$p")"
      echo "$p" >> "$keep"
      [ -L "$r$p" ] || break
      local t
      t="$(readlink "$r$p")"
      case "$t" in /*) p="$t" ;; *) p="$(dirname "$p")/$t" ;; esac
      p="$(realpath -m -s "$p")"
    done
  }
  for exe in /usr/local/bin/inferd /bin/sh /usr/bin/env /bin/bash /usr/bin/ldd /sbin/ldconfig /usr/bin/id; do
    add "$exe"
    add "$(chroot "$r" readlink -f "$exe")"
    while read -r lib; do
      add "$lib"
      add "$(chroot "$r" readlink -f "$lib")"
    done < <(chroot "$r" /usr/bin/ldd "$exe" 2>/dev/null | grep -o '/[^ ]*' | grep -v '^/usr/local/cuda/' || true)
  done
  sort -u -o "$keep" "$keep"
  # Everything else outside /etc goes (files and links; directories and the top-level links of a
  # merged /usr, /bin -> usr/bin ..., stay).
  (cd "$r" && find . -mindepth 2 \( -type f -o -type l \) ! -path './etc/*' -printf '/%P\n') | sort > "$tmp/all"
  comm -23 "$tmp/all" "$keep" | while read -r f; do rm -f "$r$f"; done
  local kept_mb
  kept_mb="$(du -sm --apparent-size "$r" | cut -f1)"

  # The image's process (umoci's runtime config): user, working directory, environment, command.
  python3 - "$tmp/bundle/config.json" > "$out/image-config.sh" <<'EOF'
import json, shlex, sys
p = json.load(open(sys.argv[1]))["process"]
print("# The image's process, from its OCI config (scripts/image-gpu-check.sh pack).")
print(f"IMAGE_USER={p['user']['uid']}:{p['user']['gid']}")
print(f"IMAGE_CWD={shlex.quote(p['cwd'])}")
print("IMAGE_ENV=(" + " ".join(shlex.quote(e) for e in p["env"] if not e.startswith("TERM=")) + ")")
print("IMAGE_ARGS=(" + " ".join(shlex.quote(a) for a in p["args"]) + ")")
EOF
  tar --numeric-owner -C "$r" -cf - . | xz -9e -T0 > "$out/rootfs.tar.xz"
  local total
  total="$(du -cb "$out"/* | tail -1 | cut -f1)"
  echo "pack: $out/rootfs.tar.xz $(( $(stat -c %s "$out/rootfs.tar.xz") / 1000 )) kB ($kept_mb MB unpacked);" \
    "$out in all $((total / 1000)) kB; the toolkit libraries left out:"
  sed 's/^/  /' "$out/cuda-libs.txt"
  [ "$total" -le 20000000 ] || failx "pack: $out holds $total bytes, over 20 MB"
}

if [ "${1:-}" = pack ]; then
  shift
  pack "$@"
  exit 0
fi

# ---- check (on the GPU machine) --------------------------------------------------------------
carry=.carry-image cuda=/usr/local/cuda model=models/demo keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --carry) carry="$2"; shift 2 ;;
    --cuda) cuda="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: scripts/image-gpu-check.sh [pack [ARCHIVE] | --carry DIR --cuda DIR --model DIR --keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || failx "needs root (chroot, namespaces, bind mounts)"
for f in rootfs.tar.xz cuda-libs.txt image-config.sh; do
  [ -f "$carry/$f" ] || failx "$carry/$f missing (made by scripts/image-gpu-check.sh pack)"
done
[ -f "$model/config.json" ] || failx "--model $model has no config.json"
# shellcheck source=/dev/null
. "$carry/image-config.sh"

work="$(mktemp -d /tmp/inferd-image-gpu.XXXXXX)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null || true
  if [ "$keep" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
r="$work/rootfs"
mkdir "$r"
if command -v xz >/dev/null; then
  tar --numeric-owner -C "$r" -xJf "$carry/rootfs.tar.xz" || failx "unpack $carry/rootfs.tar.xz"
else  # no xz-utils: python3's lzma
  python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' \
    "$carry/rootfs.tar.xz" | tar --numeric-owner -C "$r" -xf - || failx "unpack $carry/rootfs.tar.xz"
fi
pass "unpack: $carry/rootfs.tar.xz -> $r ($(du -sm "$r" | cut -f1) MB)"

# The toolkit libraries, by soname, from this machine's toolkit.
while read -r soname bytes sha; do
  host=""
  for d in "$cuda/lib64" "$cuda/lib" "$cuda/targets/x86_64-linux/lib"; do
    [ -e "$d/$soname" ] && { host="$d/$soname"; break; }
  done
  [ -n "$host" ] || { fail "cuda lib: $soname (the image's) not found under $cuda/{lib64,lib,targets/x86_64-linux/lib}"; continue; }
  if command -v readelf >/dev/null; then
    got="$(readelf -d "$host" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
    [ "$got" = "$soname" ] || { fail "cuda lib: $host has soname '$got', the image expects $soname"; continue; }
  fi
  cp -L "$host" "$r/usr/local/cuda/lib64/$soname"
  same="different build"
  [ "$(sha256sum < "$host" | cut -d' ' -f1)" = "$sha" ] && same="identical to the image's"
  pass "cuda lib: $soname from $(readlink -f "$host") ($(stat -L -c %s "$host") bytes; the image's: $bytes; $same)"
done < "$carry/cuda-libs.txt"
[ "$fails" -eq 0 ] || failx "toolkit libraries (above)"
chroot "$r" /sbin/ldconfig
ldd_out="$(chroot "$r" /usr/bin/ldd /usr/local/bin/inferd 2>&1)" || true
if grep -q 'not found' <<<"$ldd_out"; then
  echo "$ldd_out"
  failx "ldd in the root file system: libraries missing (above)"
fi
pass "ldd in the root file system: $(grep -c '=>' <<<"$ldd_out") libraries, none missing"

# The GPU: the driver's device nodes and libcuda.so.1 on the host. INFERD_GPU_CHECK_CPU=1 runs
# the rest on the CPU instead (a rehearsal of the script on a machine without a GPU).
host_libcuda() {  # the host's libcuda.so.1: ld.so.cache, LD_LIBRARY_PATH, /usr/local/nvidia (as image-run.sh)
  local d
  IFS=: read -ra dirs <<<"${NVIDIA_DRIVER_LIB_DIRS:-${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64:/usr/local/nvidia/lib}"
  for d in "${dirs[@]}"; do [ -e "$d/libcuda.so.1" ] && { echo "$d/libcuda.so.1"; return; }; done
  ldconfig -p | awk '$1 == "libcuda.so.1" && /x86-64/ {print $NF; exit}'
}
libcuda="$(host_libcuda)"
device=cuda
if [ "${INFERD_GPU_CHECK_CPU:-0}" = 1 ]; then
  device=cpu
  echo "NOTE INFERD_GPU_CHECK_CPU=1: the rest runs on the CPU (--device cpu, no driver mounts): a rehearsal, not the GPU check"
elif ! ls /dev/nvidia[0-9]* >/dev/null 2>&1 || [ -z "$libcuda" ]; then
  echo "FAIL gpu: no NVIDIA GPU here (/dev/nvidia[0-9]*: $(ls /dev/nvidia[0-9]* 2>/dev/null | tr '\n' ' ' || true)none;" \
    "libcuda.so.1: ${libcuda:-none} in ldconfig -p, LD_LIBRARY_PATH, /usr/local/nvidia); the checks above need" \
    "none and passed; run this on the GPU machine"
  exit 2
else
  pass "gpu: $(ls /dev/nvidia[0-9]* | tr '\n' ' ')and $libcuda -> $(readlink -f "$libcuda")"
fi

http() {  # METHOD URL [JSON]: prints "STATUS BODY" (curl, or python3 where curl is absent)
  local code
  rm -f "$work/body"
  if command -v curl >/dev/null; then
    code="$(curl -s -m 120 -o "$work/body" -w '%{http_code}' -X "$1" -H 'content-type: application/json' \
      ${3:+-d "$3"} "$2")" || code=000
  else
    code="$(python3 - "$work/body" "$@" <<'EOF'
import sys, urllib.request, urllib.error
out, method, url = sys.argv[1:4]
data = sys.argv[4].encode() if len(sys.argv) > 4 else None
req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=120) as r:
        code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except OSError:
    code, body = 0, b""
open(out, "wb").write(body)
print(f"{code:03d}")
EOF
)" || code=000
  fi
  echo "$code $(cat "$work/body" 2>/dev/null)"
}

run_args=(--user "$IMAGE_USER" --cwd "$IMAGE_CWD" --bind "$model:/models/demo:ro")
[ "$device" = cuda ] && run_args+=(--gpu)
for e in "${IMAGE_ENV[@]}"; do run_args+=(--env "$e"); done
serve_args=(--served-model-name demo --device "$device" --host 127.0.0.1 --port 0 --gpu-memory-utilization 0.5)

# The chroot with the driver inside, as a container runtime would set it up. Where that fails (a
# sandboxed host that refuses a mount), the same binary and libraries still run through the
# image's own dynamic loader with the host's driver folder on its library path (no chroot): a
# FAIL line for the chroot, and the rest says whether the image's inferd works on the GPU.
mode="${INFERD_GPU_CHECK_MODE:-chroot}"  # loader: skip the chroot, straight to the fallback
probe=inside-ok
[ "$mode" = chroot ] && probe="$(scripts/image-run.sh "${run_args[@]}" "$r" /bin/sh -c '
  if [ "$0" = cpu ]; then echo inside-ok; exit; fi
  set -- /dev/nvidia[0-9]*; [ -c "$1" ] || { echo "no /dev/nvidia[0-9]* inside: $(ls -la /dev | tr "\n" " ")"; exit 1; }
  case "$(/sbin/ldconfig -p)" in *"libcuda.so.1 "*) echo inside-ok ;; *) echo "no libcuda.so.1 inside" ;; esac' \
  "$device" 2>&1)" || true
if [ "$mode" = loader ]; then
  echo "NOTE INFERD_GPU_CHECK_MODE=loader: no chroot; the image's inferd runs through the image's loader"
elif [ "$(tail -1 <<<"$probe")" = inside-ok ]; then
  pass "chroot: namespaces and mounts set up$([ "$device" = cuda ] && echo ', /dev/nvidia* and libcuda.so.1 visible inside')"
else
  fail "chroot: scripts/image-run.sh could not set up the chroot with the driver: $(tr '\n' ' ' <<<"$probe" | cut -c1-400)"
  mode=loader
  echo "NOTE running the image's inferd through the image's loader instead (no chroot)"
fi

log="$work/inferd.log"
: > "$log"
if [ "$mode" = chroot ]; then
  scripts/image-run.sh "${run_args[@]}" "$r" "${IMAGE_ARGS[@]}" /models/demo "${serve_args[@]}" > "$log" 2>&1 &
else
  drv="$(dirname "${libcuda:-.}")"
  env -i "${IMAGE_ENV[@]}" HOME="$work" "$r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
    --library-path "$r/usr/local/cuda/lib64:$r/usr/lib/x86_64-linux-gnu:$drv" \
    "$r${IMAGE_ARGS[0]}" "${IMAGE_ARGS[@]:1}" "$(readlink -f "$model")" "${serve_args[@]}" > "$log" 2>&1 &
fi
server_pid=$!
port=""
for _ in $(seq 1 600); do
  port="$(sed -n 's|.*serving [^ ]* on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$log" | head -1)"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$port" ]; then
  tail -30 "$log"
  # Which libraries the dynamic loader found (libcuda.so.1 above all), to say why no GPU was seen.
  echo "--- LD_DEBUG=libs of the same start (lines naming libcuda / libnvidia / errors):"
  if [ "$mode" = chroot ]; then
    scripts/image-run.sh "${run_args[@]}" --env LD_DEBUG=libs "$r" "${IMAGE_ARGS[@]}" /models/demo \
      "${serve_args[@]}" 2>&1 | grep -E "libcuda|libnvidia|cannot|error" | head -20
  else
    env -i "${IMAGE_ENV[@]}" LD_DEBUG=libs HOME="$work" "$r/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
      --library-path "$r/usr/local/cuda/lib64:$r/usr/lib/x86_64-linux-gnu:$drv" \
      "$r${IMAGE_ARGS[0]}" "${IMAGE_ARGS[@]:1}" "$(readlink -f "$model")" "${serve_args[@]}" 2>&1 |
      grep -E "libcuda|libnvidia|cannot|error" | head -20
  fi
  failx "serve: inferd did not start ($mode; its log above)"
fi
base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  [ "$(http GET "$base/ready" | cut -d' ' -f1)" = 200 ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
ready_line="$(grep -m1 'ready: model' "$log" || true)"
if grep -q " on $device" <<<"$ready_line"; then
  pass "serve: $(sed 's/.*ready: //' <<<"$ready_line" | cut -c1-200)"
else
  tail -30 "$log"
  fail "serve: not ready on $device (log above)"
fi
res="$(http GET "$base/health")"
[ "${res%% *}" = 200 ] && pass "health: 200" || fail "health: $res"
res="$(http POST "$base/v1/completions" '{"model":"demo","prompt":"In the beginning","max_tokens":16,"temperature":0}')"
if [ "${res%% *}" = 200 ] && grep -q '"completion_tokens":16' <<<"$res"; then
  pass "completion: $(grep -o '"text":"[^"]*"' <<<"$res")"
else
  fail "completion: $res"
fi
kill -TERM "$server_pid"
code=0
wait "$server_pid" || code=$?
server_pid=""
if [ "$code" = 0 ] && grep -q 'drained; stopped' "$log"; then pass "SIGTERM: drained, exit 0"; else fail "SIGTERM: exit $code"; tail -5 "$log"; fi
if [ "$fails" -eq 0 ]; then echo "PASS all: the CUDA image's inferd answered on $device ($mode)"; else echo "FAIL $fails check(s) (inferd ran in mode: $mode)"; exit 1; fi
