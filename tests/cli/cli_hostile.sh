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

# A build without Qt (-DLATMIX_BUILD_GUI=OFF, the GPU servers') has no zip bundles: --zip and a .zip to
# verify are refused with that reason, so the zip checks below do not apply there.
HAS_ZIP=1
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1], "w").close()' "$OUT/empty.zip"
if "$LATMIX" verify "$OUT/empty.zip" 2>&1 | grep -q "needs the Qt build"; then
  HAS_ZIP=0
  echo "note: this build has no zip bundles (no Qt): the zip checks do not apply"
fi
# Item 15: --zip never writes into the source model's folder (the folder export checked, the zip did not).
if [ "$HAS_ZIP" = 1 ]; then
  expect 1 "$LATMIX" export --model "$OUT/m6" --method rtn --quant w=mxfp4 --as folded-bf16 --zip --out "$OUT/m6/e.zip" --quiet
  contains stderr "refusing to write the bundle there: it would write into the source model"
  [ ! -e "$OUT/m6/e.zip" ] && [ -z "$(ls -A "$OUT/m6" | grep '^\.')" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: the source folder was written to"; FAILED=$((FAILED + 1)); }
fi

# Item 7: --tokenizer with a folder export (the check used it, the folder's tokenizer was shipped).
expect 2 "$LATMIX" export --model "$M6" --tokenizer "$M6/tokenizer.json" --method rtn --quant w=mxfp4 --as folded-bf16 \
  --out "$OUT/tok-export" --quiet
contains stderr "an export ships the model folder's own tokenizer files"
[ ! -e "$OUT/tok-export" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: exported with --tokenizer"; FAILED=$((FAILED + 1)); }

# Item 22: an empty, folder or too short --verify-data is refused before any work (it skipped the check).
EXP="$LATMIX export --model $M6 --method rtn --quant w=mxfp4 --quiet"
expect 2 $T $EXP --as folded-bf16 --out "$OUT/v22" --verify-data "";  contains stderr "--verify-data: empty path"
expect 1 $T $EXP --as folded-bf16 --out "$OUT/v22" --verify-data "$OUT"; contains stderr "(expected a regular file, found a folder)"
printf 'Hello.' > "$OUT/short.txt"
expect 1 $T $EXP --as folded-bf16 --out "$OUT/v22" --verify-data "$OUT/short.txt"; contains stderr "short.txt: too short for the perplexity check"
[ ! -e "$OUT/v22" ] && PASSED=$((PASSED + 1)) || { echo "FAIL: an export was written"; FAILED=$((FAILED + 1)); }

# Item 11: a compressed-tensors export records its perplexity and carries the text; verify reads
# only that copy (never the path the manifest names: here a FIFO, which would hang a reader).
# (--weights memory: the in-memory comparison; the default mapped weights stream this export and
# record the folder's perplexity alone.)
expect 0 $T $EXP --as compressed-tensors --out "$OUT/ct-memory" --verify-windows 2 --weights memory
contains stdout "ok    perplexity against the in-memory model"
expect 0 $T $EXP --as compressed-tensors --out "$OUT/ct" --verify-windows 2
contains stdout "ok    perplexity of the exported folder"
python3 - "$OUT/ct/manifest.json" "$OUT/text.fifo" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); m["verification"]["figures"]["perplexity"]["text"] = sys.argv[2]
open(sys.argv[1], "w").write(json.dumps(m))
PY
expect 0 $T "$LATMIX" verify "$OUT/ct"; contains stdout "ok    perplexity as recorded"; contains stdout "ct: verified"
expect 1 $T "$LATMIX" verify "$OUT/ct" --data "$OUT/text.fifo"; contains stdout "SKIP  perplexity as recorded"
contains stdout "text.fifo: cannot read this file (expected a regular file, found a FIFO"; contains stdout "NOT VERIFIED"
expect 0 $T "$LATMIX" verify "$OUT/ct" --no-ppl; contains stderr "note: no perplexity check (--no-ppl)"
rehash() {  # rehash DIR: the manifest's sizes and digests recomputed for the files it lists that exist
  python3 - "$1" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]; m = json.load(open(d + "/manifest.json"))
m["files"] = [f for f in m["files"] if os.path.exists(os.path.join(d, f["name"]))]
for f in m["files"]:
    b = open(os.path.join(d, f["name"]), "rb").read(); f["bytes"] = len(b); f["sha256"] = hashlib.sha256(b).hexdigest()
open(d + "/manifest.json", "w").write(json.dumps(m))
PY
}
cp -r "$OUT/ct" "$OUT/ct-notext"; rm "$OUT/ct-notext/perplexity-text.txt"; rehash "$OUT/ct-notext"
expect 1 $T "$LATMIX" verify "$OUT/ct-notext"; contains stdout "SKIP  perplexity as recorded: the export holds no perplexity-text.txt"
contains stdout "NOT VERIFIED (a check could not run)"
# Zeroed packed codes behind a recomputed manifest: every hash matches, the perplexity does not.
cp -r "$OUT/ct" "$OUT/ct-zero"
python3 - "$OUT/ct-zero/model.safetensors" <<'PY'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
for k, v in h.items():
    if k.endswith(".weight_packed"):
        s, e = v["data_offsets"]; b[8 + n + s:8 + n + e] = bytes(e - s)
