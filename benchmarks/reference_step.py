#!/usr/bin/env python3
"""PyTorch-Python eager reference for adaptertune_bench: the same work (a BERT classifier's training
step with AdamW, full fine-tuning or Houlsby/Pfeiffer adapters on a frozen base, head-only training,
or inference) at the same shape, with the same modes, flags and --json records, so that
benchmarks/compare.py can run the two side by side in one run.

The model is Hugging Face transformers' BertForSequenceClassification where transformers can be
imported (--impl hf), and otherwise (--impl plain, or auto without transformers: Debian has no
transformers package) a transcription of its modules in plain torch.nn: the same Linear, LayerNorm,
Embedding and Dropout modules in the same order, eager attention (matmul, softmax, matmul; on
PyTorch 2 scaled_dot_product_attention, which transformers uses there by default), exact-erf GELU.
Adapters are patched into the sublayer outputs exactly where adaptertune places them.

    python3 benchmarks/reference_step.py --device cpu --precision bf16 --batch 32 --seq 128 \
        --modes houlsby --json
"""
import argparse
import json
import math
import statistics
import sys
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


# --- A transcription of transformers' BertForSequenceClassification (eager), for --impl plain. ---


class Config:
    def __init__(self, hidden, layers, heads, vocab=30522, max_positions=512):
        self.hidden_size = hidden
        self.num_hidden_layers = layers
        self.num_attention_heads = heads
        self.intermediate_size = 4 * hidden
        self.vocab_size = vocab
        self.max_position_embeddings = max_positions
        self.type_vocab_size = 2
        self.layer_norm_eps = 1e-12
        self.hidden_dropout_prob = 0.1
        self.attention_probs_dropout_prob = 0.1
        self.initializer_range = 0.02
        self.num_labels = 2


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.register_buffer("position_ids", torch.arange(c.max_position_embeddings).unsqueeze(0))
        self.register_buffer("token_type_ids", torch.zeros(1, c.max_position_embeddings, dtype=torch.long))

    def forward(self, ids):
        seq = ids.shape[1]
        x = (self.word_embeddings(ids) + self.token_type_embeddings(self.token_type_ids[:, :seq])
             + self.position_embeddings(self.position_ids[:, :seq]))
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads = c.num_attention_heads
        self.head_size = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)
        self.p = c.attention_probs_dropout_prob

    def split(self, x):
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_size).transpose(1, 2)

    def forward(self, x, mask):
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        if hasattr(nn.functional, "scaled_dot_product_attention"):
            context = nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
            if mask is not None:
                scores = scores + mask
            context = torch.matmul(self.dropout(nn.functional.softmax(scores, dim=-1)), v)
        return context.transpose(1, 2).reshape(x.shape)


