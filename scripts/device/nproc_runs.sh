#!/usr/bin/env bash
# Runs on the GPU machine (repository root, carrying .device/debs): issue 22's checks against its
# LibTorch (2.11, CUDA, NCCL): the Distributed unit tests; tests/cli/cli_nproc.sh with the plain
# `latmix` (2 processes on the CPU equal 1, a killed worker, resume across N); and torchrun starting
# the processes itself (--no-python latmix learn): 2 on the CPU, and 1 on the GPU through NCCL; GPTQ
# in the loop through the group on the GPU; and the layer split (learn --split layers) on the GPU: a
# Llama-3.2-1B-shaped model with random weights (the shared bench's make_model.py, carried as
# .device/make_model.py), FlatQuant layer-wise in bf16, one process holding the whole model against 2
# processes on the same GPU each holding its share of the layers (every message of a split run
# travels through host memory, so they may share a GPU), with each run's peak GPU memory per process
# (nvidia-smi, sampled every 0.2 s) and the two runs' losses and validation.
# Results in $OUT.
set -uo pipefail
O=${OUT:-/tmp/out}
mkdir -p "$O"
export NCCL_NVLS_ENABLE=0  # NVLink multicast stays off on the lent machines
if [ ! -x /tmp/build-cuda/cli/latmix ]; then
  source scripts/device/deps.sh
  cuda_build . "$O" latmix latmix-engine latmix_unit_tests || exit 1
fi
export LD_LIBRARY_PATH="/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
L=/tmp/build-cuda/cli/latmix
/tmp/build-cuda/tests/latmix_unit_tests --gtest_filter='Distributed*:LayerWise*' >"$O/unit.txt" 2>&1; echo "unit tests: exit $?"
grep -E "OK|FAILED|PASSED|Warning" "$O/unit.txt" | head -12
bash tests/cli/cli_nproc.sh "$L" "$PWD" >"$O/cli_nproc.txt" 2>&1; echo "cli_nproc.sh: exit $?"; tail -8 "$O/cli_nproc.txt"
M6=resources/models/gutenberg-llama-6M
TEXT=resources/calibration/pride_and_prejudice_ch1-6.txt
RUN=(learn --model "$M6" --method latmix --quant w=mxfp4,a=none --calib "$TEXT" --samples 8 --seqlen 64 --batch 4
     --validation 0 --threads 1 --optimizer sgd --lr 0.02 --steps 6)
$L "${RUN[@]}" --out /tmp/plain --events /tmp/plain.jsonl --quiet; echo "plain: exit $?"
torchrun --nproc-per-node 2 --no-python "$L" "${RUN[@]}" --out /tmp/tr2 --events /tmp/tr2.jsonl --quiet \
  >"$O/torchrun2.txt" 2>&1; echo "torchrun, 2 processes on the CPU: exit $?"; tail -5 "$O/torchrun2.txt"
python3 - /tmp/plain.jsonl /tmp/tr2.jsonl <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
print("losses, plain vs torchrun 2:", [(x["step"], f'{abs(x["loss"] - y["loss"]) / x["loss"]:.2g}') for x, y in zip(a, b)], len(a), len(b))
PY
torchrun --nproc-per-node 1 --no-python "$L" "${RUN[@]}" --device cuda --out /tmp/tr1 --events /tmp/tr1.jsonl \
  >"$O/torchrun1-cuda.txt" 2>&1; echo "torchrun, 1 process on the GPU (NCCL): exit $?"; tail -6 "$O/torchrun1-cuda.txt"
# GPTQ split between the processes (QuantizeOptions::group) on the GPU: a group of one process sends
# each linear and its report line through NCCL. GPTQ in the loop, plain against --nproc 1: the same
# validation curve (one process: the Hessians are its own, summed in the same order).
GPTQ=(learn --model "$M6" --method latmix --quant w=mxfp4,a=none,weights=gptq --calib "$TEXT" --samples 12 --seqlen 64
      --batch 4 --validation 4 --eval-every 2 --gptq-refresh 2 --steps 4 --device cuda --quiet --json)
$L "${GPTQ[@]}" >/tmp/gptq-plain.json 2>"$O/gptq-plain.txt"; echo "GPTQ in the loop, plain, GPU: exit $?"
$L "${GPTQ[@]}" --nproc 1 >/tmp/gptq-nproc1.json 2>"$O/gptq-nproc1.txt"; echo "GPTQ in the loop, --nproc 1, GPU: exit $?"
python3 - /tmp/gptq-plain.json /tmp/gptq-nproc1.json <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
va, vb = a["validation"]["curve"], b["validation"]["curve"]
print("validation, plain:   ", [(v["step"], round(v["loss"], 7)) for v in va])
print("validation, --nproc 1:", [(v["step"], round(v["loss"], 7)) for v in vb])
PY
M=/tmp/m1b
python3 .device/make_model.py $M 1b >"$O/make_model.txt" 2>&1 || { echo "make_model failed"; tail -5 "$O/make_model.txt"; exit 1; }
cp resources/models/gutenberg-llama-6M/tokenizer* $M/ 2>/dev/null
RUN=(learn --model $M --method flatquant --quant w=mxfp4,a=mxfp4 --calib resources/calibration/pride_and_prejudice_ch1-6.txt
     --samples 32 --seqlen 512 --batch 4 --steps 8 --validation 4 --dtype bf16 --quiet --json)
peak() {  # peak LOG: runs the rest of the command line while sampling nvidia-smi into LOG
  local log=$1; shift
  ( while true; do nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits; sleep 0.2; done ) >"$log" 2>/dev/null &
  local sampler=$!
  local t0; t0=$(date +%s.%N)
  "$@"; local rc=$?
  kill $sampler; wait $sampler 2>/dev/null
  echo "exit $rc, $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$t0" "$(date +%s.%N)"), peak GPU memory per process (MiB): $(awk -F', ' '{if ($2 > m[$1]) m[$1] = $2} END {for (p in m) printf "%s ", m[p]}' "$log")"
}
echo "one process, whole model on the GPU:"; peak "$O/smi-one.txt" $L "${RUN[@]}" --device cuda >"$O/one.json" 2>"$O/one.err"
echo "2 processes on the same GPU, --split layers:"; peak "$O/smi-split.txt" $L "${RUN[@]}" --device cuda:0 --nproc 2 --split layers >"$O/split.json" 2>"$O/split.err"
tail -3 "$O/one.err" "$O/split.err"
python3 - "$O/one.json" "$O/split.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
la, lb = [e["loss"] for e in a["curve"]], [e["loss"] for e in b["curve"]]
print(f"steps {len(la)} vs {len(lb)}; worst relative loss difference {max(abs(x - y) / abs(x) for x, y in zip(la, lb)):.3g}")
print("validation, one:  ", [(v["step"], round(v["loss"], 6)) for v in a["validation"]["curve"]])
print("validation, split:", [(v["step"], round(v["loss"], 6)) for v in b["validation"]["curve"]])
print("seconds:", a.get("seconds"), b.get("seconds"))
PY
