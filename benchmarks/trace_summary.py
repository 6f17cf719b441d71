#!/usr/bin/env python3
"""Where a step's time goes, from the Chrome traces that `adaptertune_bench --profile` and
`reference_step.py --profile` write: one trace summed up per step, or several side by side (ours
against PyTorch eager, or two builds).

    python3 benchmarks/trace_summary.py --steps 5 ours=ours.json pytorch=reference.json

A trace with GPU activity (Kineto's, on CUDA) is summed up by the GPU's work: for each trace the
GPU's busy time per step (kernels, copies and fills, overlaps counted once), the span from its
first to its last activity and the idle time between, the kernels launched, and the operators'
time on the host; then the kernel time by class, and the kernels that take the most. A trace of
the CPU alone (the autograd profiler's, as Debian's LibTorch writes) is summed up by operator
self time: an operator's time less that of the operators it calls, so that each microsecond
counts once; then by class, and the operators that take the most.

Classes group names by pattern (CLASSES below: products, attention, LayerNorm, casts and copies,
...): they answer "which kind of work differs", and the lists of names below them say which
kernel. --steps divides every figure by the number of timed steps the trace holds (the bench and
the reference trace their --steps timed steps). --json writes the figures for a script.

Every figure is a sum over the trace divided by the steps, so one stalled call (the machine busy
elsewhere, a page-fault storm) inside a short trace can make a cheap operator look costly: calls
of at least 1 ms, ten times their name's median call and a fifth of its time are listed after the
largest names ("outliers" in the JSON). Read those before acting on a figure.
"""
import argparse
import gzip
import json
import os
import re
import statistics
import sys

# (class, pattern) in order: the first pattern found in a lower-cased name decides. Kernel names
# (CUDA) and operator names (ATen, autograd nodes, this library's RecordFunctions) share them.
CLASSES = [
    ("loss", r"nll_loss|cross_entropy|log_?softmax"),
    ("attention", r"flash|fmha|sdpa|attention|softmax|dropout_matmul"),
    ("products", r"gemm|gemv|cutlass|cublas|xmma|nvjet|(^|::|_)mm\b|addmm|bmm|matmul|linear|onednn"),
    ("layer norm", r"layer_?norm|gammabeta"),
    ("gelu", r"gelu"),
    ("dropout", r"dropout|bernoulli|philox"),
    ("optimizer", r"adam|multi_tensor|foreach|optimizer"),
    ("casts and copies", r"copy|::to$|cast|contiguous|clone|(^|::)cat\b|catarray"),
    ("embeddings", r"embedding|index_select|indexselect|indexing|gather|scatter"),
    ("reductions", r"reduce|(^|::)sum\b|(^|::)mean\b"),
    ("element-wise", r"elementwise|vectorized|unrolled|functor|silu|swish|(^|::)(add|mul|div|sub|"
                     r"rsub|tanh|relu|where|masked_fill|fill|zero|sqrt|exp|neg|pow)_?(_backward)?$"),
    # What the framework costs around the kernels: no arithmetic.
    ("views and allocation", r"view|reshape|transpose|permute|as_strided|expand|empty|narrow|slice|"
                             r"select|split|chunk|squeeze|(^|::)t$|detach|alias|resolve_|arange"),
    ("autograd bookkeeping", r"backward\d*$|accumulategrad|evaluate_function"),
]
OTHER = "other"
GPU_CATEGORIES = {"kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset"}
# Events of the host's operators: Kineto's categories; the autograd profiler's events have none.
HOST_CATEGORIES = {"cpu_op", "user_annotation", None}


class TraceError(Exception):
    pass


def classify(name):
    lowered = name.lower()
    for label, pattern in CLASSES:
        if re.search(pattern, lowered):
            return label
    return OTHER


def short_name(name, width=110):
    """A kernel or operator name without the prefixes every CUDA kernel of ATen carries."""
    for prefix in ("void ", "at::native::", "(anonymous namespace)::", "at::", "c10::"):
        name = name.replace(prefix, "")
    return name if len(name) <= width else name[: width - 3] + "..."


