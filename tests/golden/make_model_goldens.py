#!/usr/bin/env python3
"""Writes tiny random-init Hugging Face models and transformers' fp32 golden logits for them.

Run on a machine with torch + transformers + safetensors (the device machine):
    python3 tests/golden/make_model_goldens.py --out tests/fixtures/models
Each model folder gets config.json (as transformers saves it, plus a transformers-4 style copy
config.v4.json for the loaders' key-compatibility test), model.safetensors (fp32),
golden_logits.safetensors (logits_i [T, V] fp32, eager attention) and golden_logits.json (ids).
Norm gains and biases are randomized (transformers initializes them to 1 / 0, which would hide bugs).
"""
import argparse
import json
import os

import torch
import transformers
from safetensors.torch import save_file

VOCAB = 320
COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)

SPECS = {
    "tiny-qwen2": ("Qwen2ForCausalLM", transformers.Qwen2Config,
                   dict(COMMON, tie_word_embeddings=True, rope_theta=1000000.0, use_sliding_window=False)),
    "tiny-qwen3": ("Qwen3ForCausalLM", transformers.Qwen3Config,
                   dict(COMMON, head_dim=32, tie_word_embeddings=False, rope_theta=1000000.0,
                        use_sliding_window=False)),
    "tiny-mistral": ("MistralForCausalLM", transformers.MistralConfig,
                     dict(COMMON, head_dim=16, sliding_window=None, tie_word_embeddings=False,
                          rope_theta=10000.0)),
    "tiny-llama3": ("LlamaForCausalLM", transformers.LlamaConfig,
                    dict(COMMON, tie_word_embeddings=False, rope_theta=500000.0,
                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0, original_max_position_embeddings=32))),
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.08 * torch.randn(p.shape, generator=gen))


def v4_config(cfg):
    """transformers-4 spelling of the same config: rope_theta / rope_scaling / torch_dtype."""
    c = dict(cfg)
    rp = c.pop("rope_parameters", None)
    if rp is not None:
        c["rope_theta"] = rp.get("rope_theta", 10000.0)
        if rp.get("rope_type", "default") != "default":
            c["rope_scaling"] = {k: v for k, v in rp.items() if k != "rope_theta"}
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    return c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    for i, (name, (arch, cls, kw)) in enumerate(SPECS.items()):
        gen = torch.Generator().manual_seed(1234 + i)
        cfg = cls(**kw)
        cfg.architectures = [arch]
        model = getattr(transformers, arch)(cfg).float().eval()
        model.config._attn_implementation = "eager"
        randomize(model, gen)
        if cfg.tie_word_embeddings:
            model.tie_weights()
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        model.save_pretrained(folder, safe_serialization=True)
        with open(os.path.join(folder, "config.json")) as f:
            saved = json.load(f)
        with open(os.path.join(folder, "config.v4.json"), "w") as f:
            json.dump(v4_config(saved), f, indent=2)
        prompts = [[1] + torch.randint(3, VOCAB, (n,), generator=gen).tolist() for n in (7, 48, 1)]
        tensors, meta = {}, {"note": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                                     "fp32, eager attention, random init (seeded)", "prompts": []}
        with torch.no_grad():
            for j, ids in enumerate(prompts):
                out = model(torch.tensor([ids])).logits[0].float().contiguous()
                tensors[f"logits_{j}"] = out
                meta["prompts"].append({"ids": ids})
            # batch of two sequences of equal length: checks batching
            batch = torch.tensor([prompts[1][:20], prompts[1][20:40]])
            tensors["batch_logits"] = model(batch).logits.float().contiguous()
            meta["batch_ids"] = batch.tolist()
        save_file(tensors, os.path.join(folder, "golden_logits.safetensors"))
        with open(os.path.join(folder, "golden_logits.json"), "w") as f:
            json.dump(meta, f, indent=1)
        print(name, arch, sum(p.numel() for p in model.parameters()), "params ->", folder)


if __name__ == "__main__":
    main()