open(sys.argv[1], "wb").write(b)
PY
rehash "$OUT/ct-zero"
expect 1 $T "$LATMIX" verify "$OUT/ct-zero"; contains stdout "ok    file model.safetensors"
contains stdout "FAIL  perplexity as recorded"; contains stdout "VERIFICATION FAILED"

# Item 17: a subfolder or symbolic link added to an export, or a listed file replaced by a link.
cp -r "$OUT/ct" "$OUT/ct-odd"; mkdir "$OUT/ct-odd/sub"; ln -s /etc/hostname "$OUT/ct-odd/link"
mv "$OUT/ct-odd/config.json" "$OUT/config.json.real"; ln -s "$OUT/config.json.real" "$OUT/ct-odd/config.json"
rm "$OUT/ct-odd/perplexity-text.txt"; ln -s /etc/hostname "$OUT/ct-odd/perplexity-text.txt"
expect 1 $T "$LATMIX" verify "$OUT/ct-odd"; contains stdout "FAIL  entry sub: a folder, not written by an export"
contains stdout "FAIL  entry link: a symbolic link"; contains stdout "FAIL  entry config.json: a symbolic link"
contains stdout "SKIP  perplexity as recorded"  # the text is never read through the link

# Items 8, 17: hostile zips, made here. Sizes are judged against the manifest before anything is
# read, names must be plain, a manifest entry is bounded.
if [ "$HAS_ZIP" = 1 ]; then
python3 -W ignore - "$OUT" <<'PY'
import hashlib, json, struct, sys, zipfile
out = sys.argv[1]; D = zipfile.ZIP_DEFLATED
def man(files): return json.dumps({"format": "latmix-export", "kind": "folded-bf16", "files": files})
def ent(name, data): return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
x = b"x" * 13
# (deflate level 1: zeros compress as well, in a quarter of the time)
with zipfile.ZipFile(out + "/bomb.zip", "w") as z:  # 200 MB of zeros where the manifest lists 13 bytes
    z.writestr("manifest.json", man([ent("a.bin", x)]))
    z.writestr("a.bin", bytes(200 << 20), compress_type=D, compresslevel=1)
b = bytearray(open(out + "/bomb.zip", "rb").read())  # lying.zip: the same, its headers claiming 13 bytes
for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
    i = -1
    while (i := b.find(sig, i + 1)) >= 0:
        name_at = i + (30 if sig == b"PK\x03\x04" else 46)
        if bytes(b[name_at:name_at + 5]) == b"a.bin": b[i + off:i + off + 4] = struct.pack("<I", 13)
open(out + "/lying.zip", "wb").write(b)
with zipfile.ZipFile(out + "/manbomb.zip", "w") as z:  # a 100 MB manifest.json
    z.writestr("manifest.json", b" " * (100 << 20) + b"{}", compress_type=D, compresslevel=1)
with zipfile.ZipFile(out + "/evil.zip", "w") as z:  # names outside the export, and a name twice
    z.writestr("manifest.json", man([ent("../../evil", x), ent("/tmp/abs", x), ent("a.bin", x)]))
    for n in ("../../evil", "/tmp/abs", "a.bin", "a.bin"): z.writestr(n, x)
