#!/usr/bin/python3
"""Data-parallel masked-LM pretraining end to end (ctest label `distributed`), on 127.0.0.1 only:

- two processes launched by the real launcher (Debian's torchrun, Gloo) write the model one
  process writes with the same global batch, within floating-point tolerance, with the same
  training and held-out losses (dropout off: one process and two then draw nothing different);
- a run of two processes stopped after 3 steps and resumed by one process ends where the
  uninterrupted one-process run ends;
- with dropout on, two processes write the model one process writes too (on the CPU each process
  drops its rows of the batch as one process drops them), and two processes stopped and resumed
  by two end where two processes end uninterrupted (the dropout is drawn again alike, and the
  masking stays in step);
- Ctrl-C on one rank stops both at the next step, with a checkpoint.

Usage: pretrain_distributed_test.py ADAPTERTUNE PROJECT_DIR WORK_DIR"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from bert_reference import read_safetensors  # noqa: E402
from group_runs import clean_environment, max_difference, run, start_ranks, torchrun  # noqa: E402
from script_checks import check, failures, finish, script_arguments  # noqa: E402

cli, project, work = script_arguments()
base = os.path.join(project, "models", "adaptertune-base-uncased-L4-H256")

# The shipped base's shape from random weights; dropout off unless a case turns it on.
config = json.load(open(os.path.join(base, "config.json")))
config["hidden_dropout_prob"] = 0.0
config["attention_probs_dropout_prob"] = 0.0
plain = os.path.join(work, "config.json")
json.dump(config, open(plain, "w"), indent=2)
config["hidden_dropout_prob"] = 0.1
config["attention_probs_dropout_prob"] = 0.1
dropout = os.path.join(work, "config-dropout.json")
json.dump(config, open(dropout, "w"), indent=2)

# Sentences of SST-2's training split: 400 to train on, 40 held out.
sentences = [line.split("\t")[0] for line in
             open(os.path.join(project, "data", "glue", "SST-2", "train.tsv")).read().splitlines()[1:]]
train_text = os.path.join(work, "train.txt")
open(train_text, "w").write("\n".join(sentences[:400]) + "\n")
held_out = os.path.join(work, "held-out.txt")
open(held_out, "w").write("\n".join(sentences[400:440]) + "\n")

common = ["pretrain", "--vocab", os.path.join(base, "vocab.txt"), "--text", train_text,
          "--eval-text", held_out, "--batch-size", "16", "--max-length", "32", "--log-every", "1",
          "--seed", "7", "--lr", "1e-3", "--warmup-steps", "1"]
env = clean_environment()


def one(extra, out):
    return run([cli] + common + extra + ["--out", out], env, out)


def two(extra, out):
    return torchrun([cli] + common + extra + ["--out", out], env, out)


def losses(result):
    """The training losses rank 0 logged (torchrun's tee prefixes each line with the rank)."""
    return [float(x) for x in re.findall(r"pretrain: step \d+/\d+  mlm loss ([0-9.]+)", result.stderr)]


def weights(out):
    return read_safetensors(os.path.join(out, "model.safetensors"))


# 1. Two processes (batch 16 shared out as 8 + 8) against one process with batch 16.
steps = ["--config", plain, "--steps", "6"]
alone = os.path.join(work, "one")
result_one = one(steps, alone)
group = os.path.join(work, "two")
result_two = two(steps, group)
wrote = [line for line in result_two.stdout.splitlines() if "pretrain: wrote" in line]
check(len(wrote) == 1, f"only rank 0 prints the result line: {result_two.stdout[-800:]}")
check("2 processes (gloo)" in result_two.stderr,
      f"rank 0 says it trains in a group: {result_two.stderr[-800:]}")
check(len(re.findall(r"pretrain: step 6/6  mlm loss", result_two.stderr)) == 1,
      f"only rank 0 logs: {result_two.stderr[-800:]}")
if not failures:
    difference = max_difference(weights(alone), weights(group))
    check(difference < 1e-4, f"two processes differ from one by {difference} (model.safetensors)")
    a, b = losses(result_one), losses(result_two)
    check(len(a) == len(b) == 6, f"training losses logged: {a} and {b}")
    check(all(abs(x - y) < 1e-3 for x, y in zip(a, b)), f"losses differ: {a} vs {b}")
    held = [re.search(r"held-out ([0-9.]+)", r.stdout) for r in (result_one, result_two)]
    check(all(held) and abs(float(held[0][1]) - float(held[1][1])) < 1e-3,
          f"held-out losses differ: {result_one.stdout.strip()} vs {result_two.stdout.strip()}")
    print(f"two processes == one: max difference {difference:.2e} over the weights, losses {b}, "
          f"{wrote[0].strip()}")

# 2. Two processes stop after step 3; one process resumes to step 6: as one process for 6 steps.
# A constant learning rate, so that the schedule does not depend on the steps asked for.
constant = ["--config", plain, "--steps", "6", "--schedule", "constant"]
steady = os.path.join(work, "steady")
one(constant, steady)
cut = os.path.join(work, "cut")
two(constant + ["--stop-after", "3"], cut)
resumed = one(constant + ["--resume"], cut)
check("pretrain: resumed from" in resumed.stderr and "at step 3" in resumed.stderr,
      f"one process resumed the group's checkpoint: {resumed.stderr[-600:]}")
if not failures:
    difference = max_difference(weights(steady), weights(cut))
    check(difference < 1e-4, f"2 processes then 1 differ from 1 by {difference}")
    print(f"2 processes for 3 steps, resumed by 1 for 3 more == 1 process: max difference "
          f"{difference:.2e}")

# 3. Dropout on: two processes write the model one process writes, and two processes stopped
# after 2 steps and resumed by two end where two processes end uninterrupted.
noisy = ["--config", dropout, "--steps", "4", "--schedule", "constant"]
whole = os.path.join(work, "dropout-whole")
result_two = two(noisy, whole)
alone = os.path.join(work, "dropout-one")
result_one = one(noisy, alone)
quiet = os.path.join(work, "dropout-off")
one(["--config", plain, "--steps", "4", "--schedule", "constant"], quiet)
if not failures:
    difference = max_difference(weights(alone), weights(whole))
    check(difference < 1e-4, f"with dropout, two processes differ from one by {difference}")
    a, b = losses(result_one), losses(result_two)
    check(len(a) == len(b) == 4 and all(abs(x - y) < 1e-3 for x, y in zip(a, b)),
          f"with dropout, the losses differ: {a} vs {b}")
    dropped = max_difference(weights(alone), weights(quiet))
    check(dropped > 10 * difference, f"dropout changed the model by {dropped} only")
    print(f"dropout on, two processes == one: max difference {difference:.2e} over the weights "
          f"(dropout itself moved them by {dropped:.2e}), losses {b}")
parts = os.path.join(work, "dropout-parts")
two(noisy + ["--stop-after", "2"], parts)
two(noisy + ["--resume"], parts)
if not failures:
    difference = max_difference(weights(whole), weights(parts))
    check(difference < 1e-5, f"with dropout, a resumed group differs from an uninterrupted one "
          f"by {difference}")
    print(f"dropout on, 2 processes stopped after 2 steps and resumed == uninterrupted: max "
          f"difference {difference:.2e}")

# 4. Ctrl-C on one process only: both stop at the next step, rank 0 leaves a checkpoint to
# resume from, and both exit with 130 as one process does.
stopped = os.path.join(work, "stopped")
procs = start_ranks([cli] + common + ["--config", plain, "--steps", "100000", "--checkpoint-every",
                                      "1", "--distributed-timeout", "30", "--out", stopped], env)
latest = os.path.join(stopped, "checkpoints", "latest")
deadline = time.time() + 120
while time.time() < deadline and not os.path.exists(latest):
    time.sleep(0.2)
check(os.path.exists(latest), f"the two-process run in {stopped} never saved a checkpoint")
procs[1].send_signal(signal.SIGINT)
try:
    results = [p.communicate(timeout=90) for p in procs]
    codes = [p.returncode for p in procs]
    check(codes == [130, 130], f"exit codes after Ctrl-C on rank 1: {codes}: {results[0][1][-400:]}")
    check("pretrain: interrupted; checkpoint saved" in results[0][1],
          f"rank 0 reports the checkpoint: {results[0][1][-400:]}")
    check("interrupted" not in results[1][1], f"rank 1 reports nothing: {results[1][1][-400:]}")
    print(f"Ctrl-C on rank 1: both exited {codes}, checkpoint {open(latest).read().strip()}")
except subprocess.TimeoutExpired:
    for p in procs:
        p.kill()
    check(False, "the group did not stop after Ctrl-C on rank 1")

finish()
