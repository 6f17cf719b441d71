#!/usr/bin/env bash
# Ctrl-C during `adaptertune pretrain` saves a checkpoint and exits with 130; `--resume` finishes
# the run from it; a held-out text is measured as asked; `--init-from` continues a finished model.
# Usage: pretrain_interrupt.sh ADAPTERTUNE VOCAB WORK_DIR
set -euo pipefail
cli=$1 vocab=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
cat >"$work/config.json" <<'JSON'
{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
 "max_position_embeddings": 32, "vocab_size": 30522}
JSON
for i in $(seq 1 200); do echo "line $i of a small corpus for the interrupt test ."; done >"$work/text.txt"
args=(pretrain --config "$work/config.json" --vocab "$vocab" --text "$work/text.txt"
  --out "$work/model" --steps 100 --batch-size 8 --max-length 32 --log-every 1
  --checkpoint-every 0)

"$cli" "${args[@]}" 2>"$work/first.log" &
pid=$!
# Interrupt once training is under way (a logged step), not while the process is starting.
for _ in $(seq 1 600); do
  grep -q "pretrain: step 2/" "$work/first.log" && break
  sleep 0.05
done
kill -INT "$pid"
status=0
wait "$pid" || status=$?
cat "$work/first.log" >&2
if [ "$status" -ne 130 ]; then
  echo "FAIL: the interrupted run exited with $status, expected 130" >&2
  exit 1
fi
grep -q "interrupted; checkpoint saved in $work/model/checkpoints/checkpoint-" "$work/first.log" ||
  { echo "FAIL: no checkpoint message" >&2; exit 1; }
[ ! -e "$work/model/model.safetensors" ] || { echo "FAIL: an unfinished run wrote a model" >&2; exit 1; }

"$cli" "${args[@]}" --resume 2>"$work/second.log" >"$work/second.out"
cat "$work/second.log" >&2
grep -q "pretrain: resumed from $work/model/checkpoints/checkpoint-" "$work/second.log" ||
  { echo "FAIL: the second run did not resume" >&2; exit 1; }
grep -q "pretrain: step 100/100" "$work/second.log" || { echo "FAIL: did not finish" >&2; exit 1; }
# Each logged step shows its rate and the time left (none at the last step).
grep -Eq "pretrain: step 100/100  mlm loss [0-9.]+  lr [0-9.e+-]+  [0-9]+ seq/s  ETA 0:00:00  [0-9.]+ s$" \
  "$work/second.log" || { echo "FAIL: no rate or time left in the log line" >&2; exit 1; }
[ -e "$work/model/model.safetensors" ] || { echo "FAIL: no model written" >&2; exit 1; }
[ ! -e "$work/model/checkpoints" ] || { echo "FAIL: checkpoints left in the model" >&2; exit 1; }

# A held-out text: its loss every --eval-every steps and at the end, and in the last line.
for i in $(seq 1 20); do echo "a held-out line $i that the run never trains on ."; done >"$work/heldout.txt"
"$cli" pretrain --config "$work/config.json" --vocab "$vocab" --text "$work/text.txt" \
  --eval-text "$work/heldout.txt" --eval-every 5 --out "$work/measured" --steps 10 --batch-size 8 \
  --max-length 32 >"$work/measured.out" 2>"$work/measured.log"
[ "$(grep -c "held-out mlm loss" "$work/measured.log")" -eq 2 ] ||
  { cat "$work/measured.log" >&2; echo "FAIL: expected 2 held-out measurements" >&2; exit 1; }
grep -q "held-out [0-9]" "$work/measured.out" ||
  { cat "$work/measured.out" >&2; echo "FAIL: no held-out loss in the result" >&2; exit 1; }
