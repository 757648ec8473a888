"""fastnn.losses (Keras / tf.nn losses) against their formulas in tests/reference.py."""
import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import losses as L

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}
SHAPES = [(1, 1), (1, 3), (3, 7), (7, 3), (257, 10), (4,), (2, 3, 5)]


def close(got, want, dtype):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == np.dtype(dtype), (got.dtype, dtype)
    np.testing.assert_allclose(got, want.astype(np.float64), equal_nan=True, **TOL[dtype])


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    probs = R.softmax(logits).astype(dtype)
    labels = rng.integers(0, shape[-1], shape[:-1])
    onehot = np.eye(shape[-1])[labels]
    soft = R.softmax(rng.standard_normal(shape))
    return logits, probs, labels, onehot, soft


# ---- values -------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_categorical_crossentropy(dtype, shape, from_logits, smoothing):
    logits, probs, labels, onehot, soft = _data(shape, dtype)
    y = logits if from_logits else probs
    for t in (onehot, soft):
        got = L.categorical_crossentropy(t, y, from_logits=from_logits, label_smoothing=smoothing)
        want = R.keras_categorical_crossentropy(t, y, from_logits, smoothing)
        close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy(dtype, shape, from_logits):
    logits, probs, labels, onehot, _ = _data(shape, dtype)
    y = logits if from_logits else probs
    want = R.keras_sparse_categorical_crossentropy(labels, y, from_logits)
    for lab in (labels, labels.astype(np.int32), labels.astype(np.uint8), labels.astype(float)):
        close(L.sparse_categorical_crossentropy(lab, y, from_logits=from_logits), want, dtype)
    # Keras squeezes a trailing axis of 1 from the labels
    close(L.sparse_categorical_crossentropy(labels[..., None], y, from_logits), want, dtype)
    # the sparse and one-hot forms agree on the same targets (logits: the same formula)
    if from_logits:
        close(L.sparse_categorical_crossentropy(labels, y, True),
              L.categorical_crossentropy(onehot, y, True).astype(np.float64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_binary_crossentropy(dtype, shape, from_logits, smoothing):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    p = rng.uniform(0, 1, shape).astype(dtype)
    p.flat[0] = 0.0                        # exercises the clip
    if p.size > 1:
        p.flat[1] = 1.0
    t = (rng.uniform(0, 1, shape) > 0.5).astype(dtype)
    y = x if from_logits else p
    got = L.binary_crossentropy(t, y, from_logits=from_logits, label_smoothing=smoothing)
    close(got, R.keras_binary_crossentropy(t, y, from_logits, smoothing), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_mse_and_tf_forms(dtype, shape):
    logits, probs, labels, onehot, soft = _data(shape, dtype)
    rng = np.random.default_rng(2)
    y_true = rng.standard_normal(shape).astype(dtype)
    close(L.mean_squared_error(y_true, probs), R.keras_mean_squared_error(y_true, probs), dtype)
    assert L.MSE is L.mean_squared_error and L.mse is L.mean_squared_error
    x64 = logits
    close(L.softmax_cross_entropy_with_logits(labels=soft, logits=logits),
          R.tf_softmax_cross_entropy_with_logits(soft, x64), dtype)
    close(L.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits),
          R.tf_sparse_softmax_cross_entropy_with_logits(labels, x64), dtype)
    z = (rng.uniform(0, 1, shape) > 0.5).astype(dtype)
    close(L.sigmoid_cross_entropy_with_logits(labels=z, logits=logits),
          R.tf_sigmoid_cross_entropy_with_logits(z, x64), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_axis(dtype):
    logits, probs, labels, onehot, soft = _data((4, 6, 5), dtype)
    for axis in (0, 1, -2):
        moved = np.moveaxis(probs, -1, axis)
        t = np.moveaxis(onehot, -1, axis)
        close(L.categorical_crossentropy(t, moved, axis=axis),
              R.keras_categorical_crossentropy(onehot, probs), dtype)
        close(L.sparse_categorical_crossentropy(labels, moved, axis=axis),
              R.keras_sparse_categorical_crossentropy(labels, probs), dtype)
        close(L.binary_crossentropy(t, moved, axis=axis),
              R.keras_binary_crossentropy(onehot, probs), dtype)
        close(L.softmax_cross_entropy_with_logits(t, np.moveaxis(logits, -1, axis), axis=axis),
              R.tf_softmax_cross_entropy_with_logits(onehot, logits), dtype)


def test_one_sample_gives_a_scalar_and_integers_compute_in_float64():
    got = L.categorical_crossentropy([0, 1, 0], [0.2, 0.7, 0.1])
    assert np.ndim(got) == 0 and np.asarray(got).dtype == np.float64
    np.testing.assert_allclose(got, -np.log(0.7), rtol=1e-12)
    got = L.sparse_categorical_crossentropy(np.array([1]), np.array([[1, 3]]), from_logits=True)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, [np.log1p(np.exp(-2.0))], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_are_stable(dtype):
    x = np.array([[1000, -1000, 0], [-1000, 1000, 0], [0, 0, 0]], dtype=dtype)
    labels = np.array([0, 0, 2])
    got = L.sparse_softmax_cross_entropy_with_logits(labels, x)
    np.testing.assert_allclose(got, [0.0, 2000.0, np.log(3)], rtol=1e-6)
    got = L.sigmoid_cross_entropy_with_logits(np.ones((1, 2), dtype), np.array([[-1000, 1000]], dtype))
    np.testing.assert_allclose(got, [[1000.0, 0.0]], rtol=1e-6)
    p = np.array([[0.0, 1.0]], dtype)              # clipped: finite
    assert np.all(np.isfinite(L.categorical_crossentropy(np.array([[1, 0]], dtype), p)))
    assert np.all(np.isfinite(L.binary_crossentropy(np.array([[1, 0]], dtype), p)))


def test_nan_propagates():
    x = np.array([[np.nan, 1.0, 2.0], [0.0, 1.0, 2.0]])
    got = L.sparse_softmax_cross_entropy_with_logits([1, 1], x)
    assert np.isnan(got[0]) and np.isfinite(got[1])
    got = L.categorical_crossentropy(np.eye(3)[[1, 1]], x, from_logits=True)
    assert np.isnan(got[0]) and np.isfinite(got[1])


def test_wide_rows_are_streamed_without_big_scratch():
    # rows wider than the kernel's stack scratch (8192) take the chunked path: same numbers
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 20000))
    t = rng.integers(0, 20000, 3)
    np.testing.assert_allclose(L.sparse_softmax_cross_entropy_with_logits(t, x),
                               R.tf_sparse_softmax_cross_entropy_with_logits(t, x), rtol=1e-12)
    soft = R.softmax(rng.standard_normal((3, 20000)))
    np.testing.assert_allclose(L.softmax_cross_entropy_with_logits(soft, x),
                               R.tf_softmax_cross_entropy_with_logits(soft, x), rtol=1e-12)


# ---- gradients ----------------------------------------------------------------------------

def _numerical(f, y, h=1e-6):
    """Central differences of sum(f(y)), in float64."""
    g = np.zeros_like(y)
    for i in np.ndindex(y.shape):
        a, b = y.copy(), y.copy()
        a[i] += h
        b[i] -= h
        g[i] = (np.sum(f(a)) - np.sum(f(b))) / (2 * h)
    return g


GRADS = [
    ("categorical", lambda t, y, fl: L.categorical_crossentropy_grad(t, y, fl, 0.1),
     lambda t, y, fl: R.keras_categorical_crossentropy(t, y, fl, 0.1), "soft"),
    ("sparse", lambda t, y, fl: L.sparse_categorical_crossentropy_grad(t, y, fl),
     lambda t, y, fl: R.keras_sparse_categorical_crossentropy(t, y, fl), "labels"),
    ("binary", lambda t, y, fl: L.binary_crossentropy_grad(t, y, fl, 0.2),
     lambda t, y, fl: R.keras_binary_crossentropy(t, y, fl, 0.2), "binary"),
]


@pytest.mark.parametrize("name,grad,ref,targets", GRADS, ids=[g[0] for g in GRADS])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (2, 3, 5)])
def test_gradients_match_central_differences(name, grad, ref, targets, from_logits, shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    if name == "binary":
        y = x if from_logits else rng.uniform(0.05, 0.95, shape)
        t = (rng.uniform(0, 1, shape) > 0.5) * 1.0
    else:
        y = x if from_logits else R.softmax(x) * rng.uniform(0.5, 1.5, shape[:-1] + (1,))
        t = R.softmax(rng.standard_normal(shape)) if targets == "soft" else rng.integers(0, shape[-1], shape[:-1])
    got = grad(t, y, from_logits)
    assert got.shape == y.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, _numerical(lambda v: ref(t, v, from_logits), y), rtol=1e-6, atol=1e-8)
    # float32 gives the same gradient within float32 rounding
    got32 = grad(t, y.astype(np.float32), from_logits)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, got, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (2, 3, 5)])
