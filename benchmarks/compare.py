#!/usr/bin/env python3
"""adaptertune against PyTorch-Python eager, measured in one run: runs adaptertune_bench and
reference_step.py one configuration per child process, interleaved (ours, reference, reference,
ours, ... so neither always goes first), for --rounds rounds, and reports per configuration the
median and spread of every timed step, the ratios the performance targets are stated in, the GEMM
roofline of the run (with the products' backward orientations, and from them the share of a full
step's Linear product time that an adapter step keeps), and each process's peak memory (VmHWM on
CPU, the caching allocator's peak on CUDA). Writes JSON (--out) and a chart (--plot, needs
matplotlib).

    python3 benchmarks/compare.py --shape main --precisions fp32,bf16 --rounds 3 \
        --out docs/benchmarks-cpu-main.json --plot docs/benchmarks-cpu-main.png

With --reference-bench, the reference is another adaptertune_bench instead (rows "baseline"): an
A/B of two builds or two libraries, in the same interleaved way, e.g. a fast path against the
library without it (a copy of the old libadaptertune.so.0 put first by --reference-env):

    python3 benchmarks/compare.py --modes full,houlsby --reference-bench \
        build/benchmarks/adaptertune_bench --reference-env LD_LIBRARY_PATH=/tmp/old-lib

or the same bench with a fast path turned off by a flag (--reference-flags replaces --ours-flags
for the reference):

    python3 benchmarks/compare.py --modes houlsby --precisions bf16 --reference-bench \
        build/benchmarks/adaptertune_bench --reference-flags=--float32-frozen-weights

Shapes: main is the main job's (the shipped base, L4 d256, batch 32 x seq 64); bert-base is
L12 d768, batch 32 x seq 128 (--batch, --seq, --layers, --hidden, --heads override either).
Modes: those of adaptertune_bench that the reference has (full, houlsby, pfeiffer, head, forward,
infer-houlsby, infer-dev-dynamic, infer-dev-inorder, infer-dev-maxpad). The infer-dev-* modes run
the Houlsby model over SST-2 dev's token counts (the shipped tokenizer via `adaptertune tokenize`)
in batches of --batch: sorted by length and padded to each batch's longest, as adaptertune's
Predictor batches (dynamic); in file order, padded to each batch's longest (inorder); or all
padded to --seq (maxpad).
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPES = {
    "main": dict(layers=4, hidden=256, heads=4, batch=32, seq=64),
    "bert-base": dict(layers=12, hidden=768, heads=12, batch=32, seq=128),
}
# The bench's product timings, each round: the roofline (a Linear layer's forward product at the
# model's shapes) and the same products' two backward orientations.
GEMM_MODES = ("gemm", "gemm-input-grad", "gemm-weight-grad")


def run_json(cmd, env=None):
    """Runs one child and returns its JSON records (lines starting with '{')."""
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"compare.py: {' '.join(map(shlex.quote, cmd))} failed:\n{proc.stderr}{proc.stdout}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def sst2_dev_lengths(cli, model, tsv, path):
    """Token counts ([CLS] ... [SEP]) of SST-2 dev's sentences with the model's tokenizer."""
    with open(tsv, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        column = header.index("sentence")
        sentences = [line.rstrip("\n").split("\t")[column] for line in f if line.strip()]
    proc = subprocess.run([cli, "tokenize", "--model", model], input="\n".join(sentences) + "\n",
                          stdout=subprocess.PIPE, text=True, check=True)
    lengths = [len(json.loads(line)["input_ids"]) for line in proc.stdout.splitlines()]
    if len(lengths) != len(sentences):
        sys.exit(f"compare.py: {len(sentences)} sentences but {len(lengths)} tokenized lines")
    with open(path, "w") as f:
        f.write("".join(f"{n}\n" for n in lengths))
    return lengths


def spread(times):
    times = sorted(times)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median_ms": statistics.median(times), "min_ms": times[0], "max_ms": times[-1],
            "q1_ms": q[0], "q3_ms": q[2], "steps": len(times)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="main")
    for key in ("layers", "hidden", "heads", "batch", "seq"):
        ap.add_argument("--" + key, type=int)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--modes", default="full,houlsby,infer-dev-dynamic,infer-dev-inorder,infer-dev-maxpad")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bench", default=os.path.join(ROOT, "build/benchmarks/adaptertune_bench"))
    ap.add_argument("--cli", default=os.path.join(ROOT, "build/tools/cli/adaptertune"))
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch")
    ap.add_argument("--model", default=os.path.join(ROOT, "models/adaptertune-base-uncased-L4-H256"),
                    help="whose tokenizer counts SST-2 dev's tokens")
    ap.add_argument("--dev-tsv", default=os.path.join(ROOT, "data/glue/SST-2/dev.tsv"))
    ap.add_argument("--lengths-file", default=os.path.join(ROOT, "out", "sst2-dev-lengths.txt"),
                    help="where the dev set's token counts are written")
    ap.add_argument("--ours-flags", default="", help="more flags for adaptertune_bench, e.g. --system-malloc")
    ap.add_argument("--reference-env", default="",
                    help="VAR=VALUE ... for the reference's processes, e.g. the same malloc settings")
    ap.add_argument("--reference-bench", metavar="BIN",
                    help="compare against this adaptertune_bench (another build) instead of PyTorch")
    ap.add_argument("--reference-flags", default=None,
                    help="flags for the --reference-bench instead of --ours-flags, e.g. "
                         "--reference-flags=--float32-frozen-weights (the same bench, a path off)")
    ap.add_argument("--out", help="JSON with every record and the summary")
    ap.add_argument("--plot", help="PNG chart of the medians with their spread")
    ap.add_argument("--replot", metavar="JSON", help="only draw --plot from an earlier run's --out")
    args = ap.parse_args()
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f), args.plot)
        return

    shape = dict(SHAPES[args.shape])
    for key in shape:
        if getattr(args, key) is not None:
            shape[key] = getattr(args, key)
    # The roofline (gemm, and its backward orientations) is measured for adaptertune in every round
    # anyway; the reference has none.
    modes = [m for m in args.modes.split(",") if m not in GEMM_MODES]
    precisions = args.precisions.split(",")
    common = []
    for key, value in shape.items():
        common += ["--" + key, str(value)]
    common += ["--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--threads", str(args.threads), "--json"]
    lengths = None
    if any(m.startswith("infer-dev-") for m in modes):
        os.makedirs(os.path.dirname(os.path.abspath(args.lengths_file)), exist_ok=True)
        lengths = sst2_dev_lengths(args.cli, args.model, args.dev_tsv, args.lengths_file)
        common += ["--lengths", args.lengths_file]
    ours = [args.bench] + common + shlex.split(args.ours_flags)
    reference = [args.python, os.path.join(ROOT, "benchmarks/reference_step.py")] + common
    ref_name = "pytorch"
    if args.reference_bench:
        flags = args.ours_flags if args.reference_flags is None else args.reference_flags
        reference = [args.reference_bench] + common + shlex.split(flags)
        ref_name = "baseline"
    reference_env = dict(os.environ)
    for item in shlex.split(args.reference_env):
        key, _, value = item.partition("=")
        reference_env[key] = value

    records = []
    for round_index in range(args.rounds):
        for precision in precisions:
            for record in run_json(ours + ["--precision", precision, "--modes", ",".join(GEMM_MODES)]):
                records.append(dict(record, round=round_index))
            for mode in modes:
                order = [("adaptertune", ours, None), (ref_name, reference, reference_env)]
                if (round_index + modes.index(mode)) % 2 == 1:
                    order.reverse()
                for impl, cmd, env in order:
                    for record in run_json(cmd + ["--precision", precision, "--modes", mode], env):
                        # The Python reference names its own flavour (pytorch-nn, ...).
                        record["impl"] = impl if impl != "pytorch" else record["impl"]
                        records.append(dict(record, round=round_index))
                        print(f"round {round_index + 1}/{args.rounds} {precision:4s} {mode:18s} "
                              f"{record['impl']:14s} median {record['median_ms']:10.2f} ms", flush=True)

    # Summary: every timed step of a configuration, pooled over the rounds.
    summary = {}
    for r in records:
        impl = r["impl"] if r["impl"] in ("adaptertune", "baseline") else "pytorch"
        key = (r["precision"], r["mode"], impl)
        entry = summary.setdefault(key, {"times": [], "vmhwm": [], "rss_start": [], "peak": [],
                                         "tflops": [], "examples": r.get("examples")})
        entry["times"] += r["times_ms"]
        entry["vmhwm"].append(r.get("vmhwm_mib"))
        entry["rss_start"].append(r.get("rss_start_mib"))
        entry["peak"].append(r.get("peak_mib"))
        if "tflops" in r:
            entry["tflops"].append(r["tflops"])
    table = []
    for (precision, mode, impl), e in sorted(summary.items()):
        row = {"precision": precision, "mode": mode, "impl": impl, **spread(e["times"])}
        row["examples_per_s"] = e["examples"] * 1000.0 / row["median_ms"] if e["examples"] else None
        vmhwm = [v for v in e["vmhwm"] if v is not None]
        rss = [v for v in e["rss_start"] if v is not None]
        peaks = [v for v in e["peak"] if v is not None]
        row["vmhwm_mib"] = max(vmhwm) if vmhwm else None
        # What the configuration added to the process: its peak less the resident size before the
        # model was built (the runtime's libraries, Python itself).
        row["added_mib"] = max(v - s for v, s in zip(vmhwm, rss)) if vmhwm and rss else None
        row["cuda_peak_mib"] = max(peaks) if peaks else None
        row["tflops"] = statistics.median(e["tflops"]) if e["tflops"] else None
        if mode in GEMM_MODES:
            row["gflops"] = row["tflops"] * 1000.0
        table.append(row)

    def find(precision, mode, impl):
        for row in table:
            if (row["precision"], row["mode"], row["impl"]) == (precision, mode, impl):
                return row
        return None

    ratios = []
    for precision in precisions:
        gemm = find(precision, "gemm", "adaptertune")
        full = find(precision, "full", "adaptertune")
        full_ref = find(precision, "full", ref_name)
        for mode in modes:
            a, p = find(precision, mode, "adaptertune"), find(precision, mode, ref_name)
            entry = {"precision": precision, "mode": mode,
                     f"speedup_vs_{ref_name}": p["median_ms"] / a["median_ms"]}
            if full and mode != "full" and not mode.startswith("infer"):
                entry["vs_full"] = a["median_ms"] / full["median_ms"]
                entry[f"{ref_name}_vs_full"] = p["median_ms"] / full_ref["median_ms"] if full_ref else None
                if a["added_mib"] and full["added_mib"]:
                    entry["memory_vs_full"] = a["added_mib"] / full["added_mib"]
                if p["added_mib"] and full_ref and full_ref["added_mib"]:
                    entry[f"{ref_name}_memory_vs_full"] = p["added_mib"] / full_ref["added_mib"]
            if gemm and a["tflops"]:
                entry["roofline_fraction"] = a["tflops"] * 1000.0 / gemm["gflops"]
            ratios.append(entry)
        products = [find(precision, m, "adaptertune") for m in GEMM_MODES]
        if all(products):
            # An adapter step runs a Linear layer's forward and input-gradient products and skips
            # its weight gradient, which full fine-tuning runs: the share of a full step's Linear
            # product time that an adapter step keeps, measured, against 2/3 by operation count.
            forward, input_grad, weight_grad = (row["median_ms"] for row in products)
            ratios.append({"precision": precision, "mode": "linear products kept by adapters",
                           "vs_full": (forward + input_grad) / (forward + input_grad + weight_grad)})
        pad = find(precision, "infer-dev-maxpad", "adaptertune")
        for name in ("infer-dev-dynamic", "infer-dev-inorder"):
            row = find(precision, name, "adaptertune")
            if row and pad:
                ratios.append({"precision": precision, "mode": name + " vs maxpad",
                               "speedup_vs_maxpad": pad["median_ms"] / row["median_ms"]})

    try:
        torch_version = subprocess.run([args.python, "-c", "import torch; print(torch.__version__)"],
                                       stdout=subprocess.PIPE, text=True).stdout.strip()
    except OSError:
        torch_version = None
    cpu = None
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), None)
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "command": " ".join(map(shlex.quote, sys.argv)), "shape": shape, "device": args.device,
              "threads": args.threads, "rounds": args.rounds, "ours_flags": args.ours_flags,
              "reference_env": args.reference_env, "reference_bench": args.reference_bench,
              "reference_flags": args.reference_flags,
              "steps": args.steps, "warmup": args.warmup,
              "cpu": cpu, "machine": platform.machine(), "pytorch": torch_version,
              "dev_examples": len(lengths) if lengths else None,
              "table": table, "ratios": ratios, "records": records}

    print(f"\nshape {shape}, {args.threads} threads, {args.rounds} rounds x {args.steps} steps; "
          f"ms per step (median, min-max of all steps)")
    print(f"{'precision':9s} {'mode':18s} {'impl':12s} {'median':>10s} {'min':>10s} {'max':>10s} "
          f"{'ex/s':>9s} {'VmHWM MiB':>10s} {'added MiB':>10s}")
    for row in table:
        ex = f"{row['examples_per_s']:.0f}" if row["examples_per_s"] else "-"
        extra = f"  {row['gflops']:.0f} GFLOP/s" if "gflops" in row else ""
        hwm = f"{row['vmhwm_mib']:.0f}" if row["vmhwm_mib"] else "-"
        added = f"{row['added_mib']:.0f}" if row["added_mib"] else "-"
        print(f"{row['precision']:9s} {row['mode']:18s} {row['impl']:12s} {row['median_ms']:10.2f} "
              f"{row['min_ms']:10.2f} {row['max_ms']:10.2f} {ex:>9s} {hwm:>10s} {added:>10s}{extra}")
    print("\nratios")
    for entry in ratios:
        print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in entry.items()))
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(args.out + ".tmp", args.out)
    if args.plot:
        plot(result, args.plot)


def plot(result, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["table"] if r["mode"] not in GEMM_MODES]
    configs = sorted({(r["precision"], r["mode"]) for r in rows}, key=lambda c: (c[0], c[1]))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(configs)), 4))
    width = 0.38
    ref_name = "baseline" if result.get("reference_bench") else "pytorch"
    labels = {"adaptertune": "adaptertune", "pytorch": "PyTorch eager (Python)",
              "baseline": "adaptertune baseline (--reference-bench)"}
    for offset, impl, color in ((-width / 2, "adaptertune", "#1f77b4"), (width / 2, ref_name, "#ff7f0e")):
        xs, ys, lo, hi = [], [], [], []
        for i, config in enumerate(configs):
            row = next((r for r in rows if (r["precision"], r["mode"]) == config and r["impl"] == impl), None)
            if row:
                xs.append(i + offset)
                ys.append(row["median_ms"])
                lo.append(row["median_ms"] - row["min_ms"])
                hi.append(row["max_ms"] - row["median_ms"])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=color,
               label=labels[impl])
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([f"{m.replace('infer-dev-', 'SST-2 dev ')}\n{p}" for p, m in configs], fontsize=7)
    ax.set_ylabel("ms per step (median; bars: min-max)")
    s = result["shape"]
    ax.set_title(f"L{s['layers']} d{s['hidden']}, batch {s['batch']} x seq {s['seq']}, "
                 f"{result['device']}, {result['threads']} threads ({result['date'][:10]})", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
