#!/usr/bin/env bash
# Multi-task training on the shipped base: SST-2, MRPC and RTE in one run (Houlsby adapters, one
# per task, batches sampled in proportion to the data, then with temperature 2), each against a
# single-task run of that task with the same number of steps. Writes its section of
# docs/results.md.
# Usage: scripts/multi_task_report.sh [extra train options, e.g. --device cpu]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${ADAPTERTUNE_CLI:-$root/build/tools/cli/adaptertune}
model=${ADAPTERTUNE_BASE:-$root/models/adaptertune-base-uncased-L4-H256}
runs=${ADAPTERTUNE_RESULTS_DIR:-$root/runs/multi_task}
temperatures=${ADAPTERTUNE_TEMPERATURES:-"1 2"}
tasks=SST-2,MRPC,RTE
cd "$root"
# The main job's settings (scripts/quickstart.sh): Houlsby, bf16, length 64, batch 32, lr 1e-3;
# seed 42.
settings=(--data-dir data/glue --model "$model" --adapter houlsby --batch-size 32 --max-length 64
          --precision bf16 --lr 1e-3 --seed 42 --no-progress --overwrite)
# ADAPTERTUNE_REPORT_ONLY=1 rewrites the section from the runs already in $runs.
if [ -z "${ADAPTERTUNE_REPORT_ONLY:-}" ]; then
  for t in $temperatures; do
    echo "multi_task_report: $tasks together, temperature $t" >&2
    "$cli" train --task "$tasks" --epochs 1 --sampling-temperature "$t" "${settings[@]}" \
      --out "$runs/together-T$t" "$@" > /dev/null
    # Each task alone, for as many steps as it had in the run.
    for task in ${tasks//,/ }; do
      steps=$(python3 -c "import json,sys; print(next(t['batches'] for t in json.load(open(sys.argv[1]))['tasks'] if t['task'] == sys.argv[2]))" \
        "$runs/together-T$t/results.json" "$task")
      echo "multi_task_report: $task alone, $steps steps" >&2
      "$cli" train --task "$task" --epochs 1000 --max-steps "$steps" "${settings[@]}" \
        --out "$runs/alone-T$t-$task" "$@" > /dev/null
    done
  done
fi
python3 - "$runs" "$temperatures" "$*" <<'PY'
import json, os, sys
runs, temperatures, extra = sys.argv[1], sys.argv[2].split(), sys.argv[3]
main = {"SST-2": "accuracy", "MRPC": "f1", "RTE": "accuracy"}
def last_eval(run, task):
    # The evaluation at the run's last step: both runs are compared where they end, not at their
    # best evaluation (a single-task run of several epochs evaluates more often).
    evals = [e for e in map(json.loads, open(os.path.join(run, "metrics.jsonl")))
             if e["event"] == "eval" and e.get("task", task) == task]
    return evals[-1]["metrics"][main[task]]
lines = [
    "## Multi-task training",
    "",
    "SST-2, MRPC and RTE trained in one run (`train --task SST-2,MRPC,RTE`), each on its own "
    "Houlsby adapter and head over the shared frozen base, one epoch of the sampler; against each "
    "task trained alone for the same number of steps. Settings: batch 32, length 64, bf16, lr "
    "1e-3, linear schedule with 10 % warmup, seed 42. Dev metric at the last step of each run "
    "(accuracy; F1 for MRPC). Made by "
    f"`bash scripts/multi_task_report.sh {extra}`.".replace(" `.", "`."),
    "",
    "| sampling | task | steps | together | alone | together − alone |",
    "| --- | --- | --- | --- | --- | --- |",
]
times = []
for t in temperatures:
    together = os.path.join(runs, f"together-T{t}")
    res = json.load(open(os.path.join(together, "results.json")))
    alone_seconds = 0
    for task in res["tasks"]:
        name = task["task"]
        alone = os.path.join(runs, f"alone-T{t}-{name}")
        a = last_eval(alone, name)
        b = last_eval(together, name)
        alone_seconds += json.load(open(os.path.join(alone, "results.json")))["seconds"]
        label = "proportional (T = 1)" if t == "1" else f"temperature {t}"
        lines.append(f"| {label} | {name} | {task['batches']} | {100 * b:.1f} | {100 * a:.1f} | "
                     f"{100 * (b - a):+.1f} |")
    times.append(f"T = {t}: {res['seconds']:.0f} s together, {alone_seconds:.0f} s for the three "
                 "runs alone")
lines += ["", "Wall time (including evaluations; other work ran on the machine meanwhile): " +
          "; ".join(times) + "."]
section = "\n".join(lines) + "\n"
path = "docs/results.md"
text = open(path).read()
begin, end = "<!-- multi_task_report.sh -->\n", "<!-- /multi_task_report.sh -->\n"
if begin in text:
    head, rest = text.split(begin, 1)
    text = head + begin + section + end + rest.split(end, 1)[1]
else:
    text = text.rstrip("\n") + "\n\n" + begin + section + end
open(path, "w").write(text)
print(section)
PY
