#!/usr/bin/env bash
# SQuAD through the CLI: an adapter with its span head trains on a v1.1 file, its pack
# evaluates to the run's best scores with the windows it records and predicts the official
# scripts' input (id → answer); a span adapter stacked on another pack's adapter evaluates in its
# Stack and answers JSON lines of questions as --task squad does, as does a fusion of two packs'
# adapters trained with its span head (AdapterFusion); full fine-tuning keeps a model
# directory that evaluates alone; mistakes get one line.
# Usage: squad.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
source "$(dirname "$0")/harness.sh"
squad=$project/tests/data/squad
windows=(--max-length 64 --doc-stride 16 --max-query-length 16)
common=(--model "$base" "${windows[@]}" --batch-size 8 --no-progress)
# The questions of dev-v1.1.json as JSON lines of requests for task $1 (none when empty).
questions_jsonl() {
  /usr/bin/python3 - "$squad/dev-v1.1.json" "$1" <<'PY'
import json, sys
data, task = json.load(open(sys.argv[1])), sys.argv[2]
for article in data["data"]:
    for paragraph in article["paragraphs"]:
        for qa in paragraph["qas"]:
            request = {"task": task} if task else {}
            request.update(text=qa["question"], text_pair=paragraph["context"])
            print(json.dumps(request))
PY
}
# Sets the windows' length a JSON file $1 records (its "adaptertune" key) to $2.
record_max_length() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
config["adaptertune"]["max_length"] = int(sys.argv[2])
json.dump(config, open(sys.argv[1], "w"))
PY
}
# Whether JSON lines of answers $2 (after $3 lines for other requests) come from task $4 (none
# when empty) and are what predict --task squad wrote to $1, question by question.
same_answers() {
  /usr/bin/python3 - "$squad/dev-v1.1.json" "$@" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
offline = json.load(open(sys.argv[2]))
lines = [json.loads(line) for line in open(sys.argv[3])][int(sys.argv[4]):]
task = sys.argv[5] or None
ids = [qa["id"] for article in data["data"] for p in article["paragraphs"] for qa in p["qas"]]
assert len(lines) == len(ids) == len(offline), (len(lines), len(ids), len(offline))
for question_id, line in zip(ids, lines):
    assert line["task"] == task and line["answer"] == offline[question_id], (question_id, line)
PY
}

"$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --epochs 2 --lr 1e-3 --out "$work/adapter" >"$work/adapter.json" 2>"$work/adapter.log" ||
  fail "train squad: $(tail -3 "$work/adapter.log")"
grep -q '"task":"squad"' "$work/adapter.json" && grep -q '"f1":' "$work/adapter.json" ||
  fail "train output: $(cat "$work/adapter.json")"
grep -q '"head_type": "question_answering"' "$work/adapter/best/head_config.json" ||
  fail "the pack has no span head"
# The pack records the windows and answer options: eval runs them without the flags.
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/adapter/best" >"$work/eval.json" 2>"$work/err" ||
  fail "eval squad: $(cat "$work/err")"
[ -s "$work/err" ] && fail "eval warned: $(cat "$work/err")"
/usr/bin/python3 - "$work/adapter.json" "$work/eval.json" <<'PY' || fail "eval differs from the run's best"
import json, sys
run, ev = (json.load(open(p)) for p in sys.argv[1:3])
assert ev["max_length"] == 64, ev  # recorded in the pack
assert ev["doc_stride"] == 16 and ev["max_query_length"] == 16, ev  # likewise
assert (ev["n_best"], ev["max_answer_length"], ev["null_score_threshold"]) == (20, 30, 0), ev
assert ev["stacked_on"] == [] and ev["fused"] == [], ev
for k in ("exact", "f1"):
    assert abs(run["dev"][k] - ev["metrics"][k]) < 1e-9, (k, run["dev"], ev["metrics"])
PY
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" --doc-stride 24 \
  --n-best 7 --adapter-pack "$work/adapter/best" >"$work/eval24.json" 2>"$work/err" ||
  fail "eval squad --doc-stride 24: $(cat "$work/err")"
