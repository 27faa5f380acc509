#!/usr/bin/env bash
# Runs on the GPU machine: issue 14's measurements at real model shapes, the PyTorch anchor and
# ours in the same command. Builds like build_and_test.sh (latmix, bench_learn, unit tests), then
# stages (any of: tests anchor learn1b nproc1b profile1b presets1b gptq1b learn8b export8b export8b-memory; default: all):
#  - tests:     the CPU tests of the memory code and the CUDA MX/GPTQ unit tests;
#  - anchor:    ../shared/bench/latmix_step_anchor.py 4 2048 (carried in .device/scale);
#  - learn1b:   `latmix learn --method latmix --device cuda --dtype bf16` with its defaults on a
#               Llama-3.2-1B-shaped random model (make_model.py), the whole recipe or STEPS steps;
#  - nproc1b:   the 1B shape's step through the distributed path (`--nproc 1`) against the plain one;
#  - profile1b: 4 steps with LATMIX_PROFILE_STEP=1 (phase times), defaults and without the speed budget;
#  - presets1b: every learned preset's CUDA defaults, a few steps each, peak memory;
#  - gptq1b:    `latmix export --as folded-bf16` with GPTQ on 128 x 2048 (time of GPTQ);
#  - learn8b / export8b / export8b-memory: the Llama-3.1-8B shape, end-to-end at 4 x 2048, layer-wise,
#               and the GPTQ compressed-tensors export (streamed from mapped weights / held in memory).
# Peak GPU memory: nvidia-smi sampled every 100 ms (what the card reports, context included).
# Needs (carried, gitignored): .device/debs, .device/scale/{make_model.py,latmix_step_anchor.py,books.txt.xz}.
# Usage (device machine, repository root): bash tests/bench/scale_bench.sh [stage]...
set -uo pipefail
STAGES=${*:-all}
O=${OUT:-/tmp/out}
mkdir -p "$O"
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$O/timeline.txt"; }
want() { [[ " $STAGES " == *" $1 "* || " $STAGES " == *" all "* ]]; }

# SRC_TAR (a `git archive` of the commit to measure, carried) builds that commit rather than the
# working tree, which may hold other work in progress.
SRC=.
if [ -n "${SRC_TAR:-}" ]; then rm -rf /tmp/src && mkdir -p /tmp/src && tar -xf "$SRC_TAR" -C /tmp/src && SRC=/tmp/src; fi
if [ ! -x /tmp/build-cuda/cli/latmix ] || [ -n "${REBUILD:-}" ]; then
  source scripts/device/deps.sh
  cuda_build "$SRC" "$O" latmix latmix_unit_tests || exit 1
  log "built"
fi
export LD_LIBRARY_PATH="/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
L=/tmp/build-cuda/cli/latmix
S=.device/scale
[ -f /tmp/books.txt ] || xz -dc $S/books.txt.xz > /tmp/books.txt

# peak MiB of GPU memory used while CMD runs (nvidia-smi, 100 ms)
peak() {
  local tag=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$O/smi-$tag.txt" 2>/dev/null &
  local smi=$!
  local t=$(date +%s%N)
  "$@" > "$O/$tag.out" 2> "$O/$tag.err"
  local rc=$?
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  local el=$(python3 -c "print(f'{($(date +%s%N) - $t) / 1e9:.1f}')")
  local mib=$(sort -n "$O/smi-$tag.txt" | tail -1)
  log "$tag: rc $rc, ${el}s, peak ${mib} MiB (nvidia-smi)"
  tail -4 "$O/$tag.err" | sed 's/^/    /'
}

model() {  # model SHAPE: a random-init folder with a tokenizer beside it
  local dir=/tmp/m$1
  if [ ! -f "$dir/config.json" ]; then
    python3 $S/make_model.py "$dir" "$1" > /dev/null 2>&1 && cp resources/models/gutenberg-llama-6M/tokenizer*.json "$dir/"
    log "model $1 written" >&2
  fi
  echo "$dir"
}

if want tests; then
  /tmp/build-cuda/tests/latmix_unit_tests --gtest_filter='LearnMemory*:Gptq*:*Scales*:Distributed*' > "$O/unit-tests.txt" 2>&1
  grep -E "Failure|Expected|Which is|actual|FAILED|PASSED" "$O/unit-tests.txt" | head -30
  log "tests"
fi
if want anchor; then
  peak anchor python3 $S/latmix_step_anchor.py 4 2048 6
  grep anchor: "$O/anchor.out"
fi
M1=$(model 1b)
if want learn1b; then
  peak learn1b $L learn --model "$M1" --method latmix --device cuda --dtype bf16 --calib /tmp/books.txt \
    --steps "${STEPS:-256}" --events "$O/learn1b.jsonl" --json
  python3 - "$O/learn1b.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
