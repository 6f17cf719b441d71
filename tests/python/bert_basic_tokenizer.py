#!/usr/bin/env python3
"""A transcription of Hugging Face's Python ("slow") BertTokenizer with its defaults, using only the
standard library: clean the text (drop NUL, U+FFFD and category C* except \\t \\n \\r; map \\t \\n \\r
and Zs to a space), put spaces around CJK ideographs, NFC, split with str.split(), per word
str.lower() and accent stripping (uncased), split off punctuation, then greedy longest-match
WordPiece. It exists because `transformers` cannot be installed everywhere the tests are made
(no PyPI); where it can, make_tokenizer_expectations.py is the reference.

    python3 bert_basic_tokenizer.py ../../data/vocab > tokenizer_python_rules_expected.json
reads tokenizer_python_rules_cases.json (single texts without special tokens).
"""
import json
import os
import sys
import unicodedata


def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def is_whitespace(ch):
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return any(lo <= cp <= hi for lo, hi in [
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)])


def basic_tokenize(text, lowercase):
    cleaned = []
    for ch in text:
        if ord(ch) in (0, 0xFFFD) or is_control(ch):
            continue
        if is_whitespace(ch):
            cleaned.append(" ")
        elif is_cjk(ord(ch)):
            cleaned.append(" " + ch + " ")
        else:
            cleaned.append(ch)
    words = []
    for word in unicodedata.normalize("NFC", "".join(cleaned)).split():
        if lowercase:
            word = word.lower()
            word = "".join(c for c in unicodedata.normalize("NFD", word)
                           if unicodedata.category(c) != "Mn")
        current = ""
        for ch in word:
            if is_punctuation(ch):
                if current:
                    words.append(current)
                words.append(ch)
                current = ""
            else:
                current += ch
        if current:
            words.append(current)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            candidate = ("##" if start > 0 else "") + word[start:end]
            if candidate in vocab:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(candidate)
        start = end
    return pieces


def encode(text, vocab, lowercase):
    tokens = ["[CLS]"]
    for word in basic_tokenize(text, lowercase):
        tokens += wordpiece(word, vocab)
    tokens.append("[SEP]")
    return {"tokens": tokens, "input_ids": [vocab[t] for t in tokens],
            "token_type_ids": [0] * len(tokens)}


def read_vocab(path):
    with open(path, encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f)}


if __name__ == "__main__":
    vocab_dir = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    cases = json.load(open(os.path.join(here, "tokenizer_python_rules_cases.json"), encoding="utf-8"))
    out = {"reference": "bert_basic_tokenizer.py (Python %s, Unicode %s)" % (
        sys.version.split()[0], unicodedata.unidata_version), "results": {}}
    for name, lowercase in [("bert-base-uncased", True), ("bert-base-cased", False)]:
        vocab = read_vocab(os.path.join(vocab_dir, name + "-vocab.txt"))
        out["results"][name] = [encode(case["text"], vocab, lowercase) for case in cases]
    json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
    print()