grep -q '"doc_stride":24,"max_query_length":16,"n_best":7,"max_answer_length":30' "$work/eval24.json" ||
  fail "a flag does not override the pack's record: $(cat "$work/eval24.json")"
# The pack's stride and question length belong to its windows of 64: windows of 60 take their own
# defaults (a third of 60, and half of it).
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" --max-length 60 \
  --adapter-pack "$work/adapter/best" >"$work/eval60.json" 2>"$work/err" ||
  fail "eval squad --max-length 60: $(cat "$work/err")"
grep -q '"max_length":60,"doc_stride":20,"max_query_length":30' "$work/eval60.json" ||
  fail "a recorded stride or question length outlived its length: $(cat "$work/eval60.json")"
# Given no stride (no flag, no record), windows start a third of their length apart, so that they
# overlap at any length (SQuAD's 128 stride met windows of 48 end to end), and questions keep at
# most half of a window (SQuAD's 64 would leave windows of 48 no room).
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" --max-length 48 \
  >"$work/eval-base.json" 2>"$work/err" || fail "eval squad on the base: $(cat "$work/err")"
grep -q '"max_length":48,"doc_stride":16,"max_query_length":24' "$work/eval-base.json" ||
  fail "the default stride or question length does not follow the windows: $(cat "$work/eval-base.json")"
# Windows the base cannot hold, as a pack trained on a longer base records them, are refused
# naming the pack.
cp -r "$work/adapter/best" "$work/longer"
record_max_length "$work/longer/adapter_config.json" 200
refused "$work/longer: max_length 200 is more than the model's max_position_embeddings (128)" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" --adapter-pack "$work/longer"
"$cli" predict --task squad --test-file "$squad/dev-v2.0.json" --model "$base" \
  --adapter-pack "$work/adapter/best" --out "$work/predictions.json" \
  2>"$work/err" || fail "predict squad: $(cat "$work/err")"
/usr/bin/python3 - "$work/predictions.json" <<'PY' || fail "predictions: $(cat "$work/predictions.json")"
import json, sys
answers = json.load(open(sys.argv[1]))
assert sorted(answers) == ["n1", "n2", "n3", "n4", "n5", "n6"], answers
assert all(isinstance(a, str) for a in answers.values()), answers
PY
/usr/bin/python3 "$project/tests/python/squad_reference_eval.py" "$squad/dev-v2.0.json" \
  "$work/predictions.json" >/dev/null || fail "the reference scorer cannot read the predictions"
# JSON lines take the windows and answer flags too (the Predictor's span_overrides), as
# predict --task squad does: the same answers, and others than the pack's record gives.
overrides=(--doc-stride 8 --max-answer-length 1 --n-best 3)
"$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/adapter/best" "${overrides[@]}" --out "$work/override_predictions.json" \
  2>"$work/err" || fail "predict squad with flags: $(cat "$work/err")"
questions_jsonl squad >"$work/override_questions.jsonl"
for flags in with without; do
  extra=()
  [ "$flags" = with ] && extra=("${overrides[@]}")
  "$cli" predict --model "$base" --adapter-pack "$work/adapter/best" "${extra[@]}" \
    --input "$work/override_questions.jsonl" >"$work/override_answers_$flags.jsonl" 2>"$work/err" ||
    fail "predict JSON lines $flags the flags: $(cat "$work/err")"
done
same_answers "$work/override_predictions.json" "$work/override_answers_with.jsonl" 0 squad ||
  fail "JSON lines ignore the flags: $(head -3 "$work/override_answers_with.jsonl")"
cmp -s "$work/override_answers_with.jsonl" "$work/override_answers_without.jsonl" &&
  fail "the flags changed no answer: $(head -3 "$work/override_answers_with.jsonl")"
# inspect shows what serve runs with the same flags.
"$cli" inspect --model "$base" --adapter-pack "$work/adapter/best" "${overrides[@]}" \
  >"$work/inspect.json" 2>"$work/err" || fail "inspect with the flags: $(cat "$work/err")"
