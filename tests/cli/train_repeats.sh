#!/usr/bin/env bash
# The same `adaptertune train` command run twice in separate processes gives the same losses and
# dev metrics to the last digit on CPU (the model's new parts are initialised from --seed, not from
# LibTorch's OS-seeded default), and run.json names the CPU allocator the tool was built with.
# With --last-layer-first-position the run trains and run.json records the choice.
# Usage: train_repeats.sh ADAPTERTUNE PROJECT_DIR WORK_DIR EXPECTED_ALLOCATOR
set -euo pipefail
cli=$1 project=$2 work=$3 expected_allocator=$4
rm -rf "$work"
mkdir -p "$work"
for run in a b; do
  "$cli" train --task SST-2 --data-dir "$project/data/glue" \
    --model "$project/models/adaptertune-base-uncased-L4-H256" --adapter houlsby \
    --train-examples 64 --batch-size 16 --max-steps 4 --eval-every 2 --log-every 1 \
    --no-progress --out "$work/$run" >/dev/null 2>"$work/$run.log"
  # Everything but timings.
  sed -E 's/"(elapsed_s|eval_s|examples_per_s)":[^,}]*//g' "$work/$run/metrics.jsonl" >"$work/$run.events"
done
if ! cmp -s "$work/a.events" "$work/b.events"; then
  echo "FAIL: two runs of the same command differ:" >&2
  diff "$work/a.events" "$work/b.events" >&2 || true
  exit 1
fi
grep -q '"event":"eval"' "$work/a.events" || { echo "FAIL: no evaluation logged" >&2; exit 1; }
allocator=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["machine"]["cpu_allocator"])' "$work/a/run.json")
if [ "$allocator" != "$expected_allocator" ]; then
  echo "FAIL: run.json says the CPU allocator was $allocator, expected $expected_allocator" >&2
  exit 1
fi
"$cli" train --task SST-2 --data-dir "$project/data/glue" \
  --model "$project/models/adaptertune-base-uncased-L4-H256" --adapter houlsby \
  --train-examples 64 --batch-size 16 --max-steps 4 --eval-every 2 --log-every 1 \
  --last-layer-first-position --no-progress --out "$work/c" >/dev/null 2>"$work/c.log" ||
  { echo "FAIL: train --last-layer-first-position: $(tail -3 "$work/c.log")" >&2; exit 1; }
grep -q '"event":"eval"' "$work/c/metrics.jsonl" || { echo "FAIL: no evaluation logged with --last-layer-first-position" >&2; exit 1; }
recorded=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["options"]["last_layer_first_position"])' "$work/c/run.json")
if [ "$recorded" != "True" ]; then
  echo "FAIL: run.json says last_layer_first_position is $recorded, expected True" >&2
  exit 1
fi
echo "PASS"
