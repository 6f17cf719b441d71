#!/usr/bin/env bash
# Issue 13's open-ended pretraining run, for compute that comes in sittings: a warmup-stable-decay
# schedule (`pretrain --schedule wsd`) continues the shipped base at a constant learning rate for
# as long as there is time, and any of its checkpoints can be turned into a finished model by
# branching a short linear decay off it, while the main run goes on unchanged. Both go through
# scripts/pretrain_base.sh (the long run's recipe: no dropout, 30 % masking, 64 x 128 tokens a
# step, a checkpoint every 250 steps), so the corpus is the same and an interrupted call resumes.
# Usage: scripts/pretrain_wsd.sh run [extra pretrain flags]
#          the main run, into WSD_DIR/main (resumes from its newest checkpoint when it has one;
#          `--stop-after STEP` stops it there, with a checkpoint to branch a decay off)
#        scripts/pretrain_wsd.sh decay STEP|latest [extra pretrain flags]
#          a decay of WSD_DECAY steps branched off the main run's checkpoint at STEP (or its
#          newest), into WSD_DIR/decay-STEP: a model for fine-tuning, like the shipped base
#   WSD_DIR (default out/wsd), WSD_INIT (default WSD_DIR/init, the copy of the model the main run
#   started from, which its first call makes from the shipped base; the shipped base itself may
#   since have been replaced, by a decay of this very run), WSD_HORIZON (default 80000:
#   the main run's planned steps, 10x the shipped base's; it decays over its last WSD_HORIZON / 10
#   steps only if it ever gets there), WSD_WARMUP (default 1000 steps), WSD_DECAY (default 1000),
#   WSD_SEED (default 44: a data order that neither the shipped base nor its continuation had);
#   ADAPTERTUNE, CORPUS and EVAL_TEXT as for pretrain_base.sh.
# A branch must name the same WSD_INIT, WSD_WARMUP and WSD_SEED as the main run: `pretrain` checks
# that the branch repeats the main run's data and learning rates up to STEP, and refuses otherwise.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${WSD_DIR:-$root/out/wsd}
horizon=${WSD_HORIZON:-80000}
warmup=${WSD_WARMUP:-1000}
decay=${WSD_DECAY:-1000}
usage() { echo "usage: pretrain_wsd.sh run|decay STEP|latest [pretrain flags]" >&2; exit 2; }
[ $# -ge 1 ] || usage
# The run's own copy of the model it continues: `pretrain` refuses to resume or branch from
# other initial weights, and models/ changes when a decay of this run is shipped.
init_copy=$dir/init
if [ -z "${WSD_INIT:-}" ] && [ ! -f "$init_copy/model.safetensors" ]; then
  shipped=$root/models/adaptertune-base-uncased-L4-H256
  [ ! -e "$dir/main/checkpoints/latest" ] || {
    echo "pretrain_wsd.sh: $dir/main has checkpoints but no $init_copy, the model it started from" \
      "(set WSD_INIT to it)" >&2
    exit 1
  }
  mkdir -p "$init_copy.tmp"
  cp "$shipped"/{config.json,model.safetensors,tokenizer_config.json,vocab.txt} "$init_copy.tmp/"
  mv "$init_copy.tmp" "$init_copy"
fi
export BASE_INIT=${WSD_INIT:-$init_copy}
shared=(--schedule wsd --warmup-steps "$warmup" --seed "${WSD_SEED:-44}")
case "$1" in
  run)
    shift
    BASE_DIR=$dir/main BASE_STEPS=$horizon bash "$root/scripts/pretrain_base.sh" "${shared[@]}" \
      --decay-steps $((horizon >= 20 ? horizon / 10 : 1)) --keep-checkpoints 2 "$@"
    ;;
  decay)
    [ $# -ge 2 ] || usage
    step=$2
    shift 2
    checkpoints=$dir/main/checkpoints
    if [ "$step" = latest ]; then
      [ -f "$checkpoints/latest" ] || { echo "pretrain_wsd.sh: no checkpoint in $checkpoints" >&2; exit 1; }
      step=$(sed 's/^checkpoint-//' "$checkpoints/latest")
    fi
    [[ "$step" =~ ^[0-9]+$ ]] || usage
    source=$checkpoints/checkpoint-$step
    target=$dir/decay-$step
    # A branch that has started keeps going from its own checkpoints, which outlive the main run's.
    if [ ! -e "$target/checkpoints/latest" ] && [ ! -f "$target/model.safetensors" ]; then
      [ -f "$source/trainer_state.json" ] ||
        { echo "pretrain_wsd.sh: no checkpoint $source (the main run keeps its newest two)" >&2; exit 1; }
      branch=(--branch-from "$source")
    else
      branch=()
    fi
    BASE_DIR=$target BASE_STEPS=$((step + decay)) bash "$root/scripts/pretrain_base.sh" \
      "${shared[@]}" --decay-steps "$decay" "${branch[@]+"${branch[@]}"}" "$@"
    ;;
  *) usage ;;
esac
