#!/usr/bin/env bash
# Builds LATMiX Studio and runs the whole test suite (labels unit, model, gui, package; fuzz corpus
# replayed; one ctest entry per GoogleTest case). The release test preset leaves out label bench
# (benchmarks that report, never gate): `ctest --preset bench` runs those.
# On a fresh Debian 12 machine this is all the set-up needed: it installs the packages first.
# Shared data (checkpoints, evaluation text) is read from ../shared/data or $LATMIX_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"
ctest --preset release -j "$(nproc)" "$@"
