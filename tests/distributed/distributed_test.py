#!/usr/bin/python3
"""Data-parallel training end to end (ctest label `distributed`), on 127.0.0.1 only:

- two processes launched by the real launcher (Debian's torchrun, Gloo) train to the same adapter
  as one process with the same global batch, within floating-point tolerance (dropout off, so
  that the two runs draw nothing different), and their evaluations, shared out, score as one
  process's do;
- a run of two processes, resumed by one process, ends where the uninterrupted run ends;
- with dropout on, the processes of a group drop different elements of their slices: on rows all
  alike, two processes with batch 8 train otherwise than one process with batch 4 (with masks
  drawn alike they would train the same, as they do with dropout off), for the sequence
  classifier's trainer and the SQuAD span head's;
- a SQuAD span head trains in two processes as in one;
- eval and predict on a file (GLUE, SQuAD, JSON lines of requests) in two processes print and
  write exactly what one process does, and warn once;
- a rank killed in the middle makes the other exit with a clear error within the timeout;
- Ctrl-C on one rank stops both at the next step, with a checkpoint.

Usage: distributed_test.py ADAPTERTUNE PROJECT_DIR WORK_DIR"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bert_reference import read_safetensors  # noqa: E402
from group_runs import clean_environment, max_difference, start_ranks, torchrun  # noqa: E402
from group_runs import run as run_command  # noqa: E402
from script_checks import check, failures, finish, script_arguments  # noqa: E402

cli, project, work = script_arguments()
glue = os.path.join(project, "data", "glue")


# The shipped base with dropout off: one process and two draw no masks, so the runs compare.
base = os.path.join(work, "base")
shutil.copytree(os.path.join(project, "models", "adaptertune-base-uncased-L4-H256"), base)
config = json.load(open(os.path.join(base, "config.json")))
config["hidden_dropout_prob"] = 0.0
config["attention_probs_dropout_prob"] = 0.0
json.dump(config, open(os.path.join(base, "config.json"), "w"), indent=2)

common = ["train", "--task", "SST-2", "--data-dir", glue, "--model", base, "--train-examples",
          "120", "--batch-size", "16", "--max-length", "32", "--lr", "1e-3", "--log-every", "1",
          "--no-progress", "--seed", "7"]
env = clean_environment()


def run(args, out):
    return run_command(args, env, out)


def group_run(extra, out):
    return torchrun([cli] + common + extra + ["--out", out], env, out)


def adapter(out):
    # The trainable tensors at the end (the last checkpoint), not the best pack: a run evaluated
    # more often may keep an earlier best.
    checkpoints = os.path.join(out, "checkpoints")
    latest = open(os.path.join(checkpoints, "latest")).read().strip()
    return read_safetensors(os.path.join(checkpoints, latest, "trainable.safetensors"))


def losses(out):
    return [e["loss"] for e in map(json.loads, open(os.path.join(out, "metrics.jsonl")))
            if e["event"] == "train"]


def evaluations(out):
    """Each evaluation's step, dev loss (none for SQuAD) and metrics, in order."""
    return [(e["step"], e.get("dev_loss", 0.0), e["metrics"])
            for e in map(json.loads, open(os.path.join(out, "metrics.jsonl")))
            if e["event"] == "eval"]


def same_evaluations(a, b):
    """The same steps and metrics (each process evaluated its share of the dev batches), the
    dev losses within what the trained tensors' difference allows."""
    return len(a) == len(b) and len(a) > 0 and all(
        x[0] == y[0] and abs(x[1] - y[1]) < 1e-4 and x[2].keys() == y[2].keys() and
        all(abs(x[2][k] - y[2][k]) < 1e-4 for k in x[2]) for x, y in zip(a, b))


