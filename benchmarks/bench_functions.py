"""fastnn's forward kernels against the NumPy reference, one group per kernel and shape.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m pytest benchmarks --benchmark-only

The affine groups record GFLOP/s (2 M K N / median time) in each result's extra_info
(``--benchmark-json`` keeps it; ``--benchmark-columns=median,iqr,rounds`` prints the
times). Compare them with the machine's peak: FMA lanes x 2 x clock x cores (Zen 4 at
3.65 GHz: 16 float64 flop/cycle/core, 58 GFLOP/s per core; tools/cpufreq.c measures it).

The last three shapes are the nnfs spiral net's (spiral_data(1000, 3): 3000 samples, a
2-64-3 net; the seed's 300 x 2 @ 2 x 3): 1-3 output columns run with vector lanes over
rows, K = 2 streams the output.

The AVX2 comparison (standing in for an AVX2-only machine): fastnn on its AVX2 kernels
against OpenBLAS's Haswell kernels, on the same machine:

    FASTNN_ISA=avx2 OPENBLAS_CORETYPE=Haswell python -m pytest benchmarks/bench_functions.py \
        --benchmark-only -k affine

NumPy's BLAS threads spin ~0.1 s after each call and take a core from fastnn's next
call; tools/affine_timing.py times the two interleaved, letting them go idle first.
"""
import numpy as np
import pytest

import fastnn
import reference as R

DTYPES = [np.float64, np.float32]


def _ids(d):
    return np.dtype(d).name


@pytest.fixture(params=DTYPES, ids=_ids)
def dtype(request):
    return request.param


@pytest.fixture(params=["fastnn", "reference"])
def impl(request):
    return request.param


@pytest.mark.parametrize("M,K,N", [(100, 784, 50), (1, 784, 100), (12, 1_000_000, 1), (100, 7, 3),
                                   (3000, 64, 3), (3000, 2, 64), (300, 2, 3)],
                         ids=["100x784x50", "1x784x100", "12x1e6x1", "100x7x3",
                              "3000x64x3", "3000x2x64", "300x2x3"])
def test_affine(benchmark, impl, dtype, M, K, N):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    benchmark.group = "affine %dx%dx%d %s" % (M, K, N, np.dtype(dtype).name)
    fn = fastnn.affine if impl == "fastnn" else R.affine
    out = benchmark(fn, x, W, b)
    assert out.shape == (M, N)
    benchmark.extra_info["GFLOP/s"] = round(2.0 * M * K * N / benchmark.stats.stats.median * 1e-9, 1)


@pytest.mark.parametrize("rows", [100, 10_000])
def test_softmax_cross_entropy(benchmark, impl, dtype, rows):
    """The book's two-step loss: cross_entropy_error(softmax(x), t)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 10)).astype(dtype)
    t = rng.integers(0, 10, rows)
    benchmark.group = "softmax+cross_entropy (%d, 10) %s" % (rows, np.dtype(dtype).name)
    lib = fastnn if impl == "fastnn" else R
    benchmark(lambda: lib.cross_entropy_error(lib.softmax(x), t))


@pytest.mark.parametrize("rows", [100, 10_000])
def test_softmax_loss_fused(benchmark, dtype, rows):
    """fastnn's fused softmax_loss, in the same group as the two-step versions."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 10)).astype(dtype)
    t = rng.integers(0, 10, rows)
    benchmark.group = "softmax+cross_entropy (%d, 10) %s" % (rows, np.dtype(dtype).name)
    benchmark(fastnn.softmax_loss, x, t)


@pytest.mark.parametrize("rows", [100, 10_000])
def test_softmax(benchmark, impl, dtype, rows):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 10)).astype(dtype)
    benchmark.group = "softmax (%d, 10) %s" % (rows, np.dtype(dtype).name)
    benchmark(fastnn.softmax if impl == "fastnn" else R.softmax, x)


def test_sigmoid(benchmark, impl, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 100)).astype(dtype)
    benchmark.group = "sigmoid (100, 100) %s" % np.dtype(dtype).name
    benchmark(fastnn.sigmoid if impl == "fastnn" else R.sigmoid, x)


@pytest.mark.parametrize("rows", [100, 10_000])
def test_sparse_softmax_cross_entropy_with_logits(benchmark, impl, dtype, rows):
    """fastnn.losses (the TensorFlow notes' loss) against its NumPy formula."""
    from fastnn import losses
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 10)).astype(dtype)
    t = rng.integers(0, 10, rows)
    benchmark.group = "sparse_softmax_cross_entropy_with_logits (%d, 10) %s" % (rows, np.dtype(dtype).name)
    fn = (losses.sparse_softmax_cross_entropy_with_logits if impl == "fastnn"
          else R.tf_sparse_softmax_cross_entropy_with_logits)
    out = benchmark(fn, t, x)
    assert out.shape == (rows,)
