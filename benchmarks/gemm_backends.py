#!/usr/bin/env python3
"""float32 matrix products at an encoder's shapes through LibTorch's two CPU back ends.

`torch.mm` is what LibTorch runs for float32 on the CPU (OpenBLAS in Debian's build, with the
kernels OpenBLAS picks for the CPU, or OPENBLAS_CORETYPE names); `mkldnn_linear` on an input
already in oneDNN's layout is oneDNN's own float32 product, which adaptertune calls directly for
float32 Linear layers (src/onednn_products.h). Prints GFLOP/s per shape and back end: the forward
product x W^T and, for LibTorch, the two backward ones (dY W, dY^T X).

    /usr/bin/python3 benchmarks/gemm_backends.py [--tokens 2048] [--hidden 256] [--threads 2]
"""
import argparse
import time

import torch


def median_seconds(fn, steps):
    for _ in range(3):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2048, help="rows: batch x sequence length")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    m, d = args.tokens, args.hidden
    print(f"float32, {m} tokens, hidden {d}, {args.threads} threads; GFLOP/s (median of {args.steps})")
    print(f"{'[in, out]':>14} {'mm x W^T':>9} {'mm dY W':>9} {'mm dY^T X':>10} {'oneDNN x W^T':>13}")
    for k, n in ((d, 3 * d), (d, d), (d, 4 * d), (4 * d, d)):
        x = torch.randn(m, k)
        w = torch.randn(n, k)
        dy = torch.randn(m, n)
        x_onednn = x.to_mkldnn()
        flops = 2.0 * m * n * k / 1e9
        rates = [flops / median_seconds(fn, args.steps) for fn in (
            lambda: torch.mm(x, w.t()),
            lambda: torch.mm(dy, w),
            lambda: torch.mm(dy.t(), x),
            lambda: torch._C._nn.mkldnn_linear(x_onednn, w))]
        print(f"{str([k, n]):>14} {rates[0]:9.0f} {rates[1]:9.0f} {rates[2]:10.0f} {rates[3]:13.0f}")


if __name__ == "__main__":
    main()