/usr/bin/python3 - "$work/inspect.json" <<'PY' || fail "inspect ignores the flags: $(cat "$work/inspect.json")"
import json, sys
qa = json.load(open(sys.argv[1]))["tasks"][0]["question_answering"]
assert (qa["doc_stride"], qa["max_answer_length"], qa["n_best"]) == (8, 1, 3), qa
PY

# MAD-X: a span adapter trains on top of a frozen "language" adapter (here an SST-2 pack's), on
# the file's first 5 questions (--train-examples); eval runs the span pack in that Stack, the
# packs in any order, and refuses it without the pack below.
"$cli" train --task SST-2 --data-dir "$glue" --model "$base" --train-examples 32 --max-length 32 \
  --batch-size 8 --max-steps 2 --adapter-name lang --no-progress --out "$work/lang" \
  >/dev/null 2>"$work/lang.log" || fail "train lang: $(tail -3 "$work/lang.log")"
"$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --max-steps 4 --lr 1e-3 --adapter-pack "$work/lang/best" --stack-on lang \
  --train-examples 5 --out "$work/stacked" >"$work/stacked.json" 2>"$work/stacked.log" ||
  fail "train squad stacked: $(tail -3 "$work/stacked.log")"
grep -q 'adapter Stack(lang, squad)' "$work/stacked.log" ||
  fail "the stacked run does not say its stack: $(head -5 "$work/stacked.log")"
grep -q 'train: squad (v1.1), 5 train / 9 dev questions' "$work/stacked.log" ||
  fail "--train-examples 5 did not take 5 questions: $(head -5 "$work/stacked.log")"
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/stacked/best" --adapter-pack "$work/lang/best" \
  >"$work/eval_stacked.json" 2>"$work/err" || fail "eval squad stacked: $(cat "$work/err")"
[ -s "$work/err" ] && fail "eval stacked warned: $(cat "$work/err")"
/usr/bin/python3 - "$work/stacked.json" "$work/eval_stacked.json" "$work/stacked/best/adapter_config.json" \
  <<'PY' || fail "the stacked pack's eval differs from the run's best"
import json, sys
run, ev, config = (json.load(open(p)) for p in sys.argv[1:4])
assert config["adaptertune"]["stacked_on"] == ["lang"], config
assert ev["adapter"] == "squad" and ev["stacked_on"] == ["lang"], ev
for k in ("exact", "f1"):
    assert abs(run["dev"][k] - ev["metrics"][k]) < 1e-9, (k, run["dev"], ev["metrics"])
PY
refused "was trained as Stack(lang, squad): give the pack of lang with --adapter-pack too" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/stacked/best"
refused "on the packs it was trained stacked on (none); this pack's adapter lang is none of them" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/adapter/best" --adapter-pack "$work/lang/best"
refused "runs its span pack in the Stack it was trained on; --adapter does not apply" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/stacked/best" --adapter-pack "$work/lang/best" --adapter "Stack(lang, squad)"
refused "none of the --adapter-pack packs has a span head" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/lang/best" --adapter-pack "$work/lang/best"
refused "loads adapters to fuse (--fuse) or to stack the new adapter on (--stack-on): give one of them" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --adapter-pack "$work/lang/best" --out "$work/x"
refused "--stack-on trains a new adapter on top of the packs' (--train adapters or adapters-head), not --train full" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --adapter-pack "$work/lang/best" --stack-on lang --train full --out "$work/x"
refused "^adaptertune: error: --fuse lang,lang: names lang twice$" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --adapter-pack "$work/lang/best" --fuse lang,lang --out "$work/x"
# AdapterFusion's span task: a fusion of two frozen packs' adapters trains with its span head; eval
# runs the fusion pack with the packs it fuses (in any order) to the run's best scores and refuses
# it without one of them; JSON lines ask it questions beside a classifier's requests, answered as
# predict --task squad answers them.
for name in other third; do
  "$cli" train --task SST-2 --data-dir "$glue" --model "$base" --train-examples 32 --max-length 32 \
    --batch-size 8 --max-steps 2 --adapter-name $name --no-progress --out "$work/$name" \
    >/dev/null 2>"$work/$name.log" || fail "train $name: $(tail -3 "$work/$name.log")"
