#!/usr/bin/env bash
# Runs on the GPU machine: the full-recipe method comparisons of issue #7 and the learning
# throughput benchmark. Builds like build_and_test.sh (latmix and bench_learn only), then
#  - `latmix compare` on gutenberg-llama-22M under W4A4 MXFP4 and MXINT4 (every preset, CUDA
#    defaults: 256 x 1024 calibration tokens from training books), and on gutenberg-llama-6M (MXFP4);
#  - bench_learn: a Llama-3.2-1B-shaped model with random weights, end-to-end and layer-wise.
# Needs (carried, gitignored): .device/debs, .device/evalpack/zs22m.tar.xz (22M model + eval data
# + pg1342), .device/learnpack/books.tar.xz (two more training books), and the 6M model in the tree
# (resources/models). Results go to $OUT (tarred, since only a few files come back).
# (zs22m.tar.xz holds model/ (the 22M folder without its golden logits) and data/ (eval/ files of
# the tasks below, corpus/gutenberg/ pg84, pg11, pg1260, pg1342, pg1400): 13.6 MB.)
# Usage: bash scripts/device/learn_runs.sh [compare22|compare22int|ablate|lu22|every22|refresh22|compare6|bench|all]...
set -uo pipefail
STAGES=${*:-all}
O=${OUT:-/tmp/out}
R=/tmp/learn-results
mkdir -p "$R" "$O"
T0=$(date +%s)
log() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$R/timeline.txt"; }
want() { [[ " $STAGES " == *" $1 "* || " $STAGES " == *" all "* ]]; }
finish() { tar -czf "$O/learn-results.tgz" -C "$R" . ; log "results in $O/learn-results.tgz"; }
trap finish EXIT

if [ ! -x /tmp/build-cuda/cli/latmix ]; then
  source scripts/device/deps.sh
  cuda_build . "$R" latmix bench_learn || exit 1
  log "built"
fi
export LD_LIBRARY_PATH="/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
L=/tmp/build-cuda/cli/latmix
D=/tmp/learn-data
if [ ! -d "$D/model" ]; then
  mkdir -p "$D"
  tar -xJf .device/evalpack/zs22m.tar.xz -C "$D"
  if [ -f .device/learnpack/books.tar.xz ]; then tar -xJf .device/learnpack/books.tar.xz -C "$D/data/corpus/gutenberg"; fi
fi
BOOKS="$D/data/corpus/gutenberg/pg1260_jane_eyre.txt,$D/data/corpus/gutenberg/pg1342_pride_and_prejudice.txt,$D/data/corpus/gutenberg/pg1400_great_expectations.txt"
TASKS=frankenstein,alice,wikitext2,arc_easy,arc_challenge,boolq,hellaswag,openbookqa,piqa,winogrande,lambada,copa
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >>"$R/timeline.txt"

compare() {  # name model format extra...
  local name=$1 model=$2 fmt=$3; shift 3
  log "compare $name ($fmt) start"
  local q="w=${fmt%%,*},a=${fmt%%,*}"; [[ "$fmt" == *,* ]] && q="$q,${fmt#*,}"
  $L compare --model "$model" --device cuda --quant "$q" --calib "$BOOKS" --data-dir "$D/data" \
    --tasks "$TASKS" --limit 300 --out "$R/$name" --quiet "$@" >"$R/$name.stdout" 2>"$R/$name.stderr"
  log "compare $name exit $? "
}
if want compare22; then compare 22m-mxfp4 "$D/model" mxfp4; fi
if want compare22int; then compare 22m-mxint4 "$D/model" mxint4; fi
# Ablations of latmix on gutenberg-llama-22M (perplexity only): loss, learning rate, start, weights.
if want ablate; then
  TASKS=frankenstein,alice,wikitext2 compare abl-ce "$D/model" mxfp4 --methods latmix --loss ce
  TASKS=frankenstein,alice,wikitext2 compare abl-lr3e-3 "$D/model" mxfp4 --methods latmix --lr 3e-3
  TASKS=frankenstein,alice,wikitext2 compare abl-init-hadamard "$D/model" mxfp4 --methods latmix --init hadamard
  TASKS=frankenstein,alice,wikitext2 compare abl-rtn "$D/model" "mxfp4,weights=rtn" --methods mr-gptq,spinquant,latmix
fi
# Issue 21 (session 6): LU against QR, and the deployed check (GPTQ weights) at every measurement
# against the default (at the ends), latmix only, perplexity tasks, both formats.
if want lu22; then
  TASKS=frankenstein,alice,wikitext2 compare lu-mxfp4 "$D/model" mxfp4 --methods latmix --param lu
  TASKS=frankenstein,alice,wikitext2 compare lu-mxint4 "$D/model" mxint4 --methods latmix --param lu
fi
if want every22; then
  TASKS=frankenstein,alice,wikitext2 compare every-mxfp4 "$D/model" mxfp4 --methods latmix --deployed-check every
  TASKS=frankenstein,alice,wikitext2 compare every-mxint4 "$D/model" mxint4 --methods latmix --deployed-check every
fi
# Issue 21 (session 8): GPTQ in the loop (--gptq-refresh K, docs/methods.md) against the default on
# the GPU recipe (256 steps: a GPTQ run of the 22M model every K steps), latmix only, both formats.
if [[ " $STAGES " == *" refresh22 "* ]]; then  # explicit only (not in all)
  for k in 32 8; do
    TASKS=frankenstein,alice,wikitext2 compare refresh$k-mxfp4 "$D/model" mxfp4 --methods latmix --gptq-refresh $k
    TASKS=frankenstein,alice,wikitext2 compare refresh$k-mxint4 "$D/model" mxint4 --methods latmix --gptq-refresh $k
  done
fi
if want compare6; then
  TASKS=frankenstein,alice,wikitext2 compare 6m-mxfp4 resources/models/gutenberg-llama-6M mxfp4
fi
bench() {  # mode
  log "bench_learn $1 start"
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$R/mem_$1.csv" 2>/dev/null &
  local smi=$!
  /tmp/build-cuda/tests/bench/bench_learn cuda 12 1 2048 "$1" 16 >"$R/bench_$1.txt" 2>&1
  kill $smi 2>/dev/null; wait $smi 2>/dev/null
  echo "peak GPU memory (nvidia-smi, MiB): $(sort -n "$R/mem_$1.csv" | tail -1)" >>"$R/bench_$1.txt"
  log "bench_learn $1 done"
}
if want bench; then
  bench e2e
  bench layerwise
fi
