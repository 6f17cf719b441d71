#!/usr/bin/env bash
# The paper's parameter/performance trade-off (Houlsby et al. 2019, Figures 3-4) on one task:
# Houlsby adapters of sizes 1, 2, 4, ..., 256, and fine-tuning of the top k layers for k = 1 to
# the model's depth, each trained once with the same settings. Writes docs/tradeoff-TASK.json
# (trainable parameters, dev metric, seconds per run) and docs/tradeoff-TASK.png (the metric
# against trainable parameters, log x axis; needs python3-matplotlib).
# Usage: scripts/tradeoff.sh TASK [extra train options]
# Settings: the main job's (batch 32, length 64, bf16, seed 42); 1 epoch for SST-2, 5 for the
# small tasks as in scripts/results_table.sh; lr 1e-3 for adapters, 1e-4 for top-k fine-tuning.
# ADAPTERTUNE_REPORT_ONLY=1 redraws from the runs already in runs/tradeoff/TASK.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
task=${1:?usage: scripts/tradeoff.sh TASK [extra train options]}
shift
cli=${ADAPTERTUNE_CLI:-$root/build/tools/cli/adaptertune}
model=${ADAPTERTUNE_BASE:-$root/models/adaptertune-base-uncased-L4-H256}
runs=${ADAPTERTUNE_RESULTS_DIR:-$root/runs/tradeoff}/$task
sizes=${ADAPTERTUNE_ADAPTER_SIZES:-"1 2 4 8 16 32 64 128 256"}
cd "$root"
layers=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$model/config.json")
source "$root/scripts/report_settings.sh"
epochs=$(epochs_for "$task")
settings=(--task "$task" --data-dir data/glue --model "$model" --epochs "$epochs" --batch-size 32
          --max-length 64 --precision bf16 --seed 42 --no-progress --overwrite)
if [ -z "${ADAPTERTUNE_REPORT_ONLY:-}" ]; then
  for m in $sizes; do
    echo "tradeoff: $task adapter size $m" >&2
    "$cli" train "${settings[@]}" --adapter houlsby --adapter-size "$m" --lr 1e-3 \
      --out "$runs/adapter-$m" "$@" > /dev/null
  done
  for k in $(seq 1 "$layers"); do
    echo "tradeoff: $task top $k layers" >&2
    "$cli" train "${settings[@]}" --train top-k --top-layers "$k" --lr 1e-4 \
      --out "$runs/top-$k" "$@" > /dev/null
  done
fi
# Debian's python3 with python3-matplotlib draws the plot.
/usr/bin/python3 - "$task" "$runs" "$*" <<'PY'
import json, os, sys
task, runs, extra = sys.argv[1], sys.argv[2], sys.argv[3]
points = []
for name in sorted(os.listdir(runs)):
    run = json.load(open(os.path.join(runs, name, "run.json")))
    res = json.load(open(os.path.join(runs, name, "results.json")))
    kind, value = name.split("-", 1)
    points.append({"method": "adapters" if kind == "adapter" else "top-k fine-tuning",
                   "adapter_size" if kind == "adapter" else "top_layers": int(value),
                   "trainable_parameters": run["parameters"]["trainable"],
                   "trainable_percent": round(run["parameters"]["trainable_percent"], 4),
                   "dev": res["best_metrics"],
                   "seconds": round(res["seconds"], 1)})
points.sort(key=lambda p: (p["method"], p["trainable_parameters"]))
main = {"CoLA": "mcc", "STS-B": "combined", "MRPC": "combined"}.get(task, "accuracy")
out = {"task": task, "metric": main,
       "command": f"bash scripts/tradeoff.sh {task} {extra}".strip(), "points": points}
os.makedirs("docs", exist_ok=True)
with open(f"docs/tradeoff-{task}.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
fig, ax = plt.subplots(figsize=(6, 4))
for method, marker in (("adapters", "o"), ("top-k fine-tuning", "s")):
    xs = [p["trainable_parameters"] for p in points if p["method"] == method]
    ys = [100 * p["dev"][main] for p in points if p["method"] == method]
    ax.plot(xs, ys, marker=marker, label=method)
    key = "adapter_size" if method == "adapters" else "top_layers"
    for p, x, y in zip([p for p in points if p["method"] == method], xs, ys):
        ax.annotate(str(p[key]), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
ax.set_xscale("log")
ax.set_xlabel("trainable parameters (log scale)")
ax.set_ylabel(f"{task} dev {main} (%)")
ax.set_title(f"{task}: adapter size (labels) against top-k fine-tuning (labels: k)")
ax.grid(True, alpha=0.3)
ax.legend()
fig.tight_layout()
fig.savefig(f"docs/tradeoff-{task}.png", dpi=120)
rows = [f"| {p['method']} | {p.get('adapter_size', p.get('top_layers'))} | "
        f"{p['trainable_parameters']:,} ({p['trainable_percent']:.2f} %) | "
        f"{100 * p['dev'][main]:.1f} | {p['seconds']:.0f} s |" for p in points]
best = {m: max((p for p in points if p["method"] == m), key=lambda p: p["dev"][main])
        for m in ("adapters", "top-k fine-tuning")}
lines = [
    f"## Trade-off: {task}",
    "",
    f"{task} dev {main} (best evaluation of the run, × 100) against trainable parameters: Houlsby "
    "adapters of size m (pooler and LayerNorms train too) and fine-tuning of the top k layers "
    "(with pooler and head), as in Houlsby et al.'s Figures 3-4; one run each. Settings: batch 32, "
    "length 64, bf16, seed 42, lr 1e-3 (adapters) or 1e-4 (top-k), the results table's epochs. "
    f"Made by `{out['command']}`; plot `docs/tradeoff-{task}.png`, data "
    f"`docs/tradeoff-{task}.json`.",
    "",
    f"![{task} trade-off](tradeoff-{task}.png)",
    "",
    "| method | m or k | trainable parameters | dev | time |",
    "| --- | --- | --- | --- | --- |",
] + rows + [
    "",
    f"Best: adapters {100 * best['adapters']['dev'][main]:.1f} with m = "
    f"{best['adapters']['adapter_size']}, top-k {100 * best['top-k fine-tuning']['dev'][main]:.1f} "
    f"with k = {best['top-k fine-tuning']['top_layers']}. Times include whatever else ran on the "
    "machine.",
]
sys.path.insert(0, "scripts")
from results_section import write_section
write_section(f"tradeoff.sh {task}", "\n".join(lines) + "\n")
PY
