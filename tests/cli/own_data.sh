#!/usr/bin/env bash
# Your own data set through the CLI: a CSV classification task (labels found in the training
# file, texts with quotes, commas and line breaks) trains, its best pack evaluates on the dev CSV
# to the metrics the run logged, and predicts a JSON-lines test file; a JSON-lines regression
# task of text pairs trains with chosen metrics; a TSV without a telling extension reads with
# --file-format; paths that are not UTF-8 work; mistakes get one line naming the file, line or
# flag.
# Usage: own_data.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
source "$(dirname "$0")/harness.sh"

# The data: SST-2 and STS-B rows rewritten into other layouts, labels renamed.
/usr/bin/python3 - "$glue" "$work" <<'PY' || fail "could not write the data sets"
import csv, json, sys
glue, work = sys.argv[1], sys.argv[2]
def rows(path, n):
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        return [dict(zip(header, line.rstrip("\n").split("\t"))) for _, line in zip(range(n), f)]
names = {"0": "negative", "1": "positive"}
for split, n in (("train", 96), ("dev", 48)):
    with open(f"{work}/reviews_{split}.csv", "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "review", "sentiment"])
        for i, r in enumerate(rows(f"{glue}/SST-2/{split}.tsv", n)):
            text = r["sentence"]
            if i % 5 == 0:
                text = f'he said "{text.strip()}", twice,\nthen left'
            out.writerow([i, text, names[r["label"]]])
with open(f"{work}/reviews_test.jsonl", "w", encoding="utf-8") as f:
    for r in rows(f"{glue}/SST-2/dev.tsv", 5):
        f.write(json.dumps({"review": r["sentence"]}) + "\n")
for split, n in (("train", 64), ("dev", 32)):
    with open(f"{work}/similar_{split}.jsonl", "w", encoding="utf-8") as f:
        for r in rows(f"{glue}/STS-B/{split}.tsv", n):
            f.write(json.dumps({"a": r["sentence1"], "b": r["sentence2"], "y": float(r["score"])}) + "\n")
# The dev rows once more, unmodified, as a TSV under another extension and as a CSV: the same texts
# (a TSV cannot hold the CSV's line breaks in a field).
with open(f"{work}/reviews_dev.txt", "w", encoding="utf-8") as f, \
        open(f"{work}/reviews_dev_plain.csv", "w", newline="", encoding="utf-8") as g:
    f.write("review\tsentiment\n")
    plain = csv.writer(g)
    plain.writerow(["review", "sentiment"])
    for r in rows(f"{glue}/SST-2/dev.tsv", 48):
        f.write(f'{r["sentence"]}\t{names[r["label"]]}\n')
        plain.writerow([r["sentence"], names[r["label"]]])
PY

common=(--model "$base" --batch-size 16 --max-steps 4 --max-length 32 --no-progress)
reviews=(--text-column review --label-column sentiment)

# A CSV classification task: the labels come from the training file, sorted.
"$cli" train --task reviews --train-file "$work/reviews_train.csv" --dev-file "$work/reviews_dev.csv" \
  "${reviews[@]}" --metrics accuracy,f1,mcc --main-metric f1 "${common[@]}" --out "$work/reviews" \
  >"$work/reviews.json" 2>"$work/reviews.log" || fail "train reviews: $(tail -3 "$work/reviews.log")"
grep -q '"task":"reviews"' "$work/reviews.json" || fail "train output: $(cat "$work/reviews.json")"
grep -q '"f1":' "$work/reviews.json" && grep -q '"mcc":' "$work/reviews.json" ||
  fail "chosen metrics missing: $(cat "$work/reviews.json")"
/usr/bin/python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['id2label'] == {'0': 'negative', '1': 'positive'}" \
  "$work/reviews/best/head_config.json" || fail "the pack's head lacks the file's labels, sorted"

# Its pack evaluates on the dev CSV to the metrics the run logged for it (labels from the pack).
"$cli" eval --task reviews --dev-file "$work/reviews_dev.csv" "${reviews[@]}" --metrics accuracy,f1,mcc \
  --model "$base" --adapter-pack "$work/reviews/best" >"$work/eval.json" 2>"$work/err" ||
  fail "eval reviews: $(cat "$work/err")"
/usr/bin/python3 - "$work/reviews.json" "$work/eval.json" <<'PY' || fail "eval differs from the run's best"
import json, sys
run, ev = (json.load(open(p)) for p in sys.argv[1:3])
assert ev["examples"] == 48, ev
for k in ("accuracy", "f1", "mcc"):
    assert abs(run["dev"][k] - ev["metrics"][k]) < 1e-9, (k, run["dev"], ev["metrics"])
PY

# It predicts a JSON-lines file without labels, one label of the task per line.
"$cli" predict --task reviews --test-file "$work/reviews_test.jsonl" --text-column review \
  --model "$base" --adapter-pack "$work/reviews/best" >"$work/predicted.txt" 2>"$work/err" ||
  fail "predict reviews: $(cat "$work/err")"
[ "$(grep -cE '^(negative|positive)$' "$work/predicted.txt")" = 5 ] ||
  fail "predictions: $(cat "$work/predicted.txt")"

# A TSV under another extension, read with --file-format tsv, gives the metrics of a CSV of the
# same rows.
"$cli" eval --task reviews --dev-file "$work/reviews_dev.txt" --file-format tsv "${reviews[@]}" \
  --metrics accuracy,f1,mcc --model "$base" --adapter-pack "$work/reviews/best" >"$work/eval_tsv.json" \
  2>"$work/err" || fail "eval the TSV: $(cat "$work/err")"
"$cli" eval --task reviews --dev-file "$work/reviews_dev_plain.csv" "${reviews[@]}" \
  --metrics accuracy,f1,mcc --model "$base" --adapter-pack "$work/reviews/best" >"$work/eval_plain.json" \
  2>"$work/err" || fail "eval the plain CSV: $(cat "$work/err")"
/usr/bin/python3 -c "import json,sys; a,b=(json.load(open(p))['metrics'] for p in sys.argv[1:]); assert a==b,(a,b)" \
  "$work/eval_plain.json" "$work/eval_tsv.json" || fail "the TSV's metrics differ from the CSV's"

# A JSON-lines regression task of text pairs.
"$cli" train --task similar --train-file "$work/similar_train.jsonl" --dev-file "$work/similar_dev.jsonl" \
  --text-column a --pair-column b --label-column y --regression "${common[@]}" --out "$work/similar" \
  >"$work/similar.json" 2>"$work/similar.log" || fail "train similar: $(tail -3 "$work/similar.log")"
grep -q '"pearson":' "$work/similar.json" && grep -q '"spearmanr":' "$work/similar.json" ||
  fail "regression metrics: $(cat "$work/similar.json")"
printf 'A man plays a guitar.\tA man is playing music.\n' |
  "$cli" predict --task similar --pair-column b --model "$base" --adapter-pack "$work/similar/best" \
    >"$work/score.txt" 2>"$work/err" || fail "predict similar from stdin: $(cat "$work/err")"
grep -qE '^-?[0-9]+\.[0-9]{4}$' "$work/score.txt" || fail "a score: $(cat "$work/score.txt")"

# Paths that are not UTF-8 (a POSIX name is any bytes): a run reads and writes there, and its JSON
# (the result line, run.json, results.json, eval's line) shows each invalid byte as U+FFFD.
odd=$work/$'\xff-data'
odd_base=$work/$'base-\xe9'
mkdir -p "$odd" "$odd_base" || fail "mkdir a directory whose name is not UTF-8"
cp "$work/reviews_train.csv" "$work/reviews_dev.csv" "$odd/"
for file in "$base"/*; do ln -s "$file" "$odd_base/"; done
"$cli" train --task reviews --train-file "$odd/reviews_train.csv" --dev-file "$odd/reviews_dev.csv" \
  "${reviews[@]}" "${common[@]}" --model "$odd_base" --out "$odd/run" >"$work/odd_train.json" \
  2>"$work/odd_train.log" || fail "train under a path that is not UTF-8: $(tail -3 "$work/odd_train.log")"
"$cli" eval --task reviews --dev-file "$odd/reviews_dev.csv" "${reviews[@]}" --model "$odd_base" \
  --adapter-pack "$odd/run/best" >"$work/odd_eval.json" 2>"$work/err" ||
  fail "eval under a path that is not UTF-8: $(cat "$work/err")"
/usr/bin/python3 - "$odd" "$odd_base" "$work" <<'PY' || fail "the JSON records of a path that is not UTF-8"
import json, os, sys
odd, odd_base, work = (os.fsencode(a) for a in sys.argv[1:4])
shown = lambda path: path.decode("utf-8", "replace")  # one U+FFFD per invalid byte, as json_text()
line = json.load(open(work + b"/odd_train.json", encoding="utf-8"))
assert line["best_model"] == shown(odd + b"/run/best"), line["best_model"]
run = json.load(open(odd + b"/run/run.json", encoding="utf-8"))
assert run["base"]["model_dir"] == shown(os.path.realpath(odd_base)), run["base"]
results = json.load(open(odd + b"/run/results.json", encoding="utf-8"))
assert results["tasks"][0]["best_model"] == shown(odd + b"/run/best"), results
ev = json.load(open(work + b"/odd_eval.json", encoding="utf-8"))
assert ev["split"] == shown(odd + b"/reviews_dev.csv") and "\ufffd" in ev["split"], ev["split"]
PY

# Mistakes: exit 1, one line naming what is wrong, no run directory.
printf 'review,sentiment\ngood,positive\nbad,meh\n' >"$work/odd_dev.csv"
refused "odd_dev.csv:3: column \"sentiment\": unknown label \"meh\" (expected negative, positive)" \
  "$cli" train --task reviews --train-file "$work/reviews_train.csv" --dev-file "$work/odd_dev.csv" \
  "${reviews[@]}" "${common[@]}" --out "$work/odd"
[ -e "$work/odd" ] && fail "a refused run left $work/odd"
refused "needs --train-file and --dev-file" \
  "$cli" train --task reviews --train-file "$work/reviews_train.csv" "${reviews[@]}" "${common[@]}" --out "$work/x"
refused "no column \"text\" (the file has id, review, sentiment)" \
  "$cli" train --task reviews --train-file "$work/reviews_train.csv" --dev-file "$work/reviews_dev.csv" \
  --label-column sentiment "${common[@]}" --out "$work/x"
refused "metric f1 does not fit a regression task" \
  "$cli" train --task similar --train-file "$work/similar_train.jsonl" --dev-file "$work/similar_dev.jsonl" \
  --text-column a --pair-column b --label-column y --regression --metrics f1 "${common[@]}" --out "$work/x"
refused "--labels describes your own files (give --train-file, --dev-file or --test-file)" \
  "$cli" train --task SST-2 --labels a,b --data-dir "$glue" "${common[@]}" --out "$work/x"
refused "^adaptertune: error: --train-file excludes --data-dir" \
  "$cli" train --task reviews --train-file "$work/reviews_train.csv" --dev-file "$work/reviews_dev.csv" \
  --data-dir "$glue" "${common[@]}" --out "$work/x"
refused "^adaptertune: error: --dev-file excludes --data-dir" \
  "$cli" eval --task reviews --dev-file "$work/reviews_dev.csv" --data-dir "$glue" --model "$base"
refused "^adaptertune: error: --dev-file excludes --split" \
  "$cli" eval --task reviews --dev-file "$work/reviews_dev.csv" --split train --model "$base"
refused "--text-column and --file-format describe your own files" \
  "$cli" eval --task SST-2 --data-dir "$glue" --model "$base" --text-column review --file-format csv
# JSON lines of requests name their tasks and carry their texts: the flags of a data file would be
# ignored there, so they are refused.
echo '{"task": "reviews", "text": "fine"}' >"$work/requests.jsonl"
refused "^adaptertune: error: --test-file reads your own data set; JSON lines of requests (--input) name their tasks: give one of them$" \
  "$cli" predict --model "$base" --adapter-pack "$work/reviews/best" --input "$work/requests.jsonl" \
  --test-file "$work/reviews_test.jsonl"
refused "--labels, --pair-column and --text-column describe your own files; JSON lines of requests carry their texts" \
  "$cli" predict --model "$base" --adapter-pack "$work/reviews/best" --input "$work/requests.jsonl" \
  --labels a,b --pair-column p --text-column t
refused "--split names the GLUE split of a --format glue file" \
  "$cli" predict --model "$base" --adapter-pack "$work/reviews/best" --input "$work/requests.jsonl" \
  --split test_matched
"$cli" predict --model "$base" --adapter-pack "$work/reviews/best" --input "$work/requests.jsonl" \
  >"$work/requests_answer.jsonl" 2>"$work/err" && grep -q '"task":"reviews"' "$work/requests_answer.jsonl" ||
  fail "JSON lines without those flags: $(cat "$work/err")"
refused "unknown GLUE task \"reviews2\" (expected one of CoLA" "$cli" eval --task reviews2 --model "$base"
refused "unknown GLUE task \"reviews\" (expected one of CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI, AX); for your own data set give --train-file and --dev-file" \
  "$cli" train --task reviews "${common[@]}" --out "$work/x"
# predict reads no labels: a test file's label column is ignored whatever its name, so the flag
# that names it is not predict's.
refused "^adaptertune: error: unknown option --label-column (see: adaptertune predict --help)" \
  "$cli" predict --task reviews --test-file "$work/reviews_test.jsonl" "${reviews[@]}" \
  --model "$base" --adapter-pack "$work/reviews/best"
refused "is not a GLUE task (use labels, json or logits)" \
  "$cli" predict --task reviews --test-file "$work/reviews_test.jsonl" --text-column review \
  --model "$base" --adapter-pack "$work/reviews/best" --format glue --out "$work/glue_out"
refused "give --task one name" \
  "$cli" train --task reviews,other --train-file "$work/reviews_train.csv" --dev-file "$work/reviews_dev.csv" \
  "${reviews[@]}" "${common[@]}" --out "$work/x"
[ -e "$work/x" ] && fail "a refused run left $work/x"
finish