# 1. Two processes (batch 16 shared out as 8 + 8) against one process with batch 16.
one = os.path.join(work, "one")
run([cli] + common + ["--max-steps", "6", "--out", one], one)
two = os.path.join(work, "two")
started = time.time()
result = group_run(["--max-steps", "6"], two)
two_seconds = time.time() - started
stdout_lines = [l for l in result.stdout.splitlines() if '"task"' in l]
check(len(stdout_lines) == 1, f"only rank 0 prints the result line: {result.stdout[-800:]}")
check("2 processes (gloo)" in result.stderr, f"rank 0 says it trains in a group: {result.stderr[-800:]}")
if not failures:
    difference = max_difference(adapter(one), adapter(two))
    check(difference < 1e-4, f"two processes differ from one by {difference} (trainable tensors)")
    a, b = losses(one), losses(two)
    check(len(a) == len(b) == 6, f"train events: {len(a)} and {len(b)}")
    check(all(abs(x - y) < 1e-4 for x, y in zip(a, b)), f"losses differ: {a} vs {b}")
    check(same_evaluations(evaluations(one), evaluations(two)),
          f"evaluations differ: {evaluations(one)} vs {evaluations(two)}")
    print(f"two processes == one: max difference {difference:.2e} over the trainable tensors, losses {b}")

# 2. Two processes stop at step 3; one process resumes to step 6: as one process for 6 steps.
# A constant learning rate, so that the schedule does not depend on the steps asked for.
constant = ["--schedule", "constant", "--warmup-ratio", "0"]
steady = os.path.join(work, "steady")
run([cli] + common + constant + ["--max-steps", "6", "--out", steady], steady)
cut = os.path.join(work, "cut")
group_run(constant + ["--max-steps", "3"], cut)
run([cli] + common + constant + ["--max-steps", "6", "--resume", "--out", cut], cut)
if not failures:
    difference = max_difference(adapter(steady), adapter(cut))
    check(difference < 1e-4, f"2 processes then 1 differ from 1 by {difference}")
    check(len(losses(cut)) == 6, f"each step logged once across the resume: {losses(cut)}")
    print(f"2 processes for 3 steps, resumed by 1 for 3 more == 1 process: max difference "
          f"{difference:.2e}")

# 2b. Dropout in a group: on a data set of one example repeated, each process's slice of 4 rows
# is what one process with batch 4 trains on. Each process's loss counts half, so the group's
# gradient is one process's exactly when every process drops the same elements of its slice:
# with dropout off the two runs agree, and with dropout on they must not. Checked for both
# trainers (a sequence classifier and a SQuAD span head), which draw their masks apart.
dropout_base = os.path.join(work, "base-dropout")
shutil.copytree(base, dropout_base)
config["hidden_dropout_prob"] = 0.1
config["attention_probs_dropout_prob"] = 0.1
json.dump(config, open(os.path.join(dropout_base, "config.json"), "w"), indent=2)


def check_own_masks(what, train_args):
    """Trains `train_args(model)` alone with batch 4 and in two processes with batch 8, with the
    base's dropout off and on, and checks the processes drew masks of their own."""
    apart = {}
    for name, model in (("off", base), ("on", dropout_base)):
        alone_out = os.path.join(work, f"alike-{what}-one-{name}")
        run([cli] + train_args(model) + ["--batch-size", "4", "--out", alone_out], alone_out)
        group_out = os.path.join(work, f"alike-{what}-two-{name}")
        torchrun([cli] + train_args(model) + ["--batch-size", "8", "--out", group_out], env,
                 group_out)
        if not failures:
            apart[name] = max_difference(adapter(alone_out), adapter(group_out))
    if failures:
        return
    check(apart["off"] < 1e-5, f"{what}, dropout off: two processes on rows alike differ from "
          f"one by {apart['off']}")
    check(apart["on"] > 100 * max(apart["off"], 1e-7),
          f"{what}, dropout on: two processes differ from one by {apart['on']} only: the "
          f"processes dropped the same elements of their slices")
    print(f"{what}, rows alike, two processes (batch 8) against one (batch 4): {apart['off']:.2e} "
          f"apart with dropout off, {apart['on']:.2e} with dropout on (each process its own masks)")


