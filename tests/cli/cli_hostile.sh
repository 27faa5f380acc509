#!/usr/bin/env bash
# Issue 20: hostile and odd inputs, each made here by a line of printf or Python, each refused with
# a message naming the file (and the key) instead of a crash, a hang or a multi-GB allocation.
# Needs only the bundled gutenberg-llama-6M (resources/), not the shared data.
source "$(dirname "$0")/lib.sh"
LATMIX=$1; SRC=$2
M6=$SRC/resources/models/gutenberg-llama-6M
T="timeout 60"  # a regression to hanging fails the check instead of the whole ctest run

# Item 14: a FIFO or a device where a file is expected (config.json, manifest.json, text data).
mkdir "$OUT/fifo" "$OUT/fifo-export"
mkfifo "$OUT/fifo/config.json" "$OUT/fifo-export/manifest.json" "$OUT/text.fifo"
expect 1 $T "$LATMIX" info --model "$OUT/fifo";          contains stderr "fifo/config.json: cannot read this file (expected a regular file, found a FIFO"
expect 1 $T "$LATMIX" verify "$OUT/fifo-export";         contains stderr "manifest.json: cannot read this file"
expect 1 $T "$LATMIX" ppl --model "$M6" --data "$OUT/text.fifo"; contains stderr "text.fifo: cannot read this file"
expect 1 $T "$LATMIX" ppl --model "$M6" --data /dev/zero; contains stderr "found a character device"
# Item 14: --threads beyond the cores is capped with a note (512 on 2 cores hung ppl).
expect 0 $T "$LATMIX" info --model "$M6" --threads 100000; contains stderr "note: --threads 100000 is more than the"
contains stdout "LlamaForCausalLM"

# Items 3, 21: deep nesting, number overflow and mistyped values name the file and the key.
config() {  # config DIR PYTHON-EXPRESSION-UPDATING-c: a copy of the 6M config.json with one change
  mkdir -p "$OUT/$1"
  python3 -c "import json,sys; c=json.load(open('$M6/config.json')); $2; open('$OUT/$1/config.json','w').write(c if isinstance(c,str) else json.dumps(c))"
}
config deep "c=json.dumps(c).replace('\"vocab_size\": 8192', '\"vocab_size\": ' + '['*100000 + ']'*100000)"
expect 1 $T "$LATMIX" info --model "$OUT/deep";   contains stderr "deep/config.json: key 'vocab_size[0][0]"; contains stderr "nesting too deep"
config overflow "c=json.dumps(c).replace('\"vocab_size\": 8192', '\"vocab_size\": 1e400')"
expect 1 $T "$LATMIX" info --model "$OUT/overflow"; contains stderr "overflow/config.json: key 'vocab_size': number overflow parsing '1e400'"
config typed "c['hidden_size']='256'"
expect 1 $T "$LATMIX" info --model "$OUT/typed";  contains stderr "typed/config.json: key 'hidden_size' (expected an integer, found \"256\")"
# Items 12, 13, 22: values out of range.
config theta "c['rope_parameters']['rope_theta']=0"
expect 1 $T "$LATMIX" info --model "$OUT/theta";  contains stderr "theta/config.json: key 'rope_parameters.rope_theta' (expected a number in 1..3.4e38, found 0)"
config maxpos "c['max_position_embeddings']=-5"
expect 1 $T "$LATMIX" info --model "$OUT/maxpos"; contains stderr "key 'max_position_embeddings' (expected an integer in 1..2147483647, found -5)"
config heads "c['num_attention_heads']=c['num_key_value_heads']=2**40; c['head_dim']=2**30"
expect 1 $T "$LATMIX" info --model "$OUT/heads";  contains stderr "heads/config.json: key 'num_attention_heads'"
config bos "c['bos_token_id']=2**40"
expect 1 $T "$LATMIX" info --model "$OUT/bos";    contains stderr "bos/config.json: key 'bos_token_id' (expected a token id in 0..8191"

# Items 3, 21 in an export's manifest.json: a mistyped entry and deep nesting name the file and key.
mkdir "$OUT/exp-typed" "$OUT/exp-deep"
printf 'x' > "$OUT/exp-typed/a.bin"
printf '{"format":"latmix-export","kind":"transforms","files":[{"name":"a.bin","bytes":"1","sha256":"0"}]}' > "$OUT/exp-typed/manifest.json"
expect 1 $T "$LATMIX" verify "$OUT/exp-typed"; contains stderr "exp-typed/manifest.json: key 'files[0].bytes' (expected an integer, found \"1\")"
python3 -c "print('{\"format\":\"latmix-export\",\"files\":' + '['*100000 + ']'*100000 + '}')" > "$OUT/exp-deep/manifest.json"
expect 1 $T "$LATMIX" verify "$OUT/exp-deep"; contains stderr "exp-deep/manifest.json: key 'files[0][0]"; contains stderr "nesting too deep"

