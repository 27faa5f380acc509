#!/usr/bin/env python3
"""Reference zero-shot log-likelihoods from transformers, for tests/model/test_zero_shot_goldens.cpp.

Independent of the C++ code: it reads the shared data files itself, builds lm-eval's prompts,
encodes with the Hugging Face tokenizer (lm-eval's pair encoding: trailing context whitespace
moves to the continuation; continuation tokens = encode(context + continuation) after
encode(context)), and sums the log-probs of the continuation tokens with the model in float32
(RoPE inv_freq computed in float32, eager attention). BOS is not added: the gutenberg tokenizer's
post-processor adds none (add_bos_by_default() is false), so lm-eval would not add one either.

Run on a machine with torch + transformers (the device machine):
    python3 tests/golden/make_zero_shot_goldens.py --model DIR --data DATA_DIR \
        --out tests/fixtures/zero_shot/goldens.json [--items 10]
DATA_DIR holds eval/ as in ../shared/data (only the first ITEMS items of each file are read).
"""
import argparse
import json
import os

import torch
import transformers

TASKS = ["arc_easy", "hellaswag", "winogrande", "lambada"]


def read_jsonl(path, n):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
            if len(out) == n:
                break
    return out


def load_items(task, data, n):
    """(contexts, continuations, gold) per item, lm-eval prompts."""
    if task == "arc_easy":
        rows = read_jsonl(os.path.join(data, "eval/arc_easy/arc_easy_test.mosaic.jsonl"), n)
        return [([r["query"] + "\nAnswer:"] * len(r["choices"]), [" " + c for c in r["choices"]], r["gold"])
                for r in rows]
    if task == "hellaswag":
        with open(os.path.join(data, "eval/hellaswag/hellaswag_val_full.txt"), encoding="utf-8") as f:
            lines = f.read().split("\n")
        return [([lines[6 * i]] * 4, [" " + e for e in lines[6 * i + 2:6 * i + 6]], int(lines[6 * i + 1]))
                for i in range(n)]
    if task == "winogrande":
        rows = read_jsonl(os.path.join(data, "eval/winogrande/winogrande_dev.mosaic.jsonl"), n)
        return [(r["context_options"], [" " + r["continuation"]] * len(r["context_options"]), r["gold"])
                for r in rows]
    rows = read_jsonl(os.path.join(data, "eval/lambada/lambada_openai_test.mosaic.jsonl"), n)
    return [([r["context"]], [" " + r["continuation"]], 0) for r in rows]


def encode_pair(tok, context, continuation):
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"]
    return ctx, whole[len(ctx):]


@torch.no_grad()
def score(model, ctx, cont, device):
    ids = torch.tensor([ctx + cont], dtype=torch.long, device=device)
    logp = torch.log_softmax(model(ids).logits[0, :-1].double(), dim=-1)
    targets = torch.tensor(cont, device=device)
    rows = logp[len(ctx) - 1:]
    lp = rows.gather(1, targets[:, None]).sum().item()
    greedy = bool((rows.argmax(-1) == targets).all().item())
    return lp, greedy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--items", type=int, default=10)
    ap.add_argument("--name", default="gutenberg-llama-22M", help="model name written to the JSON")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tok = transformers.AutoTokenizer.from_pretrained(args.model)
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                              attn_implementation="eager").to(args.device).eval()
    out = {"model": args.name, "dtype": "float32", "bos": False,
           "transformers": transformers.__version__, "torch": torch.__version__, "device": args.device,
           "tasks": {}}
    for task in TASKS:
        items = []
        for contexts, continuations, gold in load_items(task, args.data, args.items):
            entry = {"gold": gold, "contexts": contexts, "continuations": continuations,
                     "context_ids": [], "continuation_ids": [], "logprobs": [], "greedy": []}
            for c, k in zip(contexts, continuations):
                ctx, cont = encode_pair(tok, c, k)
                lp, greedy = score(model, ctx, cont, args.device)
                entry["context_ids"].append(ctx)
                entry["continuation_ids"].append(cont)
                entry["logprobs"].append(lp)
                entry["greedy"].append(greedy)
            items.append(entry)
        out["tasks"][task] = items
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
