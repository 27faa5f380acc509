#!/usr/bin/env bash
# Start-up cost of `latmix` (issue 20): wall time of commands that do no work (--version, --help),
# where it goes (the dynamic loader: objects loaded, relocations, its own time; then static
# constructors until main), against /bin/true as the floor of starting a process. Since session 4
# `latmix` is a launcher without LibTorch; `latmix-engine` beside it (every command) is measured too.
# Usage: bash tests/bench/startup.sh [path/to/latmix] [runs]    (default build/release/cli/latmix, 20)
# Prints one line per measurement; docs/benchmarks.md records the figures with the machine and date.
set -uo pipefail
L=${1:-build/release/cli/latmix}
N=${2:-20}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wall() {  # wall CMD...: the median of N runs, in seconds
  for _ in $(seq 1 "$N"); do
    local t0 t1
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }'
  done | median
}
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "/bin/true:          $(wall /bin/true) s"
echo "latmix --version:   $(wall "$L" --version) s"
echo "latmix --help:      $(wall "$L" --help) s"
echo "latmix ppl --help:  $(wall "$L" ppl --help) s"
E=$(dirname "$L")/latmix-engine
if [ -x "$E" ]; then
  echo "latmix-engine --version: $(wall "$E" --version) s"
  echo "latmix info (launcher + engine): $(wall "$L" info --model resources/models/gutenberg-llama-6M) s"
  echo "latmix-engine info:      $(wall "$E" info --model resources/models/gutenberg-llama-6M) s"
fi
echo "shared objects:     $(ldd "$L" | wc -l) (ldd)"
LD_DEBUG=statistics "$L" --version 2>&1 >/dev/null | sed -n 's/^ *[0-9]*:[[:space:]]*/loader: /p' | head -8
# Time to main: LD_DEBUG=statistics covers the loader; the rest before main is static constructors.
if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
  perf stat -e task-clock,page-faults -r 5 "$L" --version 2>&1 >/dev/null | grep -E "task-clock|page-faults|elapsed"
fi
