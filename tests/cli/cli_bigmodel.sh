#!/usr/bin/env bash
# Issue 15's streaming paths from the command line, on small models: the random-weight generator
# writes a loadable folder (atomically, never over an existing one), and --weights mapped (the
# default) gives exactly what --weights memory gives for logits, ppl, stats and rtn/gptq exports.
source "$(dirname "$0")/lib.sh"
LATMIX=$1; GEN=$2; SRC=$3
M6=$SRC/resources/models/gutenberg-llama-6M
TEXT=$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt
same() {  # same FILE_A FILE_B WHAT
  if cmp -s "$1" "$2"; then PASSED=$((PASSED + 1)); else echo "FAIL: $3 differ: $1 $2"; FAILED=$((FAILED + 1)); fi
}

# The generator: a tiny Llama-3-style folder with the bundled model's tokenizer.
expect 0 "$GEN" "$OUT/tiny" --shape tiny --vocab 8192 --tokenizer "$M6/tokenizer.json" --seed 3
expect 1 "$GEN" "$OUT/tiny" --shape tiny;                          contains stderr "already exists"
expect 2 "$GEN" "$OUT/other"
if ls -a "$OUT" | grep -q '\.tmp-'; then echo "FAIL: generator left a temp folder"; FAILED=$((FAILED + 1)); fi
[ -e "$OUT/other" ] && { echo "FAIL: usage error wrote a folder"; FAILED=$((FAILED + 1)); }
expect 0 "$LATMIX" info --model "$OUT/tiny" --json
contains stdout '"BF16": 21';  contains stdout '"layers": 2';  contains stdout '"type": "llama3"'
expect 0 "$GEN" "$OUT/tiny16" --shape tiny --vocab 8192 --dtype fp16 --layers 3 --tokenizer "$M6/tokenizer.json"
expect 0 "$LATMIX" info --model "$OUT/tiny16" --json;              contains stdout '"F16": 30'

for M in "$OUT/tiny" "$OUT/tiny16" "$M6"; do
  for W in mapped memory; do
    expect 0 "$LATMIX" ppl --model "$M" --data "$TEXT" --seqlen 64 --max-windows 6 --batch 4 --weights $W --json
    grep -E '"(perplexity|mean_nll)"' "$OUT/stdout" > "$OUT/ppl-$W"
    expect 0 "$LATMIX" stats --model "$M" --data "$TEXT" --samples 3 --seqlen 64 --batch 2 --point residual,down_in \
      --weights $W --out "$OUT/stats-$W.json"
    expect 0 "$LATMIX" logits --model "$M" --ids 1,2,3,4,5,6,7 --weights $W --out "$OUT/logits-$W.safetensors"
  done
  same "$OUT/ppl-mapped" "$OUT/ppl-memory" "ppl of $M"
  same "$OUT/stats-mapped.json" "$OUT/stats-memory.json" "stats of $M"
  same "$OUT/logits-mapped.safetensors" "$OUT/logits-memory.safetensors" "logits of $M"
done
expect 2 "$LATMIX" ppl --model "$M6" --data "$TEXT" --weights disk;   contains stderr "--weights: expected auto, mapped or memory"

# A model that cannot fit in memory is refused before anything is read, with the numbers (a copy of
# the 6M folder whose config claims 10^5 layers); mapped (the CPU default) it is not refused.
mkdir -p "$OUT/huge" && cp "$M6"/* "$OUT/huge/"
python3 - "$OUT/huge/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["num_hidden_layers"] = 100000
open(sys.argv[1], "w").write(json.dumps(c))
PY
expect 1 "$LATMIX" ppl --model "$OUT/huge" --data "$TEXT" --weights memory
contains stderr "huge: needs about";  contains stderr "GiB of host memory (MemAvailable)";  contains stderr "--weights mapped"
expect 1 "$LATMIX" ppl --model "$OUT/huge" --data "$TEXT"
contains stderr "tensor 'model.layers.6."
rm -rf "$OUT/huge"

# Exports: streamed (mapped) and held (memory) write the same tensors.
for Q in "w=mxfp4,a=none" "w=mxfp4,a=none,weights=gptq"; do
  for KIND in compressed-tensors folded-bf16; do
    for W in mapped memory; do
      CAL=(); [[ $Q == *gptq* ]] && CAL=(--calib "$TEXT" --calib-samples 4 --calib-seqlen 64)
      expect 0 "$LATMIX" export --model "$OUT/tiny" --method "$([[ $Q == *gptq* ]] && echo gptq || echo rtn)" \
        --quant "$Q" --as $KIND "${CAL[@]}" --weights $W --verify-seqlen 64 --verify-windows 2 --out "$OUT/x-$W"
      contains stdout "ok    "
    done
    grep -q "streamed: checked" "$OUT/x-mapped/manifest.json" && PASSED=$((PASSED + 1)) || { echo "FAIL: $Q $KIND not streamed"; FAILED=$((FAILED + 1)); }
    same "$OUT/x-mapped/model.safetensors" "$OUT/x-memory/model.safetensors" "export $Q $KIND"
    same "$OUT/x-mapped/config.json" "$OUT/x-memory/config.json" "export config $Q $KIND"
    expect 0 "$LATMIX" verify "$OUT/x-mapped"
    rm -rf "$OUT/x-mapped" "$OUT/x-memory"
  done
done
finish