def load_events(path):
    """The complete ('X') events of a Chrome trace: a list (the autograd profiler's) or an object
    with traceEvents (Kineto's); .gz files are read compressed."""
    try:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            data = json.load(f)
    except OSError as e:
        raise TraceError(f"{path}: cannot read: {e.strerror or e}")
    except (ValueError, EOFError) as e:
        raise TraceError(f"{path}: not a JSON Chrome trace: {e}")
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise TraceError(f"{path}: expected a list of events or an object with traceEvents")
    complete = []
    for i, event in enumerate(events):
        if not isinstance(event, dict) or event.get("ph") != "X":
            continue
        try:
            ts, dur = float(event["ts"]), float(event.get("dur", 0))
        except (KeyError, TypeError, ValueError):
            raise TraceError(f"{path}: event {i} ({event.get('name', '?')!r}) has no numeric ts/dur")
        complete.append({"name": str(event.get("name", "")), "cat": event.get("cat"),
                         "pid": event.get("pid"), "tid": event.get("tid"), "ts": ts, "dur": dur})
    if not complete:
        raise TraceError(f"{path}: the trace has no complete events (was anything profiled?)")
    return complete


def union_length(intervals):
    """Total length covered by [start, end) intervals, overlaps counted once."""
    total, end_covered = 0.0, None
    for start, end in sorted(intervals):
        if end_covered is None or start > end_covered:
            total += end - start
            end_covered = end
        elif end > end_covered:
            total += end - end_covered
            end_covered = end
    return total


