#!/usr/bin/env bash
# scripts/pretrain_wsd.sh on a tiny corpus: the main run stopped after 3 steps (--stop-after), a
# decay branched off its newest checkpoint (a finished model with dropout for fine-tuning, the
# main run's checkpoint left as it was; another warmup refused first), and the main run resumed
# and extended past its first horizon; then a sitting (scripts/pretrain_sitting.sh) on its own.
# Usage: pretrain_wsd_test.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
set -euo pipefail
cli=$1 root=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
for i in $(seq 1 300); do echo "line $i of a small corpus for the wsd recipe test ."; done >"$work/train.txt"
for i in $(seq 1 20); do echo "a held-out line $i that the run never trains on ."; done >"$work/heldout.txt"
# The base it continues: a step of the long run's recipe.
ADAPTERTUNE=$cli BASE_STEPS=1 BASE_DIR=$work/base CORPUS=$work/train.txt EVAL_TEXT=$work/heldout.txt \
  bash "$root/scripts/pretrain_base.sh" --batch-size 8 2>/dev/null
export ADAPTERTUNE=$cli CORPUS=$work/train.txt EVAL_TEXT=$work/heldout.txt WSD_DIR=$work/wsd \
  WSD_INIT=$work/base WSD_HORIZON=40 WSD_WARMUP=1 WSD_DECAY=2
main=$work/wsd/main

bash "$root/scripts/pretrain_wsd.sh" run --log-every 1 --batch-size 8 --stop-after 3 ||
  { cat "$main.log" >&2; echo "FAIL: the main run did not stop after step 3 with status 0" >&2; exit 1; }
latest=$(sed 's/^checkpoint-//' "$main/checkpoints/latest")
[ "$latest" = 3 ] && grep -q "pretrain: stopped after step 3 as asked" "$main.log" ||
  { cat "$main.log" >&2; echo "FAIL: no checkpoint of step 3, or no word of the stop" >&2; exit 1; }
checkpoint=$(sha256sum "$main/checkpoints/checkpoint-$latest/trainable.safetensors")

# Another warmup would have given the steps taken other learning rates: refused.
if WSD_WARMUP=2 bash "$root/scripts/pretrain_wsd.sh" decay "$latest" --batch-size 8 2>"$work/refused.err"; then
  echo "FAIL: a decay was branched off with another warmup" >&2; exit 1
fi
grep -q "gave step 0 a learning rate of 0.0005 where this run's" "$work/wsd/decay-$latest.log" ||
  { tail -3 "$work/wsd/decay-$latest.log" >&2; echo "FAIL: no reason given for the refusal" >&2; exit 1; }
rm "$work/wsd/decay-$latest.log"

bash "$root/scripts/pretrain_wsd.sh" decay latest --log-every 1 --batch-size 8 2>"$work/decay.err"
branch=$work/wsd/decay-$latest
grep -q "pretrain: branched from $main/checkpoints/checkpoint-$latest at step $latest (wsd, peak 0.0005, warmup 1, decay 2 of $((latest + 2)) steps)" "$branch.log" ||
  { cat "$branch.log" >&2; echo "FAIL: the decay did not branch off the main run" >&2; exit 1; }
grep -q "pretrain: step $((latest + 2))/$((latest + 2))  mlm loss .* lr 2.50e-04" "$branch.log" ||
  { echo "FAIL: the decay's last step did not run at half the peak" >&2; exit 1; }
[ -f "$branch/model.safetensors" ] || { echo "FAIL: the decay wrote no model" >&2; exit 1; }
grep -q '"hidden_dropout_prob": 0.1' "$branch/config.json" ||
  { echo "FAIL: the decayed model's config lacks the dropout for fine-tuning" >&2; exit 1; }
[ "$(sha256sum "$main/checkpoints/checkpoint-$latest/trainable.safetensors")" = "$checkpoint" ] ||
  { echo "FAIL: the branch changed the main run's checkpoint" >&2; exit 1; }

# The main run resumes, with a longer horizon too, since its decay has not begun.
WSD_HORIZON=60 bash "$root/scripts/pretrain_wsd.sh" run --log-every 1 --batch-size 8 2>/dev/null
grep -q "pretrain: resumed from $main/checkpoints/checkpoint-$latest at step $latest" "$main.log" ||
  { cat "$main.log" >&2; echo "FAIL: the main run did not resume" >&2; exit 1; }
grep -q "pretrain: step 60/60  held-out mlm loss" "$main.log" ||
  { echo "FAIL: the main run did not finish its longer horizon" >&2; exit 1; }
# A sitting: the main run for a few seconds of wall time, then a decay of a tenth of its steps.
export WSD_DIR=$work/sitting WSD_HORIZON=5000
unset WSD_DECAY
bash "$root/scripts/pretrain_sitting.sh" 8 --batch-size 8 2>"$work/sitting.err" ||
  { cat "$work/sitting.err" "$work/sitting/main.log" >&2; echo "FAIL: the sitting failed" >&2; exit 1; }
stopped=$(sed 's/^checkpoint-//' "$work/sitting/main/checkpoints/latest")
decay=$((stopped >= 10 ? stopped / 10 : 1))
grep -q "the main run stopped at step $stopped; a decay of $decay steps follows" "$work/sitting.err" &&
  [ -f "$work/sitting/decay-$stopped/model.safetensors" ] &&
  grep -q "pretrain: branched from .*checkpoint-$stopped at step $stopped (wsd, peak 0.0005, warmup 1, decay $decay of $((stopped + decay)) steps)" "$work/sitting/decay-$stopped.log" ||
  { cat "$work/sitting.err" >&2; echo "FAIL: the sitting did not end with a decayed model" >&2; exit 1; }

# Without WSD_INIT the run keeps its own copy of the shipped base, so that shipping one of its
# decays into models/ later does not change the weights it resumes from.
unset WSD_INIT
export WSD_DIR=$work/own WSD_HORIZON=2
bash "$root/scripts/pretrain_wsd.sh" run --batch-size 2 --max-length 16 2>/dev/null ||
  { cat "$work/own/main.log" >&2; echo "FAIL: a run from the shipped base failed" >&2; exit 1; }
cmp -s "$work/own/init/model.safetensors" "$root/models/adaptertune-base-uncased-L4-H256/model.safetensors" &&
  grep -q "starting from the weights of $work/own/init" "$work/own/main.log" ||
  { echo "FAIL: the run did not start from its own copy of the shipped base" >&2; exit 1; }
# A run with checkpoints that has lost its copy is refused, not restarted from what models/ holds.
rm -rf "$work/own/init" "$work/own/main"
mkdir -p "$work/own/main/checkpoints" && echo checkpoint-1 >"$work/own/main/checkpoints/latest"
if bash "$root/scripts/pretrain_wsd.sh" run 2>"$work/own.err"; then
  echo "FAIL: a run without its initial model was resumed" >&2; exit 1
fi
grep -q "has checkpoints but no $work/own/init, the model it started from" "$work/own.err" ||
  { cat "$work/own.err" >&2; echo "FAIL: the refusal does not say why" >&2; exit 1; }
echo PASS
