#!/usr/bin/env bash
# Short pretraining probes (issue 13): each changes one thing of the shipped base's recipe and
# runs the same token budget (STEPS steps of 64 x 128 tokens), so that their masked-LM loss curves
# can be compared; then draws every probe log in the folder to models/probes.png. Each probe
# measures the masked-LM loss of the held-out lines (EVAL_TEXT, never trained on, always masked at
# BERT's 15 % with the same draw) every 250 steps and at the end: that is the number to compare,
# since a probe's training loss also depends on what it changes (dropout, the masking rate).
# Probes: baseline (the shipped recipe), nodropout (hidden and attention dropout 0), mask30
# (30 % of tokens masked), lr1e-3 (peak learning rate 1e-3), clip05 (gradient clipping at 0.5),
# accum4 (4 batches per step: 4x the tokens per step, a quarter of the steps).
# Usage: scripts/pretrain_probes.sh [PROBE ...]   (default: baseline nodropout)
#        scripts/pretrain_probes.sh plot          (only draw the logs already in PROBE_DIR)
#   PROBE_STEPS (default 1000), PROBE_DIR (default out/probes), ADAPTERTUNE (the CLI),
#   CORPUS (default out/corpus/train.txt) and EVAL_TEXT (default out/corpus/heldout.txt), made by
#   scripts/make_pretraining_corpus.py out/corpus/train.txt --gcide --held-out out/corpus/heldout.txt
#   UNIGRAM_ENTROPY (default 7.078, that corpus's: scripts/unigram_entropy.py out/corpus/train.txt)
#   PROBE_PLOT (default models/probes.png) is where the chart goes.
#   draws the plateau line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${ADAPTERTUNE:-$root/build/tools/cli/adaptertune}
steps=${PROBE_STEPS:-1000}
dir=${PROBE_DIR:-$root/out/probes}
corpus=${CORPUS:-$root/out/corpus/train.txt}
eval_text=${EVAL_TEXT:-$root/out/corpus/heldout.txt}
py=/usr/bin/python3
probes=("$@")
[ ${#probes[@]} -gt 0 ] || probes=(baseline nodropout)
[ "${probes[0]}" = plot ] && probes=()
for file in "$corpus" "$eval_text"; do
  [ ${#probes[@]} -eq 0 ] || [ -f "$file" ] || { echo "pretrain_probes.sh: no $file (scripts/make_pretraining_corpus.py)" >&2; exit 1; }
done
mkdir -p "$dir"
source "$root/scripts/pretrain_recipe.sh"
write_nodropout_config "$dir/config-nodropout.json"
for probe in "${probes[@]+"${probes[@]}"}"; do
  config=$root/models/base-config.json
  run_steps=$steps
  extra=()
  case "$probe" in
    baseline) ;;
    nodropout) config=$dir/config-nodropout.json ;;
    mask30) extra=(--mask-probability 0.3) ;;
    lr1e-3) extra=(--lr 1e-3) ;;
    clip05) extra=(--max-grad-norm 0.5) ;;
    accum4) extra=(--gradient-accumulation 4); run_steps=$((steps / 4)) ;;
    *) echo "pretrain_probes.sh: unknown probe $probe" >&2; exit 1 ;;
  esac
  echo "pretrain_probes.sh: $probe" >&2
  GOMP_SPINCOUNT=1000 "$cli" pretrain --config "$config" "${pretrain_recipe[@]}" --text "$corpus" \
    --out "$dir/$probe" --steps "$run_steps" --eval-text "$eval_text" --eval-every $((run_steps / 4)) \
    --overwrite "${extra[@]+"${extra[@]}"}" > "$dir/$probe.out" 2> "$dir/$probe.log"
done
# Every probe log in the folder: training and held-out loss against tokens seen (64 x 128 per batch).
"$py" - "$dir" "${PROBE_PLOT:-$root/models/probes.png}" "${UNIGRAM_ENTROPY:-7.078}" <<'PY'
import glob, os, re, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
folder, out, entropy = sys.argv[1], sys.argv[2], float(sys.argv[3])
fig, (train_ax, held_ax) = plt.subplots(1, 2, figsize=(11, 4))
for log in sorted(glob.glob(os.path.join(folder, "*.log"))):
    name = os.path.basename(log)[:-4]
    text = open(log).read()
    accumulation = re.search(r"steps of (\d+) x", text)
    per_step = int(accumulation.group(1)) if accumulation else 1
    tokens = lambda step: int(step) * per_step * 64 * 128 / 1e6
    train = [(tokens(s), float(l)) for s, l in re.findall(r"step (\d+)/\d+\s+mlm loss ([0-9.]+)", text)]
    held = [(tokens(s), float(l))
            for s, l in re.findall(r"step (\d+)/\d+\s+held-out mlm loss ([0-9.]+)", text)]
    if train:
        train_ax.plot(*zip(*train), label=f"{name} ({train[-1][1]:.2f})")
    if held:
        held_ax.plot(*zip(*held), marker="o", label=f"{name} ({held[-1][1]:.3f})")
    if train or held:
        print(f"{name}: " + (f"training loss {train[-1][1]:.4f}" if train else "no training loss") +
              (f", held-out loss {held[-1][1]:.4f}" if held else "") +
              f" after {max(p[0] for p in train + held):.1f} M tokens")
for ax, what in ((train_ax, "training"), (held_ax, "held-out (15 % masked)")):
    ax.axhline(entropy, color="grey", linestyle=":", label=f"unigram entropy {entropy:.2f}")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel(f"masked-LM {what} loss")
    ax.legend(fontsize=8)
train_ax.set_ylim(top=8.5)
fig.suptitle("Pretraining probes (4 layers, d 256)", fontsize=9)
fig.tight_layout()
fig.savefig(out, dpi=120)
print("wrote", out)
PY
