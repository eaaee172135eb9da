#!/usr/bin/env bash
# Builds inferd's container image without a daemon or a registry (issue 36), as an OCI image
# archive (the OCI Image Layout of github.com/opencontainers/image-spec, tarred: skopeo's
# `oci-archive:` transport):
#
#   scripts/build-image.sh [cpu|cuda]    ->  build/image/inferd-cpu.oci.tar | inferd-cuda.oci.tar
#
# - cpu:  inferd built CPU-only (CMake preset image-cpu: no CUDA libraries), the demo model bundled
#         as the default model.
# - cuda: the README's build (preset ci, build/ci/src/cli/inferd) and the CUDA toolkit libraries
#         its `ldd` names (libcudart, libcublasLt), copied from this machine's /usr/local/cuda.
#         The NVIDIA driver (libcuda.so.1, /dev/nvidia*) comes from the host at run time
#         (nvidia-container-toolkit, or scripts/image-gpu-check.sh's bind mounts).
#
# Layers: (1) Debian bookworm from `debootstrap --variant=minbase` with the runtime libraries of
# scripts/packages/runtime.txt, trimmed (docs, man pages, locales, apt lists and caches), the user
# inferd (uid 1000); cached in build/image-cache, so only the first build downloads; (2) cuda only:
# the CUDA libraries; (3) /usr/local/bin/inferd and /usr/share/inferd/models/demo. Committed with
# umoci. `ldd` run inside the root file system must report nothing missing, or the build fails.
#
# Environment: INFERD_BIN (a built inferd to package instead of building one), INFERD_IMAGE_OUT
# (build/image), INFERD_IMAGE_CACHE (build/image-cache), DEBIAN_MIRROR (http://deb.debian.org/debian),
# INFERD_IMAGE_KEEP_ROOTFS=1 (leave the assembled root file system in $INFERD_IMAGE_OUT/rootfs-VARIANT),
# INFERD_BUILD_LOCK (a lock file the compile step takes with flock, on a machine shared by builds).
# Needs root (debootstrap, chroot); runs scripts/setup.sh first (the build and image packages;
# INFERD_SKIP_SETUP=1 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
root_dir="$PWD"

variant="${1:-cpu}"
case "$variant" in
  cpu | cuda) ;;
  *) echo "usage: scripts/build-image.sh [cpu|cuda]  (got '$variant')" >&2; exit 2 ;;
esac
out="${INFERD_IMAGE_OUT:-build/image}"
cache="${INFERD_IMAGE_CACHE:-build/image-cache}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
suite=bookworm
cuda_dir="${CUDA_HOME:-/usr/local/cuda}"

die() { echo "build-image: $*" >&2; exit 1; }
log() { echo "build-image: $*"; }
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap and chroot); run it as root or with sudo"
# From a clean checkout in one command: the build and image tools (idempotent, quick when present).
[ "${INFERD_SKIP_SETUP:-0}" = 1 ] || scripts/setup.sh
for tool in debootstrap umoci tar chroot; do
  command -v "$tool" >/dev/null || die "'$tool' not found: scripts/setup.sh installs it"
done

version="$(sed -n 's/^project(inferd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
[ -n "$version" ] || die "no project VERSION in CMakeLists.txt"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ "$commit" != unknown ] && ! git diff --quiet HEAD 2>/dev/null; then commit="$commit-dirty"; fi
tag="$version-$variant"
start=$SECONDS

# ---- 1. the binary ---------------------------------------------------------------------------
if [ -n "${INFERD_BIN:-}" ]; then
  bin="$INFERD_BIN"
  [ -x "$bin" ] || die "INFERD_BIN=$bin is not an executable"
elif [ "$variant" = cpu ]; then
  cmake --preset image-cpu >/dev/null
  ${INFERD_BUILD_LOCK:+flock "$INFERD_BUILD_LOCK"} cmake --build --preset image-cpu -j "$(nproc)"
  bin=build/image-cpu/src/cli/inferd
