#!/usr/bin/env bash
# llama.cpp itself runs our GGUF exports (issue 18): node-llama-cpp's prebuilt CPU llama.cpp loads
# the bundled gutenberg-llama-6M exported as F32 GGUF and as MXFP4 GGUF, and its logits over a text
# (flash attention off, F32 KV cache, context larger than the sequence) are compared with
# `latmix logits`:
#   F32   vs the source model:                             max |d| < 1e-3
#   MXFP4 vs our weight-only fake-quantized model (the folded-bf16 export of the same spec):
#         max |d| < 0.4, mean |d| < 0.03, perplexity within 0.5 %
# (llama.cpp's CPU path rounds activations to Q8_0 before an MXFP4 product: no bit equality.)
# llama.cpp's tokenization of the text must equal ours. Skips (77) naming what is missing when
# node or the package is absent (scripts/setup.sh installs both).
source "$(dirname "$0")/../cli/lib.sh"
LATMIX=$1; SRC=$2
PKG=${LATMIX_NODE_LLAMA_CPP_DIR:-$SRC/.cache/node-llama-cpp}
SCRIPT=$(dirname "$0")/llamacpp_logits.mjs
M6=$SRC/resources/models/gutenberg-llama-6M
if ! command -v node >/dev/null; then
  echo "SKIP: node is not installed (scripts/setup.sh installs nodejs and node-llama-cpp)"; exit 77
fi
if [ ! -f "$PKG/node_modules/node-llama-cpp/package.json" ] || [ ! -d "$PKG/node_modules/@node-llama-cpp/linux-x64" ]; then
  echo "SKIP: node-llama-cpp 3.22.1 with @node-llama-cpp/linux-x64 is not installed in $PKG (scripts/setup.sh installs it; or set LATMIX_NODE_LLAMA_CPP_DIR)"
  exit 77
fi

# The text: the start of the bundled sample, as our tokenizer cuts it (200 tokens).
"$LATMIX" tokenize --model "$M6" --text "$(head -c 1200 "$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt")" >"$OUT/ids.json"
IDS=$(tr -d '[] \n' <"$OUT/ids.json" | cut -d, -f1-200)
[ "$(echo "$IDS" | tr ',' '\n' | wc -l)" -eq 200 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: fewer than 200 ids: $IDS"; FAILED=$((FAILED + 1)); }

run_node() {  # run_node NAME ARGS...: the comparison, its figures printed
  local name=$1; shift
  node "$SCRIPT" --package "$PKG" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
  local rc=$?
  echo "$name: $(cat "$OUT/$name.json") $(head -c 400 "$OUT/$name.err")"
  if [ $rc -ne 0 ]; then echo "FAIL: llama.cpp comparison $name (exit $rc)"; FAILED=$((FAILED + 1)); else PASSED=$((PASSED + 1)); fi
}

# F32 GGUF against the source model.
expect 0 "$LATMIX" export --model "$M6" --method rtn --quant w=none,a=none --as gguf --out "$OUT/f32"
contains stdout "ok    GGUF tensors read back"
expect 0 "$LATMIX" logits --model "$M6" --ids "$IDS" --dtype fp32 --out "$OUT/ref_fp.safetensors"
run_node f32 --gguf "$OUT/f32/model.gguf" --ids "$IDS" --ref "$OUT/ref_fp.safetensors" --max-abs 1e-3

# MXFP4 GGUF against the weight-only fake-quantized model (folded-bf16 holds exactly that).
expect 0 "$LATMIX" export --model "$M6" --method rtn --quant w=mxfp4,a=none --as gguf --out "$OUT/mx"
contains stdout "MXFP4 blocks decode to the fake-quantized weights bit for bit"
expect 0 "$LATMIX" verify "$OUT/mx"; contains stdout "verified"
expect 0 "$LATMIX" export --model "$M6" --method rtn --quant w=mxfp4,a=none --as folded-bf16 --no-verify --out "$OUT/fq"
expect 0 "$LATMIX" logits --model "$OUT/fq" --ids "$IDS" --dtype fp32 --out "$OUT/ref_mx.safetensors"
# ... and, in the same start of llama.cpp, its tokenizer cuts the text as ours does.
TEXT=$(head -c 1200 "$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt")
ALL=$(tr -d '[] \n' <"$OUT/ids.json")
run_node mxfp4 --gguf "$OUT/mx/model.gguf" --ids "$IDS" --ref "$OUT/ref_mx.safetensors" \
  --max-abs 0.4 --mean-abs 0.03 --ppl-rel 0.005 --text "$TEXT" --text-ids "$ALL"
if grep -q '"tokenizer":"equal"' "$OUT/mxfp4.json"; then PASSED=$((PASSED + 1)); else echo "FAIL: llama.cpp tokenizes differently: $(cat "$OUT/mxfp4.json")"; FAILED=$((FAILED + 1)); fi
finish
