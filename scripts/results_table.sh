#!/usr/bin/env bash
# Fine-tunes the shipped base on SST-2, MRPC, RTE, CoLA and STS-B four ways (Houlsby adapters,
# Pfeiffer adapters, full fine-tuning, head-only), and fully fine-tunes a randomly initialised
# model of the same config (the honest zero: what the base's pretraining adds is the gap to it),
# and writes the results table (dev metric, trainable parameters, wall time) to docs/results.md.
# Anyone can rerun it:
#   bash scripts/results_table.sh [--device cpu|cuda|auto] [--precision fp32|bf16]
# Extra arguments go to every `adaptertune train` call. Runs land in runs/results/<task>-<mode>.
# ADAPTERTUNE_RESULTS_TASKS and ADAPTERTUNE_RESULTS_MODES (houlsby pfeiffer full head random) run
# a part of the table; its other cells come from earlier calls' runs in the same directory (each
# checked to have run on this base, by its run.json) or read "not run". ADAPTERTUNE_BASE evaluates
# another base (a candidate for shipping); ADAPTERTUNE_RESULTS_FILE writes the table elsewhere
# than docs/results.md, which then stays as it is. ADAPTERTUNE_RESULTS_SEEDS (default 42) trains every
# cell once per seed (runs in <task>-<mode>-seed<S> when there are several) and reports the mean,
# with the lowest and highest run: one seed moves SST-2 by a point or two (docs/results.md).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${ADAPTERTUNE_CLI:-$root/build/tools/cli/adaptertune}
model=${ADAPTERTUNE_BASE:-$root/models/adaptertune-base-uncased-L4-H256}
runs=${ADAPTERTUNE_RESULTS_DIR:-$root/runs/results}
table=${ADAPTERTUNE_RESULTS_FILE:-docs/results.md}
tasks=${ADAPTERTUNE_RESULTS_TASKS:-"SST-2 MRPC RTE CoLA STS-B"}
all_modes="houlsby pfeiffer full head random"  # the table's columns, in order
modes=${ADAPTERTUNE_RESULTS_MODES:-$all_modes}
read -ra seeds <<< "${ADAPTERTUNE_RESULTS_SEEDS:-42}"
for seed in "${seeds[@]}"; do
  [[ "$seed" =~ ^[0-9]+$ ]] || { echo "results_table: ADAPTERTUNE_RESULTS_SEEDS must be integers, got '$seed'" >&2; exit 2; }
done
[ "${#seeds[@]}" -gt 0 ] || { echo "results_table: ADAPTERTUNE_RESULTS_SEEDS is empty" >&2; exit 2; }
[ "$(printf '%s\n' "${seeds[@]}" | sort -u | wc -l)" -eq "${#seeds[@]}" ] ||
  { echo "results_table: ADAPTERTUNE_RESULTS_SEEDS names a seed twice: '${seeds[*]}'" >&2; exit 2; }
for arg in "$@"; do
  case "$arg" in
    --seed | --seed=*) echo "results_table: give seeds with ADAPTERTUNE_RESULTS_SEEDS, not --seed" >&2; exit 2 ;;
  esac
done
cd "$root"
source "$root/scripts/report_settings.sh"
# The one home of the runs' directory names; the table below reads the directories it lists.
run_dir() { if [ "${#seeds[@]}" -eq 1 ]; then echo "$runs/$1-$2"; else echo "$runs/$1-$2-seed$3"; fi; }
for task in $tasks; do
  epochs=$(epochs_for "$task")
  for mode in $modes; do
    case "$mode" in
      houlsby | pfeiffer) args=(--adapter "$mode" --train adapters --lr 1e-3) ;;
      full) args=(--adapter none --train full --lr 1e-4) ;;
      head) args=(--adapter none --train head --lr 1e-3) ;;
      random) args=(--adapter none --train full --lr 1e-4 --random-init) ;;
      *) echo "results_table: unknown mode $mode ($all_modes)" >&2; exit 1 ;;
    esac
    for seed in "${seeds[@]}"; do
      out=$(run_dir "$task" "$mode" "$seed")
      rm -rf "$out"
      echo "results_table: $task $mode ($epochs epochs, seed $seed)" >&2
      "$cli" train --task "$task" --data-dir data/glue --model "$model" --epochs "$epochs" \
        --batch-size 32 --max-length 128 --seed "$seed" --no-progress --out "$out" "${args[@]}" "$@" > /dev/null
    done
  done
done
# Every cell's directories, those of modes not run by this call too: their earlier runs fill the
# table's other cells.
listing=$(for task in $tasks; do
  for mode in $all_modes; do
    for seed in "${seeds[@]}"; do printf '%s\t%s\t%s\n' "$task" "$mode" "$(run_dir "$task" "$mode" "$seed")"; done
  done
done)
python3 - "$listing" "$tasks" "$model" "$root" "${seeds[*]}" "$modes" "$@" > "$table.new" <<'PY' || { rm -f "$table.new"; exit 1; }
import json, os, sys
listing, tasks, model, root = sys.argv[1], sys.argv[2].split(), sys.argv[3], sys.argv[4]
seeds, modes_run = sys.argv[5].split(), sys.argv[6].split()
args = sys.argv[7:]
cell_dirs = {}
for line in listing.splitlines():
    task, mode, directory = line.split("\t")
    cell_dirs.setdefault((task, mode), []).append(directory)
