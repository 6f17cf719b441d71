#!/usr/bin/env python3
"""PyTorch-Python eager reference for bench_step: the same training step (BERT classifier, AdamW,
full fine-tuning or Houlsby/Pfeiffer adapters with the base frozen) with Hugging Face
transformers' BertForSequenceClassification and adapters patched into its sublayer outputs exactly
as adaptertune places them. Prints the same table columns, so the two can be compared in one run.

    python3 benchmarks/reference_step.py --device cuda --precision bf16 --batch 128 --seq 128
"""
import argparse
import statistics
import time

import torch
from torch import nn


class Adapter(nn.Module):
    def __init__(self, d, m, act):
        super().__init__()
        self.adapter_down = nn.Sequential(nn.Linear(d, m), act)
        self.adapter_up = nn.Linear(m, d)
        for lin in (self.adapter_down[0], self.adapter_up):
            nn.init.trunc_normal_(lin.weight, std=1e-2, a=-2e-2, b=2e-2)
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        return self.adapter_up(self.adapter_down(x))


def patch_output(module, adapter, pfeiffer):
    """Sublayer output with an adapter: Houlsby LN(h + A(h) + x), Pfeiffer LN(h + A(LN(h+x)) + x)."""
    module.adapter = adapter

    def forward(hidden_states, input_tensor):
        h = module.dropout(module.dense(hidden_states))
        a = module.LayerNorm(h + input_tensor) if pfeiffer else h
        return module.LayerNorm(h + module.adapter(a) + input_tensor)

    module.forward = forward


def build(mode, args):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(hidden_size=args.hidden, num_hidden_layers=args.layers,
                        num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                        num_labels=2)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    d = args.hidden
    m = d // 16
    if mode in ("houlsby", "pfeiffer"):
        for layer in model.bert.encoder.layer:
            if mode == "houlsby":
                patch_output(layer.attention.output, Adapter(d, m, nn.SiLU()), False)
                patch_output(layer.output, Adapter(d, m, nn.SiLU()), False)
            else:
                patch_output(layer.output, Adapter(d, m, nn.ReLU()), True)
    for name, p in model.named_parameters():
        if mode == "full":
            p.requires_grad_(True)
        elif mode in ("head", "forward"):
            p.requires_grad_(name.startswith("classifier."))
        else:
            p.requires_grad_("adapter" in name or "LayerNorm" in name or name.startswith("classifier."))
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="full,houlsby,pfeiffer,head")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    print(f"PyTorch {torch.__version__} eager reference: device {args.device}, precision {args.precision}")
    print(f"{'mode':9s} {'trainable':>12s} {'median ms':>10s} {'min ms':>10s} {'vs full':>10s} {'peak MiB':>10s}")
    full_ms = None
    for mode in args.modes.split(","):
        model = build(mode, args).to(device).train(mode != "forward")
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        ids = torch.randint(1, 30522, (args.batch, args.seq), device=device)
        mask = torch.ones_like(ids)
        labels = torch.randint(0, 2, (args.batch,), device=device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        times = []
        for step in range(args.warmup + args.steps):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            if mode == "forward":
                with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    model(input_ids=ids, attention_mask=mask)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if step >= args.warmup:
                    times.append((time.perf_counter() - start) * 1000)
                continue
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model(input_ids=ids, attention_mask=mask).logits
                loss = nn.functional.cross_entropy(logits.float(), labels)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= args.warmup:
                times.append((time.perf_counter() - start) * 1000)
        med = statistics.median(times)
        if mode == "full":
            full_ms = med
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
        ratio = f"{med / full_ms:.3f}" if full_ms else "-"
        trainable = sum(p.numel() for p in params)
        print(f"{mode:9s} {trainable:12d} {med:10.2f} {min(times):10.2f} {ratio:>10s} {peak:10.0f}")
        del model, opt


if __name__ == "__main__":
    main()