alike = os.path.join(work, "alike", "SST-2")
os.makedirs(alike)
for split in ("train", "dev"):
    open(os.path.join(alike, f"{split}.tsv"), "w").write(
        "sentence\tlabel\n" + "a gentle , funny and moving film\t1\n" * 32)
check_own_masks("SST-2", lambda model: [
    "train", "--task", "SST-2", "--data-dir", os.path.dirname(alike), "--model", model,
    "--max-length", "16", "--lr", "1e-3", "--log-every", "1", "--no-progress", "--seed", "7",
    "--max-steps", "3"] + constant)

# One question on one short paragraph, 32 times: each makes one window of the same tokens.
alike_squad = os.path.join(work, "alike-squad.json")
context = "Super Bowl 50 was won by the Denver Broncos at Levi's Stadium."
json.dump({"version": "1.1", "data": [{"title": "alike", "paragraphs": [{"context": context, "qas": [
    {"id": f"q{i}", "question": "Who won Super Bowl 50?",
     "answers": [{"text": "Denver Broncos", "answer_start": context.index("Denver")}]}
    for i in range(32)]}]}]}, open(alike_squad, "w"))
check_own_masks("SQuAD", lambda model: [
    "train", "--task", "squad", "--train-file", alike_squad, "--dev-file", alike_squad,
    "--model", model, "--max-length", "32", "--doc-stride", "12", "--max-query-length", "12",
    "--lr", "1e-3", "--log-every", "1", "--no-progress", "--seed", "7", "--max-steps", "3"]
    + constant)

# 3. SQuAD (a span head): two processes against one, the windows of each batch shared out.
squad_file = os.path.join(project, "tests", "data", "squad", "dev-v1.1.json")
squad = ["train", "--task", "squad", "--train-file", squad_file, "--dev-file", squad_file,
         "--model", base, "--max-length", "48", "--doc-stride", "12", "--max-query-length", "12",
         "--batch-size", "6", "--max-steps", "4", "--lr", "1e-3", "--log-every", "1",
         "--no-progress", "--seed", "7"]
squad_one = os.path.join(work, "squad-one")
run([cli] + squad + ["--out", squad_one], squad_one)
squad_two = os.path.join(work, "squad-two")
result = torchrun([cli] + squad + ["--out", squad_two], env, squad_two)
check(sum('"task":"squad"' in l for l in result.stdout.splitlines()) == 1,
      f"only rank 0 prints the result line: {result.stdout[-800:]}")
check("2 processes (gloo)" in result.stderr, f"rank 0 says it trains in a group: {result.stderr[-800:]}")
if not failures:
    # Two tensors get a gradient that is zero but for rounding: the span head's bias and the last
    # layer's output LayerNorm bias (each row's softmax over positions minus its one-hot answer
    # sums to zero, so a shift of every position's logit, or of the hidden state the head reads
    # the same way everywhere, changes no loss). AdamW turns that rounding noise into steps of
    # up to the learning rate, which differ between any two summation orders; they are left out.
    noise = ("qa_outputs.bias", "bert.encoder.layer.3.output.tasks.squad.LayerNorm.bias")
    kept = [{k: v for k, v in adapter(out).items() if k not in noise} for out in (squad_one, squad_two)]
    check(all(len(k) > 10 for k in kept), f"SQuAD: too few trainable tensors: {len(kept[0])}")
    difference = max_difference(*kept)
    check(difference < 1e-4, f"SQuAD: two processes differ from one by {difference}")
    a, b = losses(squad_one), losses(squad_two)
    check(len(a) == len(b) == 4 and all(abs(x - y) < 1e-4 for x, y in zip(a, b)),
          f"SQuAD losses differ: {a} vs {b}")
    check(same_evaluations(evaluations(squad_one), evaluations(squad_two)),
          f"SQuAD evaluations differ: {evaluations(squad_one)} vs {evaluations(squad_two)}")
    print(f"SQuAD, two processes == one: max difference {difference:.2e}, losses {b}")