else
  cmake --preset ci >/dev/null
  ${INFERD_BUILD_LOCK:+flock "$INFERD_BUILD_LOCK"} cmake --build --preset ci -j "$(nproc)" --target inferd
  bin=build/ci/src/cli/inferd
fi
if [ "$variant" = cpu ] && ldd "$bin" | grep -qE 'libcuda|libcudart|libcublas|libnccl'; then
  die "$bin links CUDA libraries; the cpu image takes a CPU-only build (preset image-cpu)"
fi
if [ "$variant" = cuda ] && ! ldd "$bin" | grep -q 'libcudart'; then
  die "$bin does not link libcudart: not a CUDA build (preset ci on a machine with nvcc)"
fi
log "$variant image $tag from $bin (commit $commit)"
start=$SECONDS  # the image itself, from here (the compile above may have waited on a lock)

# ---- 2. the Debian base (cached) -------------------------------------------------------------
mapfile -t runtime_pkgs < <(scripts/packages/read.sh runtime)
# The cache key: whatever changes the base (suite, mirror, package list, this script's trimming).
base_key="$( { echo "$suite $mirror"; printf '%s\n' "${runtime_pkgs[@]}"; sed -n '/^trim_rootfs()/,/^}/p' "$0"; } | sha256sum | cut -c1-16)"
base_tar="$cache/base-$suite-$base_key.tar"