# Item 9: a 60-byte tokenizer.json with vocab id 1e8 (it took 3.26 GB) or 2^32 (truncated).
mkdir "$OUT/tok"
printf '{"model":{"type":"BPE","vocab":{"a":0,"b":100000000},"merges":[]}}' > "$OUT/tok/tokenizer.json"
expect 1 $T "$LATMIX" tokenize --model "$OUT/tok" --text a; contains stderr "tokenizer.json: model.vocab[\"b\"]: token id far beyond"
printf '{"model":{"type":"BPE","vocab":{"a":0,"b":4294967296},"merges":[]}}' > "$OUT/tok/tokenizer.json"
expect 1 $T "$LATMIX" tokenize --model "$OUT/tok" --text a; contains stderr "expected an integer in 0..2147483647, found 4294967296"

# Item 19: logits --out never replaces a file of the model (a copy: the source tree stays untouched).
cp -r "$M6" "$OUT/m6"
expect 2 "$LATMIX" logits --model "$OUT/m6" --ids 0,1 --out "$OUT/m6/model.safetensors"; contains stderr "part of the model"
expect 2 "$LATMIX" logits --model "$OUT/m6" --ids 0,1 --out "$OUT/m6/config.json";       contains stderr "part of the model"
ln -s "$OUT/m6/model.safetensors" "$OUT/link.safetensors"
expect 2 "$LATMIX" logits --model "$OUT/m6" --ids 0,1 --out "$OUT/link.safetensors";     contains stderr "part of the model"
expect 2 "$LATMIX" logits --model "$OUT/m6/" --ids 0,1 --out "$OUT/m6/./model.safetensors"; contains stderr "part of the model"
if cmp -s "$M6/model.safetensors" "$OUT/m6/model.safetensors" && cmp -s "$M6/config.json" "$OUT/m6/config.json"; then
  PASSED=$((PASSED + 1))
else
  echo "FAIL: logits --out changed a file of the model"; FAILED=$((FAILED + 1))
fi
# Everyday defect: logits on a save_pretrained folder without a tokenizer.
rm "$OUT/m6/tokenizer.json" "$OUT/m6/tokenizer_config.json"
expect 0 "$LATMIX" logits --model "$OUT/m6" --ids 0,516,685 --out "$OUT/l.safetensors" --json
contains stdout '"shape":[3,8192]'

# Item 15: --zip never writes into the source model's folder (the folder export checked, the zip did not).
expect 1 "$LATMIX" export --model "$OUT/m6" --method rtn --quant w=mxfp4 --as folded-bf16 --zip --out "$OUT/m6/e.zip" --quiet
contains stderr "refusing to write the bundle there: it would write into the source model"
[ ! -e "$OUT/m6/e.zip" ] && [ -z "$(ls -A "$OUT/m6" | grep '^\.')" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: the source folder was written to"; FAILED=$((FAILED + 1)); }

# Item 7: --tokenizer with a folder export (the check used it, the folder's tokenizer was shipped).
expect 2 "$LATMIX" export --model "$M6" --tokenizer "$M6/tokenizer.json" --method rtn --quant w=mxfp4 --as folded-bf16 \
  --out "$OUT/tok-export" --quiet
contains stderr "an export ships the model folder's own tokenizer files"
[ ! -e "$OUT/tok-export" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: exported with --tokenizer"; FAILED=$((FAILED + 1)); }

# Item 4: SIGTERM (and SIGINT, SIGHUP) during an export is a cancel: exit 128 + 15 and no temp folder
# left. Should the export win the race and finish first, it must have exited 0 with a verified folder.
for sig in TERM INT; do
  "$LATMIX" export --model "$M6" --method rtn --quant w=mxfp4 --as folded-bf16 --out "$OUT/sig-$sig" --quiet \
    >/dev/null 2>"$OUT/sig.err" &
  pid=$!
  for _ in $(seq 1 400); do
    ls -A "$OUT" | grep -q "^\.sig-$sig\.latmix-tmp-" && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.01
  done
  kill -$sig $pid 2>/dev/null
  wait $pid; rc=$?
  left=$(ls -A "$OUT" | grep -c "^\.sig-$sig\.latmix-tmp-")
  if [ "$left" -ne 0 ]; then echo "FAIL: SIG$sig left a temp folder"; FAILED=$((FAILED + 1));
  elif [ $rc -eq 0 ] && "$LATMIX" verify "$OUT/sig-$sig" >/dev/null 2>&1; then PASSED=$((PASSED + 1));
  elif [ $rc -gt 128 ] && [ ! -e "$OUT/sig-$sig" ] && grep -q "cancelled (SIG$sig)" "$OUT/sig.err"; then PASSED=$((PASSED + 1));
  else echo "FAIL: SIG$sig: exit $rc"; sed 's/^/  /' "$OUT/sig.err" | head -5; FAILED=$((FAILED + 1)); fi
done
finish
