#!/usr/bin/env bash
# scripts/pretrain_base.sh on a tiny corpus: a fresh run interrupted (Ctrl-C) after its first step,
# a second call that resumes it and finishes (the model's config.json with dropout 0.1 for
# fine-tuning), a third that leaves the finished model alone, and a continuation (BASE_INIT).
# Usage: pretrain_base_test.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
set -euo pipefail
source "$(dirname "$0")/interrupt_at_step.sh"
cli=$1 root=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
for i in $(seq 1 300); do echo "line $i of a small corpus for the base recipe test ."; done >"$work/train.txt"
for i in $(seq 1 20); do echo "a held-out line $i that the run never trains on ."; done >"$work/heldout.txt"
export ADAPTERTUNE=$cli BASE_STEPS=6 BASE_DIR=$work/base CORPUS=$work/train.txt EVAL_TEXT=$work/heldout.txt

bash "$root/scripts/pretrain_base.sh" --log-every 1 &
interrupt_at_step $! "$work/base.log" 1 "$work/base"
[ -e "$work/base/checkpoints/latest" ] || { echo "FAIL: no checkpoint after Ctrl-C" >&2; exit 1; }
[ ! -e "$work/base/model.safetensors" ] || { echo "FAIL: an unfinished run wrote a model" >&2; exit 1; }

bash "$root/scripts/pretrain_base.sh" --log-every 1 2>"$work/second.err"
grep -q "pretrain: resumed from $work/base/checkpoints/checkpoint-" "$work/base.log" ||
  { cat "$work/base.log" >&2; echo "FAIL: the second call did not resume" >&2; exit 1; }
grep -q "pretrain: step 6/6  held-out mlm loss" "$work/base.log" ||
  { echo "FAIL: the run did not finish with a held-out loss" >&2; exit 1; }
[ -e "$work/base/model.safetensors" ] || { echo "FAIL: no model written" >&2; exit 1; }
grep -q '"hidden_dropout_prob": 0.0' "$work/base.config.json" ||
  { echo "FAIL: pretraining ran with dropout" >&2; exit 1; }
grep -q '"hidden_dropout_prob": 0.1' "$work/base/config.json" &&
  grep -q '"attention_probs_dropout_prob": 0.1' "$work/base/config.json" ||
  { cat "$work/base/config.json" >&2; echo "FAIL: the finished model's config lacks the dropout for fine-tuning" >&2; exit 1; }

before=$(sha256sum "$work/base/model.safetensors")
bash "$root/scripts/pretrain_base.sh" 2>"$work/third.err"
grep -q "holds a finished model" "$work/third.err" || { echo "FAIL: a finished run was not left alone" >&2; exit 1; }
[ "$(sha256sum "$work/base/model.safetensors")" = "$before" ] || { echo "FAIL: the model changed" >&2; exit 1; }

# BASE_INIT continues the finished model, with its masked-LM head, on a new schedule.
BASE_INIT=$work/base BASE_DIR=$work/continued BASE_STEPS=2 bash "$root/scripts/pretrain_base.sh" \
  --lr 1e-4 2>"$work/fourth.err"
grep -q "pretrain: starting from the weights of $work/base" "$work/continued.log" ||
  { cat "$work/continued.log" >&2; echo "FAIL: BASE_INIT did not start from the model" >&2; exit 1; }
grep -q "head is new" "$work/continued.log" && { echo "FAIL: the model's head was not taken" >&2; exit 1; }
grep -q "pretrain: step 2/2" "$work/continued.log" || { echo "FAIL: the continuation did not finish" >&2; exit 1; }
[ "$(sha256sum "$work/base/model.safetensors")" = "$before" ] || { echo "FAIL: the model it started from changed" >&2; exit 1; }
echo PASS
