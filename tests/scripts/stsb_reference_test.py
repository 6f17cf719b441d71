"""scripts/stsb_reference.py on the first pairs of STS-B with the shipped base: its Spearman agrees
with the definition (ties get average ranks), and a short run writes both figures.
Usage: stsb_reference_test.py ADAPTERTUNE PROJECT_DIR WORK_DIR"""
import importlib.util
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from script_checks import check, finish, script_arguments  # noqa: E402

cli, project, work = script_arguments()
script = os.path.join(project, "scripts", "stsb_reference.py")
spec = importlib.util.spec_from_file_location("stsb_reference", script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
check(abs(module.spearman([1, 2, 3], [10, 20, 30]) - 1) < 1e-12, "same order gives 1")
check(abs(module.spearman([1, 2, 3], [3, 2, 1]) + 1) < 1e-12, "reversed order gives -1")
# Ranks 0.5, 0.5, 2 against 0, 1, 2: the Pearson correlation of those is sqrt(3)/2.
check(abs(module.spearman([7, 7, 9], [1, 2, 3]) - 3 ** 0.5 / 2) < 1e-12, "ties get average ranks")

out = os.path.join(work, "stsb.json")
proc = subprocess.run([sys.executable, script, "--cli", cli, "--limit", "40", "--epochs", "2",
                       "--threads", "1", "--json", out], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
check(proc.returncode == 0, "the script runs: " + proc.stderr)
if proc.returncode == 0:
    result = json.load(open(out))
    check(result["dev_pairs"] == 40, f"40 dev pairs, got {result['dev_pairs']}")
    figures = ([result["word_overlap_spearman"], result["unsupervised_spearman"]] +
               result["fine_tuned_spearman"])
    check(len(figures) == 4, f"overlap, unsupervised and one figure per epoch: {figures}")
    check(all(-1 <= f <= 1 for f in figures), f"correlations lie in [-1, 1]: {figures}")
    check("unsupervised (mean-pooled cosine): dev Spearman" in proc.stdout, proc.stdout)
bad = subprocess.run([sys.executable, script, "--cli", "/nonexistent/adaptertune", "--limit", "4",
                      "--epochs", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
check(bad.returncode != 0 and "cannot run /nonexistent/adaptertune (--cli)" in bad.stderr,
      "a missing CLI is a clear error: " + bad.stderr)
finish()
