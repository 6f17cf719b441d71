"""scripts/project_pretraining.py on logs of a known curve: it finds the power law back, projects
steps and losses from it, says when a loss lies below the curve's floor, turns a target score into
steps through --link, and refuses too few points and a link that does not rise.
Usage: project_pretraining_test.py ADAPTERTUNE PROJECT_DIR WORK_DIR"""
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from script_checks import check, finish, script_arguments  # noqa: E402

cli, project, work = script_arguments()
script = os.path.join(project, "scripts", "project_pretraining.py")
E, A, ALPHA = 2.0, 20.0, 0.5


def curve(step):
    return E + A * step ** -ALPHA


def write_log(name, steps):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write("pretrain: step 0/80000  held-out mlm loss 10.6000\n")  # before the warmup: left out
        for step in steps:
            f.write(f"pretrain: step {step}/80000  mlm loss 9.9  lr 5.00e-04  1 s\n")
            f.write(f"pretrain: step {step}/80000  held-out mlm loss {curve(step):.4f}\n")
        # A resumed run logs a step again: the last value counts.
        f.write(f"pretrain: step {steps[-1]}/80000  held-out mlm loss {curve(steps[-1]):.4f}\n")
    return path


def projected_step(text, prefix):
    """The step after `prefix` in the output, or None: the logged losses have 4 decimals, so the
    step is checked to within half a percent."""
    match = re.search(re.escape(prefix) + r".*?step ([0-9,]+)", text)
    return int(match.group(1).replace(",", "")) if match else None


def near(step, expected):
    return step is not None and abs(step - expected) <= expected * 0.005


def run(*arguments):
    return subprocess.run([sys.executable, script, *arguments], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


log = write_log("main.log", list(range(1500, 10001, 500)))
proc = run(log, "--at", "40000", "--loss", "2.2", "1.9", "--seconds-per-step", "0.9")
check(proc.returncode == 0, "the script runs: " + proc.stderr)
check("(18 points)" in proc.stdout and "L(s) = 2.000 + 20.0" in proc.stdout and "s^-0.500" in proc.stdout,
      "the fit finds E, A and alpha back: " + proc.stdout)
check(f"at step 40000: {curve(40000):.3f}" in proc.stdout, "the loss at a step: " + proc.stdout)
# 2.2 = 2 + 20 / sqrt(s) at s = 10,000.
check(near(projected_step(proc.stdout, "main-run loss 2.2:"), 10000) and
      "(2.5 h at 0.9 s a step)" in proc.stdout,
      "the steps to a loss, in hours: " + proc.stdout)
check("main-run loss 1.9: never (the fit's floor is 2.000)" in proc.stdout,
      "a loss below the floor is never reached: " + proc.stdout)

# Scores 70 and 80 at decayed losses 2.4 and 2.2: 85 needs 2.1, a main-run loss of 2.1 + 0.1 = 2.2.
proc = run(log, "--link", "2.4=70", "2.2=80", "--target", "85", "--decay-drop", "0.1")
check(proc.returncode == 0, "a target through links runs: " + proc.stderr)
check("85.0 needs a decayed loss of 2.100, a main-run loss of 2.200" in proc.stdout and
      near(projected_step(proc.stdout, "a main-run loss of 2.200"), 10000),
      "the target's steps: " + proc.stdout)

proc = run(log, "--link", "2.4=80", "2.2=70", "--target", "85", "--decay-drop", "0.1")
check(proc.returncode != 0 and "do not rise as the loss falls" in proc.stderr,
      "a link that falls as the loss falls projects nothing: " + proc.stderr)
proc = run(log, "--link", "2.4=80", "--target", "85")
check(proc.returncode != 0 and "--target needs two --link points or more and --decay-drop" in proc.stderr,
      "a target needs two links and the decay's drop: " + proc.stderr)
# A curve straight in log steps has no floor a power law could find: the fit keeps E at 0 rather
# than go negative (a loss has no negative floor), and still fits.
straight = os.path.join(work, "straight.log")
with open(straight, "w") as f:
    for step in range(1500, 10001, 500):
        f.write(f"pretrain: step {step}/80000  held-out mlm loss {6 - 0.3 * math.log(step):.4f}\n")
proc = run(straight)
match = re.search(r"L\(s\) = (-?[0-9.]+) \+", proc.stdout)
check(proc.returncode == 0 and match and float(match.group(1)) >= 0,
      "the floor is never negative: " + proc.stdout + proc.stderr)
short = write_log("short.log", [1500, 2000, 2500])
proc = run(short)
check(proc.returncode != 0 and "needs at least 4 held-out points, got 3" in proc.stderr and short in proc.stderr,
      "too few points are refused, naming the log: " + proc.stderr)
finish()
