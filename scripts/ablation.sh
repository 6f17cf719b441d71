#!/usr/bin/env bash
# The paper's ablations (Houlsby et al. 2019, Figure 6) on one task:
# 1. A Houlsby adapter pack is trained, then evaluated with the trained adapters of every span of
#    layers i..j removed (their up-projections zeroed: with the adapter's skip connection that is
#    exactly no adapter there) -> docs/ablation-TASK-spans.png, a heat map.
# 2. The adapter weights' initial standard deviation is swept from 1e-7 to 1 (truncated normal,
#    AdapterHub's "houlsby" init), one run each -> docs/ablation-TASK-init.png, a line plot.
# Both land in docs/ablation-TASK.json and a section of docs/results.md (needs python3-matplotlib).
# Settings: the main job's (Houlsby, batch 32, length 64, bf16, lr 1e-3, seed 42), the results
# table's epochs. Usage: scripts/ablation.sh TASK [extra train options]
# ADAPTERTUNE_REPORT_ONLY=1 redraws from the runs already in runs/ablation/TASK.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
task=${1:?usage: scripts/ablation.sh TASK [extra train options]}
shift
cli=${ADAPTERTUNE_CLI:-$root/build/tools/cli/adaptertune}
model=${ADAPTERTUNE_BASE:-$root/models/adaptertune-base-uncased-L4-H256}
runs=${ADAPTERTUNE_RESULTS_DIR:-$root/runs/ablation}/$task
stds=${ADAPTERTUNE_INIT_STDS:-"1e-7 1e-6 1e-5 1e-4 1e-3 1e-2 1e-1 1"}
cd "$root"
source "$root/scripts/report_settings.sh"
epochs=$(epochs_for "$task")
settings=(--task "$task" --data-dir data/glue --model "$model" --epochs "$epochs" --batch-size 32
          --max-length 64 --precision bf16 --lr 1e-3 --seed 42 --no-progress --overwrite)
py=/usr/bin/python3  # Debian's, with python3-torch (pack files) and python3-matplotlib (plots)
if [ -z "${ADAPTERTUNE_REPORT_ONLY:-}" ]; then
  echo "ablation: $task, the pack whose adapters are removed" >&2
  "$cli" train "${settings[@]}" --adapter houlsby --out "$runs/pack" "$@" > /dev/null
  layers=$($py -c 'import json, sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' "$model/config.json")
  mkdir -p "$runs/spans"
  "$cli" eval --task "$task" --data-dir data/glue --model "$model" --adapter-pack "$runs/pack/best" \
    > "$runs/spans/none.json"
  for i in $(seq 0 $((layers - 1))); do
    for j in $(seq "$i" $((layers - 1))); do
      pack="$runs/spans/pack-$i-$j"
      rm -rf "$pack" && cp -r "$runs/pack/best" "$pack"
      "$py" - "$pack/adapter.safetensors" "$i" "$j" <<'PY'
import re, sys
sys.path.insert(0, "tests/python")
from bert_reference import read_safetensors, write_safetensors
path, first, last = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tensors = read_safetensors(path)
zeroed = 0
for name, t in tensors.items():
    m = re.search(r"encoder\.layer\.(\d+)\..*\.adapter_up\.", name)
    if m and first <= int(m.group(1)) <= last:
        t.zero_()
        zeroed += 1
assert zeroed > 0, "no adapter up-projection in layers %d..%d" % (first, last)
write_safetensors(path, tensors)
PY
      "$cli" eval --task "$task" --data-dir data/glue --model "$model" --adapter-pack "$pack" \
        > "$runs/spans/$i-$j.json"
    done
  done
  # The pack's own adapter config, with another initial std.
  for std in $stds; do
    echo "ablation: $task, init std $std" >&2
    "$py" -c 'import json, sys; c = json.load(open(sys.argv[1]))["config"]; c["init_std"] = float(sys.argv[2]); json.dump(c, open(sys.argv[3], "w"))' \
      "$runs/pack/best/adapter_config.json" "$std" "$runs/init-$std.json"
    "$cli" train "${settings[@]}" --adapter-config "$runs/init-$std.json" --out "$runs/init-$std" "$@" > /dev/null
  done
