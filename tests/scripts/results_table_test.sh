#!/usr/bin/env bash
# scripts/results_table.sh on small cells (RTE, head only and random init, 2 steps): a table for
# another base goes to ADAPTERTUNE_RESULTS_FILE, names that base and the command that made it, keeps
# the notes the file already had and the cells of earlier calls (refusing those of another base),
# and leaves docs/results.md alone.
# Usage: results_table_test.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
set -euo pipefail
cli=$1 root=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
# Another base: a copy of the shipped one.
cp -r "$root/models/adaptertune-base-uncased-L4-H256" "$work/candidate"
# The table names a base inside the project by its path from the project's root.
base=$(realpath "$work/candidate")
case "$base" in "$(realpath "$root")"/*) base=${base#"$(realpath "$root")"/} ;; esac
table=$work/table.md
printf '# old table\n\n<!-- notes -->\nmy notes\n<!-- /notes -->\n' >"$table"
before=$(sha256sum "$root/docs/results.md")
ADAPTERTUNE_CLI=$cli ADAPTERTUNE_BASE=$work/candidate ADAPTERTUNE_RESULTS_DIR=$work/runs \
  ADAPTERTUNE_RESULTS_FILE=$table ADAPTERTUNE_RESULTS_TASKS=RTE ADAPTERTUNE_RESULTS_MODES=head \
  OMP_NUM_THREADS=1 bash "$root/scripts/results_table.sh" --max-steps 2 >"$work/out.txt" 2>"$work/err.txt" ||
  { cat "$work/err.txt" >&2; fail "results_table.sh failed"; }
[ "$(sha256sum "$root/docs/results.md")" = "$before" ] || fail "docs/results.md was rewritten"
grep -qxF "# Results on $base" "$table" || fail "the title does not name the base: $(head -1 "$table")"
grep -qF "Base: \`$base\`" "$table" || fail "the base is not named"
grep -qF "Made by \`ADAPTERTUNE_BASE=$base bash scripts/results_table.sh --max-steps 2\`" "$table" ||
  fail "the command that made it is not given: $(grep 'Made by' "$table")"
grep -qE '^\| RTE \| accuracy \| not run \| not run \| not run \| [0-9.]+ \(66,306 = 0.60 %, [0-9]+ s\) \| not run \|$' "$table" ||
  fail "the RTE row: $(grep '^| RTE' "$table")"
grep -q "^my notes\$" "$table" || fail "the notes were lost"
grep -q "old table" "$table" && fail "the old table was kept"
# A call that runs another part of the table keeps the cells of the earlier runs.
ADAPTERTUNE_CLI=$cli ADAPTERTUNE_BASE=$work/candidate ADAPTERTUNE_RESULTS_DIR=$work/runs \
  ADAPTERTUNE_RESULTS_FILE=$table ADAPTERTUNE_RESULTS_TASKS=RTE ADAPTERTUNE_RESULTS_MODES=random \
  OMP_NUM_THREADS=1 bash "$root/scripts/results_table.sh" --max-steps 2 >"$work/out.txt" 2>"$work/err.txt" ||
  { cat "$work/err.txt" >&2; fail "results_table.sh (random only) failed"; }
grep -qE '^\| RTE \| accuracy \| not run \| not run \| not run \| [0-9.]+ \(66,306 = 0.60 %, [0-9]+ s\) \| [0-9.]+ \([0-9,]+ = 100.00 %, [0-9]+ s\) \|$' "$table" ||
  fail "the RTE row after a second call: $(grep '^| RTE' "$table")"

# A cell that ran on another base is refused, not mixed into this base's table ...
cp -r "$work/candidate" "$work/other"
run_table() {  # BASE RUNS MODES
  ADAPTERTUNE_CLI=$cli ADAPTERTUNE_BASE=$1 ADAPTERTUNE_RESULTS_DIR=$2 ADAPTERTUNE_RESULTS_FILE=$work/other.md \
    ADAPTERTUNE_RESULTS_TASKS=RTE ADAPTERTUNE_RESULTS_MODES=$3 OMP_NUM_THREADS=1 \
    bash "$root/scripts/results_table.sh" --max-steps 2 >"$work/out.txt" 2>"$work/err.txt"
}
run_table "$work/other" "$work/runs" random && fail "a cell of another base was accepted"
grep -qF "$work/runs/RTE-head ran on $(realpath "$work/candidate"), not on" "$work/err.txt" ||
  fail "the other-base message: $(tail -3 "$work/err.txt")"
[ ! -e "$work/other.md.new" ] || fail "a half-written table was left behind"
# ... and so is one that ran on weights the base's directory held before they were replaced:
# the earlier call's cell is named, though it comes first in the table.
run_table "$work/other" "$work/runs2" "houlsby full" || { cat "$work/err.txt" >&2; fail "houlsby and full failed"; }
cp "$work/runs2/RTE-full/best/model.safetensors" "$work/other/model.safetensors"
run_table "$work/other" "$work/runs2" full && fail "a cell of replaced weights was accepted"
grep -qE "$work/runs2/RTE-houlsby ran on other weights in .*other than $work/runs2/RTE-full did" \
  "$work/err.txt" || fail "the replaced-weights message: $(tail -3 "$work/err.txt")"

# Several seeds: a run per seed, and the mean with the lowest and highest run in each cell.
ADAPTERTUNE_CLI=$cli ADAPTERTUNE_BASE=$work/candidate ADAPTERTUNE_RESULTS_DIR=$work/runs \
  ADAPTERTUNE_RESULTS_FILE=$table ADAPTERTUNE_RESULTS_TASKS=RTE ADAPTERTUNE_RESULTS_MODES=head \
  ADAPTERTUNE_RESULTS_SEEDS="1 2" OMP_NUM_THREADS=1 \
  bash "$root/scripts/results_table.sh" --max-steps 2 >"$work/out.txt" 2>"$work/err.txt" ||
  { cat "$work/err.txt" >&2; fail "results_table.sh with two seeds failed"; }
for seed in 1 2; do
  [ "$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["options"]["seed"])' \
    "$work/runs/RTE-head-seed$seed/run.json")" = "$seed" ] || fail "no run with seed $seed"
done
grep -qF "Made by \`ADAPTERTUNE_BASE=$base ADAPTERTUNE_RESULTS_SEEDS=\"1 2\" bash scripts/results_table.sh --max-steps 2\`" "$table" ||
  fail "the seeds are not in the command: $(grep 'Made by' "$table")"
grep -qF "the mean of 2 runs (seeds 1, 2)" "$table" || fail "the table does not say what a cell is"
grep -qE '^\| RTE \| accuracy \| not run \| not run \| not run \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \(66,306 = 0.60 %, [0-9]+ s\) \| not run \|$' "$table" ||
  fail "the RTE row with two seeds: $(grep '^| RTE' "$table")"
# A seed belongs in ADAPTERTUNE_RESULTS_SEEDS, where the table can say it.
if ADAPTERTUNE_CLI=$cli ADAPTERTUNE_RESULTS_FILE=$table bash "$root/scripts/results_table.sh" --seed 3 \
  >/dev/null 2>"$work/err.txt"; then
  fail "--seed was accepted"
fi
grep -qF "give seeds with ADAPTERTUNE_RESULTS_SEEDS, not --seed" "$work/err.txt" ||
  fail "the --seed message: $(cat "$work/err.txt")"
# A seed twice would overwrite its own run and count it twice in the mean.
if ADAPTERTUNE_CLI=$cli ADAPTERTUNE_RESULTS_FILE=$table ADAPTERTUNE_RESULTS_SEEDS="1 2 1" \
  bash "$root/scripts/results_table.sh" >/dev/null 2>"$work/err.txt"; then
  fail "a repeated seed was accepted"
fi
grep -qF "ADAPTERTUNE_RESULTS_SEEDS names a seed twice: '1 2 1'" "$work/err.txt" ||
  fail "the repeated-seed message: $(cat "$work/err.txt")"
echo PASS
