"""The net executor (fastnn._engine.gradient / mlp_gradient, the nets' gradient): every layer
kind and combination against the book's layers (tests/reference.py)."""
import io
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest

import fastnn
import reference as R
from mnist_rows import mnist_rows
from fastnn.gradient import gradient_check
from fastnn._engine import mlp_gradient
from fastnn.nets import MultiLayerNet, MultiLayerNetExtend, TwoLayerNet

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

def _sparse(rng, M, K, density=0.2):
    x = rng.random((M, K))
    x[rng.random((M, K)) >= density] = 0
    return x


def _ref_net(sizes, activation, lam, seed, dtype=np.float64):
    np.random.seed(seed)
    ref = R.MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1], activation=activation,
                          weight_decay_lambda=lam)
    for k in ref.params:
        ref.params[k] = ref.params[k].astype(dtype)
    ref._build_layers(activation)
    return ref


def _params(ref):
    L = ref.hidden_layer_num + 1
    return ([ref.params["W%d" % i] for i in range(1, L + 1)],
            [ref.params["b%d" % i] for i in range(1, L + 1)])


def _assert_grads(got, want, rel, floor=0.0):
    for k in want:
        scale = max(np.max(np.abs(want[k])), floor)
        assert got[k].shape == want[k].shape, k
        assert np.max(np.abs(got[k] - want[k])) <= rel * scale + 1e-300, (
            k, np.max(np.abs(got[k] - want[k])), scale)


def _as_dict(dWs, dbs):
    out = {}
    for i, (dW, db) in enumerate(zip(dWs, dbs), 1):
        out["W%d" % i], out["b%d" % i] = dW, db
    return out


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("sizes", [(784, 50, 10), (7, 3, 5, 4), (5, 3), (33, 257, 7)])
@pytest.mark.parametrize("M", [1, 3, 100, 257])
@pytest.mark.parametrize("sparse", [True, False])
def test_matches_reference_float64(activation, sizes, M, sparse, rng):
    ref = _ref_net(sizes, activation, 0.1, 3)
    x = _sparse(rng, M, sizes[0]) if sparse else rng.standard_normal((M, sizes[0]))
    t = rng.integers(0, sizes[-1], M)
    Ws, bs = _params(ref)
    got = _as_dict(*mlp_gradient(Ws, bs, activation, x, t, 0.1))
    _assert_grads(got, ref.gradient(x, t), 1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("sparse", [True, False])
def test_matches_reference_float32(activation, sparse, rng):
    ref = _ref_net((60, 17, 9, 6), activation, 0.05, 4, np.float32)
    x = (_sparse(rng, 31, 60) if sparse else rng.standard_normal((31, 60))).astype(np.float32)
    t = rng.integers(0, 6, 31)
    Ws, bs = _params(ref)
    dWs, dbs = mlp_gradient(Ws, bs, activation, x, t, 0.05)
    assert all(d.dtype == np.float32 for d in dWs + dbs)
    want = ref.gradient(x, t)
    got = _as_dict(dWs, dbs)
    for k in want:
        assert want[k].dtype == np.float32
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=2e-5 * np.max(np.abs(want[k])))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sparse", [True, False])
def test_thread_count_does_not_change_bits(dtype, sparse, rng, exact_threads):
    ref = _ref_net((784, 64, 10), "relu", 0.0, 5, dtype)
    x = (_sparse(rng, 300, 784) if sparse else rng.standard_normal((300, 784))).astype(dtype)
    t = rng.integers(0, 10, 300)
    Ws, bs = _params(ref)
    one = mlp_gradient(Ws, bs, "relu", x, t, None, n_threads=1)
    two = mlp_gradient(Ws, bs, "relu", x, t, None, n_threads=2)
    three = mlp_gradient(Ws, bs, "relu", x, t, None, n_threads=3)
    for a, b, c in zip(one[0] + one[1], two[0] + two[1], three[0] + three[1]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_onehot_targets_and_labels(rng):
    ref = _ref_net((20, 8, 5), "sigmoid", 0, 6)
    x = rng.standard_normal((9, 20))
    t = rng.integers(0, 5, 9)
    Ws, bs = _params(ref)
    a = _as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, t, 0))
    b = _as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, np.eye(5)[t], 0))
    c = _as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, np.eye(5, dtype=np.uint8)[t], 0))
    want = ref.gradient(x, np.eye(5)[t])
    for g in (a, b, c):
        _assert_grads(g, want, 1e-12)
    # soft targets: the reference's (y - t) / batch with t's own values
    soft = rng.dirichlet(np.ones(5), 9)
    _assert_grads(_as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, soft, 0)), ref.gradient(x, soft), 1e-12)


def test_layouts_and_read_only(rng):
    ref = _ref_net((30, 12, 4), "relu", 0.01, 7)
    x = _sparse(rng, 11, 30)
    t = rng.integers(0, 4, 11)
    want = ref.gradient(x, t)
    Ws, bs = _params(ref)
    xf = np.asfortranarray(x)
    xs = np.zeros((11, 60))[:, ::2]
    xs[...] = x
    Wf = [np.asfortranarray(W) for W in Ws]
    ro = x.copy()
    ro.flags.writeable = False
    for xx, WW in ((xf, Ws), (xs, Ws), (ro, Wf), (x.reshape(11, 2, 15), Ws)):
        _assert_grads(_as_dict(*mlp_gradient(WW, bs, "relu", xx, t, 0.01)), want, 1e-12)
    # the inputs are not modified
    np.testing.assert_array_equal(xf, x)
    for W, W0 in zip(Ws, _params(ref)[0]):
        assert W is W0


