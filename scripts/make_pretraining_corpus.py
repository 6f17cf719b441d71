#!/usr/bin/env python3
"""Builds the text the base model is pretrained on (task-adaptive pretraining plus general
English), one sentence, gloss or definition per line:

- the sentences of the *training* splits of the shipped GLUE tasks (SST-2, CoLA, MRPC, RTE,
  STS-B; never dev or test text);
- the glosses and example sentences of WordNet 3.0 (Debian package wordnet-base; WordNet 3.0
  licence: use, copy, modify and distribute for any purpose with its copyright notice, which
  models/README.md carries);
- with --gcide, the definitions and quotations of GCIDE, the GNU Collaborative International
  Dictionary of English (Debian package dict-gcide; GPL-2.0-or-later; mostly Webster's 1913).

Lines are de-duplicated on their lower-cased letters and digits, so that lines differing only in
case, spacing or punctuation appear once. With --held-out FILE, that many lines of the shuffled
result are written there instead of to OUTPUT_FILE: text to measure a held-out masked-LM loss on,
never trained on. Without --gcide and --held-out the output is the shipped base's corpus, line
for line (266,643 lines).

Usage: make_pretraining_corpus.py OUTPUT_FILE [GLUE_DIR] [WORDNET_DIR]
           [--gcide [GCIDE_DICT_DZ]] [--held-out FILE] [--held-out-lines N]
"""
import argparse
import gzip
import itertools
import os
import random
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("output")
parser.add_argument("glue", nargs="?", default=os.path.join(here, "..", "data", "glue"))
parser.add_argument("wordnet", nargs="?", default="/usr/share/wordnet")
parser.add_argument("--gcide", nargs="?", const="/usr/share/dictd/gcide.dict.dz", default=None,
                    help="add GCIDE's definitions (default file: Debian's dict-gcide)")
parser.add_argument("--held-out", help="write --held-out-lines lines here, not to OUTPUT")
parser.add_argument("--held-out-lines", type=int, default=2000)
args = parser.parse_args()

# (task, header lines to skip, text columns) of each train.tsv
TRAIN = [("SST-2", 1, [0]), ("CoLA", 0, [3]), ("MRPC", 1, [3, 4]), ("RTE", 1, [1, 2]),
         ("STS-B", 1, [7, 8])]

lines, seen = [], set()
counts = {}
# With only GLUE and WordNet, lines are compared exactly, as when the shipped base was made, so
# that its corpus can still be rebuilt line for line; new corpora compare a looser key.
loose_keys = args.gcide is not None or args.held_out is not None


def dedupe_key(text):
    return re.sub(r"[^0-9a-z]+", "", text.lower()) if loose_keys else text


def add(text, source):
    text = " ".join(text.split())
    key = dedupe_key(text)
    if text and key and key not in seen:
        seen.add(key)
        lines.append(text)
        counts[source] = counts.get(source, 0) + 1


for task, skip, columns in TRAIN:
    with open(os.path.join(args.glue, task, "train.tsv"), encoding="utf-8-sig") as f:
        for i, row in enumerate(f):
            if i < skip:
                continue
            fields = row.rstrip("\n").split("\t")
            for c in columns:
                add(fields[c], "GLUE training splits")

if os.path.isdir(args.wordnet):
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(args.wordnet, "data." + pos)
        with open(path, encoding="utf-8", errors="replace") as f:
            for row in f:
                if row.startswith("  ") or "|" not in row:
                    continue  # licence header
                gloss = row.split("|", 1)[1].strip()
                for part in gloss.split(";"):
                    part = part.strip().strip('"').strip()
                    if len(part.split()) >= 3:
                        add(part[0].upper() + part[1:] if part else part, "WordNet")
else:
    print(f"make_pretraining_corpus: {args.wordnet} not found; no WordNet text", file=sys.stderr)

# GCIDE in dictd's format: an entry starts at column 0 with its headword and pronunciation
# ("Dichotomy \Di*chot"o*my\, n. [etymology]"); its senses, notes and quotations follow, indented,
# in paragraphs separated by blank lines, each closed by a source tag such as "[1913 Webster]".
BRACKETS = re.compile(r"\[[^\[\]]*\]")
PRONUNCIATION = re.compile(r"\\[^\\]*\\")
# what may precede the definition on a headword line: part-of-speech and grammar abbreviations
GRAMMAR = re.compile(r"^(?:\s*(?:[a-zA-Z]{1,6}\.|&|;|,|:))*\s*")
# sense numbers "1.", "(a)" and field labels "(Bot.)", "(Naut. & Mil.)" before a definition
LABELS = re.compile(r"^(?:\s*(?:\d+\.|\([a-z]\)|\([A-Z][A-Za-z.&, ]*\)))+\s*")
# a headword line the patterns above could not take apart ("(kr"b r), n. (Zool.) The water rat.")
GRAMMAR_LEFT = re.compile(r",\s(?:n|v|a|adv|pl|p|imp)\.")
ALLOWED = re.compile(r"^[A-Za-z0-9 ,;:.'\"()!-]+$")


def gcide_paragraph(paragraph):
    headword_line = not paragraph[0].startswith(" ")  # an entry's first line starts at column 0
    if headword_line:
        if "\\" not in paragraph[0]:
            return None  # the database's own header entries
        first = paragraph[0].split("\\", 2)
        paragraph = [first[2] if len(first) == 3 else ""] + paragraph[1:]
    text = " ".join(line.strip() for line in paragraph)
    while True:
        stripped = BRACKETS.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    text = PRONUNCIATION.sub(" ", text)
    text = re.split(r"\s--", " " + text)[0]  # an author's name, or a derived word's trailer
    if headword_line:
        text = GRAMMAR.sub("", text)
    text = LABELS.sub("", text).replace("{", "").replace("}", "").strip(" ;,")
    text = " ".join(text.split())
    if len(text.split()) < 4 or not ALLOWED.match(text) or GRAMMAR_LEFT.search(text):
        return None
    return text[0].upper() + text[1:]


if args.gcide:
    with gzip.open(args.gcide, "rt", encoding="utf-8", errors="replace") as f:
        paragraph = []
        for row in itertools.chain(f, [""]):  # the blank line ends the file's last paragraph
            row = row.rstrip("\n")
            if row.strip():
                paragraph.append(row)
            elif paragraph:
                text = gcide_paragraph(paragraph)
                if text:
                    add(text, "GCIDE")
                paragraph = []

random.Random(0).shuffle(lines)
held_out = []
if args.held_out:
    if not 0 < args.held_out_lines < len(lines):
        sys.exit(f"make_pretraining_corpus: --held-out-lines must be between 1 and {len(lines) - 1}")
    held_out, lines = lines[:args.held_out_lines], lines[args.held_out_lines:]


def write(path, text_lines):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write("\n".join(text_lines) + "\n")
    os.replace(path + ".tmp", path)


write(args.output, lines)
sources = ", ".join(f"{n} from {source}" for source, n in counts.items())
print(f"make_pretraining_corpus: {len(lines) + len(held_out)} lines ({sources}); "
      f"{len(lines)} -> {args.output}")
if args.held_out:
    write(args.held_out, held_out)
    print(f"make_pretraining_corpus: {len(held_out)} held-out lines -> {args.held_out}")
