"""fastnn.functions against the NumPy reference: dtypes, sizes, layouts, extremes, errors."""
import threading

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import functions as F

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]
SIZES = [1, 3, 7, 257]
# float64: ~1e-12 relative (a few ulp of exp/sums); float32: ~1e-5
RTOL = {np.float64: 1e-12, np.float32: 1e-5}


def assert_close(got, want, dtype, atol=0.0):
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=atol, equal_nan=True)


def layouts(a):
    """The same values as C-contiguous, Fortran-ordered, strided and read-only arrays."""
    yield "C", np.ascontiguousarray(a)
    if a.ndim == 2:
        yield "F", np.asfortranarray(a)
    wide = np.repeat(a, 2, axis=-1)
    yield "strided", wide[..., ::2]
    ro = np.array(a)
    ro.setflags(write=False)
    yield "readonly", ro


ELEMENTWISE = [
    ("sigmoid", F.sigmoid, R.sigmoid),
    ("sigmoid_grad", F.sigmoid_grad, R.sigmoid_grad),
    ("relu", F.relu, R.relu),
    ("relu_grad", F.relu_grad, R.relu_grad),
    ("tanh", F.tanh, R.tanh),
    ("leaky_relu", F.leaky_relu, R.leaky_relu),
    ("step_function", F.step_function, R.step_function),
    ("identity_function", F.identity_function, R.identity_function),
]


@pytest.mark.parametrize("name,fn,ref", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3,), (7,), (257,), (3, 7), (2, 3, 5), ()])
def test_elementwise_matches_reference(name, fn, ref, dtype, shape, rng):
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    if x.ndim:
        x.flat[0] = 0.0  # relu_grad is 1 at 0, step_function 0 at 0
    for layout, xl in (layouts(x) if x.ndim else [("0d", x)]):
        before = np.array(xl)
        got, want = fn(xl), ref(xl)
        assert np.asarray(got).dtype == np.asarray(want).dtype, (layout, got.dtype, want.dtype)
        # float32: the reference's own (1 - s) * s cancels in float32; allow an ulp of 1
        assert_close(got, want, dtype, atol=1e-7 if dtype == np.float32 else 0.0)
        np.testing.assert_array_equal(xl, before)  # arguments are never modified


@pytest.mark.parametrize("name,fn,ref", ELEMENTWISE[:6], ids=[e[0] for e in ELEMENTWISE[:6]])
def test_elementwise_integer_input_computes_in_float64(name, fn, ref):
    x = np.arange(-3, 4)
    got = fn(x)
    assert got.dtype == np.float64
    assert_close(got, ref(x), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_extremes_and_nan(dtype):
    x = np.array([-1000, -50, 0, 50, 1000, np.inf, -np.inf, np.nan], dtype=dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        for fn, ref in [(F.sigmoid, R.sigmoid), (F.relu, R.relu), (F.tanh, R.tanh),
                        (F.leaky_relu, R.leaky_relu), (F.sigmoid_grad, R.sigmoid_grad)]:
            assert_close(fn(x), ref(x), dtype)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        assert np.isnan(F.sigmoid(x)[-1])


def test_sigmoid_is_parallel_and_thread_count_independent(rng, exact_threads):
    x = rng.standard_normal(100_003) * 10
    a = F.sigmoid(x, n_threads=1)
    b = F.sigmoid(x, n_threads=2)
    np.testing.assert_array_equal(a, b)
    assert_close(a, R.sigmoid(x), np.float64)


# --- softmax ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (3,), (7,), (257,), (1, 10), (3, 7), (257, 3),
                                   (100, 10), (2, 3, 5)])
