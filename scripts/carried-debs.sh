# Sourced by the GPU-machine scripts (gpu-check.sh, gpu-ab.sh, sleep-gpu-check.sh,
# multimodel-gpu-check.sh): the GPU machine lacks some -dev packages CMake requires (PCRE2,
# utf8proc, libcurl, OpenSSL, libjpeg-turbo, libpng, libwebp, yaml-cpp; Ubuntu's yaml-cpp, when
# there is one, is libyaml-cpp0.8, so Debian's runtime package libyaml-cpp0.7 is carried with its
# -dev). When .carry/debs/ holds Debian packages (fetched on the dev machine, not committed:
#   mkdir -p .carry/debs && cd .carry/debs &&
#   apt-get download libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2 libcurl4-openssl-dev \
#     libssl-dev libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16 libwebp-dev \
#     libyaml-cpp-dev libyaml-cpp0.7 )
# they are unpacked into a private prefix (never into /), and CARRIED_CMAKE_ARGS points CMake at it
# (empty when nothing is carried). PKG_CONFIG_PATH and LD_LIBRARY_PATH are exported.
CARRIED_CMAKE_ARGS=()
if compgen -G ".carry/debs/*.deb" >/dev/null; then
  carried_deps=/tmp/inferd-deps
  mkdir -p "$carried_deps"
  for f in .carry/debs/*.deb; do dpkg-deb -x "$f" "$carried_deps"; done
  for pc in "$carried_deps"/usr/lib/*/pkgconfig/*.pc; do
    sed -i "s|^prefix=/usr\$|prefix=$carried_deps/usr|" "$pc"
  done
  carried_libdir=$(echo "$carried_deps"/usr/lib/*-linux-gnu)
  # A -dev package carried without its runtime package (libcurl4-openssl-dev, libssl-dev: the
  # machine has libcurl.so.4 and libssl.so.3 of its own) leaves a dangling libX.so link: point it
  # at the machine's library of the same soname.
  for l in "$carried_libdir"/*.so; do
    [ -L "$l" ] && [ ! -e "$l" ] || continue
    soname=$(readlink "$l" | sed -E 's/^(.*\.so\.[0-9]+).*/\1/')
    for d in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64; do
      if [ -e "$d/$soname" ]; then ln -sf "$d/$soname" "$l"; break; fi
    done
    [ -e "$l" ] || echo "carried-debs: $(basename "$l") -> $(readlink "$l"): no $soname on this machine"
  done
  export PKG_CONFIG_PATH="$carried_libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$carried_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  CARRIED_CMAKE_ARGS=("-DCMAKE_PREFIX_PATH=$carried_deps/usr")
  echo "using carried packages: $(ls .carry/debs | tr '\n' ' ')"
fi
