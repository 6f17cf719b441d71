#!/usr/bin/env python3
"""benchmarks/compare.py end to end at a tiny shape: both implementations run every mode, the
plain-PyTorch reference builds the same model as adaptertune (equal trainable counts for full
fine-tuning and Houlsby training), the roofline with its backward orientations and the ratios
come out, and the JSON is written;
then an A/B against another adaptertune_bench (--reference-bench), labelled as the baseline.

    benchmark_compare_test.py PROJECT_DIR BENCH CLI WORK_DIR
"""
import json
import os
import subprocess
import sys


def main():
    project, bench, cli, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "compare.json")
    subprocess.run(["/usr/bin/python3", os.path.join(project, "benchmarks/compare.py"),
                    "--shape", "main", "--layers", "1", "--hidden", "32", "--heads", "2", "--batch", "4",
                    "--seq", "16", "--precisions", "fp32", "--modes", "full,houlsby,infer-dev-dynamic,infer-dev-inorder,infer-dev-maxpad",
                    "--rounds", "1", "--steps", "2", "--warmup", "1", "--threads", "1",
                    "--bench", bench, "--cli", cli, "--out", out,
                    "--lengths-file", os.path.join(work, "lengths.txt")], check=True, stdout=subprocess.DEVNULL)
    result = json.load(open(out))
    rows = {(r["mode"], r["impl"]): r for r in result["table"]}
    for mode in ("full", "houlsby", "infer-dev-dynamic", "infer-dev-inorder", "infer-dev-maxpad"):
        for impl in ("adaptertune", "pytorch"):
            assert (mode, impl) in rows, f"no {impl} row for {mode}"
            assert rows[(mode, impl)]["steps"] == 2, rows[(mode, impl)]
    for mode in ("gemm", "gemm-input-grad", "gemm-weight-grad"):
        assert rows[(mode, "adaptertune")]["gflops"] > 0, mode
        assert (mode, "pytorch") not in rows, mode
    trainable = {}
    for r in result["records"]:
        trainable.setdefault((r["mode"], r["impl"].split("-")[0]), r["trainable"])
    for mode in ("full", "houlsby"):
        assert trainable[(mode, "adaptertune")] == trainable[(mode, "pytorch")], (mode, trainable)
    assert result["dev_examples"] == 872, result["dev_examples"]
    ratios = {r["mode"]: r for r in result["ratios"]}
    assert "vs_full" in ratios["houlsby"] and "speedup_vs_pytorch" in ratios["full"], ratios
    assert ratios["infer-dev-dynamic vs maxpad"]["speedup_vs_maxpad"] > 0
    # Forward and input gradient of the three orientations: strictly between none and all of them.
    assert 0 < ratios["linear products kept by adapters"]["vs_full"] < 1, ratios

    # The same binary as its own baseline: both sides are adaptertune, the reference labelled so.
    ab = os.path.join(work, "ab.json")
    subprocess.run(["/usr/bin/python3", os.path.join(project, "benchmarks/compare.py"),
                    "--shape", "main", "--layers", "1", "--hidden", "32", "--heads", "2", "--batch", "4",
                    "--seq", "16", "--precisions", "fp32", "--modes", "full,houlsby", "--rounds", "1",
                    "--steps", "2", "--warmup", "1", "--threads", "1", "--bench", bench,
                    "--reference-bench", bench, "--out", ab], check=True, stdout=subprocess.DEVNULL)
    result = json.load(open(ab))
    impls = {r["impl"] for r in result["table"]}
    assert impls == {"adaptertune", "baseline"}, impls
    assert all(r["impl"] in ("adaptertune", "baseline") for r in result["records"])
    ratios = {r["mode"]: r for r in result["ratios"]}
    assert ratios["full"]["speedup_vs_baseline"] > 0 and "baseline_vs_full" in ratios["houlsby"], ratios
    print("PASS")


if __name__ == "__main__":
    main()
