#!/usr/bin/env bash
# Issue 15 on the GPU machine's CPU (16 cores, 128 GiB): the 8B-shaped compressed-tensors export
# and `latmix verify` of it, with peak anonymous memory (tests/bench/peak_rss.py). Two steps so
# that each device command stays under its 10-minute limit (the machine stays warm between them):
#   bash scripts/device/bigmodel_cpu.sh export OUT   # builds, generates /tmp/llama-8b, exports
#   bash scripts/device/bigmodel_cpu.sh verify OUT   # latmix verify of /tmp/ct-8b
set -euo pipefail
STEP=$1; OUT=$2
mkdir -p "$OUT"
source scripts/device/deps.sh
PEAK="python3 tests/bench/peak_rss.py"
TOK=resources/models/gutenberg-llama-6M/tokenizer.json
TEXT=resources/calibration/pride_and_prejudice_ch1-6.txt
L=/tmp/build-cuda/engine/latmix
if [ "$STEP" = export ]; then
  cuda_build "$PWD" "$OUT" latmix latmix-engine make_random_model latmix_model_tests
  /tmp/build-cuda/tests/latmix_model_tests --gtest_filter='MappedModel.*:MemoryCheck.*:ExportGutenberg.Hadamard*' 2>&1 | grep -E '^\[ ' | tail -30 || true
  [ -d /tmp/llama-8b ] || $PEAK --label "8b generate" -- /tmp/build-cuda/tests/bench/make_random_model /tmp/llama-8b --shape 8b --tokenizer $TOK
  rm -rf /tmp/ct-8b
  $PEAK --label "8b export rtn compressed-tensors" -- $L export --model /tmp/llama-8b --method rtn --quant w=mxfp4,a=none \
    --as compressed-tensors --verify-data $TEXT --verify-seqlen 256 --verify-windows 2 --quiet --out /tmp/ct-8b 2>&1 | grep -vE "^\s*$" | tail -25
else
  $PEAK --label "8b verify compressed-tensors" -- $L verify /tmp/ct-8b 2>&1 | tail -25
fi
