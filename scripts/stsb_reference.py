#!/usr/bin/env python3
"""STS-B on a base, measured outside adaptertune: a check of the pair-task pipeline (issue 13).

Three figures, all on STS-B dev (Spearman of predictions against the gold scores):
0. word overlap: the Jaccard similarity of the two sentences' sets of lower-cased words. No model:
   how much of the task the words alone give away.
1. unsupervised: each sentence encoded alone by the base, its last hidden states averaged (special
   tokens left out), the pair's cosine similarity as the prediction. No training: what the base's
   representations already know about the task.
2. fine-tuned: the base fully fine-tuned as a cross-encoder ([CLS] a [SEP] b [SEP], Hugging Face's
   BertForSequenceClassification with one output and MSE), in plain PyTorch
   (tests/python/bert_reference.py's forward, Debian's python3-torch), with the results table's
   full fine-tuning settings: batch 32, AdamW (weight decay 0.01, none on biases and LayerNorms),
   10 % linear warmup then linear decay, gradient norm clipped at 1, seed 42. float32, no dropout.
   A missing pooler is initialised as Hugging Face does (normal, std 0.02). --pooling mean
   regresses on the mean of the last hidden states instead of the pooled [CLS].

Token ids come from `adaptertune tokenize --model DIR --max-length L` (the tokenizer is checked
against Hugging Face's elsewhere), so that what differs from `adaptertune train` is the training
code alone. Prints one line per figure; `--json FILE` writes them too.

    python3 scripts/stsb_reference.py [--model DIR] [--epochs 3] [--lr 1e-4] [--pooling cls|mean]
"""
import argparse
import csv
import json
import math
import os
import random
import re
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import bert_reference  # noqa: E402



def spearman(x, y):
    """Spearman's rank correlation (average ranks for ties), without scipy."""
    def ranks(v):
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return torch.tensor(r, dtype=torch.float64)
    a, b = ranks(x), ranks(y)
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def word_overlap(dev):
    def words(text):
        return set(re.findall(r"\w+", text.lower()))
    jaccard = [len(words(a) & words(b)) / max(1, len(words(a) | words(b))) for a, b, _ in dev]
    return spearman(jaccard, [p[2] for p in dev])


def read_split(data_dir, split, limit):
    path = os.path.join(data_dir, split + ".tsv")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    a, b, score = (header.index(k) for k in ("sentence1", "sentence2", "score"))
    rows = rows[1:limit + 1] if limit else rows[1:]
    return [(r[a], r[b], float(r[score])) for r in rows]


def tokenize(cli, model, requests, max_length):
    """input_ids and token_type_ids of each request (dicts with text and, for pairs, text_pair)."""
    try:
        proc = subprocess.run([cli, "tokenize", "--model", model, "--max-length", str(max_length)],
                              input="".join(json.dumps(r) + "\n" for r in requests),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as error:
        sys.exit(f"stsb_reference.py: cannot run {cli} (--cli): {error}")
    if proc.returncode != 0:
        sys.exit("stsb_reference.py: adaptertune tokenize failed: " + proc.stderr)
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    if len(lines) != len(requests):
        sys.exit(f"stsb_reference.py: {len(requests)} requests but {len(lines)} tokenized lines")
    return [(e["input_ids"], e["token_type_ids"]) for e in lines]


def padded(encodings):
    n = max(len(ids) for ids, _ in encodings)
    ids = torch.tensor([i + [0] * (n - len(i)) for i, _ in encodings])
    types = torch.tensor([t + [0] * (n - len(t)) for _, t in encodings])
    mask = torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i, _ in encodings])
    return ids, mask, types


