#!/usr/bin/env bash
# Exit codes and help of `latmix` without any model: 0 ok, 1 runtime error, 2 usage error.
source "$(dirname "$0")/lib.sh"
LATMIX=$1
expect 0 "$LATMIX" --version;                 contains stdout "latmix 0."
expect 0 "$LATMIX" --help;                    contains stdout "ppl"
expect 2 "$LATMIX";                           contains stdout "Commands:"
expect 2 "$LATMIX" frobnicate;                contains stderr "unknown command 'frobnicate'"
for cmd in info tokenize logits generate ppl stats analyze eval; do
  expect 0 "$LATMIX" "$cmd" --help;           contains stdout "Usage: latmix $cmd"
done
expect 2 "$LATMIX" info;                      contains stderr "--model PATH is required"
expect 2 "$LATMIX" info --model;              contains stderr "needs a value"
expect 2 "$LATMIX" info --model x --bogus;    contains stderr "unknown option '--bogus'"
expect 2 "$LATMIX" info --model x --threads many; contains stderr "expected an integer"
expect 1 "$LATMIX" info --model /nonexistent; contains stderr "/nonexistent: no such file"
# Issue 20 High 2: a 28-byte llama2.c header with vocab_size = INT32_MIN is refused (it crashed every command).
python3 -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<7i", 64, 172, 5, 8, 4, -2**31, 512))' > "$OUT/intmin.bin"
expect 1 "$LATMIX" info --model "$OUT/intmin.bin"; contains stderr "intmin.bin"; contains stderr "vocab_size out of range"
expect 2 "$LATMIX" ppl --model x --data y --device tpu; contains stderr "unknown device 'tpu'"
expect 2 "$LATMIX" mx;                       contains stderr "latmix mx quantize"
expect 0 "$LATMIX" mx quantize --help;        contains stdout "Usage: latmix mx quantize"
expect 0 "$LATMIX" mx stats --help;           contains stdout "Usage: latmix mx stats"
expect 2 "$LATMIX" mx quantize --format mxfp5 --in a --out b; contains stderr "mxfp5"
# Issue 20: usage, help and version come from the launcher without loading LibTorch (0.75 s of CPU),
# and say exactly what the engine (latmix-engine, beside it) says.
ENGINE=$(dirname "$LATMIX")/latmix-engine
for args in "--help" "ppl --help" "mx quantize --help" "help export" "--version" "--version --json"; do
  # Every build, a CUDA LibTorch's too (the launcher asks libcuda.so.1 whether a GPU is there).
  # shellcheck disable=SC2086
  if LD_DEBUG=libs "$LATMIX" $args 2>&1 >/dev/null | grep -q "libtorch_cpu"; then
    echo "FAIL: latmix $args loads LibTorch"; FAILED=$((FAILED + 1))
  else
    PASSED=$((PASSED + 1))
  fi
  # shellcheck disable=SC2086
  if [ -x "$ENGINE" ] && cmp -s <("$LATMIX" $args 2>&1) <("$ENGINE" $args 2>&1); then
    PASSED=$((PASSED + 1))
  else
    echo "FAIL: latmix $args differs from latmix-engine $args"; FAILED=$((FAILED + 1))
  fi
done
expect 2 "$LATMIX" --version --bogus;         contains stderr "takes only --json"
finish
