"""The linear kernels (fastnn._kernels._linear) against the NumPy reference, on every ISA level.

affine (x @ W + b), affine_backward (dx = dout @ W.T, dW = x.T @ dout, db = column sums:
the strided GEMM with a transposed A and a transposed B), the small-shape paths (1-3
output columns, 2-3 rows, column sums; the nnfs shapes), the nnfs ndarray entry points,
and the sparse first layer (sparse_affine, sparse_x_t_dz) for float32 and float64, odd
sizes, strided / transposed operands, NaN/inf, 0-sized dimensions, the same bits on 1, 2
and 3 threads, and memory errors under an address-space limit.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import reference as R
from fastnn import functions as F
from fastnn._kernels import _linear
from mnist_rows import mnist_rows

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]
SIZES = [1, 3, 7, 257]
# rounding bound of a length-K dot product, relative to sum |x| |W|: a few ulp per term
EPS = {np.float64: 4e-16, np.float32: 2e-7}


def _bound(a, b, dtype, extra=0.0):
    """|a @ b - exact| <= K eps (|a| @ |b| + |extra|), computed in float64."""
    k = a.shape[-1] if a.ndim else 1
    return (k + 2) * EPS[dtype] * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))
                                  + np.abs(extra))


def _assert_product(got, a, b, dtype, extra=0.0):
    want = a.astype(np.float64) @ b.astype(np.float64) + extra
    assert got.dtype == dtype and got.shape == want.shape
    assert np.all(np.abs(got - want) <= _bound(a, b, dtype, extra)), \
        np.max(np.abs(got - want))


def _backward(x, W, dout, n_threads=1, with_dx=True):
    M, K = x.shape
    N = W.shape[1]
    dx = np.full((M, K), np.nan, x.dtype) if with_dx else None
    dW = np.full((K, N), np.nan, x.dtype)
    db = np.full(N, np.nan, x.dtype)
    _linear.affine_backward(x, W, dout, dx, dW, db, n_threads)
    return dx, dW, db


# --- affine --------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", SIZES)
@pytest.mark.parametrize("K", [1, 7, 257])
@pytest.mark.parametrize("N", [1, 3, 7, 50, 257])
def test_affine_matches_reference(dtype, M, K, N, rng):
    x = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    got = F.affine(x, W, b)
    _assert_product(got, x, W, dtype, b)
    np.testing.assert_allclose(got, R.affine(x, W, b), rtol=10 * EPS[dtype] * (K + 2),
                               atol=_bound(x, W, dtype, b).max())
    _assert_product(F.affine(x, W, None), x, W, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_layouts(dtype, rng):
    # Fortran-ordered, strided, transposed views and read-only arrays: the same numbers
    x = rng.standard_normal((13, 37)).astype(dtype)
    W = rng.standard_normal((37, 21)).astype(dtype)
    b = rng.standard_normal(21).astype(dtype)
    want = F.affine(x, W, b)
    ro = W.copy()
    ro.setflags(write=False)
    for xv, Wv in [(np.asfortranarray(x), W), (x, np.asfortranarray(W)),
                   (np.repeat(x, 2, axis=1)[:, ::2], np.repeat(W, 3, axis=0)[::3]),
                   (np.ascontiguousarray(x.T).T, np.ascontiguousarray(W.T).T), (x, ro),
                   (x[::-1][::-1], W[:, ::-1][:, ::-1])]:
        np.testing.assert_array_equal(F.affine(xv, Wv, b), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_zero_sized(dtype):
    for M, K, N in [(0, 5, 3), (4, 0, 3), (4, 5, 0), (0, 0, 0), (1, 0, 1)]:
        x = np.ones((M, K), dtype)
        W = np.ones((K, N), dtype)
        b = np.arange(N, dtype=dtype)
        got = F.affine(x, W, b)
        np.testing.assert_array_equal(got, R.affine(x, W, b))
        assert got.shape == (M, N) and got.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_nan_inf_propagate(dtype, rng):
    x = rng.standard_normal((9, 33)).astype(dtype)
    W = rng.standard_normal((33, 19)).astype(dtype)
    b = rng.standard_normal(19).astype(dtype)
    x[2, 5] = np.nan
    x[4, :] = 0
    W[7, 3] = np.inf          # row 4 has x = 0 there: 0 * inf = NaN, as NumPy
    W[8, 11] = -np.inf
    b[17] = np.nan
    with np.errstate(invalid="ignore", over="ignore"):
        want = R.affine(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    got = F.affine(x, W, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    huge = np.full((2, 3), np.finfo(dtype).max / 2, dtype)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(F.affine(huge, np.ones((3, 2), dtype)),
                                      np.full((2, 2), np.inf, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_kernel_rejects_what_it_cannot_read(dtype):
    # the ndarray kernel re-checks the boundary's promise instead of reading past arrays
    x = np.ones((3, 4), dtype)
    W = np.ones((4, 5), dtype)
    out = np.empty((3, 5), dtype)
    for args in [(x, W, np.ones(4, dtype), out), (x, W.astype(np.float16), None, out),
                 (x, np.asfortranarray(np.ones((4, 5), dtype)).T.T[:, ::-1], None, out),
                 (x, W, None, np.empty((3, 4), dtype)), (x, np.ones((5, 5), dtype), None, out)]:
        with pytest.raises(ValueError, match="C-contiguous"):
            _linear.affine(*args, 1)
    ro = np.empty((3, 5), dtype)
    ro.setflags(write=False)
    with pytest.raises(ValueError):
        _linear.affine(x, W, None, ro, 1)
    assert _linear.plain_affine_args(x, W, None)
    assert not _linear.plain_affine_args(x, W.astype(">f8" if dtype == np.float64 else ">f4"),
                                         None)
    assert not _linear.plain_affine_args(x.astype(np.int64), W, None)
    class Sub(np.ndarray):
        pass
    assert not _linear.plain_affine_args(x.view(Sub), W, None)


def test_affine_unaligned_input_is_copied(rng):
    # a field of a packed record array: unaligned float64 data
    rec = np.zeros(6, dtype=[("a", "u1"), ("b", "<f8", (4,))])
    rec["b"] = rng.standard_normal((6, 4))
    xb = rec["b"]
    assert not xb.flags.aligned
    W = rng.standard_normal((4, 3))
    np.testing.assert_allclose(F.affine(xb, W, None), np.array(xb) @ W, rtol=1e-13)


# --- affine_backward: transposed A (x.T @ dout) and transposed B (dout @ W.T) ---------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 7, 257), (257, 3, 1), (7, 257, 3),
                                   (100, 784, 50), (13, 100, 37), (2, 1, 7)])
def test_affine_backward_matches_reference(dtype, M, K, N, rng):
    x = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    dout = rng.standard_normal((M, N)).astype(dtype)
    dx, dW, db = _backward(x, W, dout)
    _assert_product(dx, dout, W.T, dtype)
    _assert_product(dW, x.T, dout, dtype)
    ref = R.Affine(W.astype(np.float64), np.zeros(N))
    ref.forward(x.astype(np.float64))
    want_dx = ref.backward(dout.astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol * np.abs(want_dx).max())
    np.testing.assert_allclose(db, ref.db, rtol=tol, atol=tol * max(1.0, np.abs(ref.db).max()))


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_backward_long_transposed_k(dtype, rng):
    # dout @ W.T with a long inner dimension: B is packed on the stack in chunks of k,
    # the partial sums resting in C between chunks
    M, K, N = 5, 9, 2000
    W = rng.standard_normal((K, N)).astype(dtype)
    dout = rng.standard_normal((M, N)).astype(dtype)
    dx, dW, db = _backward(rng.standard_normal((M, K)).astype(dtype), W, dout)
    _assert_product(dx, dout, W.T, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_backward_zero_sized_and_nan(dtype, rng):
    for M, K, N in [(0, 4, 3), (5, 0, 3), (5, 4, 0)]:
        x = np.ones((M, K), dtype)
        dx, dW, db = _backward(x, np.ones((K, N), dtype), np.ones((M, N), dtype))
        np.testing.assert_array_equal(dW, np.zeros((K, N)))
        np.testing.assert_array_equal(db, np.full(N, M, dtype))
        np.testing.assert_array_equal(dx, np.full((M, K), N, dtype))
    x = rng.standard_normal((6, 5)).astype(dtype)
    W = rng.standard_normal((5, 4)).astype(dtype)
    dout = rng.standard_normal((6, 4)).astype(dtype)
    dout[3, 2] = np.nan
    W[1, 0] = np.inf
    with np.errstate(invalid="ignore"):
        dx, dW, db = _backward(x, W, dout)
        np.testing.assert_array_equal(np.isnan(dx), np.isnan(dout @ W.T))
        np.testing.assert_array_equal(np.isnan(dW), np.isnan(x.T @ dout))
    assert np.isnan(db[2]) and np.isfinite(np.delete(db, 2)).all()


# --- the same bits on any thread count -----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_on_one_two_three_threads(dtype, rng):
    # big enough that fastnn_team opens 2 and 3 threads (row blocks, column panels,
    # packed transposed B, column sums)
    x = rng.standard_normal((301, 784)).astype(dtype)
    W = rng.standard_normal((784, 67)).astype(dtype)
    b = rng.standard_normal(67).astype(dtype)
    x1 = rng.standard_normal((1, 3000)).astype(dtype)
    W1 = rng.standard_normal((3000, 2003)).astype(dtype)
    dout = rng.standard_normal((301, 67)).astype(dtype)
    calls = {
        "affine": lambda n: F.affine(x, W, b, n_threads=n),
        "one row": lambda n: F.affine(x1, W1, None, n_threads=n),
        "backward": lambda n: np.concatenate([a.ravel() for a in _backward(x, W, dout, n)]),
    }
    for name, call in calls.items():
        one = call(1)
        for n in (2, 3):
            np.testing.assert_array_equal(call(n), one, err_msg="%s, %d threads" % (name, n))


# --- narrow and odd shapes, memory --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 3, 5, 7, 9, 15, 17])
def test_narrow_outputs(dtype, N, rng):
    # narrower than a vector: scalar tiles, ragged ends, shifted vectors
    x = rng.standard_normal((12, 20000)).astype(dtype)
    W = rng.standard_normal((20000, N)).astype(dtype)
    _assert_product(F.affine(x, W, None), x, W, dtype)
    _assert_product(F.affine(x[:1], W, None), x[:1], W, dtype)


# --- the small-shape paths: narrow outputs, a few rows, column sums ------------------------
#
# Every output element is one accumulator summing k in order (then the bias), whichever
# path computes it, so a block gives the same bits as each of its rows alone (the row
# kernels) and as any split between threads. The shapes are the nnfs spiral net's
# (3000 x 2 @ 2 x 64, 3000 x 64 @ 64 x 3 and their backward products) and their
# neighbours: rows below, at and above a vector's lanes (16 float32 lanes on AVX-512),
# k below and above a transpose block and a packing chunk.

NARROW_ROWS = [1, 3, 7, 8, 15, 16, 17, 33, 100, 257, 3000]
NARROW_K = [1, 2, 3, 7, 8, 9, 64, 257]


def _rows_alone(fn, m):
    """fn(i0, i1) for every single row, stacked."""
    return np.concatenate([fn(i, i + 1) for i in range(m)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 3])
def test_narrow_affine(dtype, N, rng):
    # x @ W + b with 1-3 output columns: lanes over rows, x packed by transposes
    for M, K in [(M, K) for M in NARROW_ROWS for K in NARROW_K]:
        x = rng.standard_normal((M, K)).astype(dtype)
        W = rng.standard_normal((K, N)).astype(dtype)
        b = rng.standard_normal(N).astype(dtype)
        got = F.affine(x, W, b, n_threads=1)
        _assert_product(got, x, W, dtype, b)
        np.testing.assert_allclose(got, R.affine(x, W, b), rtol=10 * EPS[dtype] * (K + 2),
                                   atol=_bound(x, W, dtype, b).max())
        np.testing.assert_array_equal(
            got, _rows_alone(lambda i, j: F.affine(x[i:j], W, b, n_threads=1), M),
            err_msg="M=%d, K=%d: a block and its rows alone" % (M, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 3, 64])
def test_nnfs_backward_products(dtype, N, rng):
    # dW = x.T @ dout (x.T read in place: K rows of M), dx = dout @ W.T (W read through
    # strides) and db for the nnfs shapes: each against its rows alone and the reference
    for M, K in [(M, K) for M in [1, 7, 16, 17, 300, 3000] for K in [1, 2, 3, 64]]:
        x = rng.standard_normal((M, K)).astype(dtype)
        W = rng.standard_normal((K, N)).astype(dtype)
        dout = rng.standard_normal((M, N)).astype(dtype)
        dx, dW, db = _backward(x, W, dout)
        _assert_product(dx, dout, W.T, dtype)
        _assert_product(dW, x.T, dout, dtype)
        # dW's row k is x[:, k].T @ dout: the same bits when computed alone
        np.testing.assert_array_equal(dW, np.concatenate(
            [_backward(np.ascontiguousarray(x[:, k:k + 1]), W[k:k + 1], dout, with_dx=False)[1]
             for k in range(K)]), err_msg="dW, M=%d, K=%d" % (M, K))
        # dx's row i is dout[i] @ W.T
        np.testing.assert_array_equal(dx, _rows_alone(
            lambda i, j: _backward(x[i:j], W, dout[i:j])[0], M), err_msg="dx, M=%d, K=%d" % (M, K))
        # db: the rows added in order, in float64
        acc = np.zeros(N)
        for i in range(M):
            acc = acc + dout[i].astype(np.float64)
        np.testing.assert_array_equal(db, acc.astype(dtype), err_msg="db, M=%d, K=%d" % (M, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 129, 257, 300])
def test_column_sums_are_row_ordered_double_sums(dtype, N, rng):
    # db = sum(dout, axis=0): one double accumulator per column adding the rows in order,
    # whatever the vector width (whole vectors, a scalar remainder, 256-column blocks)
    for M in [0, 1, 3, 100]:
        d = (rng.standard_normal((M, N)) * 10.0 ** rng.integers(-6, 6, (M, N))).astype(dtype)
        acc = np.zeros(N)
        for i in range(M):
            acc = acc + d[i].astype(np.float64)
        _, _, db = _backward(np.zeros((M, 0), dtype), np.zeros((0, N), dtype), d, with_dx=False)
        np.testing.assert_array_equal(db, acc.astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("N", [5, 16, 50, 64, 100, 2003])
def test_few_rows_stream_b_once(dtype, M, N, rng):
    # 2 or 3 rows of C: one pass over B's rows (the nnfs dW = x.T @ dz of a 2-input
    # layer), equal passes of at most a register file of vectors, a shifted last vector
    K = 300
    x = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    got = F.affine(x, W, b, n_threads=1)
    _assert_product(got, x, W, dtype, b)
    np.testing.assert_array_equal(got, _rows_alone(lambda i, j: F.affine(x[i:j], W, b, n_threads=1), M))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 2, 3, 18, 50, 51, 66, 99])
def test_ragged_column_ends(dtype, N, rng):
    # 1-3 columns left after the whole vectors (50 = 48 + 2) take the narrow path; others
    # a shifted narrower vector: both give each element the bits of its row alone
    x = rng.standard_normal((100, 784)).astype(dtype)
    W = rng.standard_normal((784, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    got = F.affine(x, W, b, n_threads=1)
    _assert_product(got, x, W, dtype, b)
    np.testing.assert_array_equal(got, _rows_alone(lambda i, j: F.affine(x[i:j], W, b, n_threads=1), 100))


@pytest.mark.parametrize("dtype", DTYPES)
def test_narrow_paths_same_bits_on_one_two_three_threads(dtype, rng, exact_threads):
    # row blocks (and, for 2 rows, column chunks) per thread: the same bits
    x = rng.standard_normal((3001, 64)).astype(dtype)
    W = rng.standard_normal((64, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    x2 = rng.standard_normal((3001, 2)).astype(dtype)
    W2 = rng.standard_normal((2, 64)).astype(dtype)
    d64 = rng.standard_normal((3001, 64)).astype(dtype)
    d3 = rng.standard_normal((3001, 3)).astype(dtype)
    calls = {
        "x @ W (N=3)": lambda n: [F.affine(x, W, b, n_threads=n)],
        "x @ W (K=2)": lambda n: [F.affine(x2, W2, None, n_threads=n)],
        "backward (N=3)": lambda n: list(_backward(x, W, d3, n)),
        "backward (K=2)": lambda n: list(_backward(x2, W2, d64, n)),
    }
    for name, call in calls.items():
        one = call(1)
        for n in (2, 3):
            for a, c in zip(one, call(n)):
                np.testing.assert_array_equal(c, a, err_msg="%s, %d threads" % (name, n))


def test_dense_kernels_check_their_arguments():
    # the ndarray entry points re-check the boundary's promise (ValueError, never a read
    # past an array); plain_dense_args is the nnfs fast-path test
    x = np.ones((5, 2))
    W = np.ones((2, 3))
    b = np.zeros((1, 3))
    dv = np.ones((5, 3))
    assert _linear.plain_dense_args(x, W, b, None) and _linear.plain_dense_args(x, W, b, dv)
    assert _linear.plain_affine_args(x, W, b) and _linear.plain_affine_args(x, W, b[0])
    for args in [(x, W, b[0], None), (x, W, np.zeros((2, 3)), None), (x, W, b, dv[:, :2]),
                 (x, W, b, dv.astype(np.float32)), (x, W, b.astype(np.float32), None),
                 (np.asfortranarray(np.ones((5, 2))).T.T[:, ::-1], W, b, None), (x, W, b, [1.0]),
                 (x.astype(np.float32), W, b, None), (x, W.T, b, None)]:
        assert not _linear.plain_dense_args(*args), args
    out = _linear.affine_new(x, W, b, 1)
    np.testing.assert_array_equal(out, x @ W + b)
    assert _linear.affine_new(x, W.T, None, 1) is None
    assert _linear.affine_new(x.astype(np.float16), W, None, 1) is None
    dX, dW, db = np.empty((5, 2)), np.empty((2, 3)), np.empty((1, 3))
    _linear.dense_backward(x, W, dv, dX, dW, db, 1)
    np.testing.assert_array_equal(db, dv.sum(axis=0, keepdims=True))
    np.testing.assert_array_equal(dW, x.T @ dv)
    ro = np.empty((2, 3))
    ro.setflags(write=False)
    for bad in [(x, W, dv, dX, ro, db), (x, W, dv, dX[:4], dW, db), (x, W, dv, dX, dW, np.empty(4)),
                (x, W, dv[:4], dX, dW, db), (x, W, dv, dX, dW.astype(np.float32), db),
                (x, W, dv, np.empty((2, 5)).T, dW, db)]:
        with pytest.raises(ValueError, match="dense_backward"):
            _linear.dense_backward(*bad, 1)


def _run_limited(code, isa, limit_bytes=1 << 30):
    """Run `code` in a fresh interpreter on ISA level `isa` under RLIMIT_AS; returns
    (returncode, output)."""
    prog = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (%d, %d))
        sys.path[:0] = %r
    """ % (limit_bytes, limit_bytes, sys.path)) + textwrap.dedent(code)
    p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True,
                       timeout=300, env={"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "1",
                            "FASTNN_ISA": isa})
    return p.returncode, p.stdout + p.stderr


