#!/usr/bin/env python3
"""An independent AdapterFusion reference for adaptertune's fusion tests, in plain PyTorch
(Debian's python3-torch): Hugging Face's BertForSequenceClassification with AdapterHub's
bottleneck adapters and its `Fuse` composition, written from AdapterHub's documented semantics
(BertFusion; compose_fuse: the last fused adapter's pre_forward, every adapter's up-projection
as a value, the fusion's residual, the last adapter's post_forward).

    fusion_reference.py check DIR   DIR/config.json (the base), DIR/setup.json
                                    ({"adapters": {name: AdapterHub config}, "fusion": "a,b",
                                    "fusion_config": {...}}), DIR/model.safetensors (base,
                                    adapters, fusion layers and head under AdapterHub's names),
                                    DIR/inputs.safetensors; compares the logits with
                                    DIR/expected.safetensors.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bert_reference  # noqa: E402
from bert_reference import read_safetensors  # noqa: E402

ACT = {"swish": torch.nn.functional.silu, "silu": torch.nn.functional.silu,
       "relu": torch.relu, "gelu": torch.nn.functional.gelu, "tanh": torch.tanh}


def forward(w, c, setup, ids, mask, types):
    eps = c["layer_norm_eps"]
    ln = lambda x, k: torch.nn.functional.layer_norm(x, x.shape[-1:], w[k + ".weight"], w[k + ".bias"], eps)
    lin = lambda x, k: x @ w[k + ".weight"].T + (w[k + ".bias"] if k + ".bias" in w else 0)
    fusion, fc, cfgs = setup["fusion"], setup["fusion_config"], setup["adapters"]
    fused = fusion.split(",")

    def site(prefix, projected, x, location, layer):
        # One BottleneckLayer with Fuse(fused) active (AdapterHub's compose_fuse).
        last = cfgs[fused[-1]]
        if not last[location] or layer in last.get("leave_out", []):
            return ln(projected + x, prefix + "LayerNorm")
        hidden, query, residual = projected, None, None
        if last["residual_before_ln"]:
            residual = hidden
        if fc["query_before_ln"]:
            query = hidden
        if last["original_ln_before"]:
            hidden = ln(hidden + x, prefix + "LayerNorm")
        if not last["residual_before_ln"]:
            residual = hidden
        if not fc["query_before_ln"]:
            query = hidden
        ups = []
        for name in fused:
            a = prefix + f"adapters.{name}."
            down = ACT[cfgs[name]["non_linearity"]](lin(hidden, a + "adapter_down.0"))
            ups.append(lin(down, a + "adapter_up") * cfgs[name].get("scaling", 1.0))
        value = torch.stack(ups).permute(1, 2, 0, 3)  # batch, seq, adapters, d
        f = prefix + f"adapter_fusion_layer.{fusion}."
        if fc["residual_before"]:
            value = value + residual[:, :, None, :]
        q = lin(query, f + "query") if fc["query"] else query
        k = lin(value, f + "key") if fc["key"] else value
        v = value @ w[f + "value.weight"].T if fc["value"] and fc["value_before_softmax"] else value
        probs = torch.softmax(torch.matmul(q.unsqueeze(2), k.transpose(-2, -1)).squeeze(2), dim=-1)
        out = torch.matmul(probs.unsqueeze(2), v).squeeze(2)
        if fc["value"] and not fc["value_before_softmax"]:
            out = out @ w[f + "value.weight"].T
        if not fc["residual_before"]:
            out = out + residual
        return ln(out + x, prefix + "LayerNorm") if last["original_ln_after"] else out

    return bert_reference.forward(w, c, ids, mask, types, site)["logits"]


def check(directory):
    load = lambda name: json.load(open(os.path.join(directory, name)))
    w = read_safetensors(os.path.join(directory, "model.safetensors"))
    inputs = read_safetensors(os.path.join(directory, "inputs.safetensors"))
    expected = read_safetensors(os.path.join(directory, "expected.safetensors"))
    with torch.no_grad():
        logits = forward(w, load("config.json"), load("setup.json"), inputs["input_ids"],
                         inputs["attention_mask"], inputs["token_type_ids"])
    worst = (logits - expected["logits"]).abs().max().item()
    print(f"max abs difference {worst:.3g}")
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "check":
        sys.exit(__doc__)
    sys.exit(check(sys.argv[2]))