run_dirs = lambda task, mode: cell_dirs[(task, mode)]
# The base as the table names it: by its path from the project's root when it lies inside.
resolved, root = os.path.realpath(model), os.path.realpath(root)
base = os.path.relpath(resolved, root) if resolved.startswith(root + "/") else model
shipped = base == "models/adaptertune-base-uncased-L4-H256"
modes = [("houlsby", "Houlsby adapters"), ("pfeiffer", "Pfeiffer adapters"), ("full", "full fine-tuning"), ("head", "head only"),
         ("random", "full fine-tuning from random init")]
metric_name = {"CoLA": "mcc", "STS-B": "spearmanr", "MRPC": "f1", "SST-2": "accuracy", "RTE": "accuracy"}
first = json.load(open(next(path for path in (os.path.join(d, "run.json")
                                               for t in tasks for m, _ in modes for d in run_dirs(t, m))
                            if os.path.exists(path))))  # some run of this call exists
print("# Results on the shipped base\n" if shipped else f"# Results on {base}\n")
made_by = (("" if shipped else f"ADAPTERTUNE_BASE={base} ") +
           (f'ADAPTERTUNE_RESULTS_SEEDS="{" ".join(seeds)}" ' if seeds != ["42"] else "") +
           f"bash scripts/results_table.sh {' '.join(args)}")
print(f"Base: `{base}`; device {first['options']['device']}, "
      f"precision {first['options']['precision']}, adaptertune {first['library_version']}, "
      f"LibTorch {first['torch_version']}. Made by `{made_by.strip()}`.\n")
print("Dev-set scores (best evaluation of the run, GLUE metric x 100), trainable parameters and wall time. "
      "The last column fully fine-tunes a model of the base's config from BERT's random initialisation "
      "(`train --random-init`), with full fine-tuning's settings: the honest zero, which the base's "
      "pretraining must beat." +
      (f" Each cell is the mean of {len(seeds)} runs (seeds {', '.join(seeds)}), with the lowest and "
       "highest in brackets; the time is a run's mean." if len(seeds) > 1 else "") + "\n")
print("| task | metric | " + " | ".join(m[1] for m in modes) + " |")
print("| --- | --- |" + " --- |" * len(modes))
# Every cell must have run on this base: cells of earlier calls may have run on another (or on
# an earlier model in the same directory, replaced since), and the table names one base.
base_weights = {}  # weights_sha256 -> the first run seen with it
checked = {}  # directory -> its run.json, base checked
def check_base(directory, mode):
    """The run's run.json, once its base is checked to be the table's (each run read once)."""
    if directory in checked:
        return checked[directory]
    run = json.load(open(os.path.join(directory, "run.json")))
    recorded = run.get("base")
    fail = lambda why: sys.exit(f"results_table: {directory} {why}: rerun its cell "
                                "(ADAPTERTUNE_RESULTS_TASKS/MODES) or use another ADAPTERTUNE_RESULTS_DIR")
    if recorded is None:
        fail("records no base (its run.json is older than the record)")
    if os.path.realpath(recorded["model_dir"] or "") != resolved:
        fail(f"ran on {recorded['model_dir']}, not on {base}")
    if recorded["random_init"] != (mode == "random"):
        fail("is a run from random initialisation" if recorded["random_init"] else
             "is not a run from random initialisation")
    if mode != "random":
        base_weights.setdefault(recorded["weights_sha256"], directory)
        if len(base_weights) > 1:
            fail(f"ran on other weights in {base} than {next(iter(base_weights.values()))} did "
                 "(was the base replaced?)")
    checked[directory] = run
    return run
def finished(task, mode):
    return [d for d in run_dirs(task, mode) if os.path.exists(os.path.join(d, "results.json"))]
# This call's runs first: they are on the base as it is now, so that a stale run from an earlier
# call is the one named.
for task in tasks:
    for mode in modes_run:
        for d in finished(task, mode):
            check_base(d, mode)
for task in tasks:
    cells = []
    for mode, _ in modes:
        done = finished(task, mode)
        if len(done) < len(seeds):
            cells.append("not run" if not done else f"{len(done)} of {len(seeds)} seeds run")
            continue
        p = [check_base(d, mode) for d in done][0]["parameters"]
        results = [json.load(open(os.path.join(d, "results.json"))) for d in done]
        scores = [100 * r["best_metrics"].get(metric_name[task], float("nan")) for r in results]
        seconds = sum(r["seconds"] for r in results) / len(results)
        spread = f" [{min(scores):.1f}, {max(scores):.1f}]" if len(scores) > 1 else ""
        cells.append(f"{sum(scores) / len(scores):.1f}{spread} ({p['trainable']:,} = "
                     f"{100 * p['trainable'] / p['total']:.2f} %, {seconds:.0f} s)")
    print(f"| {task} | {metric_name[task]} | " + " | ".join(cells) + " |")
PY
# Sections other scripts write (<!-- fusion_report.sh --> …) and notes written by hand about the
# table (between <!-- notes --> and <!-- /notes -->) are kept, after the table.
section='^<!-- \([a-z_]*\.sh\|notes\) -->$'
if [ -f "$table" ] && grep -q "$section" "$table"; then
  { echo; sed -n "/$section/,\$p" "$table"; } >> "$table.new"
fi
mv "$table.new" "$table"
cat "$table"