def test_one_sample_1d(rng):
    ref = _ref_net((10, 6, 3), "sigmoid", 0, 8)
    x = rng.standard_normal(10)
    Ws, bs = _params(ref)
    got = _as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, np.array([2]), 0))
    _assert_grads(got, ref.gradient(x[None], np.array([2])), 1e-12)


def test_int_and_mixed_dtypes(rng):
    ref = _ref_net((16, 5, 3), "relu", 0, 9)
    x = rng.integers(0, 3, (7, 16)).astype(np.uint8)
    t = rng.integers(0, 3, 7)
    Ws, bs = _params(ref)
    got = _as_dict(*mlp_gradient(Ws, bs, "relu", x, t, 0))
    _assert_grads(got, ref.gradient(x.astype(np.float64), t), 1e-12)
    # float32 params with float64 x compute (and return) float64, as NumPy promotes
    W32 = [W.astype(np.float32) for W in Ws]
    dWs, _ = mlp_gradient(W32, bs, "relu", x.astype(np.float64), t, 0)
    assert dWs[0].dtype == np.float64


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("M,K", [(6, 40), (64, 784)])  # one thread / threads
def test_nonfinite_weights_propagate_like_reference(sparse, bad, M, K, rng):
    """A NaN/inf weight meeting a zero input gives NaN in the reference (0 * inf): the
    sparse path must not skip it."""
    ref = _ref_net((K, 9, 4), "relu", 0, 10)
    x = _sparse(rng, M, K) if sparse else rng.standard_normal((M, K))
    x[:, 3] = 0.0
    ref.params["W1"][3, 2] = bad
    ref._build_layers("relu")
    t = rng.integers(0, 4, M)
    Ws, bs = _params(ref)
    with np.errstate(all="ignore"):
        want = ref.gradient(x, t)
    got = _as_dict(*mlp_gradient(Ws, bs, "relu", x, t, 0))
    for k in want:
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=k)
        fin = np.isfinite(want[k])
        np.testing.assert_allclose(got[k][fin], want[k][fin], rtol=1e-10, atol=1e-14)


def test_nan_input_propagates(rng):
    ref = _ref_net((12, 5, 3), "sigmoid", 0, 11)
    x = _sparse(rng, 4, 12)
    x[1, 5] = np.nan
    t = rng.integers(0, 3, 4)
    Ws, bs = _params(ref)
    with np.errstate(all="ignore"):
        want = ref.gradient(x, t)
    got = _as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, t, 0))
    for k in want:
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=k)


def test_extreme_scores_stay_finite(rng):
    ref = _ref_net((8, 4, 3), "relu", 0, 12)
    ref.params["W2"] *= 1e6
    ref._build_layers("relu")
    x = rng.standard_normal((5, 8)) * 100
    t = rng.integers(0, 3, 5)
    Ws, bs = _params(ref)
    want = ref.gradient(x, t)
    got = _as_dict(*mlp_gradient(Ws, bs, "relu", x, t, 0))
    _assert_grads(got, want, 1e-12)
    assert all(np.isfinite(v).all() for v in got.values())


def test_errors(rng):
    W1, b1, W2, b2 = np.ones((4, 3)), np.zeros(3), np.ones((3, 2)), np.zeros(2)
    x, t = np.ones((5, 4)), np.zeros(5, dtype=int)
    with pytest.raises(ValueError, match=r"W1 has shape \(4, 3\).*5 features"):
        mlp_gradient([W1, W2], [b1, b2], "relu", np.ones((5, 5)), t)
    with pytest.raises(ValueError, match=r"W2 has shape \(2, 2\)"):
        mlp_gradient([W1, np.ones((2, 2))], [b1, b2], "relu", x, t)
    with pytest.raises(ValueError, match=r"b1 has shape \(4,\)"):
        mlp_gradient([W1, W2], [np.zeros(4), b2], "relu", x, t)
    with pytest.raises(ValueError, match="activation"):
        mlp_gradient([W1, W2], [b1, b2], "tanh", x, t)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        mlp_gradient([W1, W2], [b1, b2], "relu", x, np.array([0, 1, 2, 0, 0]))
    with pytest.raises(ValueError, match="t has shape"):
        mlp_gradient([W1, W2], [b1, b2], "relu", x, np.zeros(3, dtype=int))
    with pytest.raises(TypeError, match="labels must be integers"):
        mlp_gradient([W1, W2], [b1, b2], "relu", x, np.zeros(5))
    with pytest.raises(ValueError, match="empty"):
        mlp_gradient([W1, W2], [b1, b2], "relu", np.ones((0, 4)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="as many biases"):
        mlp_gradient([W1, W2], [b1], "relu", x, t)


# --- the nets' gradient ---------------------------------------------------------------------

def test_two_layer_net_gradient_is_fused_and_exact(rng):
    X, T = mnist_rows(20)
    np.random.seed(0)
    ref = R.TwoLayerNet(784, 50, 10)
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    _assert_grads(net.gradient(X, T), ref.gradient(X, T), 1e-12)
    _assert_grads(net.gradient(X, np.eye(10)[T]), ref.gradient(X, np.eye(10)[T]), 1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_multi_layer_net_gradient(activation, rng):
    X, T = mnist_rows(30)
    np.random.seed(1)
    ref = R.MultiLayerNet(784, [40, 20], 10, activation=activation, weight_decay_lambda=0.1)
    np.random.seed(1)
    net = MultiLayerNet(784, [40, 20], 10, activation=activation, weight_decay_lambda=0.1)
    _assert_grads(net.gradient(X, T), ref.gradient(X, T), 1e-12)


@pytest.mark.parametrize("use_dropout", [False, True])
@pytest.mark.parametrize("use_batchnorm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_multi_layer_net_extend_matches_reference(use_dropout, use_batchnorm, activation, rng):
    kw = dict(activation=activation, weight_decay_lambda=0.01, use_dropout=use_dropout,
              dropout_ration=0.3, use_batchnorm=use_batchnorm)
    np.random.seed(2)
    ref = R.MultiLayerNetExtend(24, [13, 9], 5, **kw)
    np.random.seed(2)
    net = MultiLayerNetExtend(24, [13, 9], 5, **kw)
    assert list(net.params) == list(ref.params)
    assert list(net.layers) == list(ref.layers)
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    x = _sparse(rng, 17, 24)
    t = rng.integers(0, 5, 17)
    np.random.seed(3)
    want = ref.gradient(x, t)
    np.random.seed(3)
    got = net.gradient(x, t)
    assert sorted(got) == sorted(want)
    # with batchnorm, b1/b2 of the normalised layers are 0 up to rounding: scale by the W's
    _assert_grads(got, want, 1e-11, floor=1e-3 * max(np.max(np.abs(v)) for v in want.values()))
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-12)
    np.testing.assert_allclose(net.loss(x, t), ref.loss(x, t), rtol=1e-12)
    assert net.accuracy(x, t) == ref.accuracy(x, t)
    assert net.accuracy(x, np.eye(5)[t]) == ref.accuracy(x, np.eye(5)[t])


def test_multi_layer_net_extend_numerical_gradient_small(rng):
    np.random.seed(4)
    ref = R.MultiLayerNetExtend(6, [4], 3, use_batchnorm=True, weight_decay_lambda=0.1)
    np.random.seed(4)
    net = MultiLayerNetExtend(6, [4], 3, use_batchnorm=True, weight_decay_lambda=0.1)
    x = rng.standard_normal((5, 6))
    t = rng.integers(0, 3, 5)
    want = ref.numerical_gradient(x, t)
    got = net.numerical_gradient(x, t)
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-9)
    # and the fused-engine path (no dropout / batchnorm)
    np.random.seed(5)
    ref = R.MultiLayerNetExtend(6, [4], 3, activation="sigmoid")
    np.random.seed(5)
    net = MultiLayerNetExtend(6, [4], 3, activation="sigmoid")
    want, got = ref.numerical_gradient(x, t), net.numerical_gradient(x, t)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-9)


