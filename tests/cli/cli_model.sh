#!/usr/bin/env bash
# `latmix` on real checkpoints: info, tokenize, logits, generate, ppl, and error paths.
source "$(dirname "$0")/lib.sh"
LATMIX=$1; SRC=$2; DATA=${LATMIX_DATA_DIR:-$3}
M6=$SRC/resources/models/gutenberg-llama-6M
STORIES=$DATA/models/stories260K/stories260K.bin

expect 0 "$LATMIX" info --model "$M6";              contains stdout "LlamaForCausalLM"; contains stdout "6524160"
expect 0 "$LATMIX" info --model "$M6" --json;       contains stdout '"parameters": 6524160'
expect 0 "$LATMIX" info --model "$M6" --overview;   contains stdout "weight outliers: max|W| / RMS(W)"; contains stdout "down"
expect 0 "$LATMIX" info --model "$M6" --overview --json
python3 - "$OUT/stdout" <<'PY' && PASSED=$((PASSED + 1)) || { echo "FAIL: info --overview --json"; FAILED=$((FAILED + 1)); }
import json, sys
d = json.load(open(sys.argv[1]))
o = d["overview"]
assert d["parameters"] == 6524160 and o["rows"] == 6 and o["columns"] == ["q", "k", "v", "o", "gate", "up", "down"], o
assert len(o["max_over_rms"]) == 42 and len(o["rms"]) == 42 and min(o["max_over_rms"]) > 1, o
PY
if has_data "$STORIES"; then
  expect 0 "$LATMIX" info --model "$STORIES";       contains stdout "llama2.c"
  # tok512.model in the LibTorch process (it stopped with protobuf's version check): the same ids
  # and perplexity as tok512.bin.
  TOK=$(dirname "$STORIES")
  expect 0 "$LATMIX" info --model "$STORIES" --tokenizer "$TOK/tok512.model"; contains stdout "SentencePiece"
  expect 0 "$LATMIX" tokenize --model "$STORIES" --tokenizer "$TOK/tok512.model" --text "Once upon a time, Lily saw a dog."
  cp "$OUT/stdout" "$OUT/ids-model"
  expect 0 "$LATMIX" tokenize --model "$STORIES" --tokenizer "$TOK/tok512.bin" --text "Once upon a time, Lily saw a dog."
  cmp -s "$OUT/stdout" "$OUT/ids-model" && PASSED=$((PASSED + 1)) || { echo "FAIL: tok512.model ids differ from tok512.bin"; FAILED=$((FAILED + 1)); }
  python3 -c "import json; print(json.load(open('$DATA/models/stories260K/reference_greedy.json'))['generated_text'] * 4)" > "$OUT/story.txt"
  expect 0 "$LATMIX" ppl --model "$STORIES" --tokenizer "$TOK/tok512.model" --data "$OUT/story.txt" --seqlen 64 --json
  grep -o '"perplexity": [0-9.e+-]*' "$OUT/stdout" > "$OUT/ppl-model"
  expect 0 "$LATMIX" ppl --model "$STORIES" --tokenizer "$TOK/tok512.bin" --data "$OUT/story.txt" --seqlen 64 --json
  grep -o '"perplexity": [0-9.e+-]*' "$OUT/stdout" | cmp -s - "$OUT/ppl-model" && [ -s "$OUT/ppl-model" ] && PASSED=$((PASSED + 1)) ||
    { echo "FAIL: ppl with tok512.model differs from tok512.bin"; FAILED=$((FAILED + 1)); }