def test_one_column_w_needs_no_scratch(isa):
    # issue #11 item 3: a (8e6, 1) W used to cost 16x W in packing scratch and segfault
    # under a 1 GB address-space limit; now the GEMM takes no heap memory at all
    rc, out = _run_limited("""
        import numpy as np
        import fastnn
        x = np.ones((12, 8_000_000), np.float32)
        W = np.full((8_000_000, 1), 0.5, np.float32)
        out = fastnn.affine(x, W, None)
        assert out.shape == (12, 1) and np.all(out == 4_000_000.0), out
        print("OK")
    """, isa)
    assert rc == 0 and "OK" in out, out


def test_sparse_scratch_memory_error(isa):
    # the sparse path's scratch (x's non-zero pairs) is checked: MemoryError, no crash
    rc, out = _run_limited("""
        import numpy as np
        from fastnn._kernels import _linear
        x = np.zeros((12, 8_000_000), np.float32)
        x[:, ::7] = 1
        W = np.ones((8_000_000, 2), np.float32)
        try:
            _linear.sparse_affine(x, W, None, np.empty((12, 2), np.float32), 1)
        except MemoryError as e:
            print("MemoryError:", e)
    """, isa)
    assert rc == 0 and "MemoryError: sparse_affine" in out, out


# --- the sparse first layer ----------------------------------------------------------------

