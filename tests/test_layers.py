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