PY
/usr/bin/time -f "%M" -o "$OUT/rss" env LATMIX_TEST_ZYGOTE=0 $T "$LATMIX" verify "$OUT/bomb.zip" >"$OUT/stdout" 2>"$OUT/stderr"
[ $? -eq 1 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: bomb.zip verified"; FAILED=$((FAILED + 1)); }
contains stdout "FAIL  file a.bin: 209715200 bytes, the manifest says 13"
[ "$(tail -1 "$OUT/rss")" -lt 600000 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: bomb.zip took $(tail -1 "$OUT/rss") kB"; FAILED=$((FAILED + 1)); }
expect 1 $T "$LATMIX" verify "$OUT/lying.zip"; contains stdout "FAIL  file a.bin"
expect 1 $T "$LATMIX" verify "$OUT/manbomb.zip"; contains stderr "manbomb.zip:manifest.json: entry too large to be a manifest (not read)"
expect 1 $T "$LATMIX" verify "$OUT/evil.zip"; contains stdout "FAIL  entry \"../../evil\": '..' in the name"
contains stdout "FAIL  entry \"/tmp/abs\": an absolute path"; contains stdout "FAIL  entry a.bin: appears more than once"
fi

# Item 18: --batch above --samples is refused (it asked for 7.2 GB, then failed to allocate).
expect 2 $T "$LATMIX" learn --model "$M6" --method latmix --quant w=mxfp4,a=mxfp4 --calib "$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt" \
  --samples 4 --seqlen 32 --steps 1 --batch 1000000 --out "$OUT/b18" --quiet
contains stderr "--batch 1000000 is larger than the 4 calibration sequences (--samples)"

# Item 10: text is read in pieces and only as far as --max-windows needs: a 200 MB file costs
# about what a small one does.
python3 -c "
import sys
line = b'It is a truth universally acknowledged, that a single man in possession of a good fortune.\n'
with open(sys.argv[1], 'wb') as f:
    for _ in range(2): f.write(line * ((100 << 20) // len(line)))
" "$OUT/big.txt"
/usr/bin/time -f "%M" -o "$OUT/rss" env LATMIX_TEST_ZYGOTE=0 $T "$LATMIX" ppl --model "$M6" --data "$OUT/big.txt" --seqlen 64 --max-windows 2 >"$OUT/stdout" 2>"$OUT/stderr"
[ $? -eq 0 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: ppl on big.txt"; sed 's/^/  /' "$OUT/stderr" | head -3; FAILED=$((FAILED + 1)); }
contains stdout "(read as far as --max-windows needs)"
[ "$(tail -1 "$OUT/rss")" -lt 600000 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: ppl on 200 MB took $(tail -1 "$OUT/rss") kB"; FAILED=$((FAILED + 1)); }
echo "max RSS of ppl --max-windows 2 on a 200 MB text: $(tail -1 "$OUT/rss") kB"
# Item 10, zero-shot task files: read a record at a time and only as far as --limit needs. Two
# good COPA records, then a 2 GiB tail of NUL bytes (sparse: costs no disk) that is never read with
# --limit 2 and is a bounded, named error without it; a malformed record names file and line.
mkdir -p "$OUT/tasks/eval/copa"
COPA="$OUT/tasks/eval/copa/copa.mosaic.jsonl"
REC='{"query": "The man turned on the faucet, therefore", "choices": ["the toilet filled.", "water flowed."], "gold": 1}'
printf '%s\n%s\n' "$REC" "$REC" > "$COPA"; truncate -s 2G "$COPA"
/usr/bin/time -f "%M" -o "$OUT/rss" env LATMIX_TEST_ZYGOTE=0 $T "$LATMIX" eval --model "$M6" --data-dir "$OUT/tasks" --tasks copa --limit 2 >"$OUT/stdout" 2>"$OUT/stderr"
[ $? -eq 0 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: eval copa --limit 2 on a 2 GiB task file"; sed 's/^/  /' "$OUT/stderr" | head -3; FAILED=$((FAILED + 1)); }
contains stdout "first 2 items (read as far as --limit needs)"
[ "$(tail -1 "$OUT/rss")" -lt 600000 ] && PASSED=$((PASSED + 1)) || { echo "FAIL: eval on a 2 GiB task file took $(tail -1 "$OUT/rss") kB"; FAILED=$((FAILED + 1)); }
echo "max RSS of eval --tasks copa --limit 2 on a 2 GiB task file: $(tail -1 "$OUT/rss") kB"
expect 1 $T "$LATMIX" eval --model "$M6" --data-dir "$OUT/tasks" --tasks copa; contains stderr "copa.mosaic.jsonl:3: line longer than 4 MiB"
printf '%s\n{"query": "Q", "choices": ["a", "b"]}\n' "$REC" > "$COPA"
expect 1 $T "$LATMIX" eval --model "$M6" --data-dir "$OUT/tasks" --tasks copa --limit 5; contains stderr "copa.mosaic.jsonl:2: field 'gold'"
expect 0 $T "$LATMIX" eval --model "$M6" --data-dir "$OUT/tasks" --tasks copa --limit 1; contains stdout "first 1 items (read as far as --limit needs)"

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