def test_multi_layer_net_extend_follows_rebound_params(rng):
    np.random.seed(6)
    net = MultiLayerNetExtend(8, [5], 3, use_dropout=True)
    x = rng.standard_normal((4, 8))
    net.params["W1"] = net.params["W1"] * 2
    y = net.predict(x)
    a = np.maximum(x @ net.params["W1"] + net.params["b1"], 0) * 0.5
    np.testing.assert_allclose(y, a @ net.params["W2"] + net.params["b2"], rtol=1e-12)


# --- gradient check ---------------------------------------------------------------------------

def test_gradient_check_on_mnist_agrees_with_reference():
    """The book's ch05 check on real MNIST images (hidden layer reduced to keep the
    reference's own numerical gradient quick)."""
    X, T = mnist_rows(3)
    np.random.seed(0)
    ref = R.TwoLayerNet(784, 5, 10)
    np.random.seed(0)
    net = TwoLayerNet(784, 5, 10)
    buf = io.StringIO()
    with redirect_stdout(buf):
        want = R.gradient_check(ref, X, T)
    expected_print = buf.getvalue()
    buf = io.StringIO()
    with redirect_stdout(buf):
        got = gradient_check(net, X, T)
    lines = buf.getvalue().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["W1", "b1", "W2", "b2"]
    assert len(expected_print.splitlines()) == 4
    for ln, k in zip(lines, ["W1", "b1", "W2", "b2"]):
        assert ln == k + ":" + str(got[k])
    for k in want:
        # both are finite-difference noise of the same size (h^2 truncation + rounding)
        assert got[k] < 1e-6 and want[k] < 1e-6
        assert abs(got[k] - want[k]) <= max(0.5 * want[k], 1e-10), (k, got[k], want[k])


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_gradient_check_after_training_below_1e8(activation):
    """Once the net fits the checked images a little, the +1e-7 inside the log no longer
    shows and backprop agrees with the numerical gradient below 1e-8 everywhere."""
    X, T = mnist_rows(20)
    np.random.seed(0)
    net = MultiLayerNet(784, [50], 10, activation=activation)
    from fastnn.optimizer import Adam
    opt = Adam(lr=0.01)
    for i in range(10):
        opt.update(net.params, net.gradient(X, T))
    with redirect_stdout(io.StringIO()):
        diffs = gradient_check(net, X[:3], T[:3])
    assert set(diffs) == {"W1", "b1", "W2", "b2"}
    for k, d in diffs.items():
        assert d < 1e-8, (k, d)


def test_set_num_threads_is_honoured(rng):
    ref = _ref_net((784, 30, 10), "relu", 0, 13)
    x = _sparse(rng, 64, 784)
    t = rng.integers(0, 10, 64)
    Ws, bs = _params(ref)
    fastnn.set_num_threads(1)
    try:
        a = mlp_gradient(Ws, bs, "relu", x, t)
    finally:
        fastnn.set_num_threads(None)
    b = mlp_gradient(Ws, bs, "relu", x, t)
    for u, v in zip(a[0] + a[1], b[0] + b[1]):
        np.testing.assert_array_equal(u, v)


def test_concurrent_python_threads(rng):
    from concurrent.futures import ThreadPoolExecutor
    ref = _ref_net((100, 20, 5), "sigmoid", 0, 14)
    Ws, bs = _params(ref)
    xs = [_sparse(rng, 16, 100) for _ in range(8)]
    ts = [rng.integers(0, 5, 16) for _ in range(8)]
    want = [mlp_gradient(Ws, bs, "sigmoid", x, t) for x, t in zip(xs, ts)]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda xt: mlp_gradient(Ws, bs, "sigmoid", *xt), zip(xs, ts)))
    for g, w in zip(got, want):
        for u, v in zip(g[0] + g[1], w[0] + w[1]):
            np.testing.assert_array_equal(u, v)