def test_softmax_matches_reference(dtype, shape, rng):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    for layout, xl in layouts(x):
        got = F.softmax(xl)
        assert got.dtype == dtype and got.shape == x.shape, layout
        assert_close(got, R.softmax(xl), dtype, atol=1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_large_logits_do_not_overflow(dtype):
    x = np.array([[1000, -1000, 0], [-1000, -1000, -1000], [1000, 1000, 999]], dtype=dtype)
    got = F.softmax(x)
    assert np.all(np.isfinite(got))
    assert_close(got, R.softmax(x), dtype, atol=1e-30)
    assert_close(got.sum(axis=1), np.ones(3, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_nan_and_inf_rows_match_reference(dtype):
    x = np.array([[1, np.nan, 2], [np.inf, 0, 1], [-np.inf, 0, 1], [1, 2, 3]], dtype=dtype)
    with np.errstate(invalid="ignore"):
        want = R.softmax(x)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in subtract"):
        got = F.softmax(x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert_close(got, want, dtype)


def test_softmax_integer_input_gives_float64():
    got = F.softmax(np.array([[1, 2, 3]]))
    assert got.dtype == np.float64
    assert_close(got, R.softmax(np.array([[1, 2, 3]])), np.float64)


def test_softmax_errors():
    with pytest.raises(ValueError, match="0-d"):
        F.softmax(np.float64(1.0))
    with pytest.raises(ValueError, match="empty"):
        F.softmax(np.zeros((3, 0)))
    with pytest.raises(TypeError, match="complex"):
        F.softmax(np.zeros(3, dtype=complex))


# --- cross-entropy ---------------------------------------------------------------------

def _probs(rng, rows, n, dtype):
    return R.softmax(rng.standard_normal((rows, n)) * 2).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,n", [(1, 1), (1, 3), (3, 7), (7, 3), (257, 10), (100, 10)])
def test_cross_entropy_labels_and_onehot_match_reference(dtype, rows, n, rng):
    y = _probs(rng, rows, n, dtype)
    labels = rng.integers(0, n, rows)
    onehot = np.eye(n, dtype=dtype)[labels]
    # with one class, labels have y's size and the reference reads them as one-hot
    want = R.cross_entropy_error(y, onehot if n == 1 else labels)
    for layout, yl in layouts(y):
        for t in (labels, labels.astype(np.uint8), onehot, onehot.astype(np.int64)):
            got = F.cross_entropy_error(yl, t)
            assert isinstance(got, dtype), (layout, type(got))
            assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_one_sample_1d(dtype, rng):
    y = _probs(rng, 1, 10, dtype)[0]
    assert_close(F.cross_entropy_error(y, 3), R.cross_entropy_error(y, np.array(3)), dtype)
    t = np.eye(10)[3]
    assert_close(F.cross_entropy_error(y, t), R.cross_entropy_error(y, t), dtype)


def test_cross_entropy_zero_probability_is_finite():
    y = np.array([[0.0, 1.0]])
    assert_close(F.cross_entropy_error(y, [0]), R.cross_entropy_error(y, np.array([0])), np.float64)
    assert np.isclose(F.cross_entropy_error(y, [0]), -np.log(1e-7))


def test_cross_entropy_nan_propagates():
    y = np.array([[np.nan, 0.5], [0.5, 0.5]])
    assert np.isnan(F.cross_entropy_error(y, [0, 1]))


@pytest.mark.parametrize("fn", [F.cross_entropy_error, F.softmax_loss])
def test_loss_errors_name_the_shapes(fn):
    y = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"\(5,\).*\(4, 3\)"):
        fn(y, np.zeros(5, dtype=int))
    with pytest.raises(ValueError, match="labels must be in"):
        fn(y, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match="labels must be in"):
        fn(y, np.array([0, -1, 2, 0]))
    with pytest.raises(TypeError, match="integers"):
        fn(y, np.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="1-D.*2-D"):
        fn(np.ones((2, 2, 2)), np.zeros(2, dtype=int))


# --- fused softmax + cross-entropy -------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,n", [(1, 1), (1, 3), (3, 7), (7, 3), (257, 10), (100, 10)])
def test_softmax_loss_matches_reference(dtype, rows, n, rng):
    x = (rng.standard_normal((rows, n)) * 3).astype(dtype)
    labels = rng.integers(0, n, rows)
    onehot = np.eye(n)[labels]
    want = R.softmax_loss(x, onehot if n == 1 else labels)
    for layout, xl in layouts(x):
        for t in (labels, onehot):
            got = F.softmax_loss(xl, t)
            assert isinstance(got, dtype)
            assert_close(got, want, dtype)
    # the fused kernel and the two-step path agree
    assert_close(F.softmax_loss(x, labels), F.cross_entropy_error(F.softmax(x), labels), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_loss_extreme_logits(dtype):
    x = np.array([[1000, -1000, 0], [-1000, 1000, 0]], dtype=dtype)
    t = np.array([1, 1])
    got = F.softmax_loss(x, t)
    assert np.isfinite(got)
    assert_close(got, R.softmax_loss(x, t), dtype)


# --- affine ------------------------------------------------------------------------------

def _affine_tol(x, W, b, dtype):
    # bound on the rounding of a length-K dot product: scale by sum |x||W| + |b|
    scale = np.abs(x.astype(np.float64)) @ np.abs(W.astype(np.float64)) + np.abs(b)
    return scale * (1e-15 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 784, 50), (100, 784, 50), (1, 784, 100), (3, 7, 257),
                                   (257, 3, 1), (7, 1, 3), (1, 1, 1), (13, 100, 37), (2, 5, 64)])
def test_affine_matches_reference(dtype, M, K, N, rng):
    x = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((K, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    want = R.affine(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    tol = _affine_tol(x, W, b, dtype)
    for (lx, xl), (lw, Wl) in zip(layouts(x), layouts(W)):
        got = F.affine(xl, Wl, b)
        assert got.dtype == dtype and got.shape == (M, N), (lx, lw)
        assert np.all(np.abs(got - want) <= tol), (lx, lw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_shapes_like_numpy(dtype, rng):
    W = rng.standard_normal((5, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype)
    x1 = rng.standard_normal(5).astype(dtype)
    assert F.affine(x1, W, b).shape == (3,)
    x3 = rng.standard_normal((2, 4, 5)).astype(dtype)
    got = F.affine(x3, W, b)
    assert got.shape == (2, 4, 3)
    np.testing.assert_allclose(got, R.affine(x3, W, b), rtol=RTOL[dtype] * 10)
    # nnfs-style (1, N) bias broadcasts as NumPy does
    assert F.affine(x1, W, b.reshape(1, 3)).shape == (1, 3)
    assert F.affine(x1, W, None).shape == (3,)


def test_affine_mixed_and_integer_dtypes(rng):
    x = rng.integers(0, 255, (4, 6))
    W = rng.standard_normal((6, 2)).astype(np.float32)
    b = np.zeros(2, np.float32)
    assert F.affine(x, W, b).dtype == np.result_type(x, W, b)
    xi, Wi, bi = np.arange(6).reshape(2, 3), np.ones((3, 2), int), np.ones(2, int)
    got = F.affine(xi, Wi, bi)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, R.affine(xi, Wi, bi))


def test_affine_errors_name_both_shapes():
    with pytest.raises(ValueError, match=r"\(100, 785\).*\(784, 50\)"):
        F.affine(np.ones((100, 785)), np.ones((784, 50)), np.ones(50))
    with pytest.raises(ValueError, match=r"b has shape \(49,\)"):
        F.affine(np.ones((2, 784)), np.ones((784, 50)), np.ones(49))
    with pytest.raises(ValueError, match="2-D"):
        F.affine(np.ones((2, 3)), np.ones(3), np.ones(1))


def test_affine_nan_and_inf_propagate():
    x = np.array([[1.0, 0.0], [np.nan, 1.0]])
    W = np.array([[1.0, np.inf], [2.0, 3.0]])
    b = np.zeros(2)
    with np.errstate(invalid="ignore"):
        want = R.affine(x, W, b)
    np.testing.assert_array_equal(F.affine(x, W, b), want)


# --- sum of squares ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_sum_squared_error(dtype, n, rng):
    y = rng.random(n).astype(dtype)
    t = rng.random(n).astype(dtype)
    assert_close(F.sum_squared_error(y, t), R.sum_squared_error(y, t), dtype)
    assert F.mean_squared_error is F.sum_squared_error
    if n > 1:
        with pytest.raises(ValueError, match=r"\(%d,\).*\(%d,\)" % (n, n + 1)):
            F.sum_squared_error(y, np.ones(n + 1))


# --- threads -------------------------------------------------------------------------------

LARGE_CASES = [
    ("affine", lambda r, d: F.affine(r[0], r[1], r[2], n_threads=None)),
]


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_bits_on_one_and_two_threads(dtype, rng, exact_threads):
    x = rng.standard_normal((300, 784)).astype(dtype)
    W = rng.standard_normal((784, 50)).astype(dtype)
    b = rng.standard_normal(50).astype(dtype)
    x1 = x[:1]
    s = (rng.standard_normal((10_000, 10)) * 3).astype(dtype)
    t = rng.integers(0, 10, 10_000)
    oh = np.eye(10)[t]
    calls = {
        "affine": lambda n: F.affine(x, W, b, n_threads=n),
        "affine_one_row": lambda n: F.affine(x1, W, b, n_threads=n),
        "softmax": lambda n: F.softmax(s, n_threads=n),
        "cross_entropy_labels": lambda n: F.cross_entropy_error(F.softmax(s), t, n_threads=n),
        "cross_entropy_onehot": lambda n: F.cross_entropy_error(F.softmax(s), oh, n_threads=n),
        "softmax_loss": lambda n: F.softmax_loss(s, t, n_threads=n),
        "sigmoid": lambda n: F.sigmoid(x, n_threads=n),
        "softmax_loss_onehot": lambda n: F.softmax_loss(s, oh, n_threads=n),
    }
    for name, call in calls.items():
        one, two, three = call(1), call(2), call(3)
        np.testing.assert_array_equal(one, two, err_msg=name)
        np.testing.assert_array_equal(one, three, err_msg=name)


def test_kernels_from_several_python_threads(rng):
    x = rng.standard_normal((200, 784))
    W = rng.standard_normal((784, 50))
    b = rng.standard_normal(50)
    s = rng.standard_normal((5000, 10))
    t = rng.integers(0, 10, 5000)
    want_a, want_l = F.affine(x, W, b), F.softmax_loss(s, t)
    errors = []

    def work():
        try:
            for _ in range(20):
                np.testing.assert_array_equal(F.affine(x, W, b), want_a)
                assert F.softmax_loss(s, t) == want_l
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors


def test_public_reexports():
    for name in ["affine", "softmax", "cross_entropy_error", "softmax_loss", "sigmoid", "relu",
                 "step_function", "identity_function", "sigmoid_grad", "relu_grad", "tanh",
                 "leaky_relu", "sum_squared_error", "mean_squared_error"]:
        assert getattr(fastnn, name) is getattr(F, name)


def test_elementwise_kernels_split_over_threads_give_the_same_bits(rng):
    x = rng.standard_normal(1_000_003) * 10
    x[::97] = 0.0
    for dtype in DTYPES:
        xd = x.astype(dtype)
        for fn, ref in ((F.relu, R.relu), (F.relu_grad, R.relu_grad), (F.leaky_relu, R.leaky_relu),
                        (F.sigmoid, R.sigmoid)):
            results = []
            for n in (1, 2, 3):
                fastnn.set_num_threads(n)
                try:
                    results.append(fn(xd))
                finally:
                    fastnn.set_num_threads(None)
            np.testing.assert_array_equal(results[0], results[1])
            np.testing.assert_array_equal(results[0], results[2])
            assert_close(results[0], ref(xd), dtype, atol=1e-7 if dtype == np.float32 else 0.0)


# --- the fused loss: the two-step bits, any width ---------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,n", [(1, 1), (7, 3), (100, 10), (3, 9000), (2, 20000), (300, 100)])
def test_softmax_loss_is_bitwise_the_two_step_loss(dtype, rows, n, rng):
    x = (rng.standard_normal((rows, n)) * 4).astype(dtype)
    labels = rng.integers(0, n, rows)
    onehot = np.eye(n, dtype=dtype)[labels] if n < 5000 else None
    assert F.softmax_loss(x, labels) == F.cross_entropy_error(F.softmax(x), labels)
    if onehot is not None:
        assert F.softmax_loss(x, onehot) == F.cross_entropy_error(F.softmax(x), onehot)
    if n > 1:  # (with one class the book reads labels as one-hot and fails)
        assert_close(F.softmax_loss(x, labels), R.softmax_loss(x, labels), dtype)


def _run_isolated(code, limit_bytes=None, timeout=300, isa=None):
    """Run `code` in a fresh interpreter (optionally under an address-space limit): a crash
    there fails this test instead of killing the test run."""
    import subprocess
    import sys
    import textwrap
    prelude = ""
    if limit_bytes:
        prelude = ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (%d, %d))\n"
                   % (limit_bytes, limit_bytes))
    env = dict(__import__("os").environ)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="2")
    if isa:
        env["FASTNN_ISA"] = isa
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_softmax_loss_of_a_huge_row_needs_no_huge_scratch(isa):
    """Issue #11 (2): 2**27 float32 columns once asked for a 32 GB scratch and segfaulted.
    The kernel's scratch is a fixed 64 KiB now: it runs under a 2.5 GB address-space limit
    (the input alone is 512 MB)."""
    r = _run_isolated("""
        import numpy as np, fastnn
        loss = fastnn.softmax_loss(np.zeros((1, 2**27), np.float32), [0])
        print(repr(float(loss)), loss.dtype)
    """, limit_bytes=int(2.5 * 2**30), isa=isa)
    assert r.returncode == 0, r.stderr[-2000:]
    value, dtype = r.stdout.split()
    assert dtype == "float32"
    # softmax = 2**-27 everywhere; the book's loss is -log(2**-27 + 1e-7)
    np.testing.assert_allclose(float(value), -np.log(np.float32(2.0**-27) + np.float32(1e-7)), rtol=1e-6)


# --- reliability at the boundary (issue #11) --------------------------------------------------

@pytest.mark.parametrize("fn,ref", [(F.cross_entropy_error, R.cross_entropy_error),
                                    (F.softmax_loss, R.softmax_loss)])
def test_one_hot_targets_of_the_wrong_shape_raise(fn, ref, rng):
    y = R.softmax(rng.standard_normal((3, 4)))
    t = np.eye(4)[[0, 1, 2]].T[:, :3].copy()       # (4, 3): y's size, not y's shape
    assert t.shape == (4, 3)
    with pytest.raises(Exception):
        ref(y, t)                                   # the book's indexing fails too
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        fn(y, t)
    # one sample: any shape of y's size is one-hot, as the book reshapes both
    t1 = np.eye(4)[2]
    assert_close(fn(y[0], t1.reshape(2, 2)), ref(y[0], t1.reshape(2, 2)), np.float64)


@pytest.mark.parametrize("fn,ref", [(F.cross_entropy_error, R.cross_entropy_error),
                                    (F.softmax_loss, R.softmax_loss)])
def test_bool_labels_raise_and_bool_one_hot_works(fn, ref, rng):
    y = R.softmax(rng.standard_normal((4, 3)))
    labels = np.array([True, False, True, True])
    with pytest.raises(IndexError):
        ref(y, labels)
    with pytest.raises(TypeError, match="labels must be integers, got dtype bool"):
        fn(y, labels)
    onehot = np.eye(3, dtype=bool)[[0, 2, 1, 1]]
    assert_close(fn(y, onehot), ref(y, onehot), np.float64)
    with pytest.raises(ValueError, match="one label per row"):
        fn(y, np.array([[0], [1], [2], [0]]))        # the book would broadcast to (4, 4)


def _unaligned(a):
    """A copy of `a` that is not aligned: a field of a packed record array."""
    rec = np.zeros(a.shape, dtype=[("pad", "u1"), ("v", a.dtype)])
    rec["v"] = a
    v = rec["v"]
    assert not v.flags.aligned
    return v


@pytest.mark.parametrize("dtype", DTYPES)
def test_unaligned_and_big_endian_inputs(dtype, rng):
    x = (rng.standard_normal((5, 4)) * 3).astype(dtype)
    t = rng.integers(0, 4, 5)
    for xl in (_unaligned(x), x.astype(np.dtype(dtype).newbyteorder(">"))):
        assert_close(F.softmax(xl), R.softmax(x), dtype, atol=1e-30)
        assert_close(F.sigmoid(xl), R.sigmoid(x), dtype)
        assert_close(F.relu(xl), R.relu(x), dtype)
        assert_close(F.softmax_loss(xl, t), R.softmax_loss(x, t), dtype)
        assert_close(F.cross_entropy_error(F.softmax(xl), _unaligned(np.eye(4)[t])),
                     R.cross_entropy_error(R.softmax(x), t), dtype)


def test_unhelpful_messages_are_helpful():
    with pytest.raises(TypeError, match="sigmoid: x must be a real number or an array of real numbers, got None"):
        F.sigmoid(None)
    with pytest.raises(TypeError, match="relu: x .* got a str|relu: x .* dtype <U"):
        F.relu("abc")
    with pytest.raises(TypeError, match="softmax: x .*complex"):
        F.softmax(np.ones(3, complex))
    with pytest.raises(TypeError, match="cross_entropy_error: y .*None"):
        F.cross_entropy_error(None, [0])
    with pytest.raises(ValueError, match=r"b has shape \(5, 1\), W has shape \(4, 5\): b must have shape \(5,\) or \(1, 5\)"):
        F.affine(np.ones((1, 4)), np.ones((4, 5)), np.ones((5, 1)))
    # (found by the property suite's long run: NumPy's "'>' not supported between ...")
    with pytest.raises(TypeError, match="step_function: x must be a real number .*got None"):
        F.step_function(None)
    with pytest.raises(ValueError, match=r"softmax_loss: X has shape \(0, 3\)"):
        F.softmax_loss(np.zeros((0, 3)), [])


# --- NumPy's RuntimeWarnings, where NumPy would warn ------------------------------------------

def _warnings_of(call):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return {(w.category, str(w.message)) for w in caught}


WARNING_CASES = [
    ("sigmoid overflow", lambda m: m.sigmoid(np.array([-1000.0, 0.0, 1.0]))),
    ("sigmoid overflow float32", lambda m: m.sigmoid(np.array([-100.0, 0.0], np.float32))),
    ("softmax inf row", lambda m: m.softmax(np.array([[np.inf, 0.0], [1.0, 2.0]]))),
    ("softmax -inf row", lambda m: m.softmax(np.array([[-np.inf, -np.inf]]))),
    ("log of a negative", lambda m: m.cross_entropy_error(np.array([[-1.0, 2.0]]), np.array([0]))),
    ("log of zero", lambda m: m.cross_entropy_error(np.array([[-1e-7, 1.0]]), np.array([0]))),
    ("no warning", lambda m: m.cross_entropy_error(m.softmax(np.array([[1.0, 2.0]])), np.array([0]))),
    ("nan is quiet", lambda m: m.softmax(np.array([[np.nan, 1.0]]))),
]


@pytest.mark.parametrize("name,call", WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_runtime_warnings_match_numpy(name, call):
    assert _warnings_of(lambda: call(F)) == _warnings_of(lambda: call(R))
    with np.errstate(all="ignore"):
        assert _warnings_of(lambda: call(F)) == set()
    with np.errstate(all="raise"):
        try:
            call(R)
        except FloatingPointError as e:
            with pytest.raises(FloatingPointError, match=str(e).split(" encountered")[0]):
                call(F)
        else:
            call(F)


def test_numerical_gradient_says_f_must_return_a_scalar():
    from fastnn.gradient import numerical_gradient
    with pytest.raises(TypeError, match="f\\(x\\) must return a scalar"):
        numerical_gradient(lambda x: x * 2, np.ones(3))


def test_nets_check_targets_at_the_same_boundary(rng):
    """The nets' loss / gradient / numerical_gradient read t through fastnn._validate.targets
    too: a transposed one-hot t and bool labels raise there as in cross_entropy_error."""
    from fastnn.nets import TwoLayerNet
    net = TwoLayerNet(4, 5, 3)
    x = rng.standard_normal((3, 4))
    t_bad = np.zeros((1, 9))          # y's size (3 x 3), not y's shape
    t_bad[0, [0, 4, 8]] = 1
    for call in (net.loss, net.gradient, net.numerical_gradient):
        with pytest.raises(ValueError, match=r"\(1, 9\).*\(3, 3\)"):
            call(x, t_bad)
        with pytest.raises(TypeError, match="integers, got dtype bool"):
            call(x, np.array([True, False, True]))


# --- boundary cases the property suite found (tests/properties/prop_functions.py) ----------

def test_relu_grad_of_a_0d_array_is_a_0d_array():
    # the book fills np.zeros_like(x): a 0-d array for 0-d x (relu, np.maximum, a scalar)
    for x in (np.float64(0.5), np.array(-2.0), np.array(3, dtype=np.float32)):
        got, want = F.relu_grad(x), R.relu_grad(x)
        assert type(got) is type(want) is np.ndarray and got.shape == () == want.shape
        assert got.dtype == want.dtype and got == want


def test_affine_of_empty_operands_with_k_zero(rng):
    # x (0,), W (0, 0): the book's np.dot gives an empty (0,); x (2, 3, 0) @ W (0, 4) zeros
    for x, W, b in ((np.zeros(0), np.zeros((0, 0)), np.zeros(0)),
                    (np.zeros((2, 3, 0)), np.zeros((0, 4)), rng.standard_normal(4)),
                    (np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0))):
        got, want = F.affine(x, W, b), R.affine(x, W, b)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("fn,ref", [(F.cross_entropy_error, R.cross_entropy_error),
                                    (F.softmax_loss, R.softmax_loss)])
def test_one_row_takes_a_label_of_any_shape_of_size_one(fn, ref):
    # one row: the book's y[np.arange(1), t] picks the one element for t (1,) or (1, 1);
    # only several rows of column labels broadcast into a wrong (rows, rows) block
    y = np.array([[0.3, 0.7]])
    for t in (np.array([[1]]), np.array([[[0]]]), [[1]]):
        assert_close(fn(y, t), ref(y, t), np.float64)


def test_big_endian_input_gives_a_native_result(rng):
    # NumPy's ufuncs (the book's sigmoid, np.maximum, np.exp) return native byte order
    for dt in (">f8", ">f4"):
        x = rng.standard_normal((3, 4)).astype(dt)
        for fn, ref in ((F.sigmoid, R.sigmoid), (F.relu, R.relu), (F.softmax, R.softmax),
                        (F.leaky_relu, R.leaky_relu), (F.relu_grad, R.relu_grad)):
            got, want = fn(x), ref(x)
            assert got.dtype == want.dtype, (fn.__name__, dt)
        for empty in (np.zeros(0, dt), np.zeros((2, 0), dt)):
            assert F.sigmoid(empty).dtype == R.sigmoid(empty).dtype