def load_base(model):
    weights = bert_reference.read_safetensors(os.path.join(model, "model.safetensors"))
    weights = {k: v.float() for k, v in weights.items()}
    if not any(k.startswith("bert.") for k in weights):
        weights = {"bert." + k: v for k, v in weights.items()}
    with open(os.path.join(model, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    hidden = config["hidden_size"]
    if "bert.pooler.dense.weight" not in weights:
        weights["bert.pooler.dense.weight"] = torch.randn(hidden, hidden) * 0.02
        weights["bert.pooler.dense.bias"] = torch.zeros(hidden)
    weights["classifier.weight"] = torch.randn(1, hidden) * 0.02
    weights["classifier.bias"] = torch.zeros(1)
    return weights, config


def unsupervised(weights, config, cli, model, dev, max_length):
    def embed(sentences):
        encodings = tokenize(cli, model, [{"text": s} for s in sentences], max_length)
        out = []
        with torch.no_grad():
            for start in range(0, len(encodings), 64):
                part = encodings[start:start + 64]
                ids, mask, types = padded(part)
                h = bert_reference.forward(weights, config, ids, mask, types)["last_hidden_state"]
                for row, (i, _) in enumerate(part):
                    out.append(h[row, 1:len(i) - 1].mean(0))
        return torch.stack(out)
    a, b = embed([p[0] for p in dev]), embed([p[1] for p in dev])
    cosine = torch.nn.functional.cosine_similarity(a, b).tolist()
    return spearman(cosine, [p[2] for p in dev])


def fine_tune(weights, config, cli, model, train, dev, args):
    def pairs(split):
        return tokenize(cli, model, [{"text": a, "text_pair": b} for a, b, _ in split],
                        args.max_length)
    train_x, dev_x = pairs(train), pairs(dev)
    train_y = [p[2] for p in train]
    for v in weights.values():
        v.requires_grad_(True)

    def predict(ids, mask, types):
        out = bert_reference.forward(weights, config, ids, mask, types)
        if args.pooling == "cls":
            return out["logits"].squeeze(-1)
        m = mask[..., None].float()
        pooled = (out["last_hidden_state"] * m).sum(1) / m.sum(1)
        return (pooled @ weights["classifier.weight"].T + weights["classifier.bias"]).squeeze(-1)

    no_decay = [k for k in weights if k.endswith("bias") or "LayerNorm" in k]
    params = list(weights.values())
    optimizer = torch.optim.AdamW(
        [{"params": [v for k, v in weights.items() if k not in no_decay], "weight_decay": 0.01},
         {"params": [weights[k] for k in no_decay], "weight_decay": 0.0}], lr=args.lr)
    steps = args.epochs * math.ceil(len(train_x) / args.batch_size)
    warmup = max(1, int(0.1 * steps))
    step, scores = 0, []
    order = list(range(len(train_x)))
    for epoch in range(1, args.epochs + 1):
        random.shuffle(order)
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            ids, mask, types = padded([train_x[i] for i in batch])
            target = torch.tensor([train_y[i] for i in batch])
            loss = torch.nn.functional.mse_loss(predict(ids, mask, types), target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            step += 1
            scale = step / warmup if step < warmup else max(0.0, (steps - step) / max(1, steps - warmup))
            for group in optimizer.param_groups:
                group["lr"] = args.lr * scale
            optimizer.step()
        with torch.no_grad():
            predictions = []
            for start in range(0, len(dev_x), 64):
                predictions += predict(*padded(dev_x[start:start + 64])).tolist()
        scores.append(spearman(predictions, [p[2] for p in dev]))
        print(f"fine-tuned ({args.pooling}) epoch {epoch} step {step}: dev Spearman "
              f"{scores[-1]:.4f}", flush=True)
    return scores


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=os.path.join(ROOT, "models", "adaptertune-base-uncased-L4-H256"))
    parser.add_argument("--cli", default=os.path.join(ROOT, "build", "tools", "cli", "adaptertune"))
    parser.add_argument("--data-dir", default=os.path.join(ROOT, "data", "glue", "STS-B"))
    parser.add_argument("--epochs", type=int, default=3, help="0: the unsupervised figure only")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--pooling", choices=["cls", "mean"], default="cls")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N pairs of each split (tests)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    train = read_split(args.data_dir, "train", args.limit)
    dev = read_split(args.data_dir, "dev", args.limit)
    weights, config = load_base(args.model)
    result = {"model": args.model, "dev_pairs": len(dev),
              "word_overlap_spearman": word_overlap(dev),
              "unsupervised_spearman": unsupervised(weights, config, args.cli, args.model, dev,
                                                    args.max_length)}
    print(f"word overlap (Jaccard): dev Spearman {result['word_overlap_spearman']:.4f}")
    print(f"unsupervised (mean-pooled cosine): dev Spearman {result['unsupervised_spearman']:.4f}",
          flush=True)
    if args.epochs > 0:
        result.update(pooling=args.pooling, epochs=args.epochs, lr=args.lr,
                      fine_tuned_spearman=fine_tune(weights, config, args.cli, args.model, train,
                                                    dev, args))
    if args.json:
        with open(args.json + ".tmp", "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
