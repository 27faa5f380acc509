#!/usr/bin/env bash
# Installs every Debian package that LATMiX Studio's build and tests need. Idempotent.
# Usage: sudo scripts/setup.sh   (root needed for apt-get; on this project's machines you are root)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git python3 libgtest-dev
  libtorch-dev libopenblas0-pthread
  nlohmann-json3-dev libsentencepiece-dev libpcre2-dev libutf8proc-dev
  qt6-base-dev libqt6opengl6-dev libquazip1-qt6-dev libimgui-dev libgl-dev
  xvfb xauth libgl1-mesa-dri fonts-dejavu-core
  clang libclang-rt-14-dev
  dpkg-dev desktop-file-utils file
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
echo "setup: done"
