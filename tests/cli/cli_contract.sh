#!/usr/bin/env bash
# The command-line contract the README documents: exit codes (0 success, 1 bad usage or input
# with one line on stderr, 130 interrupted), --options FILE / --options=FILE keeping false,
# --adapter-config on train, devices, what a run keeps (packs with their length and precision,
# model directories with their tokenizer), and predict --format json.
# Usage: cli_contract.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
source "$(dirname "$0")/harness.sh"

# expect_error CODE PATTERN -- COMMAND...: exit code CODE and exactly one stderr line matching.
expect_error() {
  local code=$1 pattern=$2
  shift 3
  "$@" >"$work/out" 2>"$work/err"
  local got=$?
  [ "$got" -eq "$code" ] || fail "exit $got, expected $code: $*"
  [ "$(wc -l <"$work/err")" -eq 1 ] || fail "stderr is not one line for: $* -- $(cat "$work/err")"
  grep -qE "$pattern" "$work/err" || fail "stderr lacks /$pattern/ for: $* -- $(cat "$work/err")"
}

# Bad usage and bad input: exit 1, one line.
expect_error 1 '^adaptertune: error: .*--task.*required.*adaptertune train --help' -- "$cli" train --model "$base"
expect_error 1 '^adaptertune: error: unknown option --no-such-flag \(see: adaptertune params --help\)$' -- "$cli" params --no-such-flag
# A mistyped flag is named, with the flag meant, before any required flag it leaves missing.
expect_error 1 '^adaptertune: error: unknown option --modle \(did you mean --model\?\) \(see: adaptertune train --help\)$' -- "$cli" train --modle "$base" --task SST-2
expect_error 1 'unknown option --treads \(did you mean --threads\?\)' -- "$cli" serve --model "$base" --treads=4
expect_error 1 '^adaptertune: error: .*A subcommand is required' -- "$cli"
expect_error 1 '^adaptertune: error: unknown command "trian" \(commands: params, tokenize, pretrain, train, eval, predict, serve, inspect\)' -- "$cli" trian --task SST-2
expect_error 1 'unknown device "gpu"' -- "$cli" eval --task SST-2 --model "$base" --data-dir "$glue" --device gpu
expect_error 1 'error: device cuda:7' -- "$cli" eval --task SST-2 --model "$base" --data-dir "$glue" --device cuda:7
expect_error 1 'cannot hold adapters' -- "$cli" train --task SST-2 --model "$base" --data-dir "$glue" --train full --adapter houlsby --max-steps 1 --out "$work/refused"
expect_error 1 'top-k needs --top-layers K' -- "$cli" train --task SST-2 --model "$base" --data-dir "$glue" --train top-k --out "$work/refused"
expect_error 1 'top_layers is 9, expected 1 to the model.s 4 encoder layers' -- "$cli" train --task SST-2 --model "$base" --data-dir "$glue" --train top-k --top-layers 9 --train-examples 16 --out "$work/refused"
expect_error 1 'top-layers applies to --train top-k' -- "$cli" train --task SST-2 --model "$base" --data-dir "$glue" --top-layers 2 --out "$work/refused"
expect_error 1 'top-k needs --top-layers K' -- "$cli" params --model "$base" --train top-k --adapter none
expect_error 1 'no-train-pooler does not apply to --train full' -- "$cli" params --train full --no-train-pooler --adapter none
[ -e "$work/refused" ] && fail "a refused train left $work/refused"
echo '{"epochs": ' >"$work/bad.json"
expect_error 1 'bad.json: invalid JSON' -- "$cli" train --options "$work/bad.json"
"$cli" params --help >/dev/null 2>&1 || fail "--help did not exit 0"
# The usage line names the program and the command (CLI11 gets no argv[0] to take it from).
usage=$("$cli" train --help | sed -n 2p)
[ "$usage" = "Usage: adaptertune train [OPTIONS]" ] || fail "train --help's usage line: $usage"

# --options keeps false booleans, in both spellings. The shipped base has no pooler, so the
# pooler trains by default; the options file turns that off.
echo '{"train_pooler": false, "json": true}' >"$work/no_pooler.json"
"$cli" params --model "$base" --options "$work/no_pooler.json" >"$work/params1" || fail "params --options"
grep -q '"pooler":{"total":[0-9]*,"trainable":0}' "$work/params1" || fail "--options train_pooler false ignored: $(cat "$work/params1")"
"$cli" params --model "$base" --options="$work/no_pooler.json" >"$work/params2" || fail "params --options="
cmp -s "$work/params1" "$work/params2" || fail "--options=FILE differs from --options FILE"
"$cli" params --model "$base" --json >"$work/params3" || fail "params --model"
grep -q '"pooler":{"total":\([0-9]*\),"trainable":[1-9]' "$work/params3" || fail "the pooler default is not on for a base without one: $(cat "$work/params3")"

# train --adapter-config, with a pack that records its length and precision.
cat >"$work/adapter.json" <<'JSON'
{"mh_adapter": false, "output_adapter": true, "reduction_factor": 8, "non_linearity": "relu",
 "original_ln_before": true, "original_ln_after": true, "residual_before_ln": true}
