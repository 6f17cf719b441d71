#!/usr/bin/env bash
# One base, many tasks through the CLI: three tasks trained one after another as packs; eval of
# the first with every pack loaded equals eval with it alone (no forgetting, no interference);
# predict on mixed JSON lines equals the single-task runs line by line; a fusion of two packs
# trains on a third task and its pack evaluates as the run did, and so does an adapter trained
# stacked on another; three tasks train in one run, and two on one stack; inspect describes them.
# Usage: multi_task.sh ADAPTERTUNE PROJECT_DIR WORK_DIR
source "$(dirname "$0")/harness.sh"

common=(--data-dir "$glue" --model "$base" --train-examples 64 --batch-size 16 --max-steps 3
        --max-length 32 --no-progress)
train() { # TASK DIR [options]
  local task=$1 dir=$2
  shift 2
  "$cli" train --task "$task" "${common[@]}" --out "$work/$dir" "$@" >"$work/$dir.json" \
    2>"$work/$dir.log" || fail "train $task: $(tail -3 "$work/$dir.log")"
}
packs=(--adapter-pack "$work/sst2/best" --adapter-pack "$work/stsb/best" --adapter-pack "$work/mrpc/best")

train SST-2 sst2
"$cli" eval --task SST-2 --data-dir "$glue" --model "$base" --adapter-pack "$work/sst2/best" \
  >"$work/eval_alone.json" 2>"$work/eval_alone.log" || fail "eval alone: $(cat "$work/eval_alone.log")"
train STS-B stsb --adapter pfeiffer
train MRPC mrpc --train adapters-head

# inspect describes the base and the three tasks as serve's GET /v1/model and /v1/tasks do.
"$cli" inspect --model "$base" "${packs[@]}" >"$work/inspect.json" 2>"$work/err" ||
  fail "inspect: $(cat "$work/err")"
/usr/bin/python3 - "$work/inspect.json" <<'PY' || fail "inspect: $(cat "$work/inspect.json")"
import json, sys
out = json.load(open(sys.argv[1]))
model, tasks = out["model"], {t["name"]: t for t in out["tasks"]}
assert model["model"] == "adaptertune-base-uncased-L4-H256" and model["tasks"] == ["SST-2", "STS-B", "MRPC"]
assert model["config"]["num_hidden_layers"] == 4 and model["no_task"]["trained"] is False
assert tasks["STS-B"]["problem_type"] == "regression" and tasks["STS-B"]["labels"] is None
assert tasks["MRPC"]["labels"] == ["0", "1"] and tasks["SST-2"]["max_length"] == 32
assert tasks["STS-B"]["adapter_config"]["mh_adapter"] is False  # Pfeiffer's
assert all(t["base"]["matches"] and t["base"]["config_sha256"] == model["config_sha256"] for t in tasks.values())
assert all(0 < t["bytes"] < model["bytes"] / 20 for t in tasks.values())
assert any("no classifier weights" in w for w in out["warnings"]), out["warnings"]
PY
refused "sst2: not an adapter pack" "$cli" inspect --model "$base" --adapter-pack "$work/sst2"

# Task A evaluated on one model holding all three packs: the same result, to the last digit.
"$cli" eval --task SST-2 --data-dir "$glue" --model "$base" "${packs[@]}" \
  >"$work/eval_all.json" 2>"$work/eval_all.log" || fail "eval with three packs: $(cat "$work/eval_all.log")"
cmp -s "$work/eval_alone.json" "$work/eval_all.json" ||
  fail "SST-2 changed with other packs loaded: $(cat "$work/eval_alone.json") vs $(cat "$work/eval_all.json")"
grep -q '"adapter":"SST-2"' "$work/eval_all.json" || fail "eval did not pick the SST-2 pack: $(cat "$work/eval_all.json")"
"$cli" eval --task STS-B --data-dir "$glue" --model "$base" "${packs[@]}" >"$work/eval_stsb.json" \
  2>&1 || fail "eval STS-B with three packs: $(cat "$work/eval_stsb.json")"
grep -q '"pearson"' "$work/eval_stsb.json" || fail "STS-B metrics: $(cat "$work/eval_stsb.json")"
"$cli" eval --task RTE --data-dir "$glue" --model "$base" "${packs[@]}" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'none is named RTE: choose one with --adapter' "$work/err" ||
  fail "eval RTE with unrelated packs: $(cat "$work/err")"