done
"$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --max-steps 4 --lr 1e-3 --adapter-pack "$work/lang/best" \
  --adapter-pack "$work/other/best" --fuse lang,other --train-examples 5 --out "$work/fused" \
  >"$work/fused.json" 2>"$work/fused.log" || fail "train squad fused: $(tail -3 "$work/fused.log")"
grep -q 'adapter Fuse(lang, other)' "$work/fused.log" ||
  fail "the fusion's run does not say what it trains: $(head -5 "$work/fused.log")"
[ -f "$work/fused/best/adapter_fusion_config.json" ] &&
  grep -q '"head_type": "question_answering"' "$work/fused/best/head_config.json" ||
  fail "the fusion's best is no fusion pack with a span head: $(ls "$work/fused/best")"
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/other/best" --adapter-pack "$work/fused/best" --adapter-pack "$work/lang/best" \
  >"$work/eval_fused.json" 2>"$work/err" || fail "eval squad fused: $(cat "$work/err")"
[ -s "$work/err" ] && fail "eval fused warned: $(cat "$work/err")"
/usr/bin/python3 - "$work/fused.json" "$work/eval_fused.json" <<'PY' ||
import json, sys
run, ev = (json.load(open(p)) for p in sys.argv[1:3])
assert run["best_model"] and ev["adapter"] == "lang,other", (run, ev)
assert ev["fused"] == ["lang", "other"] and ev["stacked_on"] == [], ev
for k in ("exact", "f1"):
    assert abs(run["dev"][k] - ev["metrics"][k]) < 1e-9, (k, run["dev"], ev["metrics"])
PY
  fail "the fusion pack's eval differs from the run's best"
refused "fused/best: the fusion lang,other needs the adapters it fuses; other not loaded" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/fused/best" --adapter-pack "$work/lang/best"
refused "fuses (lang, other); this pack's adapter third is none of them" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/fused/best" --adapter-pack "$work/lang/best" \
  --adapter-pack "$work/other/best" --adapter-pack "$work/third/best"
refused "--fuse trains a fusion of the --adapter-pack adapters, named by them: it takes no" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --adapter-pack "$work/lang/best" --adapter-pack "$work/other/best" \
  --fuse lang,other --adapter-name mine --out "$work/x"
"$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/fused/best" --adapter-pack "$work/lang/best" --adapter-pack "$work/other/best" \
  --out "$work/fused_predictions.json" 2>"$work/err" || fail "predict squad fused: $(cat "$work/err")"
{ echo '{"task": "other", "text": "a gorgeous, witty movie"}'; questions_jsonl lang,other; } >"$work/fused_questions.jsonl"
"$cli" predict --model "$base" --adapter-pack "$work/lang/best" --adapter-pack "$work/other/best" \
  --adapter-pack "$work/fused/best" --input "$work/fused_questions.jsonl" >"$work/fused_answers.jsonl" \
  2>"$work/err" || fail "predict JSON lines with a fusion span pack: $(cat "$work/err")"
same_answers "$work/fused_predictions.json" "$work/fused_answers.jsonl" 1 lang,other ||
  fail "JSON lines answers differ from predict --task squad: $(cat "$work/fused_answers.jsonl")"
# A span pack does not run a data set's examples: eval and predict of a classification task
# refuse it by name, before any input is read.
refused "adapter/best: the pack's head is a span head (question answering): run it with --task squad" \
  "$cli" eval --task SST-2 --data-dir "$glue" --model "$base" --adapter-pack "$work/adapter/best"
