"""The cases `fastnn bench` prints, under pytest-benchmark: one definition of each case
(fastnn.cli._cases), fastnn and the books' NumPy code in the same group.

The slow NumPy numerical gradients (seconds per call) run once per group; everything else
is timed by pytest-benchmark's own calibration. Run briefly:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src:tests python -m pytest \\
        benchmarks/bench_cli.py --benchmark-only --benchmark-columns=median,iqr,rounds
"""
import time

import pytest

from fastnn.cli._cases import cases

CASES = cases()


@pytest.mark.parametrize("impl", ["fastnn", "reference"])
@pytest.mark.parametrize("case", CASES, ids=[c.group for c in CASES])
def test_case(benchmark, case, impl):
    benchmark.group = case.group
    fn = case.make(impl)
    if impl == "fastnn":
        time.sleep(0.2)  # NumPy's BLAS threads spin for a while after the reference's calls
    if case.slow and impl == "reference":
        benchmark.pedantic(fn, rounds=1, iterations=1, warmup_rounds=0)
    else:
        benchmark(fn)


@pytest.mark.benchmark(group="load_mnist(sample=True)")
def test_load_sample(benchmark):
    from fastnn import datasets
    from fastnn.datasets import mnist as M

    def load():
        M._raw_cache.clear()
        return datasets.load_mnist(sample=True)
    benchmark(load)
