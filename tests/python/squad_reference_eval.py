#!/usr/bin/env python3
"""Scores SQuAD predictions as the official scripts do (evaluate-v1.1.py and evaluate-v2.0.py,
the latter without a no-answer probability file), in the standard library only, so that the C++
squad_evaluate() has an independent reference on machines without internet.

    python3 tests/python/squad_reference_eval.py DATA.json PREDICTIONS.json
prints {"exact", "f1", "total", ...} as the official script for the file's version reports them.
With --check EXPECTED.json it exits 1 unless its scores equal the expected ones (to 1e-9).

The scoring rules, as the two scripts define them:
- normalisation: lower-case, drop ASCII punctuation, replace the words a/an/the (between \\b word
  boundaries) with a space, collapse white space;
- v1.1: every gold answer counts; token F1 is 0 when no token is shared (even when both are
  empty); a question without a prediction scores 0 and still counts in the total;
- v2.0: gold answers that normalise to nothing are dropped, an unanswerable question is scored
  against ""; F1 is 1 when prediction and gold are both empty and 0 when only one is; HasAns and
  NoAns split the questions by whether they have answers.
"""
import collections
import json
import re
import string
import sys


def normalize(text):
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text, flags=re.UNICODE)
    return " ".join(text.split())


def shared_tokens(prediction_tokens, gold_tokens):
    common = collections.Counter(prediction_tokens) & collections.Counter(gold_tokens)
    return sum(common.values())


def f1_from_tokens(prediction_tokens, gold_tokens):
    same = shared_tokens(prediction_tokens, gold_tokens)
    if same == 0:
        return 0.0
    precision = same / len(prediction_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_v1(prediction, gold):
    return f1_from_tokens(normalize(prediction).split(), normalize(gold).split())


def f1_v2(prediction, gold):
    p, g = normalize(prediction).split(), normalize(gold).split()
    if not p or not g:
        return float(p == g)
    return f1_from_tokens(p, g)


def exact(prediction, gold):
    return float(normalize(prediction) == normalize(gold))


def evaluate(dataset, predictions):
    v2 = str(dataset.get("version", "")).startswith(("v2", "2")) or any(
        "is_impossible" in qa for article in dataset["data"] for paragraph in article["paragraphs"]
        for qa in paragraph["qas"])
    totals = collections.defaultdict(float)
    for article in dataset["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                totals["total"] += 1
                if qa["id"] not in predictions:
                    totals["missing"] += 1
                    continue
                prediction = predictions[qa["id"]]
                if v2:
                    gold = [a["text"] for a in qa["answers"] if normalize(a["text"])] or [""]
                    em = max(exact(prediction, g) for g in gold)
                    f1 = max(f1_v2(prediction, g) for g in gold)
                    part = "has_answer" if qa["answers"] else "no_answer"
                    totals[part + "_exact"] += em
                    totals[part + "_f1"] += f1
                    totals[part + "_total"] += 1
                else:
                    gold = [a["text"] for a in qa["answers"]]
                    em = max(exact(prediction, g) for g in gold)
                    f1 = max(f1_v1(prediction, g) for g in gold)
                totals["exact"] += em
                totals["f1"] += f1
    out = {"exact": 100.0 * totals["exact"] / totals["total"],
           "f1": 100.0 * totals["f1"] / totals["total"],
           "total": int(totals["total"]), "missing": int(totals["missing"])}
    for part in ("has_answer", "no_answer"):
        n = totals[part + "_total"]
        out[part + "_exact"] = 100.0 * totals[part + "_exact"] / n if n else 0.0
        out[part + "_f1"] = 100.0 * totals[part + "_f1"] / n if n else 0.0
        out[part + "_total"] = int(n)
    return out


def main():
    args = [a for a in sys.argv[1:] if a != "--check"]
    check = "--check" in sys.argv
    dataset = json.load(open(args[0], encoding="utf-8"))
    predictions = json.load(open(args[1], encoding="utf-8"))
    scores = evaluate(dataset, predictions)
    print(json.dumps(scores, sort_keys=True))
    if check:
        expected = json.load(open(args[2], encoding="utf-8"))
        wrong = {k: (scores[k], v) for k, v in expected.items() if abs(scores[k] - v) > 1e-9}
        if wrong:
            sys.exit("squad_reference_eval: differs from %s: %s" % (args[2], wrong))
        print("PASS")


if __name__ == "__main__":
    main()