# A Stack of packs (SST-2's adapter on STS-B's output, SST-2's head) runs, and is not SST-2 alone;
# setups that give one output per branch are refused for eval with one line.
"$cli" eval --task SST-2 --data-dir "$glue" --model "$base" "${packs[@]}" --adapter "Stack(STS-B, SST-2)" \
  >"$work/eval_stack.json" 2>"$work/err" || fail "eval a Stack: $(cat "$work/err")"
grep -q '"adapter":"SST-2"' "$work/eval_stack.json" || fail "Stack eval: $(cat "$work/eval_stack.json")"
cmp -s "$work/eval_alone.json" "$work/eval_stack.json" && fail "the Stack gave SST-2's result alone"
"$cli" eval --task SST-2 --data-dir "$glue" --model "$base" "${packs[@]}" \
  --adapter "Parallel(SST-2, MRPC)" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'run one adapter or one Stack' "$work/err" || fail "eval Parallel: $(cat "$work/err")"
"$cli" eval --task SST-2 --data-dir "$glue" --model "$base" "${packs[@]}" \
  --adapter "Stack(SST-2, Parallel(MRPC, STS-B))" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'Parallel is not supported inside a Stack' "$work/err" ||
  fail "a Parallel inside a Stack: $(cat "$work/err")"

# Single-task runs...
printf '%s\n' "a gorgeous, witty, seductive movie." "the plot is a mess." "it is fine." >"$work/sst2.txt"
printf '%s\t%s\n' "A man plays a guitar." "A man is playing music." "A cat sleeps." "The stock fell." \
  "Two dogs run in a field." "Animals are moving." "He said no." "He refused, and said so loudly." \
  >"$work/pairs.txt"
"$cli" predict --task SST-2 --model "$base" --adapter-pack "$work/sst2/best" --format json \
  <"$work/sst2.txt" >"$work/single_sst2.jsonl" 2>"$work/err" || fail "predict SST-2: $(cat "$work/err")"
"$cli" predict --task STS-B --model "$base" --adapter-pack "$work/stsb/best" --format json \
  <"$work/pairs.txt" >"$work/single_stsb.jsonl" 2>"$work/err" || fail "predict STS-B: $(cat "$work/err")"
"$cli" predict --task MRPC --model "$base" "${packs[@]}" --adapter MRPC --format json \
  <"$work/pairs.txt" >"$work/single_mrpc.jsonl" 2>"$work/err" || fail "predict MRPC: $(cat "$work/err")"

# ...and one mixed run over all of it, interleaved, with lines that name no task.
/usr/bin/python3 - "$work" <<'PY' || fail "could not write the mixed requests"
import json, sys
work = sys.argv[1]
sst2 = open(f"{work}/sst2.txt").read().splitlines()
pairs = [line.split("\t") for line in open(f"{work}/pairs.txt").read().splitlines()]
lines = []
for i in range(3):
    lines.append({"task": "SST-2", "text": sst2[i]})
    lines.append({"task": "STS-B", "text": pairs[i][0], "text_pair": pairs[i][1]})
    lines.append({"text": "no task names this line"})
    lines.append({"task": "MRPC", "text": pairs[i][0], "text_pair": pairs[i][1]})
lines.append({"task": "STS-B", "text": pairs[3][0], "text_pair": pairs[3][1]})
lines.append({"task": "MRPC", "text": pairs[3][0], "text_pair": pairs[3][1]})
with open(f"{work}/mixed.jsonl", "w") as f:
    for line in lines:
        f.write(json.dumps(line) + "\n")
PY
"$cli" predict --model "$base" "${packs[@]}" --input "$work/mixed.jsonl" --batch-size 4 \
  >"$work/mixed_out.jsonl" 2>"$work/mixed.log" || fail "predict mixed: $(cat "$work/mixed.log")"
grep -qE '^predict: base [0-9,]+ bytes; 3 tasks add [0-9,]+ bytes$' "$work/mixed.log" ||
  fail "no memory line: $(cat "$work/mixed.log")"
# The same requests on stdin.
"$cli" predict --model "$base" "${packs[@]}" --input-format jsonl --batch-size 4 <"$work/mixed.jsonl" \
  >"$work/mixed_stdin.jsonl" 2>/dev/null || fail "predict mixed from stdin"