def test_gradient_check_two_layer_net_after_training_below_1e8():
    """The book's ch05 TwoLayerNet (sigmoid, std 0.01) starts near uniform outputs, where
    the +1e-7 in the log shows at ~1e-7 in b2; once it fits the images it is far below."""
    X, T = mnist_rows(20)
    np.random.seed(0)
    net = TwoLayerNet(784, 50, 10)
    from fastnn.optimizer import Adam
    opt = Adam(lr=0.03)
    for i in range(30):
        opt.update(net.params, net.gradient(X, T))
    with redirect_stdout(io.StringIO()):
        diffs = gradient_check(net, X[:3], T[:3])
    for k, d in diffs.items():
        assert d < 1e-8, (k, d)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_masks_fused_like_layers(activation, dtype, rng, exact_threads):
    """mlp_gradient with dropout masks == the book's layers with those masks."""
    np.random.seed(7)
    ref = R.MultiLayerNetExtend(784, [30, 20], 10, activation=activation, use_dropout=True,
                                dropout_ration=0.4, weight_decay_lambda=0.01)
    for k in ref.params:
        ref.params[k][...] = ref.params[k]  # float64 reference
    x = _sparse(rng, 40, 784)
    t = rng.integers(0, 10, 40)
    np.random.seed(8)
    want = ref.gradient(x, t)
    masks = [ref.layers["Dropout1"].mask, ref.layers["Dropout2"].mask]
    Ws = [ref.params["W%d" % i].astype(dtype) for i in (1, 2, 3)]
    bs = [ref.params["b%d" % i].astype(dtype) for i in (1, 2, 3)]
    got = _as_dict(*mlp_gradient(Ws, bs, activation, x.astype(dtype), t, 0.01,
                                 dropout_masks=masks))
    rel = 1e-12 if dtype == np.float64 else 2e-5
    _assert_grads(got, want, rel)
    one = mlp_gradient(Ws, bs, activation, x.astype(dtype), t, 0.01, n_threads=1,
                       dropout_masks=masks)
    two = mlp_gradient(Ws, bs, activation, x.astype(dtype), t, 0.01, n_threads=2,
                       dropout_masks=masks)
    for a, b in zip(one[0] + one[1], two[0] + two[1]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"dropout mask 1 has shape \(3, 30\)"):
        mlp_gradient(Ws, bs, activation, x, t, dropout_masks=[np.ones((3, 30)), None])
    with pytest.raises(ValueError, match="1 dropout masks for 2 hidden layers"):
        mlp_gradient(Ws, bs, activation, x, t, dropout_masks=[masks[0]])


@pytest.mark.parametrize("use_dropout", [False, True])
def test_batchnorm_fused_running_stats_and_layer_path(use_dropout, rng):
    kw = dict(activation="relu", use_batchnorm=True, use_dropout=use_dropout,
              dropout_ration=0.25, weight_decay_lambda=0.02)
    np.random.seed(11)
    ref = R.MultiLayerNetExtend(784, [40, 30], 10, **kw)
    np.random.seed(11)
    net = MultiLayerNetExtend(784, [40, 30], 10, **kw)
    x = _sparse(rng, 64, 784)
    t = rng.integers(0, 10, 64)
    for step in range(2):
        np.random.seed(20 + step)
        want = ref.gradient(x, t)
        np.random.seed(20 + step)
        got = net.gradient(x, t)
        assert list(got) == list(want)
        _assert_grads(got, want, 1e-11, floor=1e-3 * max(np.max(np.abs(v)) for v in want.values()))
        for i in (1, 2):
            a, b = net.layers["BatchNorm%d" % i], ref.layers["BatchNorm%d" % i]
            np.testing.assert_allclose(a.running_mean, b.running_mean, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(a.running_var, b.running_var, rtol=1e-13, atol=1e-15)
    # the book's layer-by-layer path gives the same gradients
    np.random.seed(30)
    fused = net.gradient(x, t)
    np.random.seed(30)
    layered = net._layer_gradient(x, t)
    _assert_grads(fused, layered, 1e-11, floor=1e-3 * max(np.max(np.abs(v)) for v in layered.values()))
    # thread count does not change the bits
    fastnn.set_num_threads(1)
    try:
        np.random.seed(31)
        one = net.gradient(x, t)
    finally:
        fastnn.set_num_threads(None)
    np.random.seed(31)
    two = net.gradient(x, t)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])


def test_batchnorm_float32_and_errors(rng):
    np.random.seed(12)
    ref = R.MultiLayerNetExtend(50, [16], 5, use_batchnorm=True)
    x = rng.standard_normal((20, 50)).astype(np.float32)
    t = rng.integers(0, 5, 20)
    want = ref.gradient(x.astype(np.float64), t)
    Ws = [ref.params["W1"].astype(np.float32), ref.params["W2"].astype(np.float32)]
    bs = [ref.params["b1"].astype(np.float32), ref.params["b2"].astype(np.float32)]
    gb = [(ref.params["gamma1"].astype(np.float32), ref.params["beta1"].astype(np.float32))]
    dWs, dbs, bn = mlp_gradient(Ws, bs, "relu", x, t, 0, batchnorm=gb)
    assert dWs[0].dtype == np.float32 and bn[0]["dgamma"].dtype == np.float32
    np.testing.assert_allclose(dWs[0], want["W1"], rtol=0, atol=1e-4 * np.max(np.abs(want["W1"])))
    np.testing.assert_allclose(bn[0]["dgamma"], want["gamma1"], rtol=0,
                               atol=1e-4 * np.max(np.abs(want["gamma1"])))
    with pytest.raises(ValueError, match="2 batchnorm entries for 1 hidden layers"):
        mlp_gradient(Ws, bs, "relu", x, t, batchnorm=gb * 2)
    with pytest.raises(ValueError, match=r"gamma1/beta1 have shapes \(3,\)"):
        mlp_gradient(Ws, bs, "relu", x, t, batchnorm=[(np.ones(3), np.zeros(3))])


