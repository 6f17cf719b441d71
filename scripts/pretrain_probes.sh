#!/usr/bin/env bash
# Short pretraining probes (issue 13): each changes one thing of the shipped base's recipe and
# runs the same token budget (STEPS steps of 64 x 128 tokens), so that their masked-LM loss curves
# can be compared; then draws every probe log in the folder to models/probes.png.
# Probes: baseline (the shipped recipe), nodropout (hidden and attention dropout 0), mask30
# (30 % of tokens masked), lr1e-3 (peak learning rate 1e-3), clip05 (gradient clipping at 0.5),
# accum4 (4 batches per step: 4x the tokens per step, a quarter of the steps).
# Usage: scripts/pretrain_probes.sh [PROBE ...]   (default: baseline nodropout)
#        scripts/pretrain_probes.sh plot          (only draw the logs already in PROBE_DIR)
#   PROBE_STEPS (default 1000), PROBE_DIR (default out/probes), ADAPTERTUNE (the CLI),
#   CORPUS (default out/corpus/pretrain.txt, made by scripts/make_pretraining_corpus.py).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${ADAPTERTUNE:-$root/build/tools/cli/adaptertune}
steps=${PROBE_STEPS:-1000}
dir=${PROBE_DIR:-$root/out/probes}
corpus=${CORPUS:-$root/out/corpus/pretrain.txt}
py=/usr/bin/python3
probes=("$@")
[ ${#probes[@]} -gt 0 ] || probes=(baseline nodropout)
[ "${probes[0]}" = plot ] && probes=()
[ ${#probes[@]} -eq 0 ] || [ -f "$corpus" ] || { echo "pretrain_probes.sh: no corpus $corpus (scripts/make_pretraining_corpus.py)" >&2; exit 1; }
mkdir -p "$dir"
"$py" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["hidden_dropout_prob"] = c["attention_probs_dropout_prob"] = 0.0
json.dump(c, open(sys.argv[2], "w"), indent=2)' "$root/models/base-config.json" "$dir/config-nodropout.json"
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
  GOMP_SPINCOUNT=1000 "$cli" pretrain --config "$config" --vocab "$root/data/vocab/bert-base-uncased-vocab.txt" \
    --text "$corpus" --out "$dir/$probe" --steps "$run_steps" --batch-size 64 --max-length 128 \
    --lr 5e-4 --warmup-ratio 0.06 --seed 42 --precision bf16 --save-bf16 --log-every 50 \
    --checkpoint-every 250 --overwrite "${extra[@]}" > "$dir/$probe.out" 2> "$dir/$probe.log"
done
# Every probe log in the folder, loss against tokens seen (64 x 128 per batch).
"$py" - "$dir" "$root/models/probes.png" <<'PY'
import glob, os, re, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
folder, out = sys.argv[1], sys.argv[2]
fig, ax = plt.subplots(figsize=(7, 4))
for log in sorted(glob.glob(os.path.join(folder, "*.log"))):
    name = os.path.basename(log)[:-4]
    text = open(log).read()
    accumulation = re.search(r"steps of (\d+) x", text)
    per_step = int(accumulation.group(1)) if accumulation else 1
    points = [(int(s) * per_step * 64 * 128 / 1e6, float(l))
              for s, l in re.findall(r"step (\d+)/\d+\s+mlm loss ([0-9.]+)", text)]
    if points:
        ax.plot(*zip(*points), label=f"{name} ({points[-1][1]:.2f})")
        print(f"{name}: final training loss {points[-1][1]:.4f} after {points[-1][0]:.1f} M tokens")
ax.axhline(7.39, color="grey", linestyle=":", label="unigram entropy 7.39")
ax.set_xlabel("tokens seen (millions)")
ax.set_ylabel("masked-LM training loss")
ax.set_ylim(6.5, 8.5)
ax.legend(fontsize=8)
ax.set_title("Pretraining probes on the shipped corpus (4 layers, d 256)", fontsize=9)
fig.tight_layout()
fig.savefig(out, dpi=120)
print("wrote", out)
PY