def test_tf_and_mse_gradients(shape):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    soft = R.softmax(rng.standard_normal(shape)) * 1.5      # sum(labels) != 1 on purpose
    labels = rng.integers(0, shape[-1], shape[:-1])
    z = (rng.uniform(0, 1, shape) > 0.5) * 1.0
    cases = [
        (L.softmax_cross_entropy_with_logits_grad(soft, x),
         _numerical(lambda v: R.tf_softmax_cross_entropy_with_logits(soft, v), x),
         R.softmax(x) * soft.sum(-1, keepdims=True) - soft),
        (L.sparse_softmax_cross_entropy_with_logits_grad(labels, x),
         _numerical(lambda v: R.tf_sparse_softmax_cross_entropy_with_logits(labels, v), x),
         R.softmax(x) - np.eye(shape[-1])[labels]),
        (L.sigmoid_cross_entropy_with_logits_grad(z, x),
         _numerical(lambda v: R.tf_sigmoid_cross_entropy_with_logits(z, v), x),
         1 / (1 + np.exp(-x)) - z),
        (L.mean_squared_error_grad(z, x),
         _numerical(lambda v: R.keras_mean_squared_error(z, v), x),
         2 * (x - z) / shape[-1]),
    ]
    for got, numerical, formula in cases:
        assert got.shape == x.shape
        np.testing.assert_allclose(got, numerical, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got, formula, rtol=1e-12, atol=1e-15)


