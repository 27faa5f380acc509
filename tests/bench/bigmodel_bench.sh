#!/usr/bin/env bash
# Issue 15's benchmark (never run by ctest): random-weight Llama folders of real shapes, then the
# commands on them with their peak anonymous memory (RssAnon, tests/bench/peak_rss.py), RSS and
# wall time. The folders are big (1B: 2.5 GB, 8B: 16 GB): WORK needs the room; --keep keeps them.
#   tests/bench/bigmodel_bench.sh BUILD_DIR WORK_DIR SHAPE... [--keep]    (SHAPE: 1b or 8b)
# Prints one "PEAK <label>: ..." line per command on stderr; docs/benchmarks.md records them.
set -u
BUILD=$1; WORK=$2; shift 2
KEEP=0; SHAPES=()
for a in "$@"; do [ "$a" = --keep ] && KEEP=1 || SHAPES+=("$a"); done
SRC=$(cd "$(dirname "$0")/../.." && pwd)
LATMIX=$BUILD/cli/latmix
GEN=$BUILD/tests/bench/make_random_model
PEAK="python3 $SRC/tests/bench/peak_rss.py"
TEXT=$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt
TOK=$SRC/resources/models/gutenberg-llama-6M/tokenizer.json
mkdir -p "$WORK"
run() { local label=$1; shift; echo "== $label: $*" >&2; $PEAK --label "$label" -- "$@"; }
for S in "${SHAPES[@]}"; do
  M=$WORK/llama-$S
  [ -d "$M" ] || run "$S generate" "$GEN" "$M" --shape "$S" --tokenizer "$TOK"
  run "$S info" "$LATMIX" info --model "$M" >/dev/null
  run "$S stats mapped" "$LATMIX" stats --model "$M" --data "$TEXT" --samples 4 --seqlen 256 --out "$WORK/stats-$S.json" >/dev/null
  run "$S ppl mapped" "$LATMIX" ppl --model "$M" --data "$TEXT" --max-windows 2
  if [ "$S" = 1b ]; then  # today's path for comparison: every weight fp32 in memory
    run "$S stats memory" "$LATMIX" stats --model "$M" --data "$TEXT" --samples 4 --seqlen 256 --weights memory --out "$WORK/stats-$S-memory.json" >/dev/null
    cmp "$WORK/stats-$S.json" "$WORK/stats-$S-memory.json" && echo "stats: mapped == memory" >&2
    run "$S ppl memory" "$LATMIX" ppl --model "$M" --data "$TEXT" --max-windows 2 --weights memory
    run "$S export gptq compressed-tensors" "$LATMIX" export --model "$M" --method gptq --quant w=mxfp4,a=none,weights=gptq \
      --calib "$TEXT" --calib-samples 8 --calib-seqlen 256 --as compressed-tensors --out "$WORK/ct-gptq-$S" >/dev/null
    rm -rf "$WORK/ct-gptq-$S"
  fi
  run "$S export rtn compressed-tensors" "$LATMIX" export --model "$M" --method rtn --quant w=mxfp4,a=none \
    --as compressed-tensors --out "$WORK/ct-$S" | grep -E "^(ok|FAIL)|written"
  rm -rf "$WORK/ct-$S"
  run "$S export rtn folded-bf16" "$LATMIX" export --model "$M" --method rtn --quant w=mxfp4,a=none \
    --as folded-bf16 --verify-seqlen 256 --verify-windows 1 --out "$WORK/f-$S" | grep -E "^(ok|FAIL)|written"
  rm -rf "$WORK/f-$S"
  [ "$KEEP" = 1 ] || rm -rf "$M"
done
