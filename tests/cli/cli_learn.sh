#!/usr/bin/env bash
# `latmix learn` and `latmix compare` on the bundled gutenberg-llama-6M: every preset runs end to end
# from the command line (few steps), events as JSON lines, checkpoint + resume, fingerprinted
# transforms that export accepts, usage errors, and a comparison report with its plots.
source "$(dirname "$0")/lib.sh"
LATMIX=$1; SRC=$2; DATA=${LATMIX_DATA_DIR:-$3}
M6=$SRC/resources/models/gutenberg-llama-6M
TEXT=$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt
SMALL=(--calib "$TEXT" --samples 4 --seqlen 32 --batch 2)

# Every preset, a couple of steps each; the learned ones report a loss and condition numbers.
for m in rtn gptq quarot mr-gptq; do
  expect 0 "$LATMIX" learn --model "$M6" --method $m "${SMALL[@]}" --json
  contains stdout '"steps": 0'
done
for m in spinquant flatquant latmix; do
  expect 0 "$LATMIX" learn --model "$M6" --method $m "${SMALL[@]}" --steps 2 --json
  contains stdout '"final_loss"'
  contains stdout '"condition_numbers"'
done
contains stdout '"residual"'  # latmix learns T1

# Events as JSON lines, one per step, and the transforms written with the model's fingerprint.
expect 0 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --steps 3 --events "$OUT/ev.jsonl" \
  --out "$OUT/t" --quiet
if [ "$(wc -l <"$OUT/ev.jsonl")" -eq 3 ] && grep -q '"step":3' "$OUT/ev.jsonl"; then
  PASSED=$((PASSED + 1))
else
  echo "FAIL: events file"; cat "$OUT/ev.jsonl"; FAILED=$((FAILED + 1))
fi
grep -q '"fingerprint"' "$OUT/t.json" && PASSED=$((PASSED + 1)) || { echo "FAIL: no fingerprint in t.json"; FAILED=$((FAILED + 1)); }
# Export takes them for this model...
expect 0 "$LATMIX" export --verify-windows 2 --model "$M6" --method latmix --transforms "$OUT/t" --quant w=mxfp4,a=mxfp4 \
  --as folded-bf16 --out "$OUT/exp" --quiet
# ... and refuses them for another one.
if has_data "$DATA/models/stories260K/stories260K.bin"; then
  expect 1 "$LATMIX" export --model "$DATA/models/stories260K/stories260K.bin" --method latmix --transforms "$OUT/t" \
    --quant w=mxfp4,a=mxfp4 --as folded-bf16 --out "$OUT/exp2" --quiet
  contains stderr "another model"
fi

# Checkpoint and resume: 2 steps, then resume to 4 continues at step 3.
expect 0 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --steps 4 --checkpoint "$OUT/ck" \
  --checkpoint-every 2 --events "$OUT/ev1.jsonl" --quiet
[ -f "$OUT/ck.checkpoint/state.json" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: no checkpoint"; FAILED=$((FAILED + 1)); }
python3 - "$OUT/ck.checkpoint/state.json" <<'EOF' && PASSED=$((PASSED + 1)) || { echo "FAIL: rewind checkpoint"; FAILED=$((FAILED + 1)); }
import json, sys
j = json.load(open(sys.argv[1]))
assert j["step"] == 4, j["step"]
EOF
expect 0 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --steps 4 --checkpoint "$OUT/ck" --resume --json
contains stdout '"resumed": true'
contains stdout '"steps": 0'   # nothing left to do after a finished run
# Other settings: the checkpoint is refused.
expect 1 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --steps 4 --lr 0.01 --checkpoint "$OUT/ck" --resume
contains stderr "fingerprint"
# Another calibration text (here: fewer sequences) is refused too (issue 20, item 20).
expect 1 "$LATMIX" learn --model "$M6" --method latmix --calib "$TEXT" --samples 3 --seqlen 32 --batch 2 --steps 4 \
  --checkpoint "$OUT/ck" --resume
contains stderr "calibration data"
# A checkpoint of an earlier version (its fingerprint and layer-wise steps were computed otherwise) is
# refused with what to do.
python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); j["version"] = 2; json.dump(j, open(sys.argv[1], "w"))' \
  "$OUT/ck.checkpoint/state.json"
expect 1 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --steps 4 --checkpoint "$OUT/ck" --resume
contains stderr "checkpoint version (expected 3, found 2: made by an earlier latmix"

# Usage errors.
expect 2 "$LATMIX" learn --model "$M6" --method nope
contains stderr "unknown method 'nope'"
expect 2 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --mode layerwise --loss kl
contains stderr "layer-wise learning uses the layer MSE loss"
expect 2 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --init sideways
contains stderr "unknown initialization 'sideways'"
expect 2 "$LATMIX" learn --model "$M6" --method latmix "${SMALL[@]}" --steps 0
contains stderr "--steps must be at least 1"
expect 1 "$LATMIX" learn --model "$M6" --method latmix --calib "$OUT/missing.txt"
contains stderr "missing.txt"

# A small comparison: report, JSON and plots.
expect 0 "$LATMIX" compare --model "$M6" --methods rtn,mr-gptq,latmix "${SMALL[@]}" --steps 2 \
  --tasks text:"$TEXT" --limit 4 --eval-seqlen 64 --out "$OUT/report" --quiet
for f in report.md report.json loss.png perplexity.png sqnr.png kl.png; do
  [ -s "$OUT/report/$f" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: report lacks $f"; FAILED=$((FAILED + 1)); }
done
contains stdout "| latmix |"
contains stdout "Share of the FP-to-RTN perplexity gap"
contains stdout "recovery % of FP ("  # every method's recovery (recovery.h), as compare.h promises
contains stdout "## Recovery per task"
finish