cmp -s "$work/mixed_out.jsonl" "$work/mixed_stdin.jsonl" || fail "stdin and file answers differ"
/usr/bin/python3 - "$work" <<'PY' || fail "mixed output differs from the single-task runs"
import json, sys
work = sys.argv[1]
mixed = [json.loads(l) for l in open(f"{work}/mixed_out.jsonl")]
requests = [json.loads(l) for l in open(f"{work}/mixed.jsonl")]
assert len(mixed) == len(requests), (len(mixed), len(requests))
single = {t: [json.loads(l) for l in open(f"{work}/single_{f}.jsonl")]
          for t, f in (("SST-2", "sst2"), ("STS-B", "stsb"), ("MRPC", "mrpc"))}
seen = {t: 0 for t in single}
def close(a, b):
    return abs(a - b) <= 1e-5 * max(1.0, abs(b))
for request, answer in zip(requests, mixed):
    task = request.get("task")
    assert answer["task"] == task, (answer, task)
    if task is None:
        assert len(answer["probabilities"]) == 2, answer
        continue
    expected = single[task][seen[task]]
    seen[task] += 1
    assert set(answer) == set(expected), (answer, expected)
    assert answer.get("label") == expected.get("label"), (answer, expected)
    assert all(close(a, b) for a, b in zip(answer["logits"], expected["logits"])), (answer, expected)
    if "score" in expected:
        assert close(answer["score"], expected["score"]), (answer, expected)
    else:
        for label, p in expected["probabilities"].items():
            assert close(answer["probabilities"][label], p), (answer, expected)
assert seen == {t: len(v) for t, v in single.items()}, seen
print("mixed == single, line by line:", len(mixed), "lines")
PY

# AdapterFusion: a fusion of SST-2's and MRPC's packs trained on RTE, both adapters frozen, kept
# in AdapterHub's fusion layout; eval with the packs reproduces the run's best dev score.
train RTE fusion --fuse SST-2,MRPC --adapter-pack "$work/sst2/best" --adapter-pack "$work/mrpc/best"
for file in adapter_fusion_config.json model_adapter_fusion.safetensors model_head.safetensors; do
  [ -f "$work/fusion/best/$file" ] || fail "fusion pack lacks $file"
done
"$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/fusion/best" \
  "${packs[@]}" --max-length 32 >"$work/eval_fusion.json" 2>"$work/err" || fail "eval the fusion: $(cat "$work/err")"
/usr/bin/python3 - "$work" <<'PY' || fail "fusion eval differs from the run's best"
import json, sys
work = sys.argv[1]
run = json.load(open(f"{work}/fusion.json"))
ev = json.load(open(f"{work}/eval_fusion.json"))
assert ev["adapter"] == "SST-2,MRPC" and ev["fused"] == ["SST-2", "MRPC"], ev
assert ev["stacked_on"] == [], ev
assert ev["metrics"] == run["dev"], (ev, run)
PY
"$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/fusion/best" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'SST-2, MRPC not loaded (load their adapter packs first)' "$work/err" ||
  fail "fusion without its adapters: $(cat "$work/err")"
"$cli" train --task RTE "${common[@]}" --out "$work/fusion2" --fuse SST-2,STS-B "${packs[@]}" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'only adapters placed alike can be fused' "$work/err" ||
  fail "fusing Houlsby with Pfeiffer: $(cat "$work/err")"

# Stacked training (MAD-X's task adapter on a language adapter): RTE's adapter trained on top of
# STS-B's, which stays frozen; run.json names the stack; eval of the Stack of both packs
# reproduces the run's best dev score, and RTE's pack alone is another model. The pack records
# its stack: eval runs it without --adapter, and refuses it without the pack below.
# check_stacked RUN ADAPTER EVAL [ALONE]: run.json names ADAPTER stacked on STS-B, EVAL (the Stack
# of the packs) gives the run's best dev score, and ALONE (the pack without the stack) another loss.
check_stacked() {
  /usr/bin/python3 - "$work" "$@" <<'PY' || fail "stacked run $1: see above"
import json, sys
work, name, adapter, evaluated = sys.argv[1:5]
run = json.load(open(f"{work}/{name}.json"))
record = json.load(open(f"{work}/{name}/run.json"))
assert record["adapter"] == adapter and record["stacked_on"] == ["STS-B"], record
ev = json.load(open(f"{work}/{evaluated}"))
assert ev["metrics"] == run["dev"], (ev, run)
if len(sys.argv) > 5:
    assert ev["loss"] != json.load(open(f"{work}/{sys.argv[5]}"))["loss"], ev
PY
}
train RTE stacked --adapter-pack "$work/stsb/best" --stack-on STS-B
grep -q 'adapter Stack(STS-B, RTE)' "$work/stacked.log" || fail "stacked train log: $(cat "$work/stacked.log")"
"$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/stsb/best" \
  --adapter-pack "$work/stacked/best" --adapter "Stack(STS-B, RTE)" --max-length 32 \
  >"$work/eval_stacked.json" 2>"$work/err" || fail "eval the stack: $(cat "$work/err")"
