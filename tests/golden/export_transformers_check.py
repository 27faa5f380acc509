#!/usr/bin/env python3
"""A real client for `latmix export` (issue 8), run on the GPU machine by scripts/device/export_client.sh.

make-plan: writes a fixed MR-GPTQ-style transform plan (block Hadamard of 32 with random signs on the
  residual stream, the values and online before down_proj) in the latmix-transforms format
  (PREFIX.json + PREFIX.safetensors, docs/transforms.md), written here with numpy + safetensors, not by
  latmix, so the export reads a plan it did not write.
check: (1) loads the folded-bf16 export with transformers AutoModelForCausalLM (fp32) and computes the
  perplexity of a text with latmix eval's convention (docs/evaluation.md: the file tokenized as it is,
  no BOS; non-overlapping windows of --seqlen, tail dropped; every position but the first of each
  window scored; ppl = exp(mean NLL)), and compares it with `latmix eval --json` on the same folder
  (must agree within 0.5%); (2) decodes the compressed-tensors export's weight_packed/weight_scale from
  the format description alone (two E2M1 codes per byte, element 2i in the low nibble, sign bit 3,
  magnitudes 0 .5 1 1.5 2 3 4 6; E8M0 scale 2^(s-127) per 32 inputs) and compares with the folded
  bf16 weights: bit for bit where no online transform sits before the layer, and through the stored
  transform matrix (x W / sqrt(n), so the folded weight is Q W^T / sqrt(n)) to bf16 rounding where one does.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file

E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


def make_plan(args):
    cfg = json.load(open(os.path.join(args.model, "config.json")))
    hidden, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    head_dim = cfg.get("head_dim", hidden // cfg["num_attention_heads"])
    rng = np.random.default_rng(args.seed)
    signs = lambda n: rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=n)
    block = lambda n: {"kind": "block_hadamard", "dim": n, "block": 32}
    tensors = {"residual.signs": signs(hidden)}
    plan = {"format": "latmix-transforms", "version": 1, "residual": block(hidden), "value": [],
            "down_online": []}
    for l in range(layers):
        tensors[f"value.{l}.signs"] = signs(head_dim)
        tensors[f"down_online.{l}.signs"] = signs(inter)
        plan["value"].append(block(head_dim))
        plan["down_online"].append(block(inter))
    save_file(tensors, args.out + ".safetensors", metadata={"format": "latmix-transforms"})
    json.dump(plan, open(args.out + ".json", "w"), indent=2)
    print(f"plan: block Hadamard 32 on residual ({hidden}), values ({head_dim}) x {layers}, "
          f"down_online ({inter}) x {layers}")


def perplexity(model_dir, text_path, seqlen, device):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    import transformers

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    # newline="": the text as it is (latmix reads the bytes; universal newlines would drop the \r of \r\n).
    ids = tok.encode(open(text_path, encoding="utf-8", newline="").read(), add_special_tokens=False).ids
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    model = model.to(device).eval()
    n = len(ids) // seqlen
    windows = torch.tensor(ids[: n * seqlen], dtype=torch.long).view(n, seqlen)
    nll, count = 0.0, 0
    with torch.no_grad():
        for b in range(0, n, 8):
            x = windows[b : b + 8].to(device)
            logp = torch.log_softmax(model(x).logits.float()[:, :-1], dim=-1)
            picked = logp.gather(-1, x[:, 1:, None]).squeeze(-1)
            nll -= picked.double().sum().item()
            count += picked.numel()
    return {"perplexity": math.exp(nll / count), "windows": n, "tokens_scored": count, "text_tokens": len(ids),
            "transformers": transformers.__version__, "torch": torch.__version__, "device": device,
            "model_class": type(model).__name__}


def decode_mxfp4(packed, scale):
    packed = packed.numpy().astype(np.int64)
    scale = scale.numpy().astype(np.int64)
    rows, half = packed.shape
    codes = np.stack([packed & 15, packed >> 4], axis=-1).reshape(rows, 2 * half)
    values = E2M1[codes & 7] * np.where(codes & 8, -1.0, 1.0)
    return values * np.repeat(np.ldexp(1.0, scale - 127), 32, axis=1)


def compare_packed(folded_dir, packed_dir):
    folded, packed = {}, {}
    for d, into in ((folded_dir, folded), (packed_dir, packed)):
        for f in sorted(os.listdir(d)):
            if f.endswith(".safetensors"):
                into.update(load_file(os.path.join(d, f)))
    exact, transformed, worst, other = 0, 0, 0.0, 0
    for name in sorted(packed):
        if not name.endswith(".weight_packed"):
            continue
        base = name[: -len(".weight_packed")]
        q = decode_mxfp4(packed[name], packed[base + ".weight_scale"])
        ref = folded[base + ".weight"].double().numpy()
        online = [k for k in packed if k.startswith(base + ".") and k.endswith("_input.weight")]
        if online:
            w = packed[online[0]].double().numpy()
            eff = q @ w.T / math.sqrt(w.shape[0])
            rel = np.abs(eff - ref).max() / np.abs(ref).max()
            worst = max(worst, rel)
            transformed += 1
            assert rel < 2 ** -7, f"{base}: effective weight differs by {rel:.3g} (relative to its largest value)"
        else:
            assert np.array_equal(q, ref), f"{base}: decoded codes differ from the folded bf16 weight"
            exact += 1
    for name, t in packed.items():
        if name.endswith(".weight_packed") or name.endswith(".weight_scale") or name.endswith("_input.weight"):
            continue
        assert torch.equal(t, folded[name]), f"{name}: differs between the two exports"
        other += 1
    return {"linears_bit_exact": exact, "linears_through_online_transform": transformed,
            "online_max_relative_difference": worst, "other_tensors_equal": other}


def check(args):
    result = {"text": args.text, "seqlen": args.seqlen}
    try:
        import compressed_tensors

        result["compressed_tensors"] = compressed_tensors.__version__
    except ImportError:
        result["compressed_tensors"] = None
    t0 = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result["transformers_folded_bf16"] = perplexity(args.folded, args.text, args.seqlen, device)
    result["transformers_seconds"] = time.time() - t0
    lat = json.load(open(args.latmix_json))
    lat_ppl = lat["results"][0]["metrics"]["ppl"]
    tf_ppl = result["transformers_folded_bf16"]["perplexity"]
    result["latmix_eval"] = {"perplexity": lat_ppl, "convention": lat["results"][0]["convention"]}
    tokens = str(result["transformers_folded_bf16"]["text_tokens"]) + " text tokens"
    result["same_tokens"] = tokens in result["latmix_eval"]["convention"]
    result["relative_difference"] = abs(tf_ppl - lat_ppl) / lat_ppl
    result["ppl_within_0.5%"] = result["relative_difference"] < 0.005
    result["packed_vs_folded"] = compare_packed(args.folded, args.packed)
    json.dump(result, open(args.out, "w"), indent=2)
    print(json.dumps(result, indent=2))
    if not result["ppl_within_0.5%"]:
        sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    mp = sub.add_parser("make-plan")
    mp.add_argument("--model", required=True)
    mp.add_argument("--out", required=True, help="PREFIX of PREFIX.json / PREFIX.safetensors")
    mp.add_argument("--seed", type=int, default=84)
    ck = sub.add_parser("check")
    ck.add_argument("--folded", required=True)
    ck.add_argument("--packed", required=True)
    ck.add_argument("--text", required=True)
    ck.add_argument("--seqlen", type=int, default=512)
    ck.add_argument("--latmix-json", required=True)
    ck.add_argument("--out", required=True)
    args = p.parse_args()
    make_plan(args) if args.cmd == "make-plan" else check(args)


if __name__ == "__main__":
    main()
