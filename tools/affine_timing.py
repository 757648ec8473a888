"""Interleaved A/B timing of fastnn.affine against NumPy's ``x @ W + b`` (the benchmarks'
shapes), min of many rounds, NumPy's BLAS threads let go idle before each fastnn round.

Run from the repository root:  PYTHONPATH=src python tools/affine_timing.py [threads]
For the AVX2 comparison:       FASTNN_ISA=avx2 OPENBLAS_CORETYPE=Haswell PYTHONPATH=src ...
"""
import sys
import time

import numpy as np

import fastnn
from fastnn._kernels import _cpu


def best(fn, number, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else None
    if threads:
        fastnn.set_num_threads(threads)
    print("isa", _cpu.get_isa(), "threads", fastnn.get_num_threads())
    rng = np.random.default_rng(0)
    for (M, K, N) in [(100, 784, 50), (1, 784, 100)]:
        for dt in (np.float64, np.float32):
            x = rng.standard_normal((M, K)).astype(dt)
            W = rng.standard_normal((K, N)).astype(dt)
            b = rng.standard_normal(N).astype(dt)
            number = 20 if M > 1 else 500
            tf, tn = [], []
            for _ in range(15):
                tn.append(best(lambda: x @ W + b, number, 3))
                time.sleep(0.2)   # OpenBLAS threads spin ~0.1 s after a call
                tf.append(best(lambda: fastnn.affine(x, W, b), number, 3))
            f, n = min(tf), min(tn)
            fl = 2.0 * M * K * N
            print("%dx%dx%d %-7s numpy %7.2f us (%5.1f GF/s)  fastnn %7.2f us (%5.1f GF/s)  "
                  "speed-up %.2fx" % (M, K, N, np.dtype(dt).name, n * 1e6, fl / n * 1e-9,
                                      f * 1e6, fl / f * 1e-9, n / f))


if __name__ == "__main__":
    main()
