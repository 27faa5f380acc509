#!/usr/bin/env bash
# Issue 15's studio benchmark (never run by ctest): the studio window under Xvfb on a big model folder
# (opened memory-mapped), scripted by studio_bigmodel_bench: open, the Overview's weight statistics,
# the explorer calibrated on SAMPLES x SEQLEN tokens; GUI event-loop lateness p50/p99/max per step and
# throughout, each step's wall time, and the peak anonymous memory (RssAnon, tests/bench/peak_rss.py).
#   tests/bench/studio_bigmodel.sh BUILD_DIR MODEL [SAMPLES=2] [SEQLEN=128] [learn]
# Make the folder first, e.g. BUILD_DIR/tests/bench/make_random_model /tmp/s6/llama-8b --shape 8b
#   --tokenizer resources/models/gutenberg-llama-6M/tokenizer.json
set -euo pipefail
BUILD=$1; MODEL=$2; SAMPLES=${3:-2}; SEQLEN=${4:-128}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
export XDG_CONFIG_HOME=$(mktemp -d) XDG_DATA_HOME=$(mktemp -d)   # fresh settings, no recovery copy
trap 'rm -rf "$XDG_CONFIG_HOME" "$XDG_DATA_HOME"' EXIT
python3 "$SRC/tests/bench/peak_rss.py" --label "studio $(basename "$MODEL")" -- \
  xvfb-run -a -s "-screen 0 1280x720x24" "$BUILD/tests/bench/studio_bigmodel_bench" "$MODEL" "$SAMPLES" "$SEQLEN" "${@:5}"
