#!/usr/bin/env bash
# Issue 15 on the GPU machine's CPU (16 cores, 128 GiB, LibTorch 2.11). Each step fits one device
# command (10 minutes; the machine stays warm, and /tmp with it, between commands). Every log goes
# to OUT (so that a command cut at its limit still returns what it did); the slow commands run under
# `timeout`. Carry .device/debs.
#   bash scripts/device/bigmodel_cpu.sh build OUT    # builds into /tmp/build-cuda; the model tests
#                                                    # that map and export, one process per suite,
#                                                    # with their exit status (a crash at exit shows)
#   bash scripts/device/bigmodel_cpu.sh ppl1b OUT    # a 1B-shaped folder, then `latmix ppl` mapped
#                                                    # and --weights memory, alternated twice, pinned
#                                                    # to 2 cores and 2 threads (this machine's size)
#   bash scripts/device/bigmodel_cpu.sh export OUT   # the 8B-shaped folder and its compressed-tensors
#   bash scripts/device/bigmodel_cpu.sh verify OUT   # export; `latmix verify` of it
set -uo pipefail
STEP=$1; OUT=$2
mkdir -p "$OUT"
source scripts/device/deps.sh
PEAK="python3 tests/bench/peak_rss.py"
TOK=resources/models/gutenberg-llama-6M/tokenizer.json
TEXT=resources/calibration/pride_and_prejudice_ch1-6.txt
L=/tmp/build-cuda/cli/latmix
MAKE_MODEL=/tmp/build-cuda/tests/bench/make_random_model
case "$STEP" in
  build)
    cuda_build "$PWD" "$OUT" latmix latmix-engine make_random_model latmix_model_tests || exit 1
    for f in 'MappedModel.*' 'MemoryCheck.*' 'ExportGutenberg.Hadamard*'; do
      timeout 300 /tmp/build-cuda/tests/latmix_model_tests --gtest_filter="$f" >"$OUT/tests-${f%%.*}.log" 2>&1
      echo "latmix_model_tests --gtest_filter='$f': exit $?" | tee -a "$OUT/summary.txt"
      grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$OUT/tests-${f%%.*}.log" | tee -a "$OUT/summary.txt"
    done ;;
  ppl1b)
    [ -d /tmp/llama-1b ] || $PEAK --label "1b generate" -- $MAKE_MODEL /tmp/llama-1b --shape 1b --tokenizer $TOK >"$OUT/gen1b.log" 2>&1
    cat /tmp/llama-1b/model.safetensors >/dev/null   # both paths start from a warm page cache
    for round in 1 2; do
      for w in auto memory; do
        OMP_NUM_THREADS=2 timeout 200 taskset -c 0,1 $PEAK --label "1b ppl $w (round $round)" -- \
          $L ppl --model /tmp/llama-1b --data $TEXT --max-windows 2 --weights $w --threads 2 \
          >"$OUT/ppl-$w-$round.log" 2>&1
        grep -E "evaluated in|^PEAK|^ppl" "$OUT/ppl-$w-$round.log" | tee -a "$OUT/summary.txt"
      done
    done ;;
  export)
    [ -d /tmp/llama-8b ] || timeout 280 $PEAK --label "8b generate" -- $MAKE_MODEL /tmp/llama-8b --shape 8b --tokenizer $TOK >"$OUT/gen8b.log" 2>&1
    tail -1 "$OUT/gen8b.log" | tee -a "$OUT/summary.txt"
    rm -rf /tmp/ct-8b
    timeout 300 $PEAK --label "8b export rtn compressed-tensors" -- $L export --model /tmp/llama-8b --method rtn \
      --quant w=mxfp4,a=none --as compressed-tensors --verify-data $TEXT --verify-seqlen 256 --verify-windows 2 \
      --quiet --out /tmp/ct-8b >"$OUT/export.log" 2>&1
    echo "export: exit $?" | tee -a "$OUT/summary.txt"; tail -5 "$OUT/export.log" | tee -a "$OUT/summary.txt" ;;
  verify)
    timeout 540 $PEAK --label "8b verify compressed-tensors" -- $L verify /tmp/ct-8b >"$OUT/verify.log" 2>&1
    echo "verify: exit $?" | tee -a "$OUT/summary.txt"; tail -8 "$OUT/verify.log" | tee -a "$OUT/summary.txt" ;;
  *) echo "unknown step $STEP" >&2; exit 2 ;;
esac