def test_large_batches_skip_the_sparse_scratch(rng, monkeypatch):
    """Whole-dataset batches use the dense path (no sparse scratch kept around)."""
    import fastnn._engine as layers_mod
    monkeypatch.setattr(layers_mod, "_SPARSE_MAX_ELEMS", 100)
    ref = _ref_net((50, 12, 4), "sigmoid", 0.1, 15)
    x = _sparse(rng, 30, 50)
    t = rng.integers(0, 4, 30)
    Ws, bs = _params(ref)
    _assert_grads(_as_dict(*mlp_gradient(Ws, bs, "sigmoid", x, t, 0.1)), ref.gradient(x, t), 1e-12)


# --- the executor's layer list: every kind combination against the book's layers -------------

from fastnn import _engine as E  # noqa: E402
from fastnn._kernels import _executor as X  # noqa: E402


def _ref_chain(spec, params, masks):
    """The book's layer objects (tests/reference.py) for an executor spec."""
    layers = []
    mi = 0
    for s in spec:
        kind = int(s.kind)
        if kind == X.LayerKind.KIND_AFFINE:
            layers.append(R.Affine(params[s.keys[0]], params[s.keys[1]]))
        elif kind == X.LayerKind.KIND_BATCHNORM:
            layers.append(R.BatchNormalization(params[s.keys[0]], params[s.keys[1]]))
        elif kind == X.LayerKind.KIND_RELU:
            layers.append(R.Relu())
        elif kind == X.LayerKind.KIND_SIGMOID:
            layers.append(R.Sigmoid())
        elif kind == X.LayerKind.KIND_DROPOUT:
            d = R.Dropout(0.5)
            d.mask = masks[mi]
            mi += 1
            layers.append(d)
    return layers, R.SoftmaxWithLoss()


def _ref_chain_gradient(spec, params, x, t, lam, masks):
    layers, last = _ref_chain(spec, params, masks)
    h = x
    for layer in layers:
        if isinstance(layer, R.Dropout):
            h = h * layer.mask                      # the given mask, as forward(train) would
        elif isinstance(layer, R.BatchNormalization):
            h = layer.forward(h, True)
        else:
            h = layer.forward(h)
    last.forward(h, t)
    d = last.backward(1)
    for layer in reversed(layers):
        d = layer.backward(d)
    grads = {}
    for s, layer in zip(spec, layers):
        if int(s.kind) == X.LayerKind.KIND_AFFINE:
            grads[s.keys[0]] = layer.dW + (lam * layer.W if lam is not None else 0)
            grads[s.keys[1]] = layer.db
        elif int(s.kind) == X.LayerKind.KIND_BATCHNORM:
            grads[s.keys[0]] = layer.dgamma
            grads[s.keys[1]] = layer.dbeta
    return grads


def _random_net(rng, n_x, hidden, C, acts, bn, dropout, dtype, M):
    """A spec Affine [BN] act [Dropout] ... Affine SoftmaxCE, its params and masks."""
    spec, params, masks = [], {}, []
    n = n_x
    for i, (h, act) in enumerate(zip(hidden, acts), 1):
        params["W%d" % i] = (rng.standard_normal((n, h)) * 0.5).astype(dtype)
        params["b%d" % i] = (rng.standard_normal(h) * 0.1).astype(dtype)
        spec.append(E.affine("W%d" % i, "b%d" % i))
        if bn:
            params["g%d" % i] = (rng.random(h) + 0.5).astype(dtype)
            params["be%d" % i] = (rng.standard_normal(h) * 0.1).astype(dtype)
            spec.append(E.batchnorm("g%d" % i, "be%d" % i))
        spec.append(E.relu() if act == "relu" else E.sigmoid())
        if dropout:
            masks.append(rng.random((M, h)) > 0.3)
            spec.append(E.dropout())
        n = h
    i = len(hidden) + 1
    params["W%d" % i] = (rng.standard_normal((n, C)) * 0.5).astype(dtype)
    params["b%d" % i] = (rng.standard_normal(C) * 0.1).astype(dtype)
    spec.append(E.affine("W%d" % i, "b%d" % i))
    spec.append(E.softmax_ce())
    return tuple(spec), params, masks


KIND_COMBOS = [(acts, bn, dropout)
               for acts in (("relu",), ("sigmoid",), ("relu", "sigmoid"), ("sigmoid", "relu", "relu"))
               for bn in (False, True) for dropout in (False, True)]


