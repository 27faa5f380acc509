#!/usr/bin/env python3
"""Loads folded-bf16 exports with Hugging Face transformers and compares its logits with ours.

For each EXPORT folder in DIR with EXPORT.ids (comma-separated token ids) and EXPORT.logits.safetensors
(`latmix logits --model EXPORT --ids ... --out ...`, float32 [T, vocab]) beside it: transformers'
AutoModelForCausalLM reads the folder (float32 compute from the stored bf16 weights, on CUDA when
present), runs the ids, and the script prints the largest absolute difference of the logits, the
largest relative to the logits' scale, and the argmax agreement. Exit 1 when a folder does not load
or differs by more than --tol (relative to max |logit|).

Usage (device machine): python3 scripts/device/transformers_exports.py DIR [--tol 1e-4]
"""
import argparse
import glob
import os
import sys

import torch
from safetensors.torch import load_file
import transformers
from transformers import AutoModelForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--tol", type=float, default=1e-4)
a = ap.parse_args()
dev = "cuda" if torch.cuda.is_available() else "cpu"
print(f"transformers {transformers.__version__}, torch {torch.__version__}, {dev}")
bad = 0
for ids_file in sorted(glob.glob(os.path.join(a.dir, "*.ids"))):
    folder = ids_file[:-4]
    name = os.path.basename(folder)
    ids = [int(x) for x in open(ids_file).read().strip().split(",")]
    ours = load_file(folder + ".logits.safetensors")["logits"].double()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).to(dev).eval()
        with torch.no_grad():
            theirs = model(torch.tensor([ids], device=dev)).logits[0].double().cpu()
    except Exception as e:  # a folder transformers cannot read is the finding
        print(f"FAIL  {name}: transformers could not run it: {type(e).__name__}: {e}")
        bad += 1
        continue
    diff = (theirs - ours).abs().max().item()
    rel = diff / ours.abs().max().item()
    agree = (theirs.argmax(-1) == ours.argmax(-1)).double().mean().item()
    ok = rel <= a.tol and tuple(theirs.shape) == tuple(ours.shape)
    bad += 0 if ok else 1
    print(f"{'ok  ' if ok else 'FAIL'}  {name}: {type(model).__name__}, logits {list(theirs.shape)}, "
          f"max |diff| {diff:.3g}, relative to max |logit| {rel:.3g} (tol {a.tol:g}), argmax agreement {agree:.3f}")
sys.exit(1 if bad else 0)
