#!/usr/bin/env bash
# Sourced by the scripts in scripts/device/: unpacks the carried Debian -dev packages
# (.device/debs/*.deb) into /tmp/deps, points pkg-config and the loader there, and sets
# TORCH_PREFIX (that machine's pip LibTorch) and GEN (Ninja when present).
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