if len(ev) > 3:
    a, b = ev[2], ev[-1]
    print(f"    steps {len(ev)}, {(b['seconds']-a['seconds'])/(b['step']-a['step']):.3f} s/step after step 3, "
          f"{8*2048*(b['step']-a['step'])/(b['seconds']-a['seconds']):.0f} tokens/s, total {b['seconds']:.1f} s")
PY
fi
if want nproc1b; then
  # Issue 22: what the distributed path costs on one GPU. `--nproc 1` runs it in this one process (the
  # plan's gradients and the step's losses through c10d's NCCL, the stop flag through Gloo) against the
  # plain path; ROUNDS interleaved rounds of NSTEPS steps each (8 x 2048 tokens, the CUDA defaults).
  export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the lent machines
  for round in $(seq 1 "${ROUNDS:-2}"); do
    for mode in plain nproc1; do
      extra=(); [ $mode = nproc1 ] && extra=(--nproc 1)
      peak "$mode-$round" $L learn --model "$M1" --method latmix --device cuda --dtype bf16 --calib /tmp/books.txt \
        --samples 64 --steps "${NSTEPS:-12}" --validation 0 --events "$O/$mode-$round.jsonl" --quiet "${extra[@]}"
      python3 - "$O/$mode-$round.jsonl" "$mode" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
a, b = ev[2], ev[-1]
print(f"    {sys.argv[2]}: {len(ev)} steps, {(b['seconds'] - a['seconds']) / (b['step'] - a['step']):.4f} s/step after step 3")
PY
    done
  done
fi
if want profile1b; then
  # Each micro-batch's phases (LATMIX_PROFILE_STEP=1 synchronizes the device around each), with the
  # speed budget and without it (teacher recomputed, every layer recomputed).
  LATMIX_PROFILE_STEP=1 peak profile1b $L learn --model "$M1" --method latmix --device cuda --dtype bf16 \
    --calib /tmp/books.txt --steps 4
  grep -E "memory:|step phases" "$O/profile1b.err" | head -8
  LATMIX_PROFILE_STEP=1 peak profile1b-plain $L learn --model "$M1" --method latmix --device cuda --dtype bf16 \
    --calib /tmp/books.txt --steps 4 --teacher-cache no --kept-layers 0
  grep -E "memory:|step phases" "$O/profile1b-plain.err" | head -8
fi
if want presets1b; then
  for m in spinquant flatquant latmix; do
    peak "preset-$m" $L learn --model "$M1" --method $m --device cuda --dtype bf16 --calib /tmp/books.txt --steps 3
  done
fi
if want gptq1b; then
  peak gptq1b $L export --model "$M1" --method gptq --quant w=mxfp4,weights=gptq --device cuda --dtype bf16 --calib /tmp/books.txt \
    --calib-samples 128 --calib-seqlen 2048 --as folded-bf16 --out /tmp/exp1b --overwrite
fi
if want learn8b || want export8b || want export8b-memory; then M8=$(model 8b); fi
if want learn8b; then
  peak learn8b $L learn --model "$M8" --method latmix --device cuda --dtype bf16 --calib /tmp/books.txt \
    --steps 4 --batch 4 --seqlen 2048 --events "$O/learn8b.jsonl"
  peak learn8b-layerwise $L learn --model "$M8" --method latmix --mode layerwise --device cuda --dtype bf16 \
    --calib /tmp/books.txt --steps 2 --batch 2 --seqlen 2048
fi
# export8b: the default (--weights mapped: the GPTQ export streams, one layer's work in memory);
# export8b-memory: the whole model on the GPU (--weights memory: the in-memory perplexity comparison).
# Both run the perplexity check on the calibration text (this machine has no installed sample text).
for stage in export8b export8b-memory; do
  want $stage || continue
  w=mapped; [ $stage = export8b-memory ] && w=memory
  # host memory: peak RssAnon (what the process owns; the mapped checkpoint's page cache is not) and RSS
  python3 tests/bench/peak_rss.py --label $stage -- $L export --model "$M8" --method gptq --quant w=mxfp4,weights=gptq \
    --device cuda --dtype bf16 --calib /tmp/books.txt --calib-samples 128 --calib-seqlen 2048 --as compressed-tensors \
    --out /tmp/exp8b --overwrite --weights $w --verify-data /tmp/books.txt > "$O/$stage.out" 2> "$O/$stage.err" &
  pid=$!
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$O/smi-$stage.txt" &
  smi=$!; wait $pid; kill $smi
  log "$stage: peak $(sort -n "$O/smi-$stage.txt" | tail -1) MiB GPU, $(grep '^PEAK' "$O/$stage.err")"
done
log "done"
