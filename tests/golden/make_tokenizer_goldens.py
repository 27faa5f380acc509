#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/goldens.json: reference token ids for a fixed list of texts.

References:
  - a Hugging Face tokenizer.json (the gutenberg models' one), encoded with the `tokenizers`
    library, with add_special_tokens False and True, and decoded back (skip_special_tokens False);
  - a SentencePiece tokenizer.model (Llama 2 32k), encoded and decoded with `sentencepiece`.
If `transformers` is importable, its fast tokenizer over the same tokenizer.json is run as a
cross-check (the script stops if it disagrees with `tokenizers`).

The texts live here and are copied into the JSON, so the C++ test
(tests/model/core_tokenizer_goldens_test.cpp) needs only the JSON. They contain no SentencePiece
control-token text ("<s>"): the sentencepiece library encodes that as plain characters whereas
LATMiX (like transformers' slow tokenizers) matches it as the control token.

Usage (from the repository root, with the shared data folder beside it):
  python3 tests/golden/make_tokenizer_goldens.py \
      --tokenizer-json ../shared/data/models/gutenberg-llama-6M/tokenizer.json \
      --sentencepiece-model ../shared/data/models/llama2_tokenizer_32k/tokenizer.model
"""

import argparse
import hashlib
import json
import pathlib
import sys

TEXTS = [
    "Hello world",
    " Hello world",
    "The old house stood at the end of the lane, and",
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\n\n\n",
    "line one\nline two\r\nline three\n",
    "tabs\tand\t\tmore tabs\t",
    "    indented code\n\tdef f(x):\n\t\treturn x  \n",
    "1234567",
    "3.14159 and 2,718 and 1e-10",
    "Numbers: 1 22 333 4444 55555 666666",
    "I'll, you've, we're, she's, they'd, I'm, don't",
    "I'LL YOU'VE WE'RE SHE'S",
    "na\u00efve caf\u00e9 r\u00e9sum\u00e9 \u2014 \u201cquotes\u201d \u2018single\u2019",
    "\u00dcn\u00efc\u00f6d\u00e9 \u03a9\u03bc\u03ad\u03b3\u03b1 \u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587\u6587\u672c",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
    "emoji \U0001F600\U0001F44D\U0001F3FD and \U0001F469\u200d\U0001F4BB and \U0001F1EB\U0001F1F7",
    "<|begin_of_text|>",
    "Before<|begin_of_text|>after <|end_of_text|> end",
    "<|begin_of_text",
    "Antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 64,
    "https://example.com/path?query=1&x=y#frag",
    "email@example.org, @user #hashtag $100 50% C++ a->b",
    "Mixed    spaces   between\u00a0words\u2003here",
    "e\u0301 versus \u00e9",
    "Whereupon the doctor said, in a low voice:\n\n\"Hush!\"",
    " = Robert Boulter = \n",
    "The 2 @,@ 000 @-@ strong army",
]


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def data_relative(path):
    """The path below the shared data folder ("models/..."), which the C++ test loads."""
    parts = pathlib.Path(path).resolve().parts
    if "models" not in parts:
        sys.exit(f"{path}: expected a path inside the shared data folder's models/")
    index = len(parts) - 1 - parts[::-1].index("models")
    return "/".join(parts[index:])


def tokenizer_json_cases(path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    cases = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            "ids": ids,
            "ids_with_special": tok.encode(text, add_special_tokens=True).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
        })
    return cases


def cross_check_transformers(path, cases):
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        return None
    import transformers

    fast = PreTrainedTokenizerFast(tokenizer_file=str(path))
    for text, case in zip(TEXTS, cases):
        ids = fast(text, add_special_tokens=False)["input_ids"]
        if ids != case["ids"]:
            sys.exit(f"transformers and tokenizers disagree on {text!r}: {ids} vs {case['ids']}")
    return transformers.__version__


def sentencepiece_cases(path):
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    cases = []
    for text in TEXTS:
        ids = sp.encode(text)
        cases.append({"ids": ids, "decoded": sp.decode(ids)})
    return cases, sentencepiece.__version__


def main():
    repo = pathlib.Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer-json", required=True,
                        help="models/gutenberg-llama-6M/tokenizer.json in the shared data folder")
    parser.add_argument("--sentencepiece-model", required=True,
                        help="models/llama2_tokenizer_32k/tokenizer.model in the shared data folder")
    parser.add_argument("--out", default=str(repo / "tests/fixtures/tokenizer/goldens.json"))
    args = parser.parse_args()

    import tokenizers

    hf_cases = tokenizer_json_cases(args.tokenizer_json)
    transformers_version = cross_check_transformers(args.tokenizer_json, hf_cases)
    sp_cases, sp_version = sentencepiece_cases(args.sentencepiece_model)
    golden = {
        "generator": "tests/golden/make_tokenizer_goldens.py",
        "versions": {"tokenizers": tokenizers.__version__, "sentencepiece": sp_version,
                     "transformers": transformers_version},
        "tokenizer_json": {"path": data_relative(args.tokenizer_json),
                           "sha256": sha256(args.tokenizer_json)},
        "sentencepiece_model": {"path": data_relative(args.sentencepiece_model),
                                "sha256": sha256(args.sentencepiece_model)},
        "cases": [{"text": text, "tokenizer_json": hf, "sentencepiece": sp}
                  for text, hf, sp in zip(TEXTS, hf_cases, sp_cases)],
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(TEXTS)} texts")


if __name__ == "__main__":
    main()
