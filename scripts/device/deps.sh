#!/usr/bin/env bash
# Sourced by the scripts in scripts/device/: unpacks the carried Debian -dev packages
# (.device/debs/*.deb) into /tmp/deps, points pkg-config and the loader there, and sets
# TORCH_PREFIX (that machine's pip LibTorch) and GEN (Ninja when present).
#
# The packages to carry, each -dev package with its runtime library (that machine has no Debian
# archive). Fetch them here, from the repository root, before a run:
#   mkdir -p .device/debs && (cd .device/debs && apt-get download $(bash scripts/device/deps.sh --list))
DEVICE_DEBS=(
  nlohmann-json3-dev
  libpcre2-dev libpcre2-8-0
  libutf8proc-dev libutf8proc2
  libssl-dev libssl3
  libpng-dev libpng16-16
  zlib1g-dev zlib1g
  libcpp-httplib-dev libcpp-httplib0.11
  libbrotli-dev libbrotli1
  libgloo-dev
)
if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${1:-}" = "--list" ]; then echo "${DEVICE_DEBS[*]}"; exit 0; fi
DEPS=/tmp/deps
mkdir -p "$DEPS"
for deb in .device/debs/*.deb; do dpkg -x "$deb" "$DEPS"; done
for pc in "$DEPS"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc "$DEPS"/usr/share/pkgconfig/*.pc; do
  [ -f "$pc" ] && sed -i "s|^prefix=.*|prefix=$DEPS/usr|" "$pc"
done
export PKG_CONFIG_PATH="$DEPS/usr/lib/x86_64-linux-gnu/pkgconfig:$DEPS/usr/share/pkgconfig"
export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
TORCH_PREFIX=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
GEN="Unix Makefiles"; command -v ninja >/dev/null && GEN=Ninja

# timeline FILE: from now, `log MESSAGE` prints "[Ns] MESSAGE" (seconds since this call) and
# appends it to FILE.
timeline() { T0=$(date +%s); TIMELINE=$1; mkdir -p "$(dirname "$1")"; }
log() { echo "[$(( $(date +%s) - ${T0:-$(date +%s)} ))s] $*" | tee -a "${TIMELINE:-/dev/null}"; }

# cuda_build SRC LOGDIR TARGET...: configures and builds SRC into /tmp/build-cuda against that
# machine's LibTorch (GUI off, nvcc for the CUDA kernels; warnings not errors: its gcc 13 reports
# false positives inside LibTorch 2.11 headers). Logs in LOGDIR; on failure prints the errors and
# returns 1.
cuda_build() {
  local src=$1 logs=$2; shift 2
  local nvcc
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake -S "$src" -B /tmp/build-cuda -G "$GEN" -DCMAKE_BUILD_TYPE=Release -DLATMIX_BUILD_GUI=OFF \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS/usr;$DEPS/usr/lib/x86_64-linux-gnu/cmake" \
    -DLATMIX_USE_CCACHE=OFF -DLATMIX_WERROR=OFF -DCMAKE_CUDA_COMPILER="$nvcc" >"$logs/configure.log" 2>&1 \
    || { tail -30 "$logs/configure.log"; return 1; }
  cmake --build /tmp/build-cuda -j "$(nproc)" --target "$@" >"$logs/build.log" 2>&1 \
    || { grep -E "error" -A5 "$logs/build.log" | head -60; return 1; }
}
