#!/usr/bin/env python3
"""SQuAD v1.1-format data for timing span training where no SQuAD file is at hand.

Contexts are runs of SST-2 sentences (GLUE's train.tsv), each question a few words of one of
them, its answer a span of that sentence: windows, padding and lengths like SQuAD's, not a task
a model can learn to read. Deterministic for a seed. Standard library only.

Usage: squad_like.py SST2_TRAIN_TSV OUT.json --questions N [--sentences-per-context K] [--seed S]
"""
import argparse
import csv
import json
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sst2_train")
    parser.add_argument("out")
    parser.add_argument("--questions", type=int, required=True)
    parser.add_argument("--questions-per-context", type=int, default=4)
    parser.add_argument("--sentences-per-context", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with open(args.sst2_train, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        sentences = [r["sentence"].strip() for r in rows if len(r["sentence"].split()) >= 6]
    rng = random.Random(args.seed)
    paragraphs, made = [], 0
    while made < args.questions:
        chosen = rng.sample(sentences, args.sentences_per_context)
        context, starts = "", []
        for s in chosen:
            if context:
                context += " "
            starts.append(len(context))
            context += s
        qas = []
        for _ in range(min(args.questions_per_context, args.questions - made)):
            i = rng.randrange(len(chosen))
            words = chosen[i].split()
            length = rng.randint(1, 3)
            first = rng.randrange(len(words) - length + 1)
            answer = " ".join(words[first:first + length])
            at = starts[i] + len(" ".join(words[:first])) + (1 if first else 0)
            assert context[at:at + len(answer)] == answer
            others = words[:first] + words[first + length:]
            question = "which words follow " + " ".join(others[:6]) + " ?"
            qas.append({"id": f"q{made}", "question": question,
                        "answers": [{"text": answer, "answer_start": at}]})
            made += 1
        paragraphs.append({"context": context, "qas": qas})
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"version": "1.1", "data": [{"title": "sst2", "paragraphs": paragraphs}]}, f)


if __name__ == "__main__":
    main()