# --eval-mask-probability and --eval-seed choose the held-out masking: other held-out losses, the
# same training.
"$cli" pretrain --config "$work/config.json" --vocab "$vocab" --text "$work/text.txt" \
  --eval-text "$work/heldout.txt" --eval-every 5 --eval-mask-probability 0.4 --eval-seed 7 \
  --out "$work/measured-40" --steps 10 --batch-size 8 --max-length 32 >/dev/null 2>"$work/measured-40.log"
training_losses() { grep -v "held-out" "$1" | grep "mlm loss" | sed 's/  lr .*//'; }
[ -n "$(training_losses "$work/measured.log")" ] &&
  [ "$(training_losses "$work/measured.log")" = "$(training_losses "$work/measured-40.log")" ] ||
  { cat "$work/measured-40.log" >&2; echo "FAIL: the held-out masking changed the training" >&2; exit 1; }
[ "$(grep -c "held-out mlm loss" "$work/measured-40.log")" -eq 2 ] &&
  [ "$(grep "held-out mlm loss" "$work/measured.log")" != "$(grep "held-out mlm loss" "$work/measured-40.log")" ] ||
  { cat "$work/measured-40.log" >&2; echo "FAIL: --eval-mask-probability/--eval-seed changed nothing" >&2; exit 1; }
# Continued pretraining: --init-from takes the model's config and vocabulary unless given, and
# never replaces the model it starts from.
"$cli" pretrain --init-from "$work/measured" --text "$work/text.txt" --out "$work/continued" \
  --steps 2 --batch-size 8 --max-length 32 >/dev/null 2>"$work/continued.log"
grep -q "pretrain: starting from the weights of $work/measured" "$work/continued.log" ||
  { cat "$work/continued.log" >&2; echo "FAIL: --init-from did not start from the model" >&2; exit 1; }
grep -q "head is new" "$work/continued.log" &&
  { cat "$work/continued.log" >&2; echo "FAIL: the pretrained masked-LM head was not loaded" >&2; exit 1; }
cmp -s "$work/measured/vocab.txt" "$work/continued/vocab.txt" ||
  { echo "FAIL: the continued model has another vocabulary" >&2; exit 1; }
# A cased model continues cased (its tokenizer_config.json's do_lower_case) unless a flag says.
cp -r "$work/measured" "$work/cased"
sed -i 's/"do_lower_case": true/"do_lower_case": false/' "$work/cased/tokenizer_config.json"
for casing in "" --lowercase; do
  "$cli" pretrain --init-from "$work/cased" --text "$work/text.txt" --out "$work/cased-on$casing" \
    --steps 1 --batch-size 8 --max-length 32 $casing >/dev/null 2>"$work/cased.log" ||
    { cat "$work/cased.log" >&2; echo "FAIL: continuing a cased model" >&2; exit 1; }
  expected=false; [ -n "$casing" ] && expected=true
  grep -q "\"do_lower_case\": $expected" "$work/cased-on$casing/tokenizer_config.json" ||
    { echo "FAIL: a cased model continued with '$casing' is not do_lower_case $expected" >&2; exit 1; }
done
if "$cli" pretrain --init-from "$work/measured" --text "$work/text.txt" --out "$work/measured" \
  --overwrite --steps 2 --batch-size 8 --max-length 32 >/dev/null 2>"$work/self.log"; then
  echo "FAIL: --init-from its own --out was accepted" >&2; exit 1
fi
grep -q "holds an input" "$work/self.log" || { cat "$work/self.log" >&2; echo "FAIL: unclear error" >&2; exit 1; }
[ -e "$work/measured/model.safetensors" ] || { echo "FAIL: the model it started from is gone" >&2; exit 1; }
if "$cli" pretrain --text "$work/text.txt" --out "$work/none" >/dev/null 2>"$work/none.log"; then
  echo "FAIL: pretrain without --config or --init-from was accepted" >&2; exit 1
fi
grep -q -- "--config is required (or --init-from)" "$work/none.log" ||
  { cat "$work/none.log" >&2; echo "FAIL: unclear error without --config" >&2; exit 1; }
echo "PASS"
