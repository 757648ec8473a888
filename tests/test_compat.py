"""fastnn.compat.Threelayer_net: the seed prototype's class, against its NumPy original."""
import numpy as np
import pytest

import reference as R
from fastnn.compat import Threelayer_net


def _pair(seed, *sizes, **kw):
    np.random.seed(seed)
    ref = R.Threelayer_net(*sizes, **kw)
    np.random.seed(seed)
    return ref, Threelayer_net(*sizes, **kw)


def test_init_and_forward(rng):
    ref, net = _pair(0, 11, 6, 4, lr=0.3)
    assert list(net.params) == ["w1", "b1", "w2", "b2"]
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    x = rng.standard_normal((5, 11))
    t = rng.integers(0, 4, 5)
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-12)
    np.testing.assert_allclose(net.loss(x, t), ref.loss(x, t), rtol=1e-12)
    assert 0.0 <= net.accuracy(x, t) <= 1.0
    assert "11-6-4" in repr(net)


@pytest.mark.parametrize("B", [1, 3, 20])
@pytest.mark.parametrize("onehot", [False, True])
def test_grad_matches_reference(B, onehot, rng):
    ref, net = _pair(1, 9, 5, 3, lr=0.5)
    x = rng.standard_normal((B, 9))
    x[x < 0] = 0
    t = rng.integers(0, 3, B)
    if onehot:
        t = np.eye(3)[t]
    g, r = net.grad(x, t), ref.grad(x, t)
    assert list(g) == ["w1", "b1", "w2", "b2"]
    for k in r:
        assert g[k].shape == r[k].shape and g[k].dtype == r[k].dtype
        np.testing.assert_allclose(g[k], r[k], rtol=0, atol=1e-9)
    b = net.gradient(x, t)
    for k in r:
        np.testing.assert_allclose(b[k], g[k], rtol=0, atol=1e-6)


def test_one_sample_1d(rng):
    ref, net = _pair(2, 8, 4, 3, lr=0.5)
    x = rng.random(8)
    for k, v in net.grad(x, 2).items():
        np.testing.assert_allclose(v, ref.grad(x, 2)[k], rtol=0, atol=1e-9)