# JSON lines of requests ask a span pack questions beside a classifier's requests, on the one
# base: each answer is the one predict --task squad gives (here the stacked pack's, run in its
# Stack(lang, squad)).
"$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/stacked/best" --adapter-pack "$work/lang/best" \
  --out "$work/stacked_predictions.json" 2>"$work/err" || fail "predict squad stacked: $(cat "$work/err")"
{ echo '{"task": "lang", "text": "a gorgeous, witty movie"}'; questions_jsonl squad; } >"$work/questions.jsonl"
"$cli" predict --model "$base" --adapter-pack "$work/lang/best" --adapter-pack "$work/stacked/best" \
  --input "$work/questions.jsonl" >"$work/answers.jsonl" 2>"$work/err" ||
  fail "predict JSON lines with a span pack: $(cat "$work/err")"
same_answers "$work/stacked_predictions.json" "$work/answers.jsonl" 1 squad ||
  fail "JSON lines answers differ from predict --task squad: $(cat "$work/answers.jsonl")"
head -1 "$work/answers.jsonl" | grep -q '^{"task":"lang","label":' ||
  fail "the classifier's request among the questions: $(head -1 "$work/answers.jsonl")"
printf '%s\n' '{"task": "lang", "text": "fine"}' '{"task": "squad", "text": "Who won?"}' >"$work/no_context.jsonl"
refused "no_context.jsonl:2: task squad answers questions from a context (a span head)" \
  "$cli" predict --model "$base" --adapter-pack "$work/lang/best" --adapter-pack "$work/stacked/best" \
  --input "$work/no_context.jsonl"
# A pack that learnt on SQuAD v2.0 to answer nothing records it, and answers nothing on any data
# (here a v1.1 file, where its null score always wins) as it does served.
"$cli" train --task squad --train-file "$squad/dev-v2.0.json" --dev-file "$squad/dev-v2.0.json" \
  "${common[@]}" --max-steps 2 --null-score-threshold -1e9 --out "$work/v2" >/dev/null \
  2>"$work/v2.log" || fail "train squad v2.0: $(tail -3 "$work/v2.log")"
"$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/v2/best" >"$work/eval_v2.json" 2>"$work/err" ||
  fail "eval the v2.0 pack: $(cat "$work/err")"
grep -q '"null_score_threshold":-1000000000.0,"allow_no_answer":true' "$work/eval_v2.json" ||
  fail "the v2.0 pack's answer options: $(cat "$work/eval_v2.json")"
"$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$base" \
  --adapter-pack "$work/v2/best" --out "$work/v2_predictions.json" 2>"$work/err" ||
  fail "predict with the v2.0 pack: $(cat "$work/err")"
/usr/bin/python3 -c 'import json, sys; a = json.load(open(sys.argv[1])); assert len(a) == 9 and set(a.values()) == {""}, a' \
  "$work/v2_predictions.json" || fail "the v2.0 pack gave spans: $(cat "$work/v2_predictions.json")"
questions_jsonl squad >"$work/v2_questions.jsonl"
"$cli" predict --model "$base" --adapter-pack "$work/v2/best" --input "$work/v2_questions.jsonl" \
  >"$work/v2_answers.jsonl" 2>"$work/err" || fail "JSON lines to the v2.0 pack: $(cat "$work/err")"
same_answers "$work/v2_predictions.json" "$work/v2_answers.jsonl" 0 squad ||
  fail "the v2.0 pack's served answers differ: $(cat "$work/v2_answers.jsonl")"

# Full fine-tuning keeps a model directory with a span head.
"$cli" train --task squad --train-file "$squad/dev-v2.0.json" --dev-file "$squad/dev-v2.0.json" \
  "${common[@]}" --train full --max-steps 2 --out "$work/full" >"$work/full.json" 2>"$work/full.log" ||
  fail "train squad full: $(tail -3 "$work/full.log")"
grep -q '"BertForQuestionAnswering"' "$work/full/best/config.json" || fail "full: no span model"
"$cli" eval --task squad --dev-file "$squad/dev-v2.0.json" --model "$work/full/best" "${windows[@]}" \
  >"$work/eval_full.json" 2>"$work/err" || fail "eval the full model: $(cat "$work/err")"
