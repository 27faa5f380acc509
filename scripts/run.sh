#!/usr/bin/env bash
# Builds LATMiX Studio and runs the main job on the bundled model (resources/models/gutenberg-llama-6M):
# model summary, a greedy continuation, and perplexity on the bundled calibration sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)"
LATMIX=build/release/engine/latmix
MODEL=resources/models/gutenberg-llama-6M
"$LATMIX" info --model "$MODEL"
echo
"$LATMIX" generate --model "$MODEL" --prompt "It was a dark and stormy night; the rain" --max-new 40
echo
"$LATMIX" ppl --model "$MODEL" --data resources/calibration/pride_and_prejudice_ch1-6.txt --seqlen 256
