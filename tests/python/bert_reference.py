#!/usr/bin/env python3
"""An independent BERT reference for adaptertune's checkpoint tests, in plain PyTorch (Debian's
python3-torch), following Hugging Face's BertModel / BertForSequenceClassification semantics:
post-LayerNorm encoder, exact-erf GELU, additive mask (1 - mask) * finfo.min, tanh pooler over
[CLS], linear classifier. safetensors files are read and written byte by byte (no packages).

    bert_reference.py make DIR    random tiny BERT -> DIR/config.json, DIR/model.safetensors,
                                  DIR/inputs.safetensors, DIR/expected.safetensors
    bert_reference.py check DIR   load DIR (written by adaptertune's save_pretrained), run
                                  DIR/inputs.safetensors, compare with DIR/expected.safetensors
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "F16": torch.float16,
          "BF16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = bytearray(raw[8 + n + b:8 + n + end])
        out[name] = torch.frombuffer(buf, dtype=DTYPES[e["dtype"]]).reshape(e["shape"]).clone()
    return out


def forward(w, c, ids, mask, types, site=None):
    """`site(prefix, projected, x, location, layer)` ends each sublayer (default: the post-LayerNorm
    `LN(projected + x)`); location is "mh_adapter" after attention, "output_adapter" after the FFN,
    AdapterHub's names, so that adapter references plug in here."""
    p = "bert."
    eps = c["layer_norm_eps"]
    ln = lambda x, k: torch.nn.functional.layer_norm(x, x.shape[-1:], w[k + ".weight"], w[k + ".bias"], eps)
    lin = lambda x, k: x @ w[k + ".weight"].T + w[k + ".bias"]
    if site is None:
        site = lambda prefix, projected, x, location, layer: ln(projected + x, prefix + "LayerNorm")
    b, s = ids.shape
    h = (w[p + "embeddings.word_embeddings.weight"][ids]
         + w[p + "embeddings.position_embeddings.weight"][torch.arange(s)]
         + w[p + "embeddings.token_type_embeddings.weight"][types])
    h = ln(h, p + "embeddings.LayerNorm")
    heads = c["num_attention_heads"]
    d = c["hidden_size"] // heads
    additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    for i in range(c["num_hidden_layers"]):
        q_ = p + f"encoder.layer.{i}."
        split = lambda x: x.view(b, s, heads, d).transpose(1, 2)
        q, k, v = (split(lin(h, q_ + "attention.self." + n)) for n in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + additive, dim=-1)
        ctx = (probs @ v).transpose(1, 2).reshape(b, s, -1)
        a = site(q_ + "attention.output.", lin(ctx, q_ + "attention.output.dense"), h, "mh_adapter", i)
        inner = lin(a, q_ + "intermediate.dense")
        inner = 0.5 * inner * (1.0 + torch.erf(inner / math.sqrt(2.0)))
        h = site(q_ + "output.", lin(inner, q_ + "output.dense"), a, "output_adapter", i)
    pooled = torch.tanh(lin(h[:, 0], p + "pooler.dense"))
    logits = lin(pooled, "classifier")
    return {"last_hidden_state": h, "pooler_output": pooled, "logits": logits}


def make(directory):
    torch.manual_seed(20261126)
    c = {"model_type": "bert", "architectures": ["BertForSequenceClassification"],
         "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 37, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
         "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 40, "type_vocab_size": 2,
         "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
         "position_embedding_type": "absolute", "num_labels": 3,
         "id2label": {"0": "contradiction", "1": "entailment", "2": "neutral"},
         "label2id": {"contradiction": 0, "entailment": 1, "neutral": 2},
         "transformers_version": "4.40.0", "torch_dtype": "float32", "use_cache": True}
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    shapes = {"bert.embeddings.word_embeddings.weight": (V, H),
              "bert.embeddings.position_embeddings.weight": (c["max_position_embeddings"], H),
              "bert.embeddings.token_type_embeddings.weight": (2, H),
              "bert.embeddings.LayerNorm.weight": (H,), "bert.embeddings.LayerNorm.bias": (H,)}
    for i in range(c["num_hidden_layers"]):
        q = f"bert.encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value",
                  "attention.output.dense"):
            shapes[q + n + ".weight"], shapes[q + n + ".bias"] = (H, H), (H,)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[q + n + ".weight"], shapes[q + n + ".bias"] = (H,), (H,)
        shapes[q + "intermediate.dense.weight"], shapes[q + "intermediate.dense.bias"] = (I, H), (I,)
        shapes[q + "output.dense.weight"], shapes[q + "output.dense.bias"] = (H, I), (H,)
    shapes["bert.pooler.dense.weight"], shapes["bert.pooler.dense.bias"] = (H, H), (H,)
    shapes["classifier.weight"], shapes["classifier.bias"] = (3, H), (3,)
    # Random values of unit scale (not BERT's init) so that every weight visibly matters.
    w = {k: torch.randn(*s) * (0.3 if len(s) == 2 else 0.1) for k, s in shapes.items()}
    for k in w:
        if "LayerNorm.weight" in k:
            w[k] = 1.0 + w[k]
    extra = {"cls.predictions.bias": torch.zeros(V),
             "bert.embeddings.position_ids": torch.arange(c["max_position_embeddings"])[None]}
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(c, f, indent=2)
    write_safetensors(os.path.join(directory, "model.safetensors"), {**w, **extra})
    ids = torch.tensor([[2, 17, 45, 8, 91, 3, 0, 0], [2, 5, 6, 7, 3, 60, 61, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]])
    types = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]])
    write_safetensors(os.path.join(directory, "inputs.safetensors"),
                      {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    with torch.no_grad():
        out = forward(w, c, ids, mask, types)
    write_safetensors(os.path.join(directory, "expected.safetensors"), out)


def check(directory):
    with open(os.path.join(directory, "config.json")) as f:
        c = json.load(f)
    w = read_safetensors(os.path.join(directory, "model.safetensors"))
    inputs = read_safetensors(os.path.join(directory, "inputs.safetensors"))
    expected = read_safetensors(os.path.join(directory, "expected.safetensors"))
    with torch.no_grad():
        out = forward(w, c, inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    worst = max((out[k] - expected[k]).abs().max().item() for k in expected)
    print(f"max abs difference {worst:.3g}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("make", "check"):
        sys.exit(__doc__)
    sys.exit(make(sys.argv[2]) if sys.argv[1] == "make" else check(sys.argv[2]))