@pytest.mark.parametrize("acts,bn,dropout", KIND_COMBOS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_kind_combination_matches_the_books_layers(acts, bn, dropout, dtype, rng):
    M, n_x, C = 13, 40, 7
    hidden = [9, 3, 7][:len(acts)]
    spec, params, masks = _random_net(rng, n_x, hidden, C, acts, bn, dropout, dtype, M)
    x = _sparse(rng, M, n_x).astype(dtype)
    t = rng.integers(0, C, M)
    lam = 0.05
    ref64 = {k: v.astype(np.float64) for k, v in params.items()}
    want = _ref_chain_gradient(spec, ref64, x.astype(np.float64), t, lam, masks)
    for targets in (t, np.eye(C)[t]):
        got = E.gradient(params, spec, x, targets, lam, masks=masks)
        assert list(got) == list(want)
        for k in want:
            assert got[k].dtype == dtype and got[k].shape == params[k].shape
            rel = 1e-11 if dtype == np.float64 else 3e-4
            scale = max(np.max(np.abs(want[k])), 1e-3 * max(np.max(np.abs(v)) for v in want.values()))
            assert np.max(np.abs(got[k] - want[k])) <= rel * scale, (k, dtype)


@pytest.mark.parametrize("M", [1, 2, 3, 7, 257])
@pytest.mark.parametrize("width", [1, 3, 7, 257])
def test_odd_sizes_and_batch_one(M, width, rng):
    spec, params, masks = _random_net(rng, 11, [width], 3, ("sigmoid",), M > 1, True,
                                      np.float64, M)
    x = rng.standard_normal((M, 11))
    t = rng.integers(0, 3, M)
    want = _ref_chain_gradient(spec, params, x, t, None, masks)
    got = E.gradient(params, spec, x, t, None, masks=masks)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-13 * max(1, np.max(np.abs(want[k]))))


@pytest.mark.parametrize("bn,dropout", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_executor_bits_do_not_depend_on_threads(bn, dropout, dtype, rng):
    M = 300
    spec, params, masks = _random_net(rng, 784, [64, 33], 10, ("relu", "sigmoid"), bn, dropout,
                                      dtype, M)
    x = _sparse(rng, M, 784).astype(dtype)
    t = rng.integers(0, 10, M)
    runs = [E.gradient(params, spec, x, t, 0.01, n, masks) for n in (1, 2, 3)]
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
        np.testing.assert_array_equal(runs[0][k], runs[2][k])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_batchnorm_net_nonfinite_like_the_books_layers(bad, rng):
    spec, params, masks = _random_net(rng, 20, [6, 5], 4, ("relu", "relu"), True, False,
                                      np.float64, 9)
    x = rng.standard_normal((9, 20))
    x[2, 3] = bad
    t = rng.integers(0, 4, 9)
    with np.errstate(all="ignore"):
        want = _ref_chain_gradient(spec, params, x, t, None, masks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = E.gradient(params, spec, x, t, None)
    for k in want:
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(want[k]), err_msg=k)
        fin = np.isfinite(want[k])
        np.testing.assert_allclose(got[k][fin], want[k][fin], rtol=1e-10, atol=1e-14)


def test_per_sample_shapes_flatten_into_affine(rng):
    """x (N, C, H, W) flattens into the first Affine in C order (the book's reshape)."""
    x4 = rng.standard_normal((5, 2, 3, 4))
    spec, params, masks = _random_net(rng, 24, [6], 3, ("relu",), False, False, np.float64, 5)
    t = rng.integers(0, 3, 5)
    a = E.gradient(params, spec, x4, t)
    b = E.gradient(params, spec, x4.reshape(5, -1), t)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    ex = X.Executor((2, 3, 4), True, X.Mode.MODE_GRADIENT)
    ex.relu()
    ex.affine(6)
    ex.sigmoid()
    ex.affine(3)
    ex.softmax_ce()
    assert ex.shapes() == [(24, 24, (2, 3, 4)), (24, 6, (6,)), (6, 6, (6,)), (6, 3, (3,)),
                           (3, 3, (3,))]


def test_executor_structure_errors():
    ex = X.Executor((4,), True, X.Mode.MODE_GRADIENT)
    ex.affine(3)
    ex.softmax_ce()
    with pytest.raises(ValueError, match="loss must be the last layer"):
        ex.relu()
    ex = X.Executor((4,), True, X.Mode.MODE_GRADIENT)
    ex.affine(3)
    with pytest.raises(ValueError, match="last layer must be softmax_ce"):
        ex.plan(2)
    ex = X.Executor((4,), True, X.Mode.MODE_GRADIENT)
    ex.relu()
    ex.affine(2)
    ex.softmax_ce()
    with pytest.raises(ValueError, match="first layer must be affine"):
        ex.plan(2)
    with pytest.raises(ValueError, match="1 to 3 axes"):
        X.Executor((1, 2, 3, 4), True, X.Mode.MODE_GRADIENT)
    spec = (E.affine("W", "b"), E.dropout(), E.affine("W2", "b2"), E.softmax_ce())
    p = {"W": np.ones((4, 3)), "b": np.zeros(3), "W2": np.ones((3, 2)), "b2": np.zeros(2)}
    with pytest.raises(ValueError, match="pass their masks"):
        E.gradient(p, spec, np.ones((2, 4)), [0, 1])
    with pytest.raises(ValueError, match=r"dropout mask 1 has shape \(3, 3\), expected \(2, 3\)"):
        E.gradient(p, spec, np.ones((2, 4)), [0, 1], masks=[np.ones((3, 3), bool)])
    with pytest.raises(KeyError, match="params has no 'W2'"):
        E.gradient({"W": p["W"], "b": p["b"]}, spec, np.ones((2, 4)), [0, 1])


# --- RuntimeWarnings where NumPy warns ---------------------------------------------------------

def test_overflow_in_exp_warns_like_numpy(rng):
    """A badly scaled sigmoid net: the book's sigmoid warns "overflow encountered in exp";
    the fused gradient warns the same, and a well scaled one warns nothing."""
    np.random.seed(0)
    ref = R.TwoLayerNet(20, 6, 3, weight_init_std=200.0)
    np.random.seed(0)
    net = TwoLayerNet(20, 6, 3, weight_init_std=200.0)
    x = rng.standard_normal((5, 20)) * 10
    t = rng.integers(0, 3, 5)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        want = ref.gradient(x, t)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        got = net.gradient(x, t)
    _assert_grads(got, want, 1e-10)
    for dtype in (np.float64, np.float32):
        net.params = {k: (v * 1e-4).astype(dtype) for k, v in net.params.items()}
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            net.gradient(x.astype(dtype), t)


def test_inf_logits_warn_invalid_subtract_like_numpy(rng):
    np.random.seed(1)
    ref = R.MultiLayerNet(6, [4], 3, activation="relu")
    np.random.seed(1)
    net = MultiLayerNet(6, [4], 3, activation="relu")
    for p in (ref.params, net.params):
        p["b2"][1] = np.inf
    ref._build_layers("relu")
    x = rng.standard_normal((3, 6))
    t = rng.integers(0, 3, 3)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in subtract"):
        ref.gradient(x, t)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in subtract"):
        got = net.gradient(x, t)
    assert np.isnan(got["W2"]).all()


# --- the sparse first layer (masks of x's non-zeros): the dense GEMM's bits -------------------
#
# The first Affine skips x's exact zeros when W (forward) and dz (backward) are finite, and
# its sums keep the dense GEMM's order, so each path, each thread split and each fallback
# must give the same bits. The executor reports which path each half took.

def _executor_grads(x, t, Ws, bs, act, allow_sparse, n_threads=1, lam=None):
    """(grads, paths) of an MLP (Affine -> act ...-> Affine -> softmax_ce) run by one
    executor laid out with or without the sparse first layer."""
    ex = X.Executor((x.shape[1],), x.dtype == np.float64)
    for W in Ws[:-1]:
        ex.affine(W.shape[1])
        getattr(ex, act)()
    ex.affine(Ws[-1].shape[1])
    ex.softmax_ce()
    ex.plan(x.shape[0], allow_sparse)
    params = [p for W, b in zip(Ws, bs) for p in (W, b)]
    grads = [np.empty_like(p) for p in params]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, _ = ex.gradient(x, np.ascontiguousarray(t, dtype=np.intp), None, params, grads,
                                [], lam is not None, lam or 0.0, n_threads)
    assert status == 0
    return grads, ex.first_layer_paths()


def _mlp(rng, sizes, dtype, scale=0.3):
    Ws = [(rng.standard_normal((a, b)) * scale).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    bs = [(rng.standard_normal(b) * scale).astype(dtype) for b in sizes[1:]]
    return Ws, bs


def _assert_same_bits(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg="%s, param %d" % (what, i))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,N", [(1, 1), (3, 7), (7, 3), (65, 17), (129, 50), (257, 9),
                                 (784, 50), (130, 100), (64, 16)])
