#!/usr/bin/env bash
# Runs on the GPU machine: issue 19's figures that need a quiet machine or CUDA, without the 1B
# runs of remote_runs.sh. Builds latmix, the serve tests and the benchmarks against that machine's
# LibTorch (scripts/device/deps.sh), then
#  - tests/serve (latmix_serve_tests) as one process, the way it crashed at exit there (session 10);
#  - bench_remote on the bundled 6M model, on the CPU and on CUDA, learning on make_random_model's
#    tiny shape (steps faster than the 30 events/s the issue asks a client to receive);
#  - a bf16 compressed-tensors export made on CUDA, verified by `latmix verify` on the CPU (the
#    recorded perplexity of another device is checked within bf16's tolerance).
# Results go to $OUT (summary.txt first).
# Usage: bash scripts/device/remote_bench.sh [repeats=5] [crash|overhead]
#   crash: the serve tests' exit only, also with no GPU visible, and `latmix serve` stopped by SIGINT;
#   overhead: bench_remote's statistics overhead on the 22M shape (make_random_model --shape 22m:
#   the trained model does not fit in what travels to that machine) on 2 of its cores (taskset, as
#   the 2-core machine of docs/benchmarks.md) and on all 16, on the CPU (RUNS="0-15;0-15 VAR=VALUE"
#   picks the cores and environments).
set -uo pipefail
REPEATS=${1:-5}
ONLY=${2:-}
O=${OUT:-/tmp/out}
mkdir -p "$O"
source scripts/device/deps.sh
timeline "$O/summary.txt"
cuda_build "$PWD" "$O" latmix latmix-engine latmix_serve_tests make_random_model bench_remote || exit 1
log "built"
B=/tmp/build-cuda
L=$B/cli/latmix
M=resources/models/gutenberg-llama-6M
TEXT=$PWD/resources/calibration/pride_and_prejudice_ch1-6.txt

readelf -d $B/tests/latmix_serve_tests | grep NEEDED | head -3 >>"$O/summary.txt"
timeout 300 $B/tests/latmix_serve_tests >"$O/serve-tests.log" 2>&1
log "latmix_serve_tests (one process): exit $? ($(grep -E '^\[  (PASSED|FAILED)' "$O/serve-tests.log" | tr '\n' ' '))"
grep -A40 "fatal signal" "$O/serve-tests.log" >>"$O/summary.txt" && {
  # frames as BINARY(+OFFSET): name them
  grep -oE "latmix_serve_tests\(\+0x[0-9a-f]+\)" "$O/serve-tests.log" | grep -oE "0x[0-9a-f]+" |
    xargs -r addr2line -f -C -e $B/tests/latmix_serve_tests >>"$O/summary.txt" 2>&1
}
ls -d /tmp/latmix-serve-* 2>/dev/null | sed 's/^/left behind: /' >>"$O/summary.txt"
if [ "$ONLY" = overhead ]; then
  rm -rf /tmp/m22 /tmp/tiny
  $B/tests/bench/make_random_model /tmp/m22 --shape 22m --tokenizer $M/tokenizer.json >/dev/null 2>&1
  $B/tests/bench/make_random_model /tmp/tiny --shape tiny --tokenizer $M/tokenizer.json --dtype fp32 >/dev/null 2>&1
  # RUNS: "CORES [VAR=VALUE ...]" items, ';'-separated (default: 2 of its cores, then all 16).
  IFS=';' read -ra runs <<<"${RUNS:-0-1;0-15}"
  for run in "${runs[@]}"; do
    set -- $run
    cores=$1; shift
    timeout 200 env "$@" X=1 taskset -c $cores $B/tests/bench/bench_remote /tmp/m22 "$TEXT" "$REPEATS" 100 cpu /tmp/tiny \
      >"$O/bench-22m.txt" 2>&1
    log "$* taskset -c $cores bench_remote /tmp/m22 (22m shape) $REPEATS 100 cpu /tmp/tiny: exit $?"
    grep -vE "^(write|load)" "$O/bench-22m.txt" >>"$O/summary.txt"
  done
  exit 0
fi
if [ "$ONLY" = crash ]; then
  rm -rf /tmp/latmix-serve-*
  CUDA_VISIBLE_DEVICES= timeout 300 $B/tests/latmix_serve_tests >"$O/serve-tests-nogpu.log" 2>&1
  log "latmix_serve_tests with no GPU visible: exit $?"
  for f in ServeToken.* ServeRoots.* ServeJobs.* ServeServer.AWrongOrMissingTokenIsRefused; do
    timeout 100 $B/tests/latmix_serve_tests --gtest_filter="$f" >/dev/null 2>&1
    log "latmix_serve_tests --gtest_filter=$f: exit $?"
  done
  export XDG_CONFIG_HOME=/tmp/crash-config
  for device in cpu cuda; do
    rm -f /tmp/crash-port
    $L serve --device $device --root "$PWD/resources" --listen 127.0.0.1:0 --port-file /tmp/crash-port 2>"$O/serve-$device.log" &
    S=$!
    for _ in $(seq 100); do [ -s /tmp/crash-port ] && break; sleep 0.1; done
    $L --engine "http://127.0.0.1:$(cat /tmp/crash-port)" info --model "$PWD/$M" >/dev/null 2>&1
    log "latmix serve --device $device: info exit $?"
    kill -INT $S; wait $S
    log "latmix serve --device $device stopped by SIGINT: exit $?"
  done
  { grep -m1 -B2 -A12 "fatal signal" "$O/serve-tests.log"; grep -A400 "^mappings:" "$O/serve-tests.log" | awk '{print $1, $6}' | grep -v " $" | awk '{split($1,a,"-"); print a[1], a[2], $2}' ; } >"$O/crash-maps.txt"
  exit 0
fi

rm -rf /tmp/tiny
$B/tests/bench/make_random_model /tmp/tiny --shape tiny --tokenizer $M/tokenizer.json --dtype fp32 >/dev/null 2>&1
for device in cpu cuda; do
  timeout 240 $B/tests/bench/bench_remote $M "$TEXT" "$REPEATS" 300 $device /tmp/tiny >"$O/bench-remote-$device.txt" 2>&1
  log "bench_remote $M $REPEATS 300 $device /tmp/tiny: exit $?"
  grep -vE "^(write|load)" "$O/bench-remote-$device.txt" >>"$O/summary.txt"
done

rm -rf /tmp/bf16-ct
START=$SECONDS
timeout 200 $L export --model $M --method quarot --quant w=mxfp4 --as compressed-tensors --dtype bf16 --device cuda \
  --out /tmp/bf16-ct >"$O/export-bf16-cuda.txt" 2>&1
log "export (6M, quarot, w=mxfp4, bf16, cuda): exit $?, $((SECONDS - START)) s"
timeout 200 $L verify /tmp/bf16-ct >"$O/verify-bf16-cpu.txt" 2>&1
log "verify on the cpu: exit $?"
grep -E "perplexity|verified|FAILED" "$O/verify-bf16-cpu.txt" >>"$O/summary.txt"
