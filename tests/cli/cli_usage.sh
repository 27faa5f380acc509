#!/usr/bin/env bash
# Exit codes and help of `latmix` without any model: 0 ok, 1 runtime error, 2 usage error.
source "$(dirname "$0")/lib.sh"
LATMIX=$1
expect 0 "$LATMIX" --version;                 contains stdout "latmix 0."
expect 0 "$LATMIX" --help;                    contains stdout "ppl"
expect 2 "$LATMIX";                           contains stdout "Commands:"
expect 2 "$LATMIX" frobnicate;                contains stderr "unknown command 'frobnicate'"
for cmd in info tokenize logits generate ppl stats eval; do
  expect 0 "$LATMIX" "$cmd" --help;           contains stdout "Usage: latmix $cmd"
done
expect 2 "$LATMIX" info;                      contains stderr "--model PATH is required"
expect 2 "$LATMIX" info --model;              contains stderr "needs a value"
expect 2 "$LATMIX" info --model x --bogus;    contains stderr "unknown option '--bogus'"
expect 2 "$LATMIX" info --model x --threads many; contains stderr "expected an integer"
expect 1 "$LATMIX" info --model /nonexistent; contains stderr "/nonexistent: no such file"
expect 2 "$LATMIX" ppl --model x --data y --device tpu; contains stderr "unknown device 'tpu'"
expect 2 "$LATMIX" mx;                       contains stderr "latmix mx quantize"
expect 0 "$LATMIX" mx quantize --help;        contains stdout "Usage: latmix mx quantize"
expect 0 "$LATMIX" mx stats --help;           contains stdout "Usage: latmix mx stats"
expect 2 "$LATMIX" mx quantize --format mxfp5 --in a --out b; contains stderr "mxfp5"
finish
