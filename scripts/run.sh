#!/usr/bin/env bash
# Builds LATMiX Studio and runs the main job on the bundled model (resources/models/gutenberg-llama-6M):
# with a display, the studio opens on it; without one (a server, ssh), the same engine runs headless:
# model summary, a greedy continuation, and perplexity on the bundled calibration sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"
MODEL=resources/models/gutenberg-llama-6M
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${LATMIX_HEADLESS:-0}" != 1 ]; then
  exec build/release/app/latmix-studio --model "$MODEL" "$@"
fi
echo "No display: running the headless pipeline (set DISPLAY to open the studio)."
LATMIX=build/release/cli/latmix
"$LATMIX" info --model "$MODEL"
echo
"$LATMIX" generate --model "$MODEL" --prompt "It was a dark and stormy night; the rain" --max-new 40
echo
"$LATMIX" ppl --model "$MODEL" --data resources/calibration/pride_and_prejudice_ch1-6.txt --seqlen 256