# AdapterDrop's frozen-layer cache in a group: each process keeps the windows of its slices and
# computes only those it lacks (its slices hold other windows every epoch); two processes train
# what one does.
cached_args = squad + ["--leave-out", "0", "--cache-frozen-layers"]
cached = [os.path.join(work, f"squad-cached-{n}") for n in ("one", "two")]
run([cli] + cached_args + ["--out", cached[0]], cached[0])
torchrun([cli] + cached_args + ["--out", cached[1]], env, cached[1])
if not failures:
    results = [json.load(open(os.path.join(c, "results.json"))) for c in cached]
    check(all(r["cached_layers"] == 1 for r in results), f"SQuAD cache: {results}")
    kept = [{k: v for k, v in adapter(c).items() if k not in noise} for c in cached]
    difference = max_difference(*kept)
    check(difference < 1e-4, f"SQuAD with the cache: two processes differ from one by {difference}")
    print(f"SQuAD with the frozen-layer cache, two processes == one: max difference {difference:.2e}")


# 4. eval and predict on a file in two processes, each running its share of the batches: rank 0
# prints and writes exactly what one process does.
def evaluated_alike(args, what):
    """`eval` alone and in two processes: checks rank 0 prints the one process's line; returns it."""
    alone = run(args, work).stdout
    grouped = torchrun(args, env, work).stdout
    lines = [l[l.index("{"):] for l in grouped.splitlines() if '"metrics"' in l]
    check(len(lines) == 1 and json.loads(lines[0]) == json.loads(alone),
          f"{what} eval in two processes: {grouped[-800:]} against one: {alone}")
    return json.loads(alone) if not failures else {}


def predicted_alike(args, name):
    """`predict --out` alone and in two processes; returns both files' texts."""
    paths = [os.path.join(work, f"{name}-{n}") for n in ("one", "two")]
    run(args + ["--out", paths[0]], work)
    torchrun(args + ["--out", paths[1]], env, work)
    return [open(p).read() for p in paths] if not failures else ["", ""]


pack = os.path.join(one, "best")
use = ["--model", base, "--adapter-pack", pack, "--batch-size", "16"]
evaluated_alike([cli, "eval", "--task", "SST-2", "--data-dir", glue] + use, "SST-2")
dev_tsv = os.path.join(glue, "SST-2", "dev.tsv")
a, b = predicted_alike([cli, "predict", "--task", "SST-2", "--input", dev_tsv, "--format",
                        "logits"] + use, "predicted.txt")
if not failures:
    check(a == b and a.count("\n") == 872, "predict in two processes wrote other bytes than one")
    print("eval and predict in two processes == one process (872 SST-2 dev examples)")
# JSON lines of requests, each naming its task: the Predictor's batches shared out.
requests = os.path.join(work, "requests.jsonl")
with open(requests, "w") as f:
    for line in open(dev_tsv).read().splitlines()[1:41]:
        f.write(json.dumps({"task": "SST-2", "text": line.split("\t")[0]}) + "\n")
a, b = predicted_alike([cli, "predict", "--input", requests] + use, "answers.jsonl")
if not failures:
    check(a == b and a.count("\n") == 40, "JSON lines predict in two processes wrote other bytes")
    print("predict on JSON lines in two processes == one process (40 requests)")
# SQuAD: the windows shared out; rank 0 prints the scores and writes the answers one process does.
squad_use = ["--task", "squad", "--model", base, "--adapter-pack", os.path.join(squad_one, "best"),
             "--doc-stride", "12", "--max-query-length", "12", "--batch-size", "4"]
