#!/usr/bin/env bash
# SQuAD through the CLI: an adapter with its span head trains on a v1.1 file, its pack
# evaluates to the run's best scores and predicts the official scripts' input (id → answer);
# full fine-tuning keeps a model directory that evaluates alone; mistakes get one line.
# Usage: squad.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
source "$(dirname "$0")/harness.sh"
squad=$project/tests/data/squad
windows=(--max-length 64 --doc-stride 16 --max-query-length 16)
common=(--model "$base" "${windows[@]}" --batch-size 8 --no-progress)

"$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --epochs 2 --lr 1e-3 --out "$work/adapter" >"$work/adapter.json" 2>"$work/adapter.log" ||
  fail "train squad: $(tail -3 "$work/adapter.log")"
grep -q '"task":"squad"' "$work/adapter.json" && grep -q '"f1":' "$work/adapter.json" ||
  fail "train output: $(cat "$work/adapter.json")"
grep -q '"head_type": "question_answering"' "$work/adapter/best/head_config.json" ||
  fail "the pack has no span head"
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" --doc-stride 16 \
  --max-query-length 16 --adapter-pack "$work/adapter/best" >"$work/eval.json" 2>"$work/err" ||
  fail "eval squad: $(cat "$work/err")"
[ -s "$work/err" ] && fail "eval warned: $(cat "$work/err")"
/usr/bin/python3 - "$work/adapter.json" "$work/eval.json" <<'PY' || fail "eval differs from the run's best"
import json, sys
run, ev = (json.load(open(p)) for p in sys.argv[1:3])
assert ev["max_length"] == 64, ev  # recorded in the pack
for k in ("exact", "f1"):
    assert abs(run["dev"][k] - ev["metrics"][k]) < 1e-9, (k, run["dev"], ev["metrics"])
PY
"$cli" predict --task squad --test-file "$squad/dev-v2.0.json" --model "$base" --doc-stride 16 \
  --max-query-length 16 --adapter-pack "$work/adapter/best" --out "$work/predictions.json" \
  2>"$work/err" || fail "predict squad: $(cat "$work/err")"
/usr/bin/python3 - "$work/predictions.json" <<'PY' || fail "predictions: $(cat "$work/predictions.json")"
import json, sys
answers = json.load(open(sys.argv[1]))
assert sorted(answers) == ["n1", "n2", "n3", "n4", "n5", "n6"], answers
assert all(isinstance(a, str) for a in answers.values()), answers
PY
/usr/bin/python3 "$project/tests/python/squad_reference_eval.py" "$squad/dev-v2.0.json" \
  "$work/predictions.json" >/dev/null || fail "the reference scorer cannot read the predictions"

# Full fine-tuning keeps a model directory with a span head.
"$cli" train --task squad --train-file "$squad/dev-v2.0.json" --dev-file "$squad/dev-v2.0.json" \
  "${common[@]}" --train full --max-steps 2 --out "$work/full" >"$work/full.json" 2>"$work/full.log" ||
  fail "train squad full: $(tail -3 "$work/full.log")"
grep -q '"BertForQuestionAnswering"' "$work/full/best/config.json" || fail "full: no span model"
"$cli" eval --task squad --dev-file "$squad/dev-v2.0.json" --model "$work/full/best" "${windows[@]}" \
  >"$work/eval_full.json" 2>"$work/err" || fail "eval the full model: $(cat "$work/err")"
grep -q '"no_answer_f1"' "$work/eval_full.json" || fail "v2.0 metrics: $(cat "$work/eval_full.json")"

refused "train --task squad trains alone" \
  "$cli" train --task squad,SST-2 --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --out "$work/x"
refused "needs --train-file and --dev-file" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" "${common[@]}" --out "$work/x"
refused "SQuAD is scored by exact match and F1" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  --labels a,b "${common[@]}" --out "$work/x"
refused "--last-layer-first-position does not apply: spans are read from every position" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  --last-layer-first-position "${common[@]}" --out "$work/x"
printf '{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "q", "question": "?", "answers": [{"text": "b", "answer_start": 0}]}]}]}]}' >"$work/bad.json"
refused "bad.json: data\[0\].paragraphs\[0\].qas\[0\].answers\[0\]: the answer \"b\" is not at answer_start 0" \
  "$cli" train --task squad --train-file "$work/bad.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --out "$work/x"
[ -e "$work/x" ] && fail "a refused run left $work/x"
refused "does not apply" "$cli" predict --task squad --test-file "$squad/dev-v1.1.json" \
  --model "$base" --adapter-pack "$work/adapter/best" --format labels
refused "give --dev-file" "$cli" eval --task squad --model "$base"
finish