grep -q '"no_answer_f1"' "$work/eval_full.json" || fail "v2.0 metrics: $(cat "$work/eval_full.json")"
# The model directory records its windows and answers as a pack does (config.json's
# "adaptertune"): eval runs them without the flags, to the run's best scores; a longer
# --max-length, or a record the base cannot hold, is refused by name.
"$cli" eval --task squad --dev-file "$squad/dev-v2.0.json" --model "$work/full/best" \
  >"$work/eval_default.json" 2>"$work/err" || fail "eval with the recorded windows: $(cat "$work/err")"
grep -q '"max_length":64,"doc_stride":16,"max_query_length":16,"n_best":20,"max_answer_length":30,"null_score_threshold":0.0,"allow_no_answer":true' \
  "$work/eval_default.json" || fail "the recorded windows: $(cat "$work/eval_default.json")"
cmp -s "$work/eval_full.json" "$work/eval_default.json" ||
  fail "eval with the flags and with the record differ: $(cat "$work/eval_full.json" "$work/eval_default.json")"
/usr/bin/python3 - "$work/full.json" "$work/eval_default.json" <<'PY' || fail "the full model's eval differs from the run's best"
import json, sys
run, ev = (json.load(open(p)) for p in sys.argv[1:3])
for k in ("exact", "f1"):
    assert abs(run["dev"][k] - ev["metrics"][k]) < 1e-9, (k, run["dev"], ev["metrics"])
PY
refused "--max-length 200 is more than the model's max_position_embeddings (128)" \
  "$cli" eval --task squad --dev-file "$squad/dev-v2.0.json" --model "$work/full/best" --max-length 200
cp -r "$work/full/best" "$work/full_longer"
record_max_length "$work/full_longer/config.json" 200
refused "full_longer/config.json: adaptertune.max_length 200 is more than the model's max_position_embeddings (128)" \
  "$cli" eval --task squad --dev-file "$squad/dev-v2.0.json" --model "$work/full_longer"
# It serves its span head too, with the windows it records: JSON lines that name no task are
# questions, answered as predict --task squad answers them with the directory alone.
"$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$work/full/best" \
  --out "$work/full_predictions.json" 2>"$work/err" || fail "predict the full model: $(cat "$work/err")"
questions_jsonl "" >"$work/full_questions.jsonl"
"$cli" predict --model "$work/full/best" --input "$work/full_questions.jsonl" \
  >"$work/full_answers.jsonl" 2>"$work/err" || fail "JSON lines to the full model: $(cat "$work/err")"
same_answers "$work/full_predictions.json" "$work/full_answers.jsonl" 0 "" ||
  fail "the full model's served answers differ: $(cat "$work/full_answers.jsonl")"
grep -q "no classifier weights" "$work/err" && fail "a span model directory warned: $(cat "$work/err")"
# SQuAD's flags apply to its questions on JSON lines too (no span pack is loaded).
"$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$work/full/best" \
  "${overrides[@]}" --out "$work/full_override_predictions.json" 2>"$work/err" ||
  fail "predict the full model with flags: $(cat "$work/err")"
"$cli" predict --model "$work/full/best" --input "$work/full_questions.jsonl" "${overrides[@]}" \
  >"$work/full_override_answers.jsonl" 2>"$work/err" ||
  fail "JSON lines to the full model with flags: $(cat "$work/err")"
same_answers "$work/full_override_predictions.json" "$work/full_override_answers.jsonl" 0 "" ||
  fail "the full model's JSON lines ignore the flags: $(cat "$work/full_override_answers.jsonl")"
# As a classification task's model it has no trained head, and says what it is.
echo "a gorgeous, witty movie" | "$cli" predict --task SST-2 --model "$work/full/best" \
  >/dev/null 2>"$work/err" || fail "predict SST-2 with a span model: $(cat "$work/err")"
grep -q "full/best is a span model (question answering): its classifier head is untrained; run it with --task squad" \
  "$work/err" || fail "a span model as a classifier: $(cat "$work/err")"