class SublayerOutput(nn.Module):
    def __init__(self, c, d_in):
        super().__init__()
        self.dense = nn.Linear(d_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + input_tensor)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = SublayerOutput(c, c.hidden_size)

    def forward(self, x, mask):
        return self.output(self.self(x, mask), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return nn.functional.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = SublayerOutput(c, c.intermediate_size)

    def forward(self, x, mask):
        a = self.attention(x, mask)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x, mask):
        for layer in self.layer:
            x = layer(x, mask)
        return x


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class Bert(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = Embeddings(c)
        self.encoder = Encoder(c)
        self.pooler = Pooler(c)

    def forward(self, ids, attention_mask):
        x = self.embeddings(ids)
        # transformers' extended mask: 0 where attended, the dtype's minimum at padding.
        mask = None
        if attention_mask is not None:
            mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        return self.pooler(self.encoder(x, mask))


class Output:
    def __init__(self, logits):
        self.logits = logits


class BertForSequenceClassification(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bert = Bert(c)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        self.classifier = nn.Linear(c.hidden_size, c.num_labels)
        self.apply(self._init)

    def _init(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, 0.02)
            if isinstance(module, nn.Linear):
                module.bias.data.zero_()

    def forward(self, input_ids, attention_mask=None):
        return Output(self.classifier(self.dropout(self.bert(input_ids, attention_mask))))


# --- The benchmark. ---


def resolve_impl(impl):
    if impl != "auto":
        return impl
    try:
        import transformers  # noqa: F401
        return "hf"
    except ImportError:
        return "plain"


def build(mode, args, impl):
    torch.manual_seed(0)
    if impl == "hf":
        from transformers import BertConfig
        from transformers import BertForSequenceClassification as HfBert

        model = HfBert(BertConfig(hidden_size=args.hidden, num_hidden_layers=args.layers,
                                  num_attention_heads=args.heads, intermediate_size=4 * args.hidden,
                                  max_position_embeddings=max(512, args.seq), num_labels=2))
    else:
        model = BertForSequenceClassification(Config(args.hidden, args.layers, args.heads,
                                                      max_positions=max(512, args.seq)))
    d = args.hidden
    m = d // 16
    preset = mode[len("infer-"):] if mode.startswith("infer-") else mode
    if preset.startswith("dev-"):
        preset = "houlsby"  # the SST-2 dev inference modes run the Houlsby model
    if preset in ("houlsby", "pfeiffer"):
        for layer in model.bert.encoder.layer:
            if preset == "houlsby":
                patch_output(layer.attention.output, Adapter(d, m, nn.SiLU()), False)
                patch_output(layer.output, Adapter(d, m, nn.SiLU()), False)
            else:
                patch_output(layer.output, Adapter(d, m, nn.ReLU()), True)
    for name, p in model.named_parameters():
        if mode == "full":
            p.requires_grad_(True)
        elif mode in ("head", "forward") or mode.startswith("infer-"):
            p.requires_grad_(name.startswith("classifier."))
        else:
            p.requires_grad_("adapter" in name or "LayerNorm" in name or name.startswith("classifier."))
    return model


def proc_status_mib(key):
    """VmHWM / VmRSS of this process in MiB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def dev_batches(lengths, batch, pad_to, sort_by_length):
    """Batches of `batch` examples in file order or sorted by length, each padded to its longest
    (pad_to None) or to pad_to, as (ids, mask) with 1 for tokens and 0 for padding."""
    if sort_by_length:
        lengths = sorted(lengths)
    out = []
    for start in range(0, len(lengths), batch):
        chunk = lengths[start:start + batch]
        width = pad_to or max(chunk)
        ids = torch.randint(1000, 30000, (len(chunk), width))
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for row, n in enumerate(chunk):
            mask[row, :n] = 1
        out.append((ids, mask))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--modes", default="full,houlsby,pfeiffer,head")
    ap.add_argument("--lengths", help="token counts, one per line, for the infer-dev-* modes")
    ap.add_argument("--impl", default="auto", choices=["auto", "hf", "plain"])
    ap.add_argument("--json", action="store_true", help="one JSON record per mode, as adaptertune_bench")
    ap.add_argument("--profile", metavar="TRACE.json",
                    help="a Chrome trace of the timed steps (of the last mode), as adaptertune_bench "
                         "--profile writes: torch.profiler's, with the GPU's kernels on CUDA; "
                         "benchmarks/trace_summary.py reads it")
    args = ap.parse_args()
    # Another mode (adaptertune_bench's gemm, infer-parallel, *-drop ...) has no counterpart here;
    # run anyway, it would time a model with no adapters under that name.
    known = {"full", "head", "forward", "houlsby", "pfeiffer", "infer-houlsby", "infer-pfeiffer",
             "infer-dev-dynamic", "infer-dev-inorder", "infer-dev-maxpad"}
    unknown = [m for m in args.modes.split(",") if m not in known]
    if unknown:
        sys.exit(f"reference_step.py: no reference for mode(s) {', '.join(unknown)} "
                 f"(known: {', '.join(sorted(known))})")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    impl = resolve_impl(args.impl)
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    lengths = None
    if args.lengths:
        with open(args.lengths) as f:
            lengths = [min(int(line), args.seq) for line in f if line.strip()]
    print(f"PyTorch {torch.__version__} eager reference ({impl}): device {args.device}, "
          f"precision {args.precision}, {torch.get_num_threads()} threads")
    print(f"{'mode':19s} {'trainable':>12s} {'median ms':>10s} {'min ms':>10s} {'vs full':>10s} {'peak MiB':>10s}")
    full_ms = None
    rss_start = proc_status_mib("VmRSS")
    for mode in args.modes.split(","):
        infer = mode == "forward" or mode.startswith("infer-")
        if mode.startswith("infer-dev-") and lengths is None:
            sys.exit(f"reference_step.py: mode {mode} needs --lengths")
        model = build(mode, args, impl).to(device).train(not infer)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        ids = torch.randint(1, 30522, (args.batch, args.seq), device=device)
        mask = torch.ones_like(ids)
        labels = torch.randint(0, 2, (args.batch,), device=device)
        batches = None
        if mode.startswith("infer-dev-"):
            pad_to = args.seq if mode == "infer-dev-maxpad" else None
            batches = [(i.to(device), m.to(device))
                       for i, m in dev_batches(lengths, args.batch, pad_to, mode == "infer-dev-dynamic")]
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        times = []
        profiler = None
        for step in range(args.warmup + args.steps):
            if step == args.warmup and args.profile:
                activities = [torch.profiler.ProfilerActivity.CPU]
                if device.type == "cuda":
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                profiler = torch.profiler.profile(activities=activities)
                profiler.start()
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            if infer:
                with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                                                            enabled=dtype is not None):
                    for batch_ids, batch_mask in batches or [(ids, mask)]:
                        model(input_ids=batch_ids, attention_mask=batch_mask)
            else:
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                    logits = model(input_ids=ids, attention_mask=mask).logits
                    loss = nn.functional.cross_entropy(logits.float(), labels)
                loss.backward()
                opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step >= args.warmup:
                times.append((time.perf_counter() - start) * 1000)
        if profiler is not None:
            profiler.stop()
            profiler.export_chrome_trace(args.profile)
        med = statistics.median(times)
        if mode == "full":
            full_ms = med
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")
        ratio = f"{med / full_ms:.3f}" if full_ms else "-"
        trainable = sum(p.numel() for p in params)
        print(f"{mode:19s} {trainable:12d} {med:10.2f} {min(times):10.2f} {ratio:>10s} {peak:10.0f}")
        if args.json:
            record = {"impl": "pytorch-" + impl, "mode": mode, "device": args.device,
                      "precision": args.precision, "median_ms": med, "min_ms": min(times),
                      "times_ms": times, "trainable": trainable,
                      "examples": len(lengths) if batches else args.batch,
                      "peak_mib": peak if device.type == "cuda" else None,
                      "vmhwm_mib": proc_status_mib("VmHWM"), "rss_start_mib": rss_start,
                      "threads": torch.get_num_threads()}
            print(json.dumps(record))
        del model, opt


if __name__ == "__main__":
    main()