fi
expect 0 "$LATMIX" tokenize --model "$M6" --text "The old house stood at the end of the lane, and" --bos
contains stdout "[0,516,685,865,1152,363,264,1010,284,264,6035,13,277]"
expect 0 "$LATMIX" logits --model "$M6" --ids 0,516,685 --out "$OUT/l.safetensors" --json
contains stdout '"shape":[3,8192]'
[ -f "$OUT/l.safetensors" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: no logits file"; FAILED=$((FAILED + 1)); }
expect 2 "$LATMIX" logits --model "$M6" --ids 0,99999 --out "$OUT/x.safetensors"; contains stderr "outside the vocabulary"
[ ! -e "$OUT/x.safetensors" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: output written on error"; FAILED=$((FAILED + 1)); }
if has_data "$STORIES"; then
  expect 0 "$LATMIX" generate --model "$STORIES" --prompt "" --max-new 20
  contains stdout "Once upon a time, there was a little girl named Lily."
fi
expect 0 "$LATMIX" ppl --model "$M6" --data "$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt" --seqlen 128 --max-windows 4 --json
contains stdout '"windows": 4'; contains stdout '"tokens_scored": 508'
expect 1 "$LATMIX" ppl --model "$M6" --data /nonexistent.txt;  contains stderr "/nonexistent.txt: cannot open file"
printf 'tiny' > "$OUT/tiny.txt"
expect 1 "$LATMIX" ppl --model "$M6" --data "$OUT/tiny.txt";   contains stderr "fewer than one window"
printf 'not a model' > "$OUT/fake.bin"
expect 1 "$LATMIX" info --model "$OUT/fake.bin";               contains stderr "fake.bin"
CALIB=$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt
expect 0 "$LATMIX" stats --model "$M6" --data "$CALIB" --samples 4 --seqlen 64 --transform block-hadamard --out "$OUT/s.json"
contains stdout "transform block-hadamard"; contains stdout "residual: 256 channels, 8 blocks of 32"
[ -s "$OUT/s.json" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: no stats file"; FAILED=$((FAILED + 1)); }
expect 2 "$LATMIX" stats --model "$M6" --data "$CALIB" --transform spin --out "$OUT/t.json"; contains stderr "unknown transform 'spin'"
[ ! -e "$OUT/t.json" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: stats output written on error"; FAILED=$((FAILED + 1)); }
expect 1 "$LATMIX" stats --model "$M6" --data "$OUT/tiny.txt" --out "$OUT/u.json"; contains stderr "tiny.txt"
if has_data "$DATA/eval/copa" "$DATA/eval/arc_easy" "$DATA/eval/winogrande"; then
  expect 0 "$LATMIX" eval --model "$M6" --data-dir "$DATA" --tasks copa,arc_easy,text:$CALIB --limit 10 --seqlen 128 --json --out "$OUT/e.json"
  contains stdout '"task": "copa"'; contains stdout 'first 10 items (read as far as --limit needs), no BOS'; contains stdout 'seqlen 128, 10 windows, 1270 tokens scored, no BOS'
  [ -s "$OUT/e.json" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: no eval results file"; FAILED=$((FAILED + 1)); }
  expect 0 "$LATMIX" eval --model "$M6" --data-dir "$DATA" --tasks winogrande --limit 10 --quant w=mxfp4,a=mxfp4; contains stdout "recovery"
fi
# eval --quant --json: recovery.h's figures, the perplexity's FP / quantized (the bundled text: no data needed)
expect 0 "$LATMIX" eval --model "$M6" --tasks "text:$CALIB" --limit 3 --seqlen 128 --quant w=mxfp4,a=mxfp4 --json --out "$OUT/eq.json"
contains stdout '"recovery"'; contains stdout '"basis": "'
python3 - "$OUT/eq.json" <<'PY' && PASSED=$((PASSED + 1)) || { echo "FAIL: eval --json recovery"; FAILED=$((FAILED + 1)); }
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["quantized"]) == 1 and d["quantized"][0]["spec"] == "w=mxfp4,a=mxfp4", d["quantized"]
assert d["settings"]["quant"] == ["w=mxfp4,a=mxfp4"], d["settings"]
fp, q = d["results"][0]["metrics"]["ppl"], d["quantized"][0]["results"][0]["metrics"]["ppl"]
rec = d["quantized"][0]["recovery"]
r = rec["tasks"][0]["metrics"]["ppl"]["percent"]
assert abs(r - 100 * fp / q) < 1e-9 * r, (r, fp, q)
assert rec["headline"]["percent"] == r and rec["headline"]["basis"].endswith("perplexity"), rec
PY
expect 2 "$LATMIX" eval --model "$M6" --tasks arc_easy,mmlu;          contains stderr "unknown task 'mmlu'"
expect 1 "$LATMIX" eval --model "$M6" --data-dir "$OUT" --tasks copa; contains stderr "copa.mosaic.jsonl: cannot open file"
W6=$M6/model.safetensors
expect 0 "$LATMIX" mx quantize --format mxfp4 --in "$W6" --out "$OUT/q.safetensors" --json
[ -s "$OUT/q.safetensors" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: no quantized file"; FAILED=$((FAILED + 1)); }
expect 0 "$LATMIX" mx quantize --format mxfp4 --in "$W6" --out "$OUT/p.safetensors" --pack
expect 0 "$LATMIX" mx stats --in "$OUT/q.safetensors" --formats mxfp4 --json; contains stdout '"sqnr_db"'
expect 1 "$LATMIX" mx stats --in "$OUT/missing.safetensors";  contains stderr "missing.safetensors"
# mx block: one block of an activation (the studio's Block Microscope), its JSON, a clamped token, bad options
expect 0 "$LATMIX" mx block --model "$M6" --point mlp_in --layer 1 --token 5 --block 3 --format mxfp4 --transform hadamard
contains stdout "mlp_in, layer 1, token 5 of 128"; contains stdout "block 3 of 8 (channels 96-127)"; contains stdout "after hadamard"
expect 0 "$LATMIX" mx block --model "$M6" --point residual --layer 1 --token 500 --block 3 --json; contains stderr "token 127 is shown"
python3 - "$OUT/stdout" <<'PY' && PASSED=$((PASSED + 1)) || { echo "FAIL: mx block --json"; FAILED=$((FAILED + 1)); }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["token"] == 127 and d["token_clamped"] and d["block"] == 3 and d["blocks"] == 8, d
assert len(d["before"]["values"]) == 32 and len(d["comparison"]) == 8 and d["after"] is None, d
assert d["comparison"][-1]["format"] == "nvfp4 (2 x 16)", d["comparison"]
PY
expect 0 "$LATMIX" mx block --model "$M6" --text "$CALIB" --samples 4 --seqlen 64 --sequence 2 --token 10 --json
contains stdout '"sequence": 2'; contains stdout '"tokens": 64'
expect 2 "$LATMIX" mx block --model "$M6" --layer 9;              contains stderr "--layer: expected 0 to"
expect 2 "$LATMIX" mx block --model "$M6" --point mlp_out;        contains stderr "--point: unknown capture point 'mlp_out'"
expect 2 "$LATMIX" mx block --model "$M6" --format fp4;           contains stderr "--format: expected one of"
expect 2 "$LATMIX" mx block --model "$M6" --sequence 2;           contains stderr "of --text FILE"
finish