"$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/stacked/best" \
  --adapter RTE --max-length 32 >"$work/eval_stacked_alone.json" 2>"$work/err" ||
  fail "eval RTE alone: $(cat "$work/err")"
check_stacked stacked RTE eval_stacked.json eval_stacked_alone.json
grep -q 'warning: .*stacked/best was trained as Stack(STS-B, RTE); running RTE as --adapter asks' \
  "$work/err" || fail "RTE alone without a warning: $(cat "$work/err")"
"$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/stacked/best" \
  --adapter-pack "$work/stsb/best" --max-length 32 >"$work/eval_stacked_default.json" 2>"$work/err" ||
  fail "eval the stacked pack as recorded: $(cat "$work/err")"
cmp -s "$work/eval_stacked.json" "$work/eval_stacked_default.json" ||
  fail "the recorded stack: $(cat "$work/eval_stacked_default.json") vs $(cat "$work/eval_stacked.json")"
refused 'stacked/best was trained as Stack(STS-B, RTE): give the pack of STS-B with --adapter-pack too (or --adapter RTE to run it alone)' \
  "$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/stacked/best"
# A fusion trains on top of a Stack too.
train RTE fusion_stacked --fuse SST-2,MRPC --stack-on STS-B "${packs[@]}"
"$cli" eval --task RTE --data-dir "$glue" --model "$base" --adapter-pack "$work/fusion_stacked/best" \
  "${packs[@]}" --max-length 32 \
  >"$work/eval_fusion_stacked.json" 2>"$work/err" || fail "eval the stacked fusion: $(cat "$work/err")"
check_stacked fusion_stacked SST-2,MRPC eval_fusion_stacked.json
refused 'train --adapter-pack loads adapters to fuse (--fuse) or to stack the new adapter on (--stack-on)' \
  "$cli" train --task RTE "${common[@]}" --out "$work/refused" --adapter-pack "$work/stsb/best"
refused 'SST-2 is fused too (--fuse SST-2,MRPC); an adapter is either fused or stacked on' \
  "$cli" train --task RTE "${common[@]}" --out "$work/refused" --fuse SST-2,MRPC --stack-on SST-2 "${packs[@]}"
refused '--stack-on MRPC: MRPC is none of the --adapter-pack packs (STS-B)' \
  "$cli" train --task RTE "${common[@]}" --out "$work/refused" --adapter-pack "$work/stsb/best" --stack-on MRPC
refused '--stack-on trains a new adapter on top of the packs' \
  "$cli" train --task RTE "${common[@]}" --out "$work/refused" --adapter-pack "$work/stsb/best" \
  --stack-on STS-B --train full

# Multi-task training: three tasks in one run, each its adapter and head on the one base, batches
# interleaved in proportion to the data; each task's best pack evaluates as the run logged it.
"$cli" train --task SST-2,STS-B,MRPC --data-dir "$glue" --model "$base" --train-examples 48 \
  --batch-size 16 --epochs 2 --max-length 32 --no-progress --out "$work/together" \
  >"$work/together.json" 2>"$work/together.log" || fail "multi-task train: $(tail -3 "$work/together.log")"
for task in SST-2 STS-B MRPC; do
  "$cli" eval --task "$task" --data-dir "$glue" --model "$base" --adapter-pack "$work/together/best/$task" \
    >"$work/together_eval_$task.json" 2>"$work/err" || fail "eval $task of the multi-task run: $(cat "$work/err")"
done
/usr/bin/python3 - "$work" <<'PY' || fail "multi-task run: see above"
import json, sys
work = sys.argv[1]
run = json.load(open(f"{work}/together.json"))
assert run["task"] == "SST-2,STS-B,MRPC", run
assert [t["task"] for t in run["tasks"]] == ["SST-2", "STS-B", "MRPC"], run
for t in run["tasks"]:
    assert t["batches"] == 6, t  # two passes over 48 examples in batches of 16
    assert t["best_model"] == f"{work}/together/best/{t['task']}", t
    ev = json.load(open(f"{work}/together_eval_{t['task']}.json"))
    assert ev["metrics"] == t["dev"], (ev, t)
