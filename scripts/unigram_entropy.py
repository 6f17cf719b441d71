#!/usr/bin/env python3
"""The unigram entropy (nats per token) of text files under a WordPiece vocabulary, on a sample
of lines: the masked-LM loss of a model that has learned token frequencies and nothing else, the
plateau a pretraining run must leave. Tokenises with tests/python/bert_basic_tokenizer.py, the
project's standard-library transcription of BERT's tokenizer ([CLS] and [SEP] not counted).

Usage: unigram_entropy.py [--vocab VOCAB] [--cased] [--lines N] FILE [FILE ...]
"""
import argparse
import collections
import math
import os
import random
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "python"))
from bert_basic_tokenizer import encode, read_vocab  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("files", nargs="+")
parser.add_argument("--vocab", default=os.path.join(here, "..", "data", "vocab",
                                                    "bert-base-uncased-vocab.txt"))
parser.add_argument("--cased", action="store_true", help="do not lower-case (cased vocabularies)")
parser.add_argument("--lines", type=int, default=20000, help="lines sampled per file (seed 0)")
args = parser.parse_args()
vocab = read_vocab(args.vocab)
for path in args.files:
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f.read().splitlines() if line]
    sample = random.Random(0).sample(lines, min(args.lines, len(lines)))
    counts = collections.Counter()
    for line in sample:
        counts.update(encode(line, vocab, not args.cased)["tokens"][1:-1])
    total = sum(counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in counts.values())
    print(f"{path}: {len(lines):,} lines; {len(sample):,} sampled, {total:,} tokens "
          f"({total / len(sample):.1f} a line); unigram entropy {entropy:.3f} nats")
