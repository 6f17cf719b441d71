#!/usr/bin/env python3
"""Computes the expected tokenizations in tokenizer_expected.json with Hugging Face's Python
tokenizers (BertTokenizer, slow, with its defaults; AlbertTokenizer), as the independent reference
for tests/tokenizer_test.cpp. Needs `transformers` and `sentencepiece` (run where they exist):
    python3 make_tokenizer_expectations.py ../../data/vocab > tokenizer_expected.json
"""
import json
import os
import shutil
import sys
import tempfile

import transformers
from transformers import AlbertTokenizer, BertTokenizer

vocab_dir = sys.argv[1]
here = os.path.dirname(os.path.abspath(__file__))
cases = json.load(open(os.path.join(here, "tokenizer_cases.json")))
tokenizers = {
    "bert-base-uncased": BertTokenizer(os.path.join(vocab_dir, "bert-base-uncased-vocab.txt"), do_lower_case=True),
    "bert-base-cased": BertTokenizer(os.path.join(vocab_dir, "bert-base-cased-vocab.txt"), do_lower_case=False),
}
# transformers 5 builds AlbertTokenizer from a model directory holding spiece.model.
albert_dir = tempfile.mkdtemp()
shutil.copy(os.path.join(vocab_dir, "albert-spiece.model"), os.path.join(albert_dir, "spiece.model"))
tokenizers["albert"] = AlbertTokenizer.from_pretrained(albert_dir)
out = {"transformers_version": transformers.__version__, "results": {}}
for name, tok in tokenizers.items():
    rows = []
    for case in cases:
        kwargs = {}
        if "max_length" in case:
            kwargs = {"max_length": case["max_length"], "truncation": "longest_first"}
        enc = tok(case["text"], case.get("text_pair"), return_token_type_ids=True, **kwargs)
        rows.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                     "tokens": tok.convert_ids_to_tokens(enc["input_ids"])})
    out["results"][name] = rows
json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
