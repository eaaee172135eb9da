#!/usr/bin/env bash
# Runs a command inside an unpacked container root file system without a container runtime:
# new mount, PID, IPC and UTS namespaces (unshare), chroot, the host's network. For machines where
# crun cannot set up cgroups (hybrid cgroup v1/v2 hosts) and for the GPU check, where the NVIDIA
# driver must be made visible the way nvidia-container-toolkit does it. Used by the image smoke
# test (tests/e2e/image.test.mjs) and scripts/image-gpu-check.sh.
#
#   scripts/image-run.sh [--user UID:GID] [--cwd DIR] [--env K=V]... [--bind SRC:DST[:ro]]...
#                        [--gpu] ROOTFS CMD [ARG...]
#
# Inside: /proc of the new PID namespace, a /dev tmpfs with null, zero, full, random, urandom and
# tty, /dev/shm and /tmp tmpfs, the host's /etc/hosts and /etc/resolv.conf, the binds; with --gpu
# also every /dev/nvidia* device and the host driver's user-space libraries (libcuda.so.1 and the
# libraries it loads: see gpu_libs below), bind-mounted read-only into
# ROOTFS/usr/lib/x86_64-linux-gnu with their soname links and ldconfig run inside, as the
# toolkit's `update-ldcache` hook does. The environment is only the --env values (as a
# container's). SIGTERM and SIGINT are passed on to CMD; the exit status is
# CMD's. Needs root. All mounts vanish with the mount namespace.
set -euo pipefail

user=0:0 cwd=/ gpu=0
envs=() binds=()
while [ $# -gt 0 ]; do
  case "$1" in
    --user) user="$2"; shift 2 ;;
    --cwd) cwd="$2"; shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --bind) binds+=("$2"); shift 2 ;;
    --gpu) gpu=1; shift ;;
    --) shift; break ;;
    -*) echo "image-run: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "usage: image-run.sh [options] ROOTFS CMD [ARG...]" >&2; exit 2; }
