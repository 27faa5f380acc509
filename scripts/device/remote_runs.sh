#!/usr/bin/env bash
# Runs on the GPU machine: issue 19's engine on CUDA. Builds latmix, the serve tests and the
# benchmarks against that machine's LibTorch (scripts/device/deps.sh), then
#  - tests/serve (latmix_serve_tests) and tests/cli/cli_remote.sh there (a CPU engine, as in CI);
#  - `latmix serve --device cuda` with the CLI client on the same machine: a Llama-3.2-1B-shaped
#    model with random weights (make_random_model), `latmix --engine URL learn` (latmix, bf16) and
#    `export` of the learned plan (compressed-tensors, verified), then `verify` and `jobs list`;
#  - bench_remote on the bundled model (the overhead of a remote statistics request, events/s).
# Results (logs, timeline) go to $OUT.
# Usage: bash scripts/device/remote_runs.sh [learn_steps=40]
set -uo pipefail
STEPS=${1:-40}
O=${OUT:-/tmp/out}
mkdir -p "$O"
source scripts/device/deps.sh
timeline "$O/timeline.txt"
cuda_build "$PWD" "$O" latmix latmix-engine latmix_serve_tests make_random_model bench_remote || exit 1
log "built"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >>"$O/timeline.txt"
B=/tmp/build-cuda
L=$B/cli/latmix
TOK=resources/models/gutenberg-llama-6M/tokenizer.json
TEXT=$PWD/resources/calibration/pride_and_prejudice_ch1-6.txt

timeout 300 $B/tests/latmix_serve_tests >"$O/serve-tests.log" 2>&1
log "latmix_serve_tests: exit $? ($(grep -E '^\[  (PASSED|FAILED)' "$O/serve-tests.log" | tr '\n' ' '))"
timeout 300 bash tests/cli/cli_remote.sh "$L" "$PWD" >"$O/cli-remote.log" 2>&1
log "cli_remote.sh: exit $? ($(tail -1 "$O/cli-remote.log"))"

ROOT=/tmp/remote-root
mkdir -p "$ROOT/models" "$ROOT/runs"
[ -d "$ROOT/models/llama-1b" ] || $B/tests/bench/make_random_model "$ROOT/models/llama-1b" --shape 1b --tokenizer "$TOK" \
  >"$O/make-1b.log" 2>&1
log "1B-shape model written"
export XDG_CONFIG_HOME=/tmp/remote-config
$L serve --device cuda --root "$ROOT,$PWD/resources" --listen 127.0.0.1:0 --port-file /tmp/remote-port \
  2>"$O/serve-cuda.log" &
SERVER=$!
for _ in $(seq 100); do [ -s /tmp/remote-port ] && break; sleep 0.1; done
R=("$L" --engine "http://127.0.0.1:$(cat /tmp/remote-port)")
timeout 240 "${R[@]}" info --model "$ROOT/models/llama-1b" >"$O/info-1b.txt" 2>&1
log "remote info: exit $?"
START=$SECONDS
timeout 300 "${R[@]}" learn --model "$ROOT/models/llama-1b" --method latmix --dtype bf16 --calib "$TEXT" \
  --samples 16 --seqlen 512 --batch 4 --steps "$STEPS" --out "$ROOT/runs/l1b-latmix" >"$O/learn-1b.txt" 2>"$O/learn-1b.err"
log "remote learn (1B shape, latmix, bf16, 16 x 512, batch 4, $STEPS steps): exit $?, $((SECONDS - START)) s"
START=$SECONDS
timeout 300 "${R[@]}" export --model "$ROOT/models/llama-1b" --method latmix --transforms "$ROOT/runs/l1b-latmix" \
  --quant w=mxfp4,a=mxfp4 --as compressed-tensors --dtype bf16 --verify-data "$TEXT" --verify-windows 2 \
  --out "$ROOT/runs/l1b-export" >"$O/export-1b.txt" 2>"$O/export-1b.err"
log "remote export (compressed-tensors, verified): exit $?, $((SECONDS - START)) s"
timeout 200 "${R[@]}" verify "$ROOT/runs/l1b-export" >"$O/verify-1b.txt" 2>&1
log "remote verify: exit $?"
"${R[@]}" jobs list >"$O/jobs.txt" 2>&1
kill -INT $SERVER; wait $SERVER
log "server stopped"
timeout 200 $B/tests/bench/bench_remote resources/models/gutenberg-llama-6M "$TEXT" 5 300 >"$O/bench-remote.txt" 2>&1
log "bench_remote: exit $?"
cat "$O/bench-remote.txt"
