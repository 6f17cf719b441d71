#!/usr/bin/env python3
"""Builds the text the shipped base model is pretrained on (task-adaptive pretraining plus
general English), one sentence or gloss per line:

- the sentences of the *training* splits of the shipped GLUE tasks (SST-2, CoLA, MRPC, RTE,
  STS-B; never dev or test text), de-duplicated;
- the glosses and example sentences of WordNet 3.0 (Debian package wordnet-base; WordNet 3.0
  licence: use, copy, modify and distribute for any purpose with its copyright notice, which
  models/README.md carries).

Usage: make_pretraining_corpus.py OUTPUT_FILE [GLUE_DIR] [WORDNET_DIR]
"""
import os
import random
import sys

here = os.path.dirname(os.path.abspath(__file__))
out_path = sys.argv[1]
glue = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "data", "glue")
wordnet = sys.argv[3] if len(sys.argv) > 3 else "/usr/share/wordnet"

# (task, header lines to skip, text columns) of each train.tsv
TRAIN = [("SST-2", 1, [0]), ("CoLA", 0, [3]), ("MRPC", 1, [3, 4]), ("RTE", 1, [1, 2]),
         ("STS-B", 1, [7, 8])]

lines, seen = [], set()


def add(text):
    text = " ".join(text.split())
    if text and text not in seen:
        seen.add(text)
        lines.append(text)


for task, skip, columns in TRAIN:
    with open(os.path.join(glue, task, "train.tsv"), encoding="utf-8-sig") as f:
        for i, row in enumerate(f):
            if i < skip:
                continue
            fields = row.rstrip("\n").split("\t")
            for c in columns:
                add(fields[c])
glue_count = len(lines)

if os.path.isdir(wordnet):
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(wordnet, "data." + pos), encoding="utf-8", errors="replace") as f:
            for row in f:
                if row.startswith("  ") or "|" not in row:
                    continue  # licence header
                gloss = row.split("|", 1)[1].strip()
                for part in gloss.split(";"):
                    part = part.strip().strip('"').strip()
                    if len(part.split()) >= 3:
                        add(part[0].upper() + part[1:] if part else part)
else:
    print(f"make_pretraining_corpus: {wordnet} not found; GLUE training text only", file=sys.stderr)

random.Random(0).shuffle(lines)
os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
with open(out_path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
print(f"make_pretraining_corpus: {len(lines)} lines ({glue_count} from GLUE training splits, "
      f"{len(lines) - glue_count} from WordNet) -> {out_path}")
