#!/usr/bin/env bash
# `latmix serve` and `latmix --engine URL COMMAND` (issue 19): every use case run on the engine prints
# what it prints in-process (text and --json, timings aside), the engine's jobs and files, a wrong
# token, paths outside the roots, commands that only run here, and a client killed mid-learning with
# another one re-attaching to the job. The bundled model only.
# Usage: cli_remote.sh LATMIX SOURCE_DIR
LATMIX=$1
SRC=$2
source "$(dirname "$0")/lib.sh"
MODEL=$SRC/resources/models/gutenberg-llama-6M
SAMPLE=$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt
export XDG_CONFIG_HOME=$OUT/config
unset LATMIX_ENGINE_TOKEN
mkdir -p "$OUT/runs"
"$LATMIX" serve --root "$SRC/resources,$OUT/runs" --listen 127.0.0.1:0 --port-file "$OUT/port" --quiet \
  2>"$OUT/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$OUT"' EXIT
for _ in $(seq 100); do [ -s "$OUT/port" ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat "$OUT/port")
R=("$LATMIX" --engine "$URL")

# The token file: generated at the first start, private.
expect 0 stat -c %a "$XDG_CONFIG_HOME/latmix/engine.token"
contains stdout "600"

# Timings differ from run to run: drop the lines and keys that carry them.
# (compare's table: the last three columns are learn, quantize and eval seconds.)
untimed() {
  sed -E 's/"seconds": [0-9.e+-]+/"seconds": T/; s/[0-9.]+ ?(ms|s)\b/T/g; /collected in|analyzed in|in [0-9]/d
         s/\| [0-9.]* \| [0-9.]* \| [0-9.]* \|$/| T |/' "$1"
}
same() {  # same NAME ARGS...: the command's stdout in-process and on the engine
  local name=$1; shift
  "$LATMIX" "$@" >"$OUT/$name.local" 2>"$OUT/$name.local.err"
  local a=$?
  "${R[@]}" "$@" >"$OUT/$name.remote" 2>"$OUT/$name.remote.err"
  local b=$?
  if [ $a -ne 0 ] || [ $b -ne 0 ]; then
    echo "FAIL: $name: exit $a in-process, $b on the engine"; tail -n 3 "$OUT/$name.local.err" "$OUT/$name.remote.err"
    FAILED=$((FAILED + 1)); return
  fi
  if ! diff <(untimed "$OUT/$name.local") <(untimed "$OUT/$name.remote") >"$OUT/$name.diff"; then
    echo "FAIL: $name differs on the engine:"; head -20 "$OUT/$name.diff"; FAILED=$((FAILED + 1))
  else
    PASSED=$((PASSED + 1))
  fi
}
same info info --model "$MODEL"
same info-json info --model "$MODEL" --json
same overview info --model "$MODEL" --overview --quiet
same stats stats --model "$MODEL" --data "$SAMPLE" --samples 2 --seqlen 32 --transform hadamard --quiet
same stats-json stats --model "$MODEL" --data "$SAMPLE" --samples 2 --seqlen 32 --point residual,mlp_in --json --quiet
same block mx block --model "$MODEL" --layer 2 --token 5 --block 3 --transform hadamard --quiet
same block-json mx block --model "$MODEL" --layer 1 --json --quiet
# One layer and 4 fit steps: the learned fits still move from their start (all 6 layers at the default
# 40 steps took ~14 s of CPU on each side, for the same comparison).
same analyze analyze --model "$MODEL" --data "$SAMPLE" --samples 2 --seqlen 32 --layer 1 --blocks 16,32 --steps 4 --json --quiet
same eval eval --model "$MODEL" --tasks "text:$SAMPLE" --limit 2 --seqlen 64 --quant w=mxfp4,a=mxfp4 --quiet
same learn learn --model "$MODEL" --method quarot --calib "$SAMPLE" --samples 4 --seqlen 32 --json --quiet
same compare compare --model "$MODEL" --methods rtn,quarot --tasks "text:$SAMPLE" --limit 2 --eval-seqlen 64 \
  --calib "$SAMPLE" --samples 4 --seqlen 32 --out "$OUT/runs/compare" --quiet