def _sparse_x(rng, M, K, dtype, density=0.2):
    x = rng.random((M, K))
    x[rng.random((M, K)) >= density] = 0
    return x.astype(dtype)


def _sparse_cases(rng, dtype):
    yield "mnist", mnist_rows(100)[0].astype(dtype)
    for M, K in [(1, 1), (3, 7), (7, 257), (257, 3), (1, 784)]:
        yield "random %dx%d" % (M, K), _sparse_x(rng, M, K, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 3, 7, 10, 50, 100, 257])
def test_sparse_affine_equals_dense_gemm(dtype, N, rng):
    # the sparse sum skips only exact zeros, in the dense kernel's order: the same bits
    for name, x in _sparse_cases(rng, dtype):
        W = rng.standard_normal((x.shape[1], N)).astype(dtype)
        b = rng.standard_normal(N).astype(dtype)
        out = np.empty((x.shape[0], N), dtype)
        assert _linear.sparse_affine(x, W, b, out, 1), name
        _assert_product(out, x, W, dtype, b)
        np.testing.assert_array_equal(out, F.affine(x, W, b, n_threads=1), err_msg=name)
        assert _linear.sparse_affine(x, W, None, out, 1)
        np.testing.assert_array_equal(out, F.affine(x, W, None, n_threads=1), err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N", [1, 3, 7, 10, 50, 100, 257])
def test_sparse_x_t_dz_equals_dense_gemm(dtype, N, rng):
    for name, x in _sparse_cases(rng, dtype):
        dz = rng.standard_normal((x.shape[0], N)).astype(dtype)
        dW = np.full((x.shape[1], N), np.nan, dtype)
        assert _linear.sparse_x_t_dz(x, dz, dW, 1), name
        _assert_product(dW, x.T, dz, dtype)
        _, want, _ = _backward(x, np.zeros((x.shape[1], N), dtype), dz, with_dx=False)
        np.testing.assert_array_equal(dW, want, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_nan_inf(dtype, rng):
    x = mnist_rows(20)[0].astype(dtype)
    x[3, 400] = np.nan                       # a NaN in x is a non-zero: it propagates
    W = rng.standard_normal((784, 30)).astype(dtype)
    out = np.empty((20, 30), dtype)
    with np.errstate(invalid="ignore"):
        assert _linear.sparse_affine(x, W, None, out, 1)
        assert np.isnan(out[3]).all() and not np.isnan(np.delete(out, 3, 0)).any()
        W[0, 5] = np.inf                     # x[:, 0] == 0: 0 * inf must give NaN
        assert not _linear.sparse_affine(x, W, None, out, 1)
        want = x.astype(np.float64) @ W.astype(np.float64)
        np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
        dz = rng.standard_normal((20, 30)).astype(dtype)
        dz[7, 2] = np.inf
        dW = np.empty((784, 30), dtype)
        assert not _linear.sparse_x_t_dz(x, dz, dW, 1)
        np.testing.assert_array_equal(np.isnan(dW), np.isnan(x.T.astype(np.float64) @ dz))
        dz[7, 2] = 0
        assert _linear.sparse_x_t_dz(x, dz, dW, 1)
        np.testing.assert_array_equal(np.isnan(dW), np.isnan(x.T.astype(np.float64) @ dz))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_zero_sized(dtype):
    for M, K, N in [(0, 784, 5), (4, 0, 5), (4, 784, 0)]:
        x = np.zeros((M, K), dtype)
        out = np.full((M, N), np.nan, dtype)
        _linear.sparse_affine(x, np.ones((K, N), dtype), np.arange(N, dtype=dtype), out, 2)
        np.testing.assert_array_equal(out, np.broadcast_to(np.arange(N, dtype=dtype), (M, N)))
        dW = np.full((K, N), np.nan, dtype)
        _linear.sparse_x_t_dz(x, np.ones((M, N), dtype), dW, 2)
        np.testing.assert_array_equal(dW, np.zeros((K, N)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_same_bits_on_one_two_three_threads(dtype, rng):
    x = np.concatenate([mnist_rows(100)[0]] * 3).astype(dtype)
    W = rng.standard_normal((784, 100)).astype(dtype)
    b = rng.standard_normal(100).astype(dtype)
    dz = rng.standard_normal((300, 100)).astype(dtype)
    outs, dWs = [], []
    for n in (1, 2, 3):
        out = np.empty((300, 100), dtype)
        dW = np.empty((784, 100), dtype)
        _linear.sparse_affine(x, W, b, out, n)
        _linear.sparse_x_t_dz(x, dz, dW, n)
        outs.append(out)
        dWs.append(dW)
    for n in (1, 2):
        np.testing.assert_array_equal(outs[n], outs[0])
        np.testing.assert_array_equal(dWs[n], dWs[0])