JSON
common=(--task SST-2 --data-dir "$glue" --model "$base" --train-examples 64 --batch-size 16
        --max-steps 2 --max-length 32 --no-progress)
"$cli" train "${common[@]}" --adapter-config "$work/adapter.json" --precision bf16 \
  --out "$work/run" >"$work/train.json" 2>"$work/train.log" || fail "train --adapter-config: $(tail -3 "$work/train.log")"
grep -q "\"best_model\":\"$work/run/best\"" "$work/train.json" || fail "best_model: $(cat "$work/train.json")"
grep -q '"output_adapter": true' "$work/run/best/adapter_config.json" || fail "pack config"
grep -q '"mh_adapter": false' "$work/run/best/adapter_config.json" || fail "pack is not the --adapter-config adapter"
"$cli" eval --task SST-2 --data-dir "$glue" --model "$base" --adapter-pack "$work/run/best" \
  >"$work/eval.json" 2>/dev/null || fail "eval"
grep -q '"max_length":32,"precision":"bf16"' "$work/eval.json" || fail "eval did not default to the pack's settings: $(cat "$work/eval.json")"

# train --keep-checkpoints: only the newest of the checkpoints saved at each evaluation stay.
"$cli" train "${common[@]}" --max-steps 3 --eval-every 1 --keep-checkpoints 1 --out "$work/kept" \
  >/dev/null 2>"$work/kept.log" || fail "train --keep-checkpoints: $(tail -3 "$work/kept.log")"
kept=$(find "$work/kept/checkpoints" -mindepth 1 -maxdepth 1 -name 'checkpoint-*' | sort)
[ "$kept" = "$work/kept/checkpoints/checkpoint-3" ] || fail "--keep-checkpoints 1 kept: $kept"
expect_error 1 'keep-checkpoints' -- "$cli" train "${common[@]}" --keep-checkpoints 0 --out "$work/refused"

# predict --format json: one object per input line, in order.
printf 'a gorgeous , witty movie .\nthe plot is a dull mess .\n' >"$work/input.txt"
"$cli" predict --task SST-2 --model "$base" --adapter-pack "$work/run/best" --format json \
  <"$work/input.txt" >"$work/predict.jsonl" 2>/dev/null || fail "predict --format json"
[ "$(wc -l <"$work/predict.jsonl")" -eq 2 ] || fail "predict printed $(wc -l <"$work/predict.jsonl") lines for 2 inputs"
grep -qE '^\{"task":"SST-2","label":"(0|1)","probabilities":\{"0":[0-9.e-]+,"1":[0-9.e-]+\},"logits":\[' "$work/predict.jsonl" || fail "predict json: $(head -1 "$work/predict.jsonl")"
"$cli" predict --task SST-2 --model "$base" --adapter-pack "$work/run/best" --out "$work/labels.txt" \
  <"$work/input.txt" 2>/dev/null || fail "predict --out"
[ "$(wc -l <"$work/labels.txt")" -eq 2 ] || fail "predict --out wrote $(wc -l <"$work/labels.txt") lines"

# Full fine-tuning keeps a model directory that evaluates on its own (it carries the tokenizer),
# and records the length and precision it ran with, which eval takes as it takes a pack's, to the
# run's best score.
"$cli" train "${common[@]}" --train full --lr 1e-4 --precision bf16 --out "$work/full" >"$work/full.json" 2>"$work/full.log" || fail "train --train full: $(tail -3 "$work/full.log")"
"$cli" eval --task SST-2 --data-dir "$glue" --model "$work/full/best" >"$work/full_eval.json" 2>"$work/full_eval.log" || fail "eval --model runs/x/best: $(cat "$work/full_eval.log")"
/usr/bin/python3 - "$work/full.json" "$work/full_eval.json" <<'PY' || fail "eval of the full model: $(cat "$work/full_eval.json")"
import json, sys
run, ev = (json.load(open(p)) for p in sys.argv[1:3])
assert ev["max_length"] == 32 and ev["precision"] == "bf16", ev
assert ev["metrics"]["accuracy"] == run["dev"]["accuracy"], (run, ev)
PY

# --random-init: the base's config without its weights, for full fine-tuning only (an adapter pack
# would later be used on the pretrained weights). Its model differs from the pretrained run's.
expect_error 1 'random-init needs --train full' -- "$cli" train "${common[@]}" --random-init --adapter houlsby --out "$work/refused"
"$cli" train "${common[@]}" --random-init --train full --lr 1e-4 --out "$work/random" >/dev/null 2>"$work/random.log" || fail "train --random-init: $(tail -3 "$work/random.log")"
grep -q "random initialisation" "$work/random.log" || fail "train --random-init did not say so: $(head -3 "$work/random.log")"
cmp -s "$work/full/best/model.safetensors" "$work/random/best/model.safetensors" && fail "--random-init trained the pretrained weights"

finish
