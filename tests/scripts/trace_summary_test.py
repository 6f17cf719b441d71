#!/usr/bin/env python3
"""benchmarks/trace_summary.py: a Kineto-shaped GPU trace (busy time with overlapping streams
counted once, span, idle, kernels by class), an autograd-profiler CPU trace (self times of nested
operators), both side by side with --json, a stalled call named as one, the refusals; then real traces of adaptertune_bench
--profile and reference_step.py --profile at a tiny shape, where this library's own kernels must
show up under their RecordFunction names.

    trace_summary_test.py PROJECT_DIR BENCH WORK_DIR
"""
import json
import os
import subprocess
import sys


def close(actual, expected, what):
    assert abs(actual - expected) < 1e-9, f"{what}: {actual} != {expected}"


def run(script, *args):
    return subprocess.run(["/usr/bin/python3", script, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def gpu_trace():
    def x(cat, name, ts, dur, tid=1):
        return {"ph": "X", "cat": cat, "name": name, "pid": 0, "tid": tid, "ts": ts, "dur": dur}
    return {"schemaVersion": 1, "traceEvents": [
        x("cpu_op", "aten::linear", 0, 100),
        x("cpu_op", "aten::addmm", 10, 80),
        x("cuda_runtime", "cudaLaunchKernel", 20, 5),
        x("kernel", "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n", 100, 300, tid=7),
        # Another stream, overlapping the product by 50 us: busy time counts that once.
        x("kernel", "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<c10::BFloat16, float>",
          350, 100, tid=8),
        x("gpu_memcpy", "Memcpy HtoD (Pageable -> Device)", 600, 50, tid=7),
        x("kernel", "pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64> >", 700, 200, tid=7),
        x("kernel", "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>",
          900, 100, tid=7),
        {"ph": "f", "cat": "ac2g", "name": "flow", "pid": 0, "tid": 7, "ts": 100, "id": 1},
    ]}


def cpu_trace():
    def x(name, ts, dur, tid=1):
        return {"name": name, "ph": "X", "ts": ts, "dur": dur, "tid": tid, "pid": "CPU Functions",
                "args": {}}
    return [
        x("aten::linear", 0, 100),
        x("aten::addmm", 10, 30),
        x("aten::gelu", 50, 40),
        x("aten::copy_", 55, 10),
        x("adaptertune::AdamW.step", 200, 20, tid=2),
    ]


def stalled_trace():
    """Four calls of one cheap operator, one of them stalled, and an operator called twice."""
    def x(name, ts, dur):
        return {"name": name, "ph": "X", "ts": ts, "dur": dur, "tid": 1, "pid": "CPU Functions",
                "args": {}}
    return [x("aten::fill_", 0, 500), x("aten::fill_", 1000, 600), x("aten::fill_", 2000, 30000),
            x("aten::fill_", 40000, 550), x("aten::gelu", 50000, 5000), x("aten::gelu", 60000, 50)]


def main():
    project, bench, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    script = os.path.join(project, "benchmarks/trace_summary.py")
    gpu_path, cpu_path = os.path.join(work, "gpu.json"), os.path.join(work, "cpu.json")
    json.dump(gpu_trace(), open(gpu_path, "w"))
    json.dump(cpu_trace(), open(cpu_path, "w"))

    out = os.path.join(work, "summary.json")
    proc = run(script, "--steps", "2", "--json", out, f"gpu={gpu_path}", f"cpu={cpu_path}")
    assert proc.returncode == 0, proc.stderr
    for text in ("gpu", "cpu", "GPU busy, ms", "GPU kernel or CPU operator self time by class",
                 "mixed"):
        assert text in proc.stdout + proc.stderr, (text, proc.stdout)
    proc = run(script, "--steps", "2", gpu_path)
    assert proc.returncode == 0 and "\nkernel time by class" in proc.stdout, proc.stdout
    result = json.load(open(out))
    gpu, cpu = result["gpu"], result["cpu"]
    assert gpu["kind"] == "gpu" and cpu["kind"] == "cpu", (gpu["kind"], cpu["kind"])
    # Busy: [100, 450) + [600, 650) + [700, 1000) = 700 us over 2 steps; span 900 us.
    close(gpu["gpu_busy_ms"], 0.35, "busy")
    close(gpu["gpu_span_ms"], 0.45, "span")
    close(gpu["gpu_idle_ms"], 0.10, "idle")
    close(gpu["kernels_per_step"], 2.0, "kernels")
    close(gpu["host_ops_ms"], 0.05, "host operators (top level only)")
    expected = {"products": 0.15, "attention": 0.10, "layer norm": 0.05, "casts and copies": 0.05,
                "memcpy": 0.025}
    assert set(gpu["classes_ms"]) == set(expected), gpu["classes_ms"]
    for cls, ms in expected.items():
        close(gpu["classes_ms"][cls], ms, cls)
    assert list(gpu["classes_ms"])[0] == "products", "classes are listed largest first"
    # Self times: linear 100 - 30 - 40 = 30, addmm 30, gelu 40 - 10 = 30, copy_ 10, AdamW 20.
    selves = {e["name"]: e["ms"] * 2 * 1000 for e in cpu["top"]}
    assert selves == {"aten::linear": 30, "aten::addmm": 30, "aten::gelu": 30, "aten::copy_": 10,
                      "adaptertune::AdamW.step": 20}, selves
    close(cpu["host_ops_ms"], 0.06, "top-level operators")
    close(cpu["total_ms"], 0.06, "self times add up to the top-level time")
    assert cpu["classes_ms"]["optimizer"] > 0 and cpu["classes_ms"]["gelu"] > 0, cpu["classes_ms"]

    assert cpu["outliers"] == [] and gpu["outliers"] == [], (cpu["outliers"], gpu["outliers"])

    # A stalled call is named: the sum over four steps alone would read 7.9 ms of fill_ a step.
    stalled_path = os.path.join(work, "stalled.json")
    json.dump(stalled_trace(), open(stalled_path, "w"))
    proc = run(script, "--steps", "4", "--json", out, stalled_path)
    assert proc.returncode == 0 and "calls far above their operator's median" in proc.stdout, proc.stdout
    outliers = json.load(open(out))["stalled"]["outliers"]
    # gelu's 5 ms call is 100x the other but gelu has two calls: no median to judge by.
    assert [o["name"] for o in outliers] == ["aten::fill_"], outliers
    close(outliers[0]["call_ms"], 30.0, "the stalled call")
    close(outliers[0]["median_call_ms"], 0.575, "the median call")

    # This library's activation kernels and their backward nodes join their kind.
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, os.path.join(project, "benchmarks"))
    import trace_summary
    for name, cls in (("adaptertune::gelu_and_derivative_bfloat16", "gelu"),
                      ("adaptertune::silu_and_derivative_bfloat16", "element-wise"),
                      ("torch::autograd::CppNode<adaptertune::detail::KeptDerivative<"
                       "adaptertune::detail::(anonymous namespace)::SiluKernels> >", "element-wise"),
                      ("aten::silu_backward", "element-wise")):
        assert trace_summary.classify(name) == cls, (name, trace_summary.classify(name), cls)

    # Refusals: one line naming the file, exit status not 0.
    bad = os.path.join(work, "bad.json")
    open(bad, "w").write("{not json")
    empty = os.path.join(work, "empty.json")
    json.dump({"traceEvents": []}, open(empty, "w"))
    for args, text in (([os.path.join(work, "missing.json")], "missing.json: cannot read"),
                       ([bad], "bad.json: not a JSON Chrome trace"),
                       ([empty], "empty.json: the trace has no complete events"),
                       (["--steps", "0", cpu_path], "--steps must be at least 1")):
        proc = run(script, *args)
        assert proc.returncode != 0 and text in proc.stderr, (args, proc.returncode, proc.stderr)

    # Real traces at a tiny shape: ours (the autograd profiler on the CPU) and PyTorch eager's.
    shape = ["--layers", "1", "--hidden", "32", "--heads", "2", "--batch", "4", "--seq", "16",
             "--steps", "2", "--warmup", "1", "--threads", "1", "--modes", "houlsby"]
    ours, reference = os.path.join(work, "ours.json"), os.path.join(work, "reference.json")
    subprocess.run([bench, *shape, "--profile", ours], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["/usr/bin/python3", os.path.join(project, "benchmarks/reference_step.py"), *shape,
                    "--profile", reference], check=True, stdout=subprocess.DEVNULL)
    proc = run(script, "--steps", "2", "--json", out, f"ours={ours}", f"pytorch={reference}")
    assert proc.returncode == 0, proc.stderr
    result = json.load(open(out))
    for label in ("ours", "pytorch"):
        assert result[label]["kind"] == "cpu", result[label]["kind"]
        assert result[label]["classes_ms"].get("products", 0) > 0, (label, result[label]["classes_ms"])
    names = {e["name"]: e["class"] for e in result["ours"]["top"]}
    assert names.get("adaptertune::AdamW.step") == "optimizer", sorted(names)
    assert names.get("adaptertune::hashed_dropout") == "dropout", sorted(names)
    print("PASS")


if __name__ == "__main__":
    main()
