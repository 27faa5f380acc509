#!/usr/bin/env bash
# Issue 8's real client, on the GPU machine: builds the `latmix` CLI (CPU engine; no tests, no CUDA
# kernels), exports gutenberg-llama-22M with an MR-GPTQ-style fixed plan (block Hadamard 32 on the
# residual stream, the values and online before down_proj; written by the Python script, not latmix)
# as folded-bf16 and as compressed-tensors, runs `latmix eval` on the folded folder, then
# tests/golden/export_transformers_check.py: transformers' perplexity of the same folder (must match
# within 0.5%) and an independent decode of the packed MXFP4 tensors against the folded weights.
# Carry: .device/debs (Debian -dev packages) and .device/exp: gutenberg-llama-22M.tar.xz (the model
# folder, xz: 30.9 MB instead of 44, to fit what a run can carry) and pg84_frankenstein.txt.gz.
# Writes its results under $OUT (or /tmp/export-client).
# Usage (from the repository root): bash scripts/device/export_client.sh
set -euo pipefail
OUT=${OUT:-/tmp/export-client}
mkdir -p "$OUT"
source scripts/device/deps.sh
cmake -S . -B /tmp/build-export -G "$GEN" -DCMAKE_BUILD_TYPE=Release -DLATMIX_BUILD_GUI=OFF -DLATMIX_BUILD_TESTS=OFF \
  -DLATMIX_CUDA_KERNELS=OFF -DLATMIX_WERROR=OFF -DLATMIX_USE_CCACHE=OFF \
  -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$DEPS/usr;$DEPS/usr/lib/x86_64-linux-gnu/cmake" >/dev/null
time cmake --build /tmp/build-export -j "$(nproc)" --target latmix >/dev/null
L=/tmp/build-export/cli/latmix
M=/tmp/gutenberg-llama-22M
mkdir -p "$M" && python3 -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" .device/exp/gutenberg-llama-22M.tar.xz "$M"
TEXT=/tmp/pg84_frankenstein.txt
gunzip -c .device/exp/pg84_frankenstein.txt.gz > "$TEXT"
Q=w=mxfp4,a=mxfp4
rm -rf /tmp/x-folded /tmp/x-ct  # a warm machine keeps /tmp between runs
echo "== plan"; python3 tests/golden/export_transformers_check.py make-plan --model "$M" --out /tmp/plan
echo "== latmix export folded-bf16"
time $L export --model "$M" --method mr-gptq --transforms /tmp/plan --quant $Q --as folded-bf16 --out /tmp/x-folded \
  --verify-data "$TEXT" --verify-seqlen 512 --verify-windows 16 | tee "$OUT/export_folded.txt"
echo "== latmix export compressed-tensors"
time $L export --model "$M" --method mr-gptq --transforms /tmp/plan --quant $Q --as compressed-tensors --out /tmp/x-ct \
  | tee "$OUT/export_ct.txt"
cp /tmp/x-folded/manifest.json "$OUT/manifest_folded.json"
cp /tmp/x-ct/config.json "$OUT/config_ct.json"
echo "== latmix verify"; $L verify /tmp/x-folded --no-ppl | tail -3; $L verify /tmp/x-ct | tail -2
echo "== latmix eval on the folded folder"
time $L eval --model /tmp/x-folded --tasks "text:$TEXT" --seqlen 512 --device cuda --json --out "$OUT/latmix_eval.json" >/dev/null
python3 -c "import json;r=json.load(open('$OUT/latmix_eval.json'))['results'][0];print(r['metrics'],r['convention'])"
echo "== transformers and the independent MXFP4 decode"
time python3 tests/golden/export_transformers_check.py check --folded /tmp/x-folded --packed /tmp/x-ct --text "$TEXT" \
  --seqlen 512 --latmix-json "$OUT/latmix_eval.json" --out "$OUT/export_client.json"