# The honest zero for span heads: the same run from BERT's random initialisation of the config
# (and without --max-length: SQuAD's windows, as many tokens as the base has positions).
"$cli" train --task squad --train-file "$squad/dev-v2.0.json" --dev-file "$squad/dev-v2.0.json" \
  --model "$base" --batch-size 8 --no-progress --train full --random-init --max-steps 2 \
  --out "$work/random" >/dev/null 2>"$work/random.log" ||
  fail "train squad --random-init: $(tail -3 "$work/random.log")"
grep -q '"max_length": 128,' "$work/random/run.json" ||
  fail "SQuAD's windows on a base of 128 positions: $(grep max_length "$work/random/run.json")"
grep -q "train: --random-init: .*config.json, BERT's random initialisation" "$work/random.log" ||
  fail "train squad --random-init did not say so: $(head -3 "$work/random.log")"
grep -q '"random_init": true' "$work/random/run.json" || fail "run.json does not record --random-init"
cmp -s "$work/full/best/model.safetensors" "$work/random/best/model.safetensors" &&
  fail "--random-init trained the pretrained weights"
# The benchmark's SQuAD-shaped data (benchmarks/squad_like.py) is SQuAD as read_squad() checks it.
/usr/bin/python3 "$project/benchmarks/squad_like.py" "$glue/SST-2/train.tsv" "$work/like.json" \
  --questions 10 || fail "squad_like.py failed"
"$cli" eval --task squad --dev-file "$work/like.json" --model "$base" "${windows[@]}" \
  >"$work/like_eval.json" 2>"$work/err" || fail "eval on squad_like.py's data: $(cat "$work/err")"
grep -q '"examples":10,' "$work/like_eval.json" || fail "squad_like.py: $(cat "$work/like_eval.json")"
# AdapterDrop's cache for a span adapter: the layer it leaves out runs once per window, its outputs
# reused in the second epoch.
"$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --epochs 2 --leave-out 0 --cache-frozen-layers --out "$work/cached" \
  >"$work/cached.json" 2>"$work/cached.log" ||
  fail "train squad --cache-frozen-layers: $(tail -3 "$work/cached.log")"
/usr/bin/python3 - "$work/cached/results.json" <<'PY' || fail "no cache: $(cat "$work/cached/results.json")"
import json, sys
results = json.load(open(sys.argv[1]))
assert results["cached_layers"] == 1 and results["batches_from_cache"] > 0, results
PY
"$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --cache-frozen-layers --out "$work/x" >/dev/null 2>"$work/err" &&
  fail "--cache-frozen-layers without a layer left out trained"
grep -q 'error: .*adapter "squad" leaves out no lowest layer' "$work/err" ||
  fail "--cache-frozen-layers without a layer left out: $(cat "$work/err")"
refused "--random-init needs --train full" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --random-init --out "$work/x"

refused "train --task squad trains alone" \
  "$cli" train --task squad,SST-2 --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  "${common[@]}" --out "$work/x"
refused "needs --train-file and --dev-file" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" "${common[@]}" --out "$work/x"
refused "train --task squad: --labels does not apply: SQuAD's files are JSON, scored by exact match and F1" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  --labels a,b "${common[@]}" --out "$work/x"
refused "train --task squad: --text-column, --file-format, --metrics do not apply" \
  "$cli" train --task squad --train-file "$squad/dev-v1.1.json" --dev-file "$squad/dev-v1.1.json" \
  --text-column q --file-format jsonl --metrics f1 "${common[@]}" --out "$work/x"
refused "^adaptertune: error: --task squad: --label-column, --main-metric do not apply: SQuAD's files are JSON, scored by exact match and F1$" \
  "$cli" eval --task squad --dev-file "$squad/dev-v1.1.json" --model "$base" --label-column y \
  --main-metric f1
refused "^adaptertune: error: --task squad: --pair-column does not apply" \
  "$cli" predict --task squad --test-file "$squad/dev-v1.1.json" --model "$base" --pair-column c
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