evals = [e for e in map(json.loads, open(f"{work}/together/metrics.jsonl")) if e["event"] == "eval"]
assert [e["task"] for e in evals] == ["SST-2", "STS-B", "MRPC"] * 2, evals
assert "spearmanr" in evals[1]["metrics"], evals[1]
PY
# Several tasks on one stack: each task's adapter trains on top of STS-B's, and each pack,
# recording the stack, evaluates as the run logged it without --adapter.
"$cli" train --task SST-2,MRPC --adapter-pack "$work/stsb/best" --stack-on STS-B --data-dir "$glue" \
  --model "$base" --train-examples 32 --batch-size 16 --epochs 1 --max-length 32 --no-progress \
  --out "$work/together_stacked" >"$work/together_stacked.json" 2>"$work/together_stacked.log" ||
  fail "multi-task stacked train: $(tail -3 "$work/together_stacked.log")"
for task in SST-2 MRPC; do
  grep -q "train: $task, .* adapter Stack(STS-B, $task)" "$work/together_stacked.log" ||
    fail "the $task stack: $(cat "$work/together_stacked.log")"
  "$cli" eval --task "$task" --data-dir "$glue" --model "$base" --adapter-pack "$work/stsb/best" \
    --adapter-pack "$work/together_stacked/best/$task" >"$work/together_stacked_eval_$task.json" \
    2>"$work/err" || fail "eval stacked $task of the multi-task run: $(cat "$work/err")"
done
/usr/bin/python3 - "$work" <<'PY' || fail "multi-task stacked run: see above"
import json, sys
work = sys.argv[1]
for t in json.load(open(f"{work}/together_stacked.json"))["tasks"]:
    config = json.load(open(f"{t['best_model']}/adapter_config.json"))
    assert config["adaptertune"]["stacked_on"] == ["STS-B"], config
    ev = json.load(open(f"{work}/together_stacked_eval_{t['task']}.json"))
    assert ev["metrics"] == t["dev"], (ev, t)
PY
"$cli" train --task SST-2,MRPC --fuse SST-2,MRPC "${packs[@]}" "${common[@]}" --out "$work/refused" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'takes no --fuse' "$work/err" || fail "--fuse with several tasks: $(cat "$work/err")"
"$cli" train --task SST-2,sst2 "${common[@]}" --out "$work/refused" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q -- '--task names SST-2 twice' "$work/err" || fail "a task twice: $(cat "$work/err")"
"$cli" train --task SST-2,MRPC --train full "${common[@]}" --out "$work/refused" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'trains an adapter per task' "$work/err" || fail "several tasks, full: $(cat "$work/err")"
"$cli" train --task SST-2 --sampling-temperature 2 "${common[@]}" --out "$work/refused" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q -- '--sampling-temperature interleaves the tasks' "$work/err" ||
  fail "--sampling-temperature with one task: $(cat "$work/err")"
[ -e "$work/refused" ] && fail "a refused run wrote $work/refused"

# Bad requests: one line naming the file and line.
printf '%s\n' '{"task": "SST-2", "text": "fine"}' '{"task": "SST2", "text": "typo"}' >"$work/bad.jsonl"
"$cli" predict --model "$base" "${packs[@]}" --input "$work/bad.jsonl" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'bad.jsonl:2: no task "SST2" among the adapter packs (SST-2, STS-B, MRPC)' "$work/err" ||
  fail "unknown task: $(cat "$work/err")"
printf '%s\n' '{"task": "SST-2", "txt": "fine"}' >"$work/bad2.jsonl"
"$cli" predict --model "$base" "${packs[@]}" --input "$work/bad2.jsonl" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q 'bad2.jsonl:1: expected {"text": string}' "$work/err" || fail "missing text: $(cat "$work/err")"
"$cli" predict --task SST-2 --model "$base" "${packs[@]}" --input "$work/mixed.jsonl" >/dev/null 2>"$work/err"
[ $? -eq 1 ] && grep -q -- '--task does not apply to JSON lines input' "$work/err" || fail "--task with JSON lines: $(cat "$work/err")"

finish
