#!/usr/bin/env bash
# The long pretraining run of issue 13: the recipe the probes point to (scripts/pretrain_probes.sh:
# no dropout, 30 % of tokens masked, otherwise the shipped base's settings) on the probes' corpus,
# for BASE_STEPS steps of 64 x 128 tokens, the held-out loss measured every 500 steps. It keeps a
# checkpoint every 250 steps outside the build tree, so it can be stopped at any time (Ctrl-C saves
# one too, and so does `--stop-after STEP`): run it again with the same settings and it resumes from
# the newest checkpoint. A finished run is left alone.
# Usage: scripts/pretrain_base.sh [extra pretrain flags, e.g. --device cuda]
#   BASE_STEPS (default 8000), BASE_DIR (default out/long/nodropout-mask30: the model lands there),
#   ADAPTERTUNE (the CLI), CORPUS (default out/corpus/train.txt), EVAL_TEXT (default
#   out/corpus/heldout.txt), made by
#   scripts/make_pretraining_corpus.py out/corpus/train.txt --gcide --held-out out/corpus/heldout.txt
#   BASE_INIT (optional): a finished model directory to continue pretraining (`pretrain
#   --init-from`: its weights, a new optimizer and schedule); flags given here override the
#   recipe's, e.g. the continuation of the shipped base (models/README.md):
#   BASE_INIT=models/adaptertune-base-uncased-L4-H256 BASE_STEPS=3000 BASE_DIR=out/cont/step11000 \
#     bash scripts/pretrain_base.sh --lr 3e-4 --warmup-ratio 0.1 --seed 43
# The log goes to BASE_DIR.log (appended to on resume), the pretraining configuration (no dropout)
# to BASE_DIR.config.json; the finished model's config.json has the shipped base's dropout (0.1).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cli=${ADAPTERTUNE:-$root/build/tools/cli/adaptertune}
steps=${BASE_STEPS:-8000}
dir=${BASE_DIR:-$root/out/long/nodropout-mask30}
corpus=${CORPUS:-$root/out/corpus/train.txt}
eval_text=${EVAL_TEXT:-$root/out/corpus/heldout.txt}
for file in "$corpus" "$eval_text"; do
  [ -f "$file" ] || { echo "pretrain_base.sh: no $file (scripts/make_pretraining_corpus.py)" >&2; exit 1; }
done
source "$root/scripts/pretrain_recipe.sh"
# The finished model is for fine-tuning: its config.json gets back the shipped base's dropout
# (models/base-config.json: 0.1), which pretraining ran without ($dir.config.json keeps that).
finish() { set_config_dropout "$dir/config.json" "$dir/config.json"; }
if [ -f "$dir/model.safetensors" ] && [ ! -e "$dir/checkpoints/latest" ]; then
  finish
  echo "pretrain_base.sh: $dir holds a finished model; move it away to run again" >&2
  exit 0
fi
mode=()
[ -e "$dir/checkpoints/latest" ] && mode=(--resume)
[ -n "${BASE_INIT:-}" ] && mode+=(--init-from "$BASE_INIT")
config=$dir.config.json
mkdir -p "$(dirname "$dir")"
write_nodropout_config "$config"
echo "pretrain_base.sh: ${mode[*]:-start} $dir ($steps steps)" >&2
GOMP_SPINCOUNT=1000 "$cli" pretrain --config "$config" "${pretrain_recipe[@]}" --text "$corpus" \
  --out "$dir" --steps "$steps" --eval-text "$eval_text" --eval-every 500 --mask-probability 0.3 \
  "${mode[@]+"${mode[@]}"}" "$@" \
  2>> "$dir.log"
# `--stop-after` ends the run with a checkpoint and no model: nothing to finish yet.
if [ ! -f "$dir/model.safetensors" ]; then
  echo "pretrain_base.sh: $dir stopped at its $(cat "$dir/checkpoints/latest") as asked;" \
    "run again without --stop-after to go on" >&2
  exit 0
fi
finish
echo "pretrain_base.sh: $dir is finished, its config.json with dropout for fine-tuning" >&2