trim_rootfs() {  # $1: a root file system; removes what a server container never reads
  local r="$1"
  # (/dev: the runtime provides it; debootstrap leaves device nodes there.)
  rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian "$r"/usr/share/linda \
    "$r"/usr/share/locale/* "$r"/usr/share/i18n "$r"/usr/share/bash-completion \
    "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
    "$r"/var/log/* "$r"/tmp/* "$r"/var/tmp/* "$r"/etc/hostname "$r"/etc/resolv.conf "$r"/dev/*
  # Docs: only the copyright files stay (the licences of what the image ships).
  find "$r"/usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
  find "$r"/usr/share/doc -mindepth 1 -type d -empty -delete
  : > "$r"/etc/machine-id
  # Packages installed later (FROM this image) stay trimmed too.
  cat > "$r"/etc/dpkg/dpkg.cfg.d/inferd-trim <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
  # The user the server runs as (uid/gid 1000), and the model volume it reads.
  grep -q '^inferd:' "$r"/etc/passwd || {
    echo 'inferd:x:1000:1000:inferd:/home/inferd:/usr/sbin/nologin' >> "$r"/etc/passwd
    echo 'inferd:x:1000:' >> "$r"/etc/group
    echo 'inferd:*:19000:0:99999:7:::' >> "$r"/etc/shadow
  }
  install -d -o 1000 -g 1000 "$r"/home/inferd "$r"/models
}

if [ -f "$base_tar" ]; then
  log "base: $base_tar (cached)"
else
  mkdir -p "$cache"
  base_start=$SECONDS
  tmp_base="$(mktemp -d "$cache/debootstrap.XXXXXX")"
  trap 'rm -rf "$tmp_base"' EXIT
  log "base: debootstrap --variant=minbase $suite from $mirror with ${runtime_pkgs[*]}"
  debootstrap --variant=minbase --include="$(IFS=,; echo "${runtime_pkgs[*]}")" \
    "$suite" "$tmp_base/rootfs" "$mirror" > "$tmp_base/debootstrap.log" 2>&1 ||
    { tail -20 "$tmp_base/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  trim_rootfs "$tmp_base/rootfs"
  tar --numeric-owner --xattrs -C "$tmp_base/rootfs" -cf "$base_tar.tmp" .
  rm -f "$cache/base-$suite-"*.tar  # bases of earlier package lists
  mv "$base_tar.tmp" "$base_tar"
  rm -rf "$tmp_base"
  trap - EXIT
  log "base: cached $base_tar (debootstrap and trimming: $((SECONDS - base_start)) s)"
fi

# ---- 3. assemble the layers with umoci -------------------------------------------------------
mkdir -p "$out"
work="$(mktemp -d "$out/work-$variant.XXXXXX")"
trap 'rm -rf "$work"' EXIT
layout="$work/oci"
bundle="$work/bundle"
rootfs="$bundle/rootfs"
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$bundle" >/dev/null
tar --numeric-owner --xattrs -C "$rootfs" -xf "$base_tar"
umoci repack --refresh-bundle --image "$layout:$tag" \
  --history.created_by "debootstrap --variant=minbase $suite + ${runtime_pkgs[*]} (scripts/build-image.sh)" "$bundle"

if [ "$variant" = cuda ]; then
  # The toolkit libraries the binary's ldd resolves under the toolkit (by soname), into the
  # image's /usr/local/cuda/lib64 (where NVIDIA's images keep them), found through ld.so.conf.d.
  install -d "$rootfs/usr/local/cuda/lib64"
  cuda_real="$(readlink -f "$cuda_dir")"
  mapfile -t cuda_libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
    while read -r soname path; do
      real="$(readlink -f "$path")"
      case "$real" in "$cuda_real"/*) echo "$soname $real" ;; esac
    done)
  [ ${#cuda_libs[@]} -gt 0 ] || die "ldd $bin resolves no library under $cuda_dir"
  for entry in "${cuda_libs[@]}"; do
    soname="${entry%% *}"
    cp "${entry#* }" "$rootfs/usr/local/cuda/lib64/$soname"
    log "cuda: $soname ($(du -m "${entry#* }" | cut -f1) MB)"
  done
  echo /usr/local/cuda/lib64 > "$rootfs/etc/ld.so.conf.d/000-cuda.conf"
  chroot "$rootfs" /sbin/ldconfig
  umoci repack --refresh-bundle --image "$layout:$tag" \
    --history.created_by "CUDA toolkit libraries named by ldd: ${cuda_libs[*]%% *}" "$bundle"
fi

install -d "$rootfs/usr/local/bin" "$rootfs/usr/share/inferd/models"
install -m 0755 "$bin" "$rootfs/usr/local/bin/inferd"
strip --strip-unneeded "$rootfs/usr/local/bin/inferd"
cp -r models/demo "$rootfs/usr/share/inferd/models/demo"
chmod -R a+rX "$rootfs/usr/share/inferd"

# Nothing missing: ldd inside the root file system (its own loader, its own libraries).
ldd_out="$(chroot "$rootfs" /usr/bin/ldd /usr/local/bin/inferd)"
if grep -q 'not found' <<<"$ldd_out"; then
  echo "$ldd_out" >&2
  die "libraries missing in the image (above); add their packages to scripts/packages/runtime.txt"
fi
# Every library outside glibc and the CUDA toolkit comes from runtime.txt, the list the
# Containerfile installs too (a package missing from the list would go unnoticed here otherwise,
# since minbase may hold it by chance).
# ... or from a package those depend on (apt installs it with them in the Containerfile too):
# the closure of runtime.txt under Depends / Pre-Depends, as the image's dpkg records them.
declare -A wanted=()
queue=("${runtime_pkgs[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  p="${queue[0]}"
  queue=("${queue[@]:1}")
  if [ -n "${wanted[$p]:-}" ]; then continue; fi
  wanted[$p]=1
  deps="$(chroot "$rootfs" dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p" 2>/dev/null || true)"
  for d in $(tr ',|' '\n\n' <<<"$deps" | sed -E 's/\(.*\)//; s/:any//; s/^ +//; s/ +$//' | grep -v '^$'); do
    if [ -z "${wanted[$d]:-}" ]; then queue+=("$d"); fi
  done
done
while read -r soname path; do
  case "$path" in /usr/local/cuda/*) continue ;; esac
  real="$(chroot "$rootfs" readlink -f "$path")"
  # dpkg records some libraries under /lib (merged /usr: the same file).
  pkg="$(chroot "$rootfs" dpkg -S "$real" 2>/dev/null || chroot "$rootfs" dpkg -S "${real#/usr}" 2>/dev/null)" ||
    die "$soname ($real): no Debian package in the image owns it"
  pkg="${pkg%%:*}"
  [ "$pkg" = libc6 ] && continue
  [ -n "${wanted[$pkg]:-}" ] ||
    die "$soname comes from $pkg, which neither scripts/packages/runtime.txt nor its packages' dependencies name"
done < <(awk '$2 == "=>" {print $1, $3}' <<<"$ldd_out")
log "ldd in the image: $(grep -c '=>' <<<"$ldd_out") libraries, none missing"
chroot "$rootfs" /usr/local/bin/inferd --help >/dev/null || die "inferd --help fails inside the image"

umoci repack --refresh-bundle --image "$layout:$tag" \
  --history.created_by "inferd $version ($commit) and the demo model (scripts/build-image.sh)" "$bundle"

created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
description="inferd: an OpenAI-compatible LLM inference server ($variant)"
config_args=(
  --config.user inferd --config.workingdir /home/inferd
  --config.entrypoint /usr/local/bin/inferd --config.cmd serve
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  --config.env INFERD_DEFAULT_MODEL=/usr/share/inferd/models/demo
  --config.exposedports 8000/tcp --config.volume /models --config.stopsignal SIGTERM
  --config.label org.opencontainers.image.title=inferd
  --config.label "org.opencontainers.image.description=$description"
  --config.label "org.opencontainers.image.version=$version"
  --config.label "org.opencontainers.image.revision=$commit"
  --config.label "org.opencontainers.image.source=${INFERD_SOURCE_URL:-https://github.com/inferd/inferd}"
  --config.label "org.opencontainers.image.created=$created"
  --config.label "org.opencontainers.image.base.name=debian:$suite (debootstrap --variant=minbase)"
  --config.label "io.inferd.variant=$variant"
  --created "$created" --history.created_by "umoci config (scripts/build-image.sh)"
)
if [ "$variant" = cuda ]; then
  # What nvidia-container-toolkit reads: every GPU, the compute libraries and nvidia-smi.
  config_args+=(--config.env NVIDIA_VISIBLE_DEVICES=all
    --config.env NVIDIA_DRIVER_CAPABILITIES=compute,utility)
fi
umoci config --image "$layout:$tag" "${config_args[@]}"
umoci gc --layout "$layout"

archive="$out/inferd-$variant.oci.tar"
unpacked_mb="$(du -sm --apparent-size "$rootfs" | cut -f1)"
tar --numeric-owner --owner=0 --group=0 --sort=name -C "$layout" -cf "$archive.tmp" .
mv "$archive.tmp" "$archive"
if [ "${INFERD_IMAGE_KEEP_ROOTFS:-0}" = 1 ]; then
  rm -rf "$out/rootfs-$variant"
  mv "$rootfs" "$out/rootfs-$variant"
  log "root file system kept in $out/rootfs-$variant"
fi
if command -v skopeo >/dev/null; then
  skopeo inspect "oci-archive:$archive" >/dev/null || die "skopeo cannot read $archive"
fi

archive_mb="$(( $(stat -c %s "$archive") / 1000000 ))"
model_mb="$(du -sm --apparent-size models/demo | cut -f1)"
log "wrote $archive (image inferd:$tag): $archive_mb MB archive (gzip layers), $unpacked_mb MB unpacked" \
  "(of which the demo model $model_mb MB) in $((SECONDS - start)) s"
log "push: skopeo copy oci-archive:$archive docker://REGISTRY/inferd:$tag"