fi
"$py" - "$task" "$runs" "$stds" "$*" <<'PY'
import json, math, os, sys
task, runs, stds, extra = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
main = {"CoLA": "mcc", "STS-B": "combined", "MRPC": "combined"}.get(task, "accuracy")
layers = json.load(open(os.path.join(runs, "pack", "run.json")))["model_config"]["num_hidden_layers"]
full = 100 * json.load(open(os.path.join(runs, "spans", "none.json")))["metrics"][main]
spans = {}
for i in range(layers):
    for j in range(i, layers):
        spans[f"{i}-{j}"] = 100 * json.load(open(os.path.join(runs, "spans", f"{i}-{j}.json")))["metrics"][main]
init = {s: 100 * json.load(open(os.path.join(runs, f"init-{s}", "results.json")))["best_metrics"][main]
        for s in stds}
command = f"bash scripts/ablation.sh {task} {extra}".strip()
out = {"task": task, "metric": main, "command": command, "all_adapters": full,
       "removed_span_first_to_last": spans, "init_std": init}
with open(f"docs/ablation-{task}.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
grid = [[spans.get(f"{i}-{j}", math.nan) for j in range(layers)] for i in range(layers)]
fig, ax = plt.subplots(figsize=(5, 4))
image = ax.imshow(grid, cmap="viridis", origin="upper")
for i in range(layers):
    for j in range(i, layers):
        ax.text(j, i, f"{grid[i][j]:.1f}", ha="center", va="center", color="white", fontsize=8)
ax.set_xticks(range(layers))
ax.set_yticks(range(layers))
ax.set_xlabel("last layer removed")
ax.set_ylabel("first layer removed")
ax.set_title(f"{task} dev {main} (%), adapters of layers i..j removed\n(all kept: {full:.1f})",
             fontsize=9)
fig.colorbar(image)
fig.tight_layout()
fig.savefig(f"docs/ablation-{task}-spans.png", dpi=120)
fig, ax = plt.subplots(figsize=(5, 3.5))
xs = [float(s) for s in stds]
ax.plot(xs, [init[s] for s in stds], marker="o")
ax.set_xscale("log")
ax.set_xlabel("initial std of the adapter weights (log scale)")
ax.set_ylabel(f"{task} dev {main} (%)")
ax.set_title(f"{task}: adapter initialisation scale", fontsize=9)
ax.grid(True, alpha=0.3)
fig.tight_layout()
fig.savefig(f"docs/ablation-{task}-init.png", dpi=120)
lowest = min(spans, key=spans.get)
lines = [
    f"## Ablations: {task}",
    "",
    f"The paper's Figure 6 on this base. Made by `{command}` (the main job's settings, seed 42); "
    f"data `docs/ablation-{task}.json`.",
    "",
    f"**Removing trained adapters.** One Houlsby pack ({full:.1f} dev {main} with all its "
    "adapters), evaluated with the adapters of layers i..j removed (up-projections zeroed, which "
    "with the skip connection is no adapter there). Removing the whole span "
    f"0..{layers - 1} gives {spans[f'0-{layers - 1}']:.1f}; the lowest is {spans[lowest]:.1f} "
    f"(layers {lowest.replace('-', '..')}).",
    "",
    f"![{task}: adapters of layers i..j removed](ablation-{task}-spans.png)",
    "",
    "**Initialisation scale.** The adapter weights drawn from a truncated normal of std "
    f"{', '.join(stds)}, one run each: " +
    ", ".join(f"{init[s]:.1f}" for s in stds) + ".",
    "",
    f"![{task}: initialisation scale](ablation-{task}-init.png)",
]
sys.path.insert(0, "scripts")
from results_section import write_section
write_section(f"ablation.sh {task}", "\n".join(lines) + "\n")
PY