@pytest.mark.parametrize("M", [1, 3, 37])
@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_sparse_first_layer_same_bits_as_dense(dtype, K, N, M, act, rng):
    Ws, bs = _mlp(rng, (K, N, 4), dtype)
    x = _sparse(rng, M, K).astype(dtype)
    t = rng.integers(0, 4, M)
    sparse, paths = _executor_grads(x, t, Ws, bs, act, True)
    # (x at most half non-zero is taken sparse; a tiny x may be denser)
    want = "sparse" if np.count_nonzero(x) <= 0.5 * x.size else "dense"
    assert paths == (want, want)
    dense, paths = _executor_grads(x, t, Ws, bs, act, False)
    assert paths == ("dense", "dense")
    _assert_same_bits(sparse, dense, "sparse vs dense")
    ref = R.MultiLayerNet(K, [N], 4, activation=act)
    ref.params = {"W1": Ws[0], "b1": bs[0], "W2": Ws[1], "b2": bs[1]}
    ref._build_layers(act)
    _assert_grads(dict(zip(["W1", "b1", "W2", "b2"], sparse)), ref.gradient(x, t),
                  1e-12 if dtype == np.float64 else 1e-5, floor=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sparse_first_layer_nonfinite_dz_falls_back(dtype, bad, rng):
    """A NaN/inf in the first layer's dz (from W2): the forward stays sparse, dW1 is the
    dense GEMM's (a skipped 0 * inf would be NaN in the reference)."""
    Ws, bs = _mlp(rng, (300, 20, 5), dtype)
    Ws[1][7, 2] = bad
    x = _sparse(rng, 40, 300).astype(dtype)
    x[:, 11] = 0.0
    t = rng.integers(0, 5, 40)
    sparse, paths = _executor_grads(x, t, Ws, bs, "sigmoid", True)
    assert paths == ("sparse", "dense")
    dense, _ = _executor_grads(x, t, Ws, bs, "sigmoid", False)
    _assert_same_bits(sparse, dense, "dz with %r" % bad)
    assert np.isnan(sparse[0][11]).all()           # 0 * inf in every row of column 11


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_sparse_first_layer_nonfinite_W1_falls_back(dtype, bad, rng):
    Ws, bs = _mlp(rng, (200, 17, 3), dtype)
    x = _sparse(rng, 30, 200).astype(dtype)
    x[:, 5] = 0.0
    Ws[0][5, 4] = bad                              # meets only zeros: NaN in the reference
    t = rng.integers(0, 3, 30)
    sparse, paths = _executor_grads(x, t, Ws, bs, "relu", True)
    assert paths[0] == "dense"
    dense, _ = _executor_grads(x, t, Ws, bs, "relu", False)
    _assert_same_bits(sparse, dense, "W1 with %r" % bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_first_layer_special_inputs(dtype, rng):
    """-0.0 is a zero (skipped), NaN and inf are not: the dense GEMM's bits and NaNs."""
    Ws, bs = _mlp(rng, (100, 13, 4), dtype)
    x = _sparse(rng, 20, 100).astype(dtype)
    x[1, :50] = -0.0
    x[2, 7] = np.nan
    x[3, 9] = np.inf
    x[4, 64] = -np.inf
    t = rng.integers(0, 4, 20)
    sparse, paths = _executor_grads(x, t, Ws, bs, "sigmoid", True)
    assert paths[0] == "sparse"
    dense, _ = _executor_grads(x, t, Ws, bs, "sigmoid", False)
    _assert_same_bits(sparse, dense, "special inputs")


def test_sparse_first_layer_follows_the_density_of_x(rng):
    """One executor, x dense then sparse then dense: the path follows (only the speed
    depends on it), the bits are the dense path's every time."""
    Ws, bs = _mlp(rng, (150, 30, 5), np.float64)
    t = rng.integers(0, 5, 25)
    ex = X.Executor((150,), True).affine(30).sigmoid().affine(5).softmax_ce().plan(25, True)
    params = [Ws[0], bs[0], Ws[1], bs[1]]
    seen = []
    for x in [rng.standard_normal((25, 150)), _sparse(rng, 25, 150), rng.standard_normal((25, 150)),
              rng.standard_normal((25, 150)), _sparse(rng, 25, 150)]:
        grads = [np.empty_like(p) for p in params]
        assert ex.gradient(x, t.astype(np.intp), None, params, grads, [], False, 0.0, 1)[0] == 0
        seen.append(ex.first_layer_paths()[0])
        dense, _ = _executor_grads(x, t, Ws, bs, "sigmoid", False)
        _assert_same_bits(grads, dense, "call %d" % len(seen))
    assert seen[1] == "sparse" and seen[3] == "dense" and seen[4] == "sparse"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_first_layer_threads_and_mixed_density(dtype, rng, exact_threads):
    """Threads take runs of rows (forward) and of columns (dW); a run of dense rows sends
    the forward to the GEMM: the same bits on 1, 2, 3 threads and on either path."""
    Ws, bs = _mlp(rng, (784, 50, 10), dtype)
    for x in [mnist_rows(90)[0].astype(dtype),
              np.concatenate([rng.standard_normal((45, 784)), _sparse(rng, 45, 784)]).astype(dtype)]:
        t = rng.integers(0, 10, 90)
        dense, _ = _executor_grads(x, t, Ws, bs, "sigmoid", False)
        for n in (1, 2, 3):
            got, paths = _executor_grads(x, t, Ws, bs, "sigmoid", True, n_threads=n)
            _assert_same_bits(got, dense, "%d threads, paths %s" % (n, paths))


def test_sparse_first_layer_weight_decay_bits(rng, exact_threads):
    Ws, bs = _mlp(rng, (784, 100, 100, 10), np.float64)
    x = mnist_rows(50)[0]
    t = rng.integers(0, 10, 50)
    dense, _ = _executor_grads(x, t, Ws, bs, "relu", False, lam=1e-3)
    for n in (1, 2, 3):
        got, paths = _executor_grads(x, t, Ws, bs, "relu", True, n_threads=n, lam=1e-3)
        assert paths == ("sparse", "sparse")
        _assert_same_bits(got, dense, "weight decay, %d threads" % n)


# --- boundary cases the property suite found (tests/properties/prop_nets.py) ---------------

def _unaligned(a):
    rec = np.zeros(a.shape, dtype=[("pad", "u1"), ("v", a.dtype)])
    rec["v"] = a
    return rec["v"]


@pytest.mark.parametrize("what", ["x", "W1", "b2", "onehot"])
@pytest.mark.parametrize("layout", ["big-endian", "unaligned"])
def test_fast_paths_take_only_native_aligned_memory(what, layout, rng):
    # a call shaped like the last one is checked in C (Executor.fast_gradient, the FD
    # engine's fast_numgrad): a big-endian array has the same type number as a native one,
    # and was read as native doubles (NaN in x came back as a gradient of 0, say)
    np.random.seed(0)
    net = TwoLayerNet(4, 3, 2)
    x, t = rng.standard_normal((3, 4)), np.array([0, 1, 1])
    x[0, 0] = np.nan if what == "x" else x[0, 0]
    want_g, want_n = net.gradient(x, t), net.numerical_gradient(x, t)   # primes the fast paths
    conv = (lambda a: a.astype(a.dtype.newbyteorder(">"))) if layout == "big-endian" else _unaligned
    args = {"x": x, "t": t}
    params = dict(net.params)
    if what == "x":
        args["x"] = conv(x)
    elif what == "onehot":
        args["t"] = conv(np.eye(2)[t])
    else:
        params[what] = conv(params[what])
    other = TwoLayerNet(4, 3, 2)
    other.params = params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got_g = other.gradient(args["x"], args["t"])
        got_n = other.numerical_gradient(args["x"], args["t"])
    # (the checked path's FD engine may take another, equally exact, series/exact route)
    for got, want, atol in ((got_g, want_g, 1e-15), (got_n, want_n, 1e-10)):
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=atol, err_msg=k)


@pytest.mark.parametrize("cls", [TwoLayerNet, MultiLayerNet])
def test_one_sample_one_class_reads_t_as_loss_does(cls):
    # a 1-D x is one sample with a 1-D output y (C,): t of y's size is one-hot, as in
    # loss (cross_entropy_error); gradient and numerical_gradient read it the same way
    # (they used to read a 1-D t as labels, rejecting [True] and [0.5] that loss takes)
    np.random.seed(3)
    net = cls(3, 2, 1) if cls is TwoLayerNet else cls(3, [2], 1)
    x = np.array([0.5, -1.0, 2.0])
    for t in (np.array([1.0]), np.array([True]), np.array([0.5]), np.array([0])):
        t2 = np.asarray(t, dtype=np.float64).reshape(1, 1)
        assert net.loss(x, t) == net.loss(x.reshape(1, -1), t2)
        for method in (net.gradient, net.numerical_gradient):
            got, want = method(x, t), method(x.reshape(1, -1), t2)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k], err_msg=(method.__name__, k))
