#!/usr/bin/env bash
# `latmix analyze` on the bundled gutenberg-llama-6M with tiny settings: usage errors, the table, --json, --out.
# Needs only the bundled model (resources/), not the shared data.
source "$(dirname "$0")/lib.sh"
LATMIX=$1
SRC=$2
M6=$SRC/resources/models/gutenberg-llama-6M
TXT=$SRC/resources/calibration/pride_and_prejudice_ch1-6.txt
TINY=(--model "$M6" --data "$TXT" --samples 1 --seqlen 32 --steps 2 --quiet)

expect 0 "$LATMIX" analyze --help;                                contains stdout "Usage: latmix analyze"
expect 2 "$LATMIX" analyze "${TINY[@]}" --layer 6;                contains stderr "--layer 6 is out of range: the model has 6 decoder layers (0..5)"
expect 2 "$LATMIX" analyze "${TINY[@]}" --layer -1;               contains stderr "--layer -1 is out of range"
expect 2 "$LATMIX" analyze "${TINY[@]}" --point bogus;            contains stderr "--point: "; contains stderr "bogus"
expect 2 "$LATMIX" analyze "${TINY[@]}" --format mxfp5;           contains stderr "--format: "; contains stderr "mxfp5"
expect 2 "$LATMIX" analyze "${TINY[@]}" --holdout 1;             contains stderr "--holdout: must be in [0, 1)"
expect 2 "$LATMIX" analyze "${TINY[@]}" --affine svd;             contains stderr "--affine: expected lu or qr"
expect 2 "$LATMIX" analyze "${TINY[@]}" --layer 1 --blocks 3;     contains stderr "block size 3 does not divide the width 256"

expect 0 "$LATMIX" analyze "${TINY[@]}" --layer 1 --blocks 8,32
contains stdout "residual, layer 1: 256 channels, 8 tokens measured (24 fitted on)"
contains stdout "learned_affine"
contains stdout "block_hadamard"

expect 0 "$LATMIX" analyze "${TINY[@]}" --layer 1 --point residual,down_in --blocks 4,32 --json --out "$OUT/report"
python3 - "$OUT/stdout" "$OUT/report" <<'PY' >"$OUT/check" 2>&1
import json, os, sys
j = json.load(open(sys.argv[1]))
assert j["format"] == "mxfp4" and j["steps"] == 2 and j["affine"] == "lu", j
assert j["transforms"] == ["none", "hadamard", "block_hadamard", "learned_rotation", "learned_affine"], j["transforms"]
assert [(l["point"], l["layer"], l["features"]) for l in j["layers"]] == [("residual", 1, 256), ("down_in", 1, 704)], j["layers"]
for l in j["layers"]:
    assert l["block_sizes"] == [4, 32] and l["detail_block"] == 32 and l["tokens"] == 8 and l["fit_tokens"] == 24, l
    t = l["transforms"]
    for name in j["transforms"]:
        for s in t[name]["sizes"]:
            if s["skipped"]:
                assert name == "hadamard" and "no full Hadamard" in s["note"], s
                continue
            for k in ("rel_error", "condition_number", "block_crest", "block_peak_power"):
                assert isinstance(s[k], float), (name, k, s)
            assert 0 < s["rel_error"] < 1, s
        if not t[name]["sizes"][1]["skipped"]:
            errs = t[name]["block_errors"]
            assert len(errs) == l["features"] // 32, (name, len(errs))
            assert abs(sum(errs) - t[name]["sizes"][1]["rel_error"]) < 1e-9, name
    for name in ("learned_rotation", "learned_affine"):
        for s, bh in zip(t[name]["sizes"], t["block_hadamard"]["sizes"]):
            assert s["fit_error"] <= s["init_error"] and s["steps"] == 2, s
    for s in t["none"]["sizes"] + t["block_hadamard"]["sizes"]:
        assert s["condition_number"] == 1.0, s
files = sorted(os.listdir(sys.argv[2]))
assert files == ["blocks_down_in_1.png", "blocks_residual_1.png", "error_down_in_1.png", "error_residual_1.png",
                 "report.json", "report.md"], files
for f in files:
    if f.endswith(".png"):
        assert open(os.path.join(sys.argv[2], f), "rb").read(8) == b"\x89PNG\r\n\x1a\n", f
assert json.load(open(os.path.join(sys.argv[2], "report.json")))["layers"][0]["layer"] == 1
assert "![error_residual_1.png](error_residual_1.png)" in open(os.path.join(sys.argv[2], "report.md")).read()
print("ok")
PY
if grep -qx ok "$OUT/check"; then PASSED=$((PASSED + 1)); else echo "FAIL: analyze --json/--out"; sed 's/^/  /' "$OUT/check"; FAILED=$((FAILED + 1)); fi
# Cancel: SIGTERM stops the fits at the next step; the command says so and exits 128 + 15.
"$LATMIX" analyze "${TINY[@]}" --layer 1 --blocks 8 --steps 100000 >"$OUT/stdout" 2>"$OUT/stderr" &
PID=$!
sleep 4
kill -TERM "$PID"
wait "$PID"
RC=$?
if [ "$RC" -eq 143 ]; then PASSED=$((PASSED + 1)); else echo "FAIL: analyze after SIGTERM exited $RC (wanted 143)"; FAILED=$((FAILED + 1)); fi
contains stderr "cancelled (SIGTERM)"
finish
