"""fastnn.layers against the book's common/layers.py (tests/reference.py)."""
import pickle

import numpy as np
import pytest

import reference as R
from fastnn import layers as L

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-12, np.float32: 2e-6}


def _close(a, b, dtype):
    np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype] * (np.max(np.abs(b)) + 1e-30))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (257, 3), (2, 3, 4)])
def test_relu(dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0] = 0.0
    ref, got = R.Relu(), L.Relu()
    np.testing.assert_array_equal(got.forward(x), ref.forward(x))
    np.testing.assert_array_equal(got.mask, ref.mask)
    dout = rng.standard_normal(shape).astype(dtype)
    d1, d2 = dout.copy(), dout.copy()
    r = ref.backward(d1)
    g = got.backward(d2)
    np.testing.assert_array_equal(g, r)
    assert g is d2  # the book edits dout in place


def test_relu_nan_and_input_untouched():
    x = np.array([[np.nan, -1.0, 0.0, 2.0, -np.inf, np.inf]])
    x0 = x.copy()
    out = L.Relu().forward(x)
    np.testing.assert_array_equal(out, R.Relu().forward(x))
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (257, 3)])
def test_sigmoid(dtype, shape, rng):
    x = (rng.standard_normal(shape) * 10).astype(dtype)
    ref, got = R.Sigmoid(), L.Sigmoid()
    y = got.forward(x)
    assert y.dtype == dtype
    _close(y, ref.forward(x), dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    _close(got.backward(dout), ref.backward(dout), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (3, 7, 5), (257, 33, 7), (2, 784, 50)])
def test_affine(dtype, M, K, N, rng):
    W = rng.standard_normal((K, N)).astype(dtype)
    b = rng.standard_normal(N).astype(dtype)
    x = rng.standard_normal((M, K)).astype(dtype)
    ref, got = R.Affine(W, b), L.Affine(W, b)
    _close(got.forward(x), ref.forward(x), dtype)
    dout = rng.standard_normal((M, N)).astype(dtype)
    dx = got.backward(dout)
    _close(dx, ref.backward(dout), dtype)
    _close(got.dW, ref.dW, dtype)
    _close(got.db, ref.db, dtype)
    assert dx.dtype == got.dW.dtype == got.db.dtype == dtype
    assert got.W is W and got.b is b


def test_affine_nd_input_and_layouts(rng):
    W = rng.standard_normal((12, 4))
    b = rng.standard_normal(4)
    x = rng.standard_normal((5, 3, 2, 2))
    ref, got = R.Affine(W, b), L.Affine(W, b)
    _close(got.forward(x), ref.forward(x), np.float64)
    dout = rng.standard_normal((5, 4))
    dx = got.backward(dout)
    assert dx.shape == (5, 3, 2, 2)
    _close(dx, ref.backward(dout), np.float64)
    _close(got.dW, ref.dW, np.float64)
    # Fortran / strided / read-only inputs
    xf = np.asfortranarray(rng.standard_normal((6, 12)))
    xf.flags.writeable = False
    Wf = np.asfortranarray(W)
    ref, got = R.Affine(Wf, b), L.Affine(Wf, b)
    _close(got.forward(xf), ref.forward(xf), np.float64)
    d = rng.standard_normal((6, 8))[:, ::2]
    _close(got.backward(d), ref.backward(d), np.float64)
    _close(got.dW, ref.dW, np.float64)


def test_affine_follows_param_updates(rng):
    W = rng.standard_normal((3, 2))
    b = np.zeros(2)
    layer = L.Affine(W, b)
    x = rng.standard_normal((4, 3))
    W -= 1.0  # in place, as the optimizers do
    np.testing.assert_allclose(layer.forward(x), x @ W + b, rtol=1e-12)