def host_self_times(events):
    """Self time of each host operator event (its duration less its direct children's), and the
    time of the top-level ones: nesting is found per (pid, tid) from the timestamps."""
    by_thread = {}
    for e in events:
        if e["cat"] in HOST_CATEGORIES:
            by_thread.setdefault((str(e["pid"]), str(e["tid"])), []).append(e)
    selves, top_level = [], 0.0
    for thread_events in by_thread.values():
        thread_events.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [event, children's time]
        for e in thread_events:
            # A child starts before its parent ends; the profiler rounds to 1 us, hence the slack.
            while stack and e["ts"] >= stack[-1][0]["ts"] + stack[-1][0]["dur"] - 1e-3:
                done = stack.pop()
                selves.append((done[0]["name"], max(done[0]["dur"] - done[1], 0.0)))
            if stack:
                stack[-1][1] += e["dur"]
            else:
                top_level += e["dur"]
            stack.append([e, 0.0])
        for done in stack:
            selves.append((done[0]["name"], max(done[0]["dur"] - done[1], 0.0)))
    return selves, top_level


def summarise(path, steps):
    events = load_events(path)
    gpu = [e for e in events if e["cat"] in GPU_CATEGORIES]
    selves, host_ms = host_self_times(events)
    summary = {"trace": path, "steps": steps, "host_ops_ms": host_ms / 1000 / steps}
    items = []  # (name, microseconds)
    if gpu:
        summary["kind"] = "gpu"
        summary["gpu_busy_ms"] = union_length([(e["ts"], e["ts"] + e["dur"]) for e in gpu]) / 1000 / steps
        span = max(e["ts"] + e["dur"] for e in gpu) - min(e["ts"] for e in gpu)
        summary["gpu_span_ms"] = span / 1000 / steps
        summary["gpu_idle_ms"] = summary["gpu_span_ms"] - summary["gpu_busy_ms"]
        summary["kernels_per_step"] = sum(e["cat"] == "kernel" for e in gpu) / steps
        for e in gpu:
            label = GPU_CATEGORIES[e["cat"]]
            items.append((e["name"] if label == "kernel" else f"[{label}] {e['name']}", e["dur"], label))
    else:
        summary["kind"] = "cpu"
        items = [(name, us, "op") for name, us in selves]
    classes, names = {}, {}
    for name, us, label in items:
        cls = label if label in ("memcpy", "memset") else classify(name)
        classes[cls] = classes.get(cls, 0.0) + us
        entry = names.setdefault(name, {"us": 0.0, "calls": 0, "class": cls, "durations": []})
        entry["us"] += us
        entry["calls"] += 1
        entry["durations"].append(us)
    summary["total_ms"] = sum(classes.values()) / 1000 / steps
    summary["classes_ms"] = {c: us / 1000 / steps for c, us in
                             sorted(classes.items(), key=lambda kv: -kv[1])}
    summary["top"] = [{"name": n, "class": v["class"], "ms": v["us"] / 1000 / steps,
                       "calls": v["calls"] / steps}
                      for n, v in sorted(names.items(), key=lambda kv: -kv[1]["us"])]
    summary["outliers"] = outlier_calls(names)
    return summary


def outlier_calls(names):
    """Calls far above the median call of their name: at least 1 ms, ten times that median and a
    fifth of the name's whole time, for names called at least three times. One stall of a shared
    machine (a page-fault storm, another process) inside a short trace makes a per-step mean of
    a cheap operator look like a real cost; these are the calls to read before acting on it."""
    found = []
    for name, v in names.items():
        durations = v["durations"]
        if len(durations) < 3:
            continue
        median = statistics.median(durations)
        for us in durations:
            if us >= 1000 and us > 10 * median and us >= 0.2 * v["us"]:
                found.append({"name": name, "call_ms": us / 1000, "median_call_ms": median / 1000,
                              "share_of_name": us / v["us"]})
    return sorted(found, key=lambda o: -o["call_ms"])


def print_report(summaries, labels, top):
    kinds = {s["kind"] for s in summaries}
    if len(kinds) > 1:
        print("trace_summary.py: note: GPU and CPU-only traces mixed; each is summed up by its own kind")
    what = {"gpu": "kernel", "cpu": "operator self"}.get(kinds.pop() if len(kinds) == 1 else None,
                                                          "GPU kernel or CPU operator self")
    width = max(17, *(len(label) + 2 for label in labels))
    header = "".join(f"{label:>{width}s}" for label in labels)
    print(f"per step ({summaries[0]['steps']:g} steps a trace)")
    print(f"{'':28s}{header}")
    rows = [("host operators, ms", "host_ops_ms")]
    if any(s["kind"] == "gpu" for s in summaries):
        rows += [("GPU busy, ms", "gpu_busy_ms"), ("GPU span, ms", "gpu_span_ms"),
                 ("GPU idle within span, ms", "gpu_idle_ms"), ("kernels launched", "kernels_per_step")]
    rows.append((f"{what} time, ms", "total_ms"))
    for title, key in rows:
        cells = "".join(f"{s[key]:>{width}.2f}" if key in s else f"{'-':>{width}s}" for s in summaries)
        print(f"{title:28s}{cells}")
    print(f"\n{what} time by class, ms (share)")
    order = []
    for s in summaries:
        order += [c for c in s["classes_ms"] if c not in order]
    for cls in order:
        cells = ""
        for s in summaries:
            ms = s["classes_ms"].get(cls, 0.0)
            share = ms / s["total_ms"] * 100 if s["total_ms"] else 0.0
            cells += f"{f'{ms:.2f} ({share:4.1f}%)':>{width}s}"
        print(f"  {cls:26s}{cells}")
    for s, label in zip(summaries, labels):
        print(f"\n{label}: the {top} largest, ms per step, calls per step, class")
        for entry in s["top"][:top]:
            print(f"  {entry['ms']:9.3f} {entry['calls']:7.1f}  {entry['class']:17s} {short_name(entry['name'])}")
        if s["outliers"]:
            print(f"\n{label}: calls far above their operator's median call (a stall, most likely, not a "
                  "steady cost: the figures above include them)")
            for o in s["outliers"]:
                print(f"  {o['call_ms']:9.3f} ms, median call {o['median_call_ms']:.3f} ms, "
                      f"{o['share_of_name'] * 100:.0f}% of its operator's time  {short_name(o['name'])}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("traces", nargs="+", metavar="[LABEL=]TRACE.json",
                    help="Chrome traces (.json or .json.gz); LABEL names a column")
    ap.add_argument("--steps", type=int, default=1, help="timed steps each trace holds (default 1)")
    ap.add_argument("--top", type=int, default=15, help="names listed per trace (default 15)")
    ap.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps must be at least 1, got {args.steps}")
    if args.top < 0:
        ap.error(f"--top must not be negative, got {args.top}")
    labels, summaries = [], []
    try:
        for spec in args.traces:
            label, path = spec.split("=", 1) if "=" in spec and not os.path.exists(spec) else (None, spec)
            summaries.append(summarise(path, args.steps))
            labels.append(label or os.path.basename(path).split(".")[0])
    except TraceError as e:
        sys.exit(f"trace_summary.py: {e}")
    print_report(summaries, labels, args.top)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({label: s for label, s in zip(labels, summaries)}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