def test_clip_passes_no_gradient_at_its_bounds():
    # a probability held at the clip bound has no gradient (tf.clip_by_value's rule)
    g = L.sparse_categorical_crossentropy_grad([0], np.array([[0.0, 1.0]]))
    assert g[0, 0] == 0 and g[0, 1] == 0
    g = L.binary_crossentropy_grad(np.array([[1.0]]), np.array([[0.0]]))
    assert g[0, 0] == 0


# ---- threads ------------------------------------------------------------------------------

def test_same_bits_on_one_two_and_three_threads():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((20000, 10))
    soft = R.softmax(rng.standard_normal((20000, 10)))
    labels = rng.integers(0, 10, 20000)
    calls = [
        lambda: L.sparse_softmax_cross_entropy_with_logits(labels, x),
        lambda: L.sparse_categorical_crossentropy(labels, R.softmax(x)),
        lambda: L.softmax_cross_entropy_with_logits(soft, x),
        lambda: L.categorical_crossentropy(soft, R.softmax(x), label_smoothing=0.1),
        lambda: L.binary_crossentropy(soft, R.softmax(x)),
        lambda: L.sparse_softmax_cross_entropy_with_logits_grad(labels, x),
        lambda: L.softmax_cross_entropy_with_logits_grad(soft, x),
        lambda: L.binary_crossentropy_grad(soft, R.softmax(x), label_smoothing=0.1),
        lambda: L.sigmoid_cross_entropy_with_logits_grad(soft, x),
        lambda: L.mean_squared_error_grad(soft, x),
    ]
    for call in calls:
        results = []
        for n in (1, 2, 3):
            fastnn.set_num_threads(n)
            try:
                results.append(call())
            finally:
                fastnn.set_num_threads(None)
        np.testing.assert_array_equal(results[0], results[1])
        np.testing.assert_array_equal(results[0], results[2])


# ---- errors -------------------------------------------------------------------------------

def test_errors_name_the_arguments_and_shapes():
    p = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"y_true has shape \(3, 4\) but y_pred has shape \(4, 3\)"):
        L.categorical_crossentropy(np.zeros((3, 4)), p)
    with pytest.raises(ValueError, match=r"labels has shape \(3,\) but logits has shape \(4, 3\)"):
        L.sparse_softmax_cross_entropy_with_logits(np.zeros(3, int), p)
    with pytest.raises(ValueError, match=r"must be in \[0, 3\); got \[3\]"):
        L.sparse_categorical_crossentropy(np.array([0, 1, 3, 0]), p)
    with pytest.raises(ValueError, match=r"must be in \[0, 3\); got \[-1\]"):
        L.sparse_softmax_cross_entropy_with_logits_grad(np.array([0, -1, 2, 0]), p)
    with pytest.raises(TypeError, match="integer class labels"):
        L.sparse_categorical_crossentropy(np.array([True, False, True, True]), p)
    with pytest.raises(ValueError, match="not class indices"):
        L.sparse_categorical_crossentropy(np.array([0.5, 1, 2, 0]), p)
    with pytest.raises(ValueError, match="label_smoothing"):
        L.categorical_crossentropy(np.eye(3)[[0, 1, 2, 0]], p, label_smoothing=1.5)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        L.categorical_crossentropy(np.eye(3)[[0, 1, 2, 0]], p, axis=2)
    with pytest.raises(TypeError, match="y_pred must be a real number"):
        L.binary_crossentropy(np.zeros(3), None)
    with pytest.raises(TypeError, match="complex"):
        L.mean_squared_error(np.zeros(3), np.zeros(3, complex))
    with pytest.raises(ValueError, match="at least one axis"):
        L.categorical_crossentropy(1.0, 0.5)
    with pytest.raises(ValueError, match=r"y_true has shape \(4,\) but y_pred has shape \(4, 1\)"):
        L.mean_squared_error(np.zeros(4), np.zeros((4, 1)))


def test_arguments_are_not_modified():
    logits, probs, labels, onehot, soft = _data((5, 4), np.float64)
    before = [a.copy() for a in (logits, probs, labels, soft)]
    L.categorical_crossentropy(soft, probs, label_smoothing=0.1)
    L.categorical_crossentropy_grad(soft, probs)
    L.sparse_categorical_crossentropy_grad(labels, logits, from_logits=True)
    L.binary_crossentropy_grad(soft, probs)
    for a, b in zip((logits, probs, labels, soft), before):
        np.testing.assert_array_equal(a, b)
