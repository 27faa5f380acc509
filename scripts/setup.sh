#!/usr/bin/env bash
# Installs every Debian package that LATMiX Studio's build and tests need. Idempotent.
# Usage: sudo scripts/setup.sh   (root needed for apt-get; on this project's machines you are root)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 libgtest-dev
  libtorch-dev libopenblas0-pthread
  nlohmann-json3-dev libpcre2-dev libutf8proc-dev libssl-dev libpng-dev zlib1g-dev libcpp-httplib-dev libgloo-dev
  qt6-base-dev libqt6opengl6-dev libquazip1-qt6-dev libimgui-dev libgl-dev
  xvfb xauth libgl1-mesa-dri fonts-dejavu-core
  clang libclang-rt-14-dev
  dpkg-dev desktop-file-utils file procps
  nodejs
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm: Debian's package, unless the installed nodejs brings its own (NodeSource's conflicts with it).
if ! command -v npm >/dev/null && ! dpkg-query -W -f='${Status}' npm 2>/dev/null | grep -q "install ok installed"; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# llama.cpp for the GGUF test (tests/llamacpp): node-llama-cpp's prebuilt CPU binaries from npm,
# into the ignored .cache/node-llama-cpp of this clone (~85 MB). --omit=optional skips the GPU
# builds; the linux-x64 package is the CPU build. Idempotent: an existing install is kept.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NLC=${LATMIX_NODE_LLAMA_CPP_DIR:-$ROOT/.cache/node-llama-cpp}
NLC_VERSION=3.22.1
if [ -f "$NLC/node_modules/node-llama-cpp/package.json" ] &&
   grep -q "\"version\": \"$NLC_VERSION\"" "$NLC/node_modules/node-llama-cpp/package.json" &&
   [ -d "$NLC/node_modules/@node-llama-cpp/linux-x64" ]; then
  echo "setup: node-llama-cpp $NLC_VERSION already installed in $NLC"
else
  echo "setup: installing node-llama-cpp $NLC_VERSION (CPU build) into $NLC"
  mkdir -p "$NLC"
  [ -f "$NLC/package.json" ] || echo '{"name": "latmix-llamacpp-runtime", "private": true}' >"$NLC/package.json"
  (cd "$NLC" && npm install --omit=optional --no-audit --no-fund \
      "node-llama-cpp@$NLC_VERSION" "@node-llama-cpp/linux-x64@$NLC_VERSION")
fi
echo "setup: done"