scores = evaluated_alike([cli, "eval", "--dev-file", squad_file] + squad_use, "SQuAD")
a, b = predicted_alike([cli, "predict", "--test-file", squad_file] + squad_use, "answers.json")
if not failures:
    check(a == b and len(json.loads(a)) == 9, "SQuAD predict in two processes wrote other bytes")
    print(f"SQuAD eval and predict in two processes == one process: {scores['metrics']}")
# A warning every process would give is given once: by rank 0.
result = torchrun([cli, "eval", "--dev-file", squad_file, "--task", "squad", "--model", base,
                   "--max-length", "48", "--doc-stride", "12", "--max-query-length", "12"], env, work)
warned = result.stderr.count("has no span head (qa_outputs)")
check(warned == 1, f"the missing span head is warned about {warned} times: {result.stderr[-800:]}")
result = subprocess.run([cli, "predict", "--task", "SST-2", "--distributed"] + use, env=env,
                        input="a fine film\n", capture_output=True, text=True, timeout=60)
check(result.returncode != 0 and "predict on stdin does not run in a group" in result.stderr,
      f"predict on stdin in a group is refused: {result.stderr[-400:]}")
result = subprocess.run([cli, "predict", "--input-format", "jsonl", "--distributed"] + use,
                        env=env, input='{"task": "SST-2", "text": "a fine film"}\n',
                        capture_output=True, text=True, timeout=60)
check(result.returncode != 0 and
      "predict on JSON lines from stdin does not run in a group" in result.stderr,
      f"JSON lines on stdin in a group are refused: {result.stderr[-400:]}")

def long_run(out):
    """Two processes started by hand (as a launcher would), on a long run; returns them once
    rank 0 has logged a step."""
    procs = start_ranks([cli] + common + ["--max-steps", "100000", "--epochs", "1000",
                                          "--distributed-timeout", "30", "--out", out], env)
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics)):
        time.sleep(0.2)
    check(os.path.exists(metrics), f"the two-process run in {out} never logged a step")
    return procs


# 5. Rank 1 killed mid-run: rank 0 ends with an error naming the failure, within the timeout.
dead = os.path.join(work, "dead")
procs = long_run(dead)
procs[1].send_signal(signal.SIGKILL)
killed = time.time()
try:
    out, err = procs[0].communicate(timeout=90)
    waited = time.time() - killed
    check(procs[0].returncode == 1, f"rank 0 exit {procs[0].returncode}, expected 1: {err[-600:]}")
    check("distributed: rank 0 of 2:" in err and "another process exited" in err,
          f"rank 0's error names the failure: {err[-600:]}")
    check(waited < 35, f"rank 0 took {waited:.1f} s to notice, timeout 30 s")
    print(f"rank 1 killed: rank 0 exited {procs[0].returncode} after {waited:.1f} s: "
          f"{err.strip().splitlines()[-1]}")
except subprocess.TimeoutExpired:
    procs[0].kill()
    check(False, "rank 0 hung after rank 1 was killed")
procs[1].wait()

# 6. Ctrl-C on one process only: both stop at the next step, rank 0 leaves a checkpoint to
# resume from, and both exit with 130 as one process does.
stopped = os.path.join(work, "stopped")
procs = long_run(stopped)
procs[1].send_signal(signal.SIGINT)
try:
    results = [p.communicate(timeout=90) for p in procs]
    codes = [p.returncode for p in procs]
    check(codes == [130, 130], f"exit codes after Ctrl-C on rank 1: {codes}: {results[0][1][-400:]}")
    check(os.path.exists(os.path.join(stopped, "checkpoints", "latest")),
          "no checkpoint after Ctrl-C on rank 1")
    print(f"Ctrl-C on rank 1: both exited {codes}, checkpoint "
          f"{open(os.path.join(stopped, 'checkpoints', 'latest')).read().strip()}")
except subprocess.TimeoutExpired:
    for p in procs:
        p.kill()
    check(False, "the group did not stop after Ctrl-C on rank 1")

finish()