# Outputs are written on the engine, inside its roots, and come back with download (the .zip bundle
# where the engine has it: a build without Qt exports folders only).
ZIP=--zip; DEST=$OUT/runs/m.zip; FILE=$DEST
if "${R[@]}" export --model "$MODEL" --method rtn --quant w=mxfp4 --as compressed-tensors --zip --out "$OUT/runs/probe.zip" --quiet 2>&1 |
   grep -q "needs the Qt build"; then
  echo "note: this engine has no zip bundles (no Qt): a folder export instead"
  ZIP=; DEST=$OUT/runs/m; FILE=$DEST/manifest.json
fi
rm -f "$OUT/runs/probe.zip"
expect 0 "${R[@]}" export --verify-windows 2 --model "$MODEL" --method rtn --quant w=mxfp4,a=mxfp4 --as compressed-tensors $ZIP \
  --out "$DEST" --quiet
contains stdout "compressed-tensors export written to $DEST"
expect 0 "${R[@]}" verify "$DEST" --quiet
expect 0 "${R[@]}" download --path "$FILE" --out "$OUT/here"
expect 0 cmp "$FILE" "$OUT/here"
expect 0 "${R[@]}" files --path "$OUT/runs"
contains stdout "$(basename "$DEST")"

# Refusals: a path outside the roots, a wrong token, a command that runs only here, no --engine.
expect 2 "${R[@]}" info --model /etc
contains stderr "is outside the folders this server serves"
echo wrong >"$OUT/wrong.token"; chmod 600 "$OUT/wrong.token"
expect 1 "$LATMIX" --engine "$URL" --token-file "$OUT/wrong.token" info --model "$MODEL"
contains stderr "refused the token"
expect 2 "${R[@]}" ppl --model "$MODEL" --data "$SAMPLE"
contains stderr "runs only in this process"
expect 2 "$LATMIX" jobs list
contains stderr "needs --engine URL"
expect 1 "$LATMIX" --engine http://127.0.0.1:1 info --model "$MODEL"
contains stderr "cannot reach the engine at http://127.0.0.1:1"

# A client killed mid-learning; the job runs on, and another client re-attaches to its end. The job is
# paused right after `jobs list` finds it, under half a second after its first step here; 16 steps
# (~0.2 s each on an idle 2-core machine, longer under load, as is everything else) leave that ample
# time. 30 spent ~3 s more for nothing, 60 ~16 s more.
"${R[@]}" learn --model "$MODEL" --method latmix --calib "$SAMPLE" --samples 4 --seqlen 32 --steps 16 \
  --out "$OUT/runs/plan" >"$OUT/killed.out" 2>"$OUT/killed.err" &
CLIENT=$!
for _ in $(seq 300); do grep -q "step" "$OUT/killed.err" 2>/dev/null && break; sleep 0.1; done
kill -9 $CLIENT; wait $CLIENT 2>/dev/null
expect 0 "${R[@]}" jobs list --json
ID=$(python3 -c 'import json,sys; j=[x for x in json.load(open(sys.argv[1]))["jobs"] if x["task"]=="learn" and x["state"] in ("running","queued")]; print(j[0]["id"] if j else "")' "$OUT/stdout")
if [ -z "$ID" ]; then echo "FAIL: no running learn job after the client was killed"; FAILED=$((FAILED + 1)); fi
# The heatmap of the transforms learned so far (a snapshot), taken by the job at once while it is paused.
expect 0 "${R[@]}" jobs pause "$ID"
contains stdout "paused"
expect 0 "${R[@]}" jobs snapshot "$ID" --data "$SAMPLE" --samples 2 --seqlen 32 --quiet
contains stdout "snapshot 1 of job $ID, after step"
contains stdout "transform latmix, step"
expect 2 "${R[@]}" jobs snapshot "$ID" --data "$SAMPLE" --transform hadamard --quiet
contains stderr "a snapshot's transforms are the learning job's own"
expect 0 "${R[@]}" jobs resume "$ID"
expect 0 "${R[@]}" jobs attach "$ID" --quiet
contains stdout '"steps": 16'
expect 0 test -f "$OUT/runs/plan.safetensors"
expect 0 "${R[@]}" jobs remove "$ID"
finish