def test_affine_errors(rng):
    layer = L.Affine(np.ones((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(3, 2\)"):
        layer.forward(np.ones((4, 5)))
    with pytest.raises(ValueError, match="before forward"):
        L.Affine(np.ones((3, 2)), np.zeros(2)).backward(np.ones((4, 2)))
    layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"dout has shape \(4, 3\), expected \(4, 2\)"):
        layer.backward(np.ones((4, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("onehot", [False, True])
@pytest.mark.parametrize("M,C", [(1, 2), (3, 7), (257, 10)])
def test_softmax_with_loss(dtype, onehot, M, C, rng):
    x = (rng.standard_normal((M, C)) * 3).astype(dtype)
    t = rng.integers(0, C, M)
    if onehot:
        t = np.eye(C)[t]
    ref, got = R.SoftmaxWithLoss(), L.SoftmaxWithLoss()
    lr, lg = ref.forward(x, t), got.forward(x, t)
    np.testing.assert_allclose(lg, lr, rtol=TOL[dtype] * 10)
    _close(got.y, ref.y, dtype)
    assert got.t is t
    _close(got.backward(), ref.backward(), dtype)
    _close(got.backward(1), ref.backward(1), dtype)


def test_softmax_with_loss_errors():
    layer = L.SoftmaxWithLoss()
    with pytest.raises(ValueError, match="labels must be in"):
        layer.forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="before forward"):
        L.SoftmaxWithLoss().backward()


@pytest.mark.parametrize("train_flg", [True, False])
@pytest.mark.parametrize("ratio", [0.5, 0.15])
def test_dropout(train_flg, ratio, rng):
    x = rng.standard_normal((7, 9))
    ref, got = R.Dropout(ratio), L.Dropout(ratio)
    np.random.seed(0)
    r = ref.forward(x, train_flg)
    np.random.seed(0)
    g = got.forward(x, train_flg)
    np.testing.assert_array_equal(g, r)
    if train_flg:
        np.testing.assert_array_equal(got.mask, ref.mask)
        d = rng.standard_normal((7, 9))
        np.testing.assert_array_equal(got.backward(d), ref.backward(d))
    assert L.Dropout().dropout_ratio == 0.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 3), (257, 7), (4, 2, 3)])
def test_batch_normalization(dtype, shape, rng):
    D = int(np.prod(shape[1:]))
    gamma = (rng.random(D) + 0.5).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype)
    ref = R.BatchNormalization(gamma.copy(), beta.copy())
    got = L.BatchNormalization(gamma, beta)
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        _close(got.forward(x), ref.forward(x), dtype)
        dout = rng.standard_normal(shape).astype(dtype)
        dx = got.backward(dout)
        assert dx.shape == shape
        _close(dx, ref.backward(dout), dtype)
        _close(got.dgamma, ref.dgamma, dtype)
        _close(got.dbeta, ref.dbeta, dtype)
    _close(got.running_mean, ref.running_mean, dtype)
    _close(got.running_var, ref.running_var, dtype)
    x = rng.standard_normal(shape).astype(dtype)
    _close(got.forward(x, train_flg=False), ref.forward(x, train_flg=False), dtype)
    assert got.gamma is gamma and got.momentum == 0.9


def test_batch_normalization_given_running_stats(rng):
    rm, rv = rng.standard_normal(4), rng.random(4)
    got = L.BatchNormalization(np.ones(4), np.zeros(4), 0.5, rm.copy(), rv.copy())
    ref = R.BatchNormalization(np.ones(4), np.zeros(4), 0.5, rm.copy(), rv.copy())
    x = rng.standard_normal((3, 4))
    _close(got.forward(x, False), ref.forward(x, False), np.float64)
    got.forward(x)
    ref.forward(x)
    _close(got.running_var, ref.running_var, np.float64)


def test_layers_pickle_and_repr(rng):
    layers = [L.Relu(), L.Sigmoid(), L.Affine(np.ones((2, 3)), np.zeros(3)), L.SoftmaxWithLoss(),
              L.Dropout(0.3), L.BatchNormalization(np.ones(3), np.zeros(3))]
    for layer in layers:
        clone = pickle.loads(pickle.dumps(layer))
        assert type(clone) is type(layer)
        assert type(layer).__name__ in repr(layer)


# --- boundary cases the property suite found (tests/properties/prop_layers.py) -------------

