#!/usr/bin/env bash
# What `latmix` prints around the results: --version (text and JSON, with where the bundled resources are),
# and progress on stderr: a redrawn bar on a terminal (a pseudo-terminal from script(1)), plain output
# otherwise, nothing with --quiet or on a TERM=dumb terminal.
# Usage: console_test.sh PATH/TO/latmix SOURCE_DIR
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../support/python.sh"
LATMIX=$1; SRC=$2
MODEL=$SRC/resources/models/gutenberg-llama-6M
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PASSED=0; FAILED=0
pass() { PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
unset LATMIX_RESOURCES

# --version
"$LATMIX" --version >"$WORK/v" || fail "latmix --version exited with $?"
sed -n '1p' "$WORK/v" | grep -qE '^latmix [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]+|unknown)\)$' && pass ||
  fail "line 1 is not 'latmix X.Y.Z (commit C)': $(sed -n 1p "$WORK/v")"
sed -n '2p' "$WORK/v" | grep -qE '^LibTorch [0-9]+\.[0-9]+\.[0-9]+, CUDA: (yes|no) \(' && pass ||
  fail "line 2 is not 'LibTorch X.Y.Z, CUDA: yes|no (...)': $(sed -n 2p "$WORK/v")"
grep -qxF "bundled demo model and calibration text: $(realpath "$SRC/resources")" "$WORK/v" && pass ||
  fail "--version does not name the source tree's resources: $(cat "$WORK/v")"
mkdir -p "$WORK/res/models"
LATMIX_RESOURCES=$WORK/res "$LATMIX" --version |
  grep -qxF "bundled demo model and calibration text: $WORK/res" && pass ||
  fail "--version does not follow LATMIX_RESOURCES"
"$LATMIX" --version --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert set(j) == {"version", "commit", "libtorch", "cuda", "cuda_mx_kernels", "distributed", "resources"}, sorted(j)
assert isinstance(j["cuda"]["built"], bool) and isinstance(j["cuda"]["available"], bool), j["cuda"]
assert j["cuda"]["available"] <= j["cuda"]["built"], j["cuda"]' && pass || fail "latmix --version --json"
"$LATMIX" --version --bogus >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "latmix --version --bogus: not exit 2"

# Progress. script(1) runs the command on a pseudo-terminal; its stdout goes to /dev/null, so what script
# records is stderr. `generate` loads the weights (with a progress bar); `info` reads headers only.
on_tty() { script -qec "$*" /dev/null </dev/null; }
"$LATMIX" generate --model "$MODEL" --prompt Once --max-new 1 2>"$WORK/plain" >/dev/null || fail "latmix generate exited with $?"
grep -q $'\r' "$WORK/plain" && fail "progress redraws (\\r) although stderr is a file" || pass
on_tty "TERM=xterm '$LATMIX' generate --model '$MODEL' --prompt Once --max-new 1 >/dev/null" >"$WORK/tty"
grep -q $'\r' "$WORK/tty" && grep -q '\[#' "$WORK/tty" && pass ||
  fail "no progress bar on a terminal: $(od -c "$WORK/tty" | head -3)"
on_tty "'$LATMIX' generate --model '$MODEL' --prompt Once --max-new 1 --quiet >/dev/null" >"$WORK/quiet"
[ ! -s "$WORK/quiet" ] && pass || fail "--quiet still printed: $(head -c 200 "$WORK/quiet")"
on_tty "TERM=dumb '$LATMIX' generate --model '$MODEL' --prompt Once --max-new 1 >/dev/null" >"$WORK/dumb"
# (the terminal turns each \n into \r\n; only a \r that is not before \n redraws)
sed 's/\r$//' "$WORK/dumb" | grep -q $'\r' && fail "progress redraws on a TERM=dumb terminal" || pass
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