rootfs="$(readlink -f "$1")"; shift
[ -x "$rootfs/bin/sh" ] || { echo "image-run: $rootfs is not a root file system (no /bin/sh)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "image-run: needs root (namespaces, mounts, chroot)" >&2; exit 1; }

# The host driver libraries nvidia-container-toolkit mounts for the `compute` and `utility`
# capabilities, by soname prefix, those this host has (libcuda.so.1 loads the JIT compilers,
# ptxjitcompiler / nvvm / gpucomp, when a kernel has no code for the GPU; libnvidia-ml.so.1 is NVML).
gpu_libs="libcuda.so libcudadebugger.so libnvidia-ptxjitcompiler.so libnvidia-nvvm.so
  libnvidia-gpucomp.so libnvidia-allocator.so libnvidia-ml.so libnvidia-cfg.so"

# Where the driver's libraries may be besides ld.so.cache: LD_LIBRARY_PATH, and the folder
# GPU node images mount the driver at (/usr/local/nvidia on GKE and on gVisor hosts).
driver_dirs="${NVIDIA_DRIVER_LIB_DIRS:-${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/nvidia/lib64:/usr/local/nvidia/lib}"
host_driver_libs() {  # "soname path" of the host's libraries, first found first (ld.so.cache last)
  local d f
  IFS=: read -ra dirs <<<"$driver_dirs"
  for d in "${dirs[@]}"; do
    [ -d "$d" ] || continue
    for f in "$d"/lib*.so.*; do [ -e "$f" ] && echo "$(basename "$f") $f"; done
  done
  ldconfig -p | awk '/x86-64/ {print $1, $NF}'
}

# The set-up script (bash: printf %q quoting) run as the namespaces' first process (it ends by
# exec'ing the command).
setup="$(mktemp)"
trap 'rm -f "$setup" "$setup.libs"' EXIT
{
  echo 'set -e'
  echo "r='$rootfs'"
  echo 'mount --make-rprivate /'
  echo 'mount -t proc proc "$r/proc"'
  echo 'mount -t tmpfs -o nosuid,mode=755 tmpfs "$r/dev"'
  echo 'for d in null zero full random urandom tty; do touch "$r/dev/$d"; mount --bind "/dev/$d" "$r/dev/$d"; done'
  echo 'mkdir -p "$r/dev/shm" "$r/dev/pts"; mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$r/dev/shm"'
  echo 'ln -s /proc/self/fd "$r/dev/fd"; ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"'
  echo 'mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$r/tmp"'
  # Name resolution as a container runtime provides it: the host's hosts and resolv.conf.
  echo 'for f in hosts resolv.conf; do [ -f "/etc/$f" ] || continue; [ -e "$r/etc/$f" ] || touch "$r/etc/$f"; mount --bind -o ro "/etc/$f" "$r/etc/$f"; done'
  for b in "${binds[@]}"; do
    IFS=: read -r src dst mode <<<"$b"
    [ -e "$src" ] || { echo "image-run: --bind $b: $src does not exist" >&2; exit 1; }
    printf 'mkdir -p "$r%q"; mount --bind %q "$r%q"\n' "$dst" "$(readlink -f "$src")" "$dst"
    [ "$mode" = ro ] && printf 'mount -o remount,bind,ro "$r%q"\n' "$dst"
  done
  if [ "$gpu" = 1 ]; then
    found=0
    for dev in /dev/nvidia*; do
      [ -c "$dev" ] || continue
      printf 'touch "$r%q"; mount --bind %q "$r%q"\n' "$dev" "$dev" "$dev"
      found=1
    done
    [ -d /dev/nvidia-caps ] && echo 'mkdir -p "$r/dev/nvidia-caps"; mount --bind /dev/nvidia-caps "$r/dev/nvidia-caps"'
    [ "$found" = 1 ] || { echo "image-run: --gpu: no /dev/nvidia* device on this host (no NVIDIA driver loaded)" >&2; exit 1; }
    libdir=/usr/lib/x86_64-linux-gnu
    host_driver_libs | sort -s -u -k1,1 > "$setup.libs"
    grep -q '^libcuda\.so\.1 ' "$setup.libs" ||
      { echo "image-run: --gpu: no libcuda.so.1 on this host (ldconfig -p, $driver_dirs): no NVIDIA driver" >&2; exit 1; }
    seen=" "
    for prefix in $gpu_libs; do
      while read -r soname host; do
        case "$soname" in "$prefix".*) ;; *) continue ;; esac
        real="$(readlink -f "$host")"
        base="$(basename "$real")"
        case "$seen" in *" $base "*) ;; *)
          printf 'touch "$r%s/%s"; mount --bind -o ro %q "$r%s/%s"\n' "$libdir" "$base" "$real" "$libdir" "$base"
          seen="$seen$base " ;;
        esac
        [ "$soname" != "$base" ] && printf 'ln -sfn %s "$r%s/%s"\n' "$base" "$libdir" "$soname"
      done < "$setup.libs"
    done
    echo "chroot \"\$r\" /sbin/ldconfig"
  fi
  printf 'cd "$r"\n'
  printf 'exec chroot --userspec=%q "$r" /usr/bin/env -i' "$user"
  for e in "${envs[@]}"; do printf ' %q' "$e"; done
  printf ' /bin/sh -c %q sh' 'cd "$1" && shift && exec "$@"'
  printf ' %q' "$cwd" "$@"
  echo
} > "$setup"

unshare --mount --pid --ipc --uts --fork --kill-child /bin/bash "$setup" &
child=$!
# The command runs as the child of unshare (PID 1 of its namespace): signals go to it.
forward() {
  local pids
  pids="$(cat /proc/"$child"/task/*/children 2>/dev/null || true)"
  [ -n "$pids" ] && kill -s "$1" $pids 2>/dev/null || true
}
trap 'forward TERM' TERM
trap 'forward INT' INT
status=0
while true; do
  wait "$child" && status=0 || status=$?
  # wait returns >128 when a trapped signal interrupted it; the child may still run.
  kill -0 "$child" 2>/dev/null || break
done
exit "$status"