def test_backward_of_a_mismatched_dout_names_dout(rng):
    x = rng.standard_normal((2, 4))
    relu, sig, drop = L.Relu(), L.Sigmoid(), L.Dropout(0.5)
    relu.forward(x), sig.forward(x), drop.forward(x)
    for layer in (relu, sig, drop):
        with pytest.raises(ValueError, match=r"\.backward: dout has shape \(4, 2\).*\(2, 4\)"):
            layer.backward(np.ones((4, 2)))   # the book: NumPy's IndexError / broadcast error
    ro = np.ones((2, 4))
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="dout .*read-only"):
        relu.backward(ro)                     # the book edits dout in place
    # what NumPy's indexing takes, the book's Relu takes: trailing axes, empty masks
    d = np.ones((2, 4, 3))
    assert relu.backward(d) is d and np.array_equal(d[relu.mask], np.zeros((relu.mask.sum(), 3)))
    empty = L.Relu()
    empty.forward(np.zeros(0))
    assert empty.backward(np.ones((1, 0))).shape == (1, 0)


def test_affine_one_d_W_is_named_as_the_problem():
    # issue #11: the message said "x's features must equal W.shape[0]" though both were 3
    with pytest.raises(ValueError, match=r"W must be 2-D .*got shape \(3,\)"):
        L.Affine(np.ones(3), np.zeros(1)).forward(np.ones((2, 3)))


def test_affine_backward_gives_each_gradient_the_books_dtype(rng):
    # dx = dout @ W.T, dW = x.T @ dout, db = dout.sum(0): each in its own operands' dtype
    x64, W64, b64 = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), np.zeros(2)
    dout32 = rng.standard_normal((3, 2)).astype(np.float32)
    for x, W, dout in ((x64, W64, dout32), (x64.astype(np.float32), W64, dout32),
                       (x64.astype(np.int64), W64.astype(np.int64), dout32)):
        got, ref = L.Affine(W, b64), R.Affine(W, b64)
        got.forward(x), ref.forward(x)
        dx, rdx = got.backward(dout), ref.backward(dout)
        assert (dx.dtype, got.dW.dtype, got.db.dtype) == (rdx.dtype, ref.dW.dtype, ref.db.dtype)
        np.testing.assert_allclose(dx, rdx, rtol=1e-6)
        np.testing.assert_allclose(got.dW, ref.dW, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.db, ref.db, rtol=1e-5, atol=1e-6)


def test_softmax_with_loss_backward_reads_t_as_forward_did(rng):
    x = rng.standard_normal((1, 6))
    t = np.eye(6)[2]
    # one sample's one-hot as a (6, 1) column: forward reads it as the (1, 6) row it is,
    # and so does backward (it used to broadcast y - t into (6, 6))
    got, ref = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    got.forward(x, t.reshape(6, 1)), ref.forward(x, t.reshape(1, 6))
    np.testing.assert_allclose(got.backward(), ref.backward(), rtol=1e-12)
    # one class: a 1-D t holds labels (all 0), as in forward; the gradient is 0
    got = L.SoftmaxWithLoss()
    got.forward(np.array([[0.5], [-1.0]]), np.array([0, 0]))
    np.testing.assert_array_equal(got.backward(), np.zeros((2, 1)))
    # one row, a 0-d label (the book's backward reads t.shape[0] and fails)
    got, ref = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    got.forward(x, np.intp(3)), ref.forward(x, np.array([3]))
    np.testing.assert_allclose(got.backward(), ref.backward(), rtol=1e-12)


def test_big_endian_input_gives_a_native_result(rng):
    # as NumPy's ufuncs in the book (its Relu copies x, and keeps x's byte order)
    x = rng.standard_normal((3, 4)).astype(">f8")
    for got, ref in ((L.Relu(), R.Relu()), (L.Sigmoid(), R.Sigmoid()),
                     (L.Affine(np.ones((4, 2)), np.zeros(2)), R.Affine(np.ones((4, 2)), np.zeros(2)))):
        assert got.forward(x).dtype == ref.forward(x).dtype
    assert L.Sigmoid().forward(x).dtype == np.dtype(np.float64)
    assert L.SoftmaxWithLoss().forward(x, np.array([0, 1, 2])).dtype == np.dtype(np.float64)
