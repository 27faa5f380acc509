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
# One more ctest job than cores: many entries wait part of their time (a server's socket, a child
# process, Xvfb, the zygote's fork), and a third job fills those gaps. The whole suite on this 2-core
# machine (docs/benchmarks.md, session 15): -j 2 256.1 and 263.9 s, -j 3 238.6 and 252.9 s, -j 4 247.1 s.
ctest --preset release -j "$(( $(nproc) + 1 ))" "$@"
