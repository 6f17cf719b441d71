#!/usr/bin/env bash
# AdapterFusion on the shipped base: Houlsby adapters for SST-2, MRPC, CoLA and STS-B, then RTE
# with a fusion of those four (the adapters frozen) against RTE with an adapter of its own, same
# settings as scripts/results_table.sh. Writes its section of docs/results.md.
# Usage: scripts/fusion_report.sh [extra train options, e.g. --device cpu --precision bf16]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${ADAPTERTUNE_CLI:-$root/build/tools/cli/adaptertune}
model=${ADAPTERTUNE_BASE:-$root/models/adaptertune-base-uncased-L4-H256}
runs=${ADAPTERTUNE_RESULTS_DIR:-$root/runs/fusion}
cd "$root"
source "$root/scripts/report_settings.sh"
train() { # TASK OUT [options]
  local task=$1 out=$2
  shift 2
  echo "fusion_report: $task -> $out" >&2
  "$cli" train --task "$task" --data-dir data/glue --model "$model" --epochs "$(epochs_for "$task")" \
    --batch-size 32 --max-length 128 --seed 42 --lr 1e-3 --no-progress --overwrite --out "$out" \
    "$@" > /dev/null
}
# ADAPTERTUNE_REPORT_ONLY=1 rewrites the section from the runs already in $runs (give the same
# extra options: the section quotes them).
if [ -z "${ADAPTERTUNE_REPORT_ONLY:-}" ]; then
  for task in SST-2 MRPC CoLA STS-B RTE; do
    train "$task" "$runs/$task" --adapter houlsby "$@"
  done
  train RTE "$runs/RTE-fusion" --fuse SST-2,MRPC,CoLA,STS-B --adapter-pack "$runs/SST-2/best" \
    --adapter-pack "$runs/MRPC/best" --adapter-pack "$runs/CoLA/best" --adapter-pack "$runs/STS-B/best" "$@"
fi
python3 - "$runs" "$*" <<'PY'
import json, os, sys
runs, extra = sys.argv[1], sys.argv[2]
def accuracy(name):
    return 100 * json.load(open(os.path.join(runs, name, "results.json")))["best_metrics"]["accuracy"]
def row(name, label):
    res = json.load(open(os.path.join(runs, name, "results.json")))
    run = json.load(open(os.path.join(runs, name, "run.json")))
    p = run["parameters"]
    return (f"| {label} | {100 * res['best_metrics']['accuracy']:.1f} | {p['trainable']:,} | "
            f"{res['seconds']:.0f} s |")
lines = [
    "## AdapterFusion",
    "",
    "RTE dev accuracy with a Houlsby adapter of its own, and with AdapterFusion (dynamic) over the "
    "Houlsby adapters of SST-2, MRPC, CoLA and STS-B, which stay frozen; each trained with the "
    "settings of the table above (5 epochs, batch 32, length 128, lr 1e-3, seed 42). Made by "
    f"`bash scripts/fusion_report.sh {extra}`.".replace(" `.", "`."),
    "",
    "| RTE with | dev accuracy | trainable parameters | time |",
    "| --- | --- | --- | --- |",
    row("RTE", "its own adapter"),
    row("RTE-fusion", "Fuse(SST-2, MRPC, CoLA, STS-B)"),
]
lines += ["", "The fused adapters' own dev scores: " + ", ".join(
    f"{t} {', '.join(f'{k} {100 * v:.1f}' for k, v in json.load(open(os.path.join(runs, t, 'results.json')))['best_metrics'].items() if k != 'combined')}"
    for t in ["SST-2", "MRPC", "CoLA", "STS-B"]) + "."]
sys.path.insert(0, "scripts")
from results_section import majority_accuracy, write_section
majority, error, examples = majority_accuracy("RTE")
own, fused = accuracy("RTE"), accuracy("RTE-fusion")
above = [name for name, value in (("its own adapter", own), ("the fusion", fused))
         if value - majority >= 2 * error]
verdict = (f"{' and '.join(above)} more than two standard errors above it"
           if above else "neither run more than two standard errors above it")
verdict += (", and the two runs within noise of each other" if abs(own - fused) < 2 * error * 2 ** 0.5
            else f", and the two runs {abs(own - fused):.1f} points apart")
lines += ["", f"Predicting the majority class scores {majority:.1f} % on these {examples} "
          f"examples, where one point is under three examples and one standard error of an "
          f"accuracy is {error:.1f} points: {verdict}. The fusion trains twelve times the "
          "adapter's parameters (query, key and value per site). Times include whatever else ran "
          "on the machine."]
write_section("fusion_report.sh", "\n".join(lines) + "\n")
PY
