"""fastnn.gradient (generic loop) and the fused engine behind the nets' numerical_gradient,
against the NumPy reference (tests/reference.py)."""
import numpy as np
import pytest

import reference as R
from fastnn.compat import Threelayer_net
from fastnn.gradient import numerical_diff, numerical_gradient, numerical_gradient_2d
from fastnn.nets import MultiLayerNet, TwoLayerNet
from mnist_rows import mnist_rows

H = 1e-4
ATOL = 1e-9


# --- generic numerical_gradient(f, x) ------------------------------------------------

def _cube(w):
    return np.sum(np.asarray(w, dtype=np.float64) ** 3) + 0.5 * np.sum(np.sin(w))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 4), (2, 3, 5)])
def test_generic_matches_reference_bitwise(dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x0 = x.copy()
    got = numerical_gradient(_cube, x)
    exp = R.numerical_gradient(_cube, x0.copy())
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(x, x0)          # restored exactly


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_generic_float32_f_result(dtype, rng):
    # f returning a float32 scalar: the difference is float32 arithmetic, as the book's
    x = rng.standard_normal(5).astype(dtype)
    f = lambda w: np.float32(np.sum(w * w))  # noqa: E731
    np.testing.assert_array_equal(numerical_gradient(f, x.copy()), R.numerical_gradient(f, x.copy()))


def test_generic_in_place_same_object_and_values(rng):
    x = rng.standard_normal((2, 3))
    x0 = x.copy()
    seen = []

    def f(w):
        assert w is x
        seen.append(w.copy())
        return float(np.sum(w))

    numerical_gradient(f, x)
    assert len(seen) == 2 * x.size
    # first call: element (0, 0) is x0 + h, the others untouched
    d = seen[0] - x0
    assert d[0, 0] == (x0[0, 0] + H) - x0[0, 0] and np.count_nonzero(d) == 1
    d = seen[1] - x0
    assert d[0, 0] == (x0[0, 0] - H) - x0[0, 0] and np.count_nonzero(d) == 1
    d = seen[2] - x0          # C order: (0, 1) next
    assert np.count_nonzero(d) == 1 and d[0, 1] != 0
    np.testing.assert_array_equal(x, x0)


def test_generic_non_contiguous_perturbs_the_users_view(rng):
    base = rng.standard_normal((6, 8))
    base0 = base.copy()
    view = base[::2, 1::3]
    calls = []

    def f(w):
        assert w is view
        calls.append(base.copy())
        return float(np.sum(w ** 2))

    got = numerical_gradient(f, view)
    exp = R.numerical_gradient(lambda w: float(np.sum(w ** 2)), base0[::2, 1::3].copy())
    np.testing.assert_array_equal(got, exp)
    assert np.count_nonzero(calls[0] - base0) == 1   # the base array really moved
    np.testing.assert_array_equal(base, base0)


def test_generic_fortran_order_follows_nditer(rng):
    x = np.asfortranarray(rng.standard_normal((3, 4)))
    order_got, order_ref = [], []

    def rec(log, arr):
        def f(w):
            d = np.argwhere(w != arr)
            log.append(tuple(d[0]) if len(d) else None)
            return 0.0
        return f

    numerical_gradient(rec(order_got, x.copy(order="F")), x)
    xr = x.copy(order="F")
    R.numerical_gradient(rec(order_ref, xr.copy(order="F")), xr)
    assert order_got == order_ref


def test_generic_restores_after_exception(rng):
    x = rng.standard_normal((3, 3))
    x0 = x.copy()
    n = [0]

    def f(w):
        n[0] += 1
        if n[0] == 6:
            raise RuntimeError("boom")
        return 0.0

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(x, x0)


def test_generic_errors():
    with pytest.raises(TypeError, match="floating-point"):
        numerical_gradient(np.sum, np.arange(4))
    with pytest.raises(TypeError, match="numpy array"):
        numerical_gradient(np.sum, [1.0, 2.0])
    x = np.ones(3)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        numerical_gradient(np.sum, x)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        numerical_gradient_2d(np.sum, np.ones((2, 2, 2)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_generic_f_that_returns_no_scalar_is_named(dtype):
    # issue #11: "only 0-dimensional arrays can be converted", no word about f
    for f, what in ((lambda w: np.array([w.sum(), 1.0]), r"an array of shape \(2,\)"),
                    (lambda w: np.array([w.sum()]), r"an array of shape \(1,\)"),
                    (lambda w: None, "None"), (lambda w: "loss", "'loss'")):
        x = np.array([0.5, -1.0], dtype=dtype)
        with pytest.raises(TypeError, match=r"f\(x\) must return a scalar .*returned " + what):
            numerical_gradient(f, x)
        np.testing.assert_array_equal(x, np.array([0.5, -1.0], dtype=dtype))


def test_generic_float16_and_empty():
    x = np.array([0.5, -1.0], dtype=np.float16)
    np.testing.assert_array_equal(numerical_gradient(_cube, x.copy()), R.numerical_gradient(_cube, x.copy()))
    assert numerical_gradient(np.sum, np.zeros((0, 3))).shape == (0, 3)


def test_numerical_gradient_2d_and_diff(rng):
    X = rng.standard_normal((3, 4))
    f = lambda w: float(np.sum(w ** 2)) if w.ndim == 1 else 0.0  # noqa: E731
    np.testing.assert_array_equal(numerical_gradient_2d(f, X.copy()), R.numerical_gradient_2d(f, X.copy()))
    v = rng.standard_normal(5)
    np.testing.assert_array_equal(numerical_gradient_2d(f, v.copy()), R.numerical_gradient_2d(f, v.copy()))
    g = lambda x: 0.01 * x ** 2 + 0.1 * x  # noqa: E731
    assert numerical_diff(g, 5.0) == R.numerical_diff(g, 5.0)


# --- the fused engine -----------------------------------------------------------------

@pytest.fixture(params=[True, False], ids=["series", "exact"])
def engine_mode(request, monkeypatch):
    """Run a test with the Taylor-mode fast path on, and with every row evaluated exactly."""
    import fastnn._engine
    monkeypatch.setattr(fastnn._engine, "_USE_SERIES", request.param)
    return request.param


def _data(rng, B, n_in, n_out, zeros=0.4):
    x = rng.standard_normal((B, n_in))
    x[rng.random((B, n_in)) < zeros] = 0.0         # exact zeros: the skipped rows
    t = rng.integers(0, n_out, B)
    return x, t


def _onehot(t, n):
    return np.eye(n)[t]


def _max_err(g, r):
    assert set(g) == set(r)
    for k in r:
        assert g[k].shape == r[k].shape and g[k].dtype == r[k].dtype, k
    return max(float(np.max(np.abs(g[k] - r[k]))) for k in r)


@pytest.mark.parametrize("sizes", [(7, 5, 3), (13, 4, 3), (1, 1, 2)])
@pytest.mark.parametrize("B", [1, 3, 100])
@pytest.mark.parametrize("onehot", [False, True])
def test_two_layer_net_matches_reference(sizes, B, onehot, rng, engine_mode):
    x, t = _data(rng, B, sizes[0], sizes[2])
    if onehot:
        t = _onehot(t, sizes[2])
    np.random.seed(3)
    ref = R.TwoLayerNet(*sizes, weight_init_std=0.7)
    np.random.seed(3)
    net = TwoLayerNet(*sizes, weight_init_std=0.7)
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("lam", [0, 0.1])
@pytest.mark.parametrize("hidden", [[4], [6, 5], [5, 4, 3]])
@pytest.mark.parametrize("B", [1, 3, 50])
def test_multi_layer_net_matches_reference(activation, lam, hidden, B, rng, engine_mode):
    x, t = _data(rng, B, 9, 4)
    np.random.seed(5)
    ref = R.MultiLayerNet(9, hidden, 4, activation=activation, weight_init_std=activation,
                          weight_decay_lambda=lam)
    np.random.seed(5)
    net = MultiLayerNet(9, hidden, 4, activation=activation, weight_init_std=activation,
                        weight_decay_lambda=lam)
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


def test_relu_exactly_at_the_kink(rng, engine_mode):
    # z1[:, 0] == 0 exactly: the ReLU's two sides, which no series can cover
    x, t = _data(rng, 6, 7, 3)
    np.random.seed(8)
    ref = R.MultiLayerNet(7, [5, 4], 3, activation="relu")
    np.random.seed(8)
    net = MultiLayerNet(7, [5, 4], 3, activation="relu")
    for p in (ref.params, net.params):
        p["W1"][:, 0] = 0.0
        p["W2"][:, 1] = 0.0
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


def test_unnormalized_pixels_mix_series_and_exact_rows(rng):
    # 0..255 inputs: h * x reaches 0.0255, beyond the series radius for many rows
    x = np.floor(rng.random((4, 30)) * 256)
    x[x < 100] = 0
    t = rng.integers(0, 5, 4)
    np.random.seed(9)
    ref = R.MultiLayerNet(30, [6, 5], 5, activation="sigmoid", weight_init_std=0.01)
    np.random.seed(9)
    net = MultiLayerNet(30, [6, 5], 5, activation="sigmoid", weight_init_std=0.01)
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


def test_one_sample_1d_x(rng):
    x, t = _data(rng, 1, 7, 3)
    np.random.seed(1)
    ref = R.TwoLayerNet(7, 5, 3, weight_init_std=0.5)
    np.random.seed(1)
    net = TwoLayerNet(7, 5, 3, weight_init_std=0.5)
    g = net.numerical_gradient(x[0], t[0])
    assert _max_err(g, ref.numerical_gradient(x[0], t[0])) < ATOL
    assert _max_err(net.numerical_gradient(x[0], _onehot(t, 3)[0]),
                    ref.numerical_gradient(x[0], _onehot(t, 3)[0])) < ATOL


def test_saturated_and_large_weights(rng, engine_mode):
    # big logits (softmax near 0/1, the 1e-7 floor active) and big pre-activations
    x, t = _data(rng, 5, 6, 3)
    x *= 30
    for std in (3.0, 40.0):
        np.random.seed(2)
        ref = R.TwoLayerNet(6, 4, 3, weight_init_std=std)
        np.random.seed(2)
        net = TwoLayerNet(6, 4, 3, weight_init_std=std)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")        # overflow in exp, as NumPy says
            r = ref.numerical_gradient(x, t)
            g = net.numerical_gradient(x, t)
        assert _max_err(g, r) < ATOL


def _f32_reference(net_cls, params32, x, t, **kw):
    """Central differences at the float32-rounded points, the loss evaluated in float64."""
    net = net_cls.__new__(net_cls)
    if net_cls is R.MultiLayerNet:
        net.__init__(*kw["sizes"], activation=kw["activation"], weight_init_std=1.0,
                     weight_decay_lambda=kw.get("lam", 0))
    p64 = {k: v.astype(np.float64) for k, v in params32.items()}
    if net_cls is R.MultiLayerNet:
        for k in p64:
            net.params[k][...] = p64[k]
        p64 = net.params
    else:
        net.params = p64
    grads = {}
    for k, v in params32.items():
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            tmp = v[idx]
            p64[k][idx] = float(np.float32(float(tmp) + H))   # x[idx] = float(tmp) + h
            fp = net.loss(x, t)
            p64[k][idx] = float(tmp - H)                       # float32 - h: float32 (NEP 50)
            fm = net.loss(x, t)
            p64[k][idx] = float(tmp)
            g[idx] = (fp - fm) / (2 * H)
        grads[k] = g
    return grads


def test_float32_params_true_central_difference(rng, engine_mode):
    assert type(np.float32(1) - 1e-4) is np.float32   # NumPy 2 / NEP 50
    x, t = _data(rng, 3, 7, 3)
    np.random.seed(4)
    net = TwoLayerNet(7, 5, 3, weight_init_std=0.5)
    net.params = {k: v.astype(np.float32) for k, v in net.params.items()}
    net.params["b1"] += np.float32(0.3)            # nonzero biases: rounding matters
    ref = _f32_reference(R.TwoLayerNet, net.params, x, t)
    got = net.numerical_gradient(x, t)
    assert all(got[k].dtype == np.float32 for k in got)
    # float32 storage of the gradient: compare at float32 resolution of the result
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=ATOL)


def test_float32_multilayer_decay(rng):
    x, t = _data(rng, 4, 6, 3)
    np.random.seed(6)
    net = MultiLayerNet(6, [5, 4], 3, activation="sigmoid", weight_decay_lambda=0.05)
    net.params = {k: (v + 0.1).astype(np.float32) for k, v in net.params.items()}
    ref = _f32_reference(R.MultiLayerNet, net.params, x, t, sizes=(6, [5, 4], 3),
                         activation="sigmoid", lam=0.05)
    got = net.numerical_gradient(x, t)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=ATOL)


def test_thread_counts_bitwise_identical(rng, engine_mode, exact_threads):
    x, t = _data(rng, 40, 30, 10)
    for net in (TwoLayerNet(30, 17, 10, weight_init_std=0.3),
                MultiLayerNet(30, [12, 9], 10, activation="relu", weight_decay_lambda=0.01),
                MultiLayerNet(30, [12, 9], 10, activation="sigmoid")):
        g1 = net.numerical_gradient(x, t, n_threads=1)
        g2 = net.numerical_gradient(x, t, n_threads=2)
        g3 = net.numerical_gradient(x, t, n_threads=3)
        for k in g1:
            np.testing.assert_array_equal(g1[k], g2[k])
            np.testing.assert_array_equal(g1[k], g3[k])


def test_params_dict_edits_take_effect(rng):
    x, t = _data(rng, 3, 7, 3)
    np.random.seed(1)
    ref = R.TwoLayerNet(7, 5, 3, weight_init_std=0.5)
    np.random.seed(1)
    net = TwoLayerNet(7, 5, 3, weight_init_std=0.5)
    net.numerical_gradient(x, t)
    for k in ("W1", "b2"):
        delta = rng.standard_normal(ref.params[k].shape)
        ref.params[k] -= 0.1 * delta
        net.params[k] -= 0.1 * delta                 # in place
    new = rng.standard_normal(ref.params["W2"].shape)
    ref.params["W2"] = new.copy()
    net.params["W2"] = new.copy()                    # replaced entry
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


@pytest.mark.parametrize("where", ["W1", "x_inf", "b2_inf"])
def test_non_finite_gives_the_reference_result(where, rng):
    x, t = _data(rng, 3, 5, 3)
    np.random.seed(1)
    ref = R.TwoLayerNet(5, 4, 3, weight_init_std=0.5)
    np.random.seed(1)
    net = TwoLayerNet(5, 4, 3, weight_init_std=0.5)
    if where == "W1":
        ref.params["W1"][1, 2] = net.params["W1"][1, 2] = np.nan
    elif where == "x_inf":
        x[0, 1] = np.inf
    else:
        ref.params["b2"][0] = net.params["b2"][0] = np.inf
    with np.errstate(all="ignore"):
        r = ref.numerical_gradient(x, t)
        g = net.numerical_gradient(x, t)
    for k in r:
        assert np.array_equal(np.isnan(g[k]), np.isnan(r[k])), k
        assert np.array_equal(np.isinf(g[k]), np.isinf(r[k])), k
        fin = np.isfinite(r[k])
        np.testing.assert_allclose(g[k][fin], r[k][fin], rtol=0, atol=1e-8)
    if where == "W1":
        assert np.isnan(g["W2"]).all()               # never a silent 0


def test_engine_errors(rng):
    net = TwoLayerNet(4, 3, 2)
    x, t = _data(rng, 2, 4, 2)
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        net.numerical_gradient(np.ones((2, 5)), t)
    with pytest.raises(ValueError, match="labels must be in"):
        net.numerical_gradient(x, np.array([0, 2]))
    with pytest.raises(ValueError, match="t has shape"):
        net.numerical_gradient(x, np.array([0, 1, 1]))
    net.params["W1"] = net.params["W1"].astype(int)
    with pytest.raises(TypeError, match="floating-point"):
        net.numerical_gradient(x, t)
    net.params["W1"] = np.ones((4, 3))
    net.params["W1"].flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        net.numerical_gradient(x, t)


def test_training_steps_match_reference():
    """10 SGD steps (lr 0.1, one real MNIST image per step) of the half-hour structure,
    784 inputs, hidden layer reduced to 5: params stay within 1e-8 of the reference's."""
    X, T = mnist_rows(10)
    np.random.seed(0)
    ref = R.Threelayer_net(784, 5, 10, lr=0.01)
    np.random.seed(0)
    net = Threelayer_net(784, 5, 10, lr=0.01)
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    for step in range(10):
        x, t = X[step:step + 1], T[step:step + 1]
        g_ref = ref.grad(x, t)
        g = net.grad(x, t)
        for k in ref.params:
            ref.params[k] -= 0.1 * g_ref[k]
            net.params[k] -= 0.1 * g[k]
    for k in ref.params:
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=0, atol=1e-8)


@pytest.mark.slow
def test_half_hour_config_one_step():
    X, T = mnist_rows(1)
    np.random.seed(0)
    ref = R.Threelayer_net(784, 100, 10, lr=0.01)
    np.random.seed(0)
    net = Threelayer_net(784, 100, 10, lr=0.01)
    assert _max_err(net.grad(X, T), ref.grad(X, T)) < ATOL


# --- NaN / inf: the reference's NaN and inf, at the engine's speed (issue #11 items 11-12) ---

import warnings  # noqa: E402

import fastnn.nets  # noqa: E402
from fastnn.nets import MultiLayerNetExtend, ReluTwoLayerNet  # noqa: E402


@pytest.fixture
def no_book_loop(monkeypatch):
    """Fail if a net falls back to the book's per-element loop."""
    def refuse(*args, **kw):
        raise AssertionError("fell back to the book's per-element loop")
    monkeypatch.setattr(fastnn.nets, "_book_loop", refuse)


def _assert_like_reference(g, r, atol=1e-8):
    assert set(g) == set(r)
    for k in r:
        assert g[k].shape == r[k].shape and g[k].dtype == r[k].dtype, k
        np.testing.assert_array_equal(np.isnan(g[k]), np.isnan(r[k]), err_msg=k)
        np.testing.assert_array_equal(np.isposinf(g[k]), np.isposinf(r[k]), err_msg=k)
        np.testing.assert_array_equal(np.isneginf(g[k]), np.isneginf(r[k]), err_msg=k)
        fin = np.isfinite(r[k])
        np.testing.assert_allclose(g[k][fin], r[k][fin], rtol=0, atol=atol, err_msg=k)


def _pair(name, *args, seed=1, dtype=np.float64, **kw):
    classes = {"TwoLayerNet": (R.TwoLayerNet, TwoLayerNet),
               "MultiLayerNet": (R.MultiLayerNet, MultiLayerNet)}
    rc, fc = classes[name]
    np.random.seed(seed)
    ref = rc(*args, **kw)
    np.random.seed(seed)
    net = fc(*args, **kw)
    for n in (ref, net):
        for k in n.params:
            n.params[k] = n.params[k].astype(dtype)
    if hasattr(ref, "_build_layers"):
        ref._build_layers(kw.get("activation", "relu"))   # its layers hold the params
    return ref, net


NONFINITE_CASES = [
    # (net, activation, where, value): the book's result is checked, whatever it is
    ("TwoLayerNet", "sigmoid", ("W1", (1, 2)), np.nan),        # every gradient NaN
    ("TwoLayerNet", "sigmoid", ("W1", (2, 3)), np.inf),        # sigmoid(inf) = 1: finite loss
    ("TwoLayerNet", "sigmoid", ("W1", (2, 3)), -np.inf),
    ("TwoLayerNet", "sigmoid", ("x", (1, 2)), np.inf),
    ("TwoLayerNet", "sigmoid", ("x", (1, 2)), -np.inf),
    ("TwoLayerNet", "sigmoid", ("x", (0, 4)), np.nan),
    ("TwoLayerNet", "sigmoid", ("b2", (2,)), -np.inf),         # a class with p = 0
    ("TwoLayerNet", "sigmoid", ("b2", (0,)), np.inf),          # inf - inf in softmax: NaN
    ("MultiLayerNet", "relu", ("W1", (2, 3)), -np.inf),        # relu(-inf) = 0
    ("MultiLayerNet", "relu", ("b2", (1,)), -np.inf),
    ("MultiLayerNet", "relu", ("W2", (0, 0)), 1e200),          # W ** 2 overflows: NaN
    ("MultiLayerNet", "sigmoid", ("W2", (0, 0)), 1e200),
    ("MultiLayerNet", "sigmoid", ("W1", (2, 3)), np.inf),      # decay term inf: NaN
]


@pytest.mark.parametrize("name,act,where,value", NONFINITE_CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("zeros", [False, True])
def test_nonfinite_gives_the_reference_at_engine_speed(name, act, where, value, dtype, zeros,
                                                       rng, no_book_loop, engine_mode):
    x = rng.random((4, 6)) + 0.1
    if zeros:
        x[0, 2] = x[3, 1] = 0.0            # 0 * inf = NaN where a weight is inf
    t = np.array([0, 1, 2, 1])
    if name == "TwoLayerNet":
        ref, net = _pair(name, 6, 5, 3, weight_init_std=0.5, dtype=dtype)
    else:
        ref, net = _pair(name, 6, [5, 4], 3, activation=act, seed=3, dtype=dtype)
    key, idx = where
    with np.errstate(over="ignore"):            # 1e200 in float32 is inf
        if key == "x":
            x[idx] = value
        else:
            for p in (ref.params, net.params):
                p[key][idx] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref.numerical_gradient(x, t)
        got = net.numerical_gradient(x, t)
    _assert_like_reference(got, want, atol=1e-8 if dtype == np.float64 else 1e-5)


def test_nan_weight_makes_every_gradient_nan_fast(no_book_loop):
    """One NaN weight: the book's every perturbed loss is NaN, so is every gradient; the
    engine says so after one forward pass (the old fallback took seconds per step)."""
    X, T = mnist_rows(1)
    np.random.seed(0)
    net = Threelayer_net(784, 100, 10)
    net.params["w1"][5, 5] = np.nan
    g = net.grad(X, T)
    assert all(np.isnan(v).all() for v in g.values())


def test_all_weights_nan_is_the_engine_too(no_book_loop):
    """Issue #11 item 12: with every weight NaN a step took > 100 s (the per-element loop);
    the engine answers after one forward pass, for every net kind."""
    X, T = mnist_rows(2)
    for net in (TwoLayerNet(784, 50, 10), MultiLayerNet(784, [20, 20], 10)):
        for v in net.params.values():
            v[...] = np.nan
        g = net.numerical_gradient(X, T)
        assert all(np.isnan(v).all() for v in g.values())


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_multilayer_1e200_weight_is_nan_like_the_book(activation, rng, no_book_loop):
    # the loss's 0.5 * lambda * sum(W ** 2) is 0 * inf = NaN even with lambda = 0
    ref, net = _pair("MultiLayerNet", 6, [5], 3, activation=activation)
    for p in (ref.params, net.params):
        p["W1"][0, 0] = 1e200
    x, t = rng.random((3, 6)), np.array([0, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref.numerical_gradient(x, t)
        got = net.numerical_gradient(x, t)
    assert all(np.isnan(v).all() for v in want.values())
    _assert_like_reference(got, want)


def test_weight_decay_lambda_nan_gives_nan_bias_gradients(rng, no_book_loop):
    ref, net = _pair("MultiLayerNet", 6, [5], 3, weight_decay_lambda=np.nan)
    x, t = rng.random((3, 6)), np.array([0, 2, 1])
    want = ref.numerical_gradient(x, t)
    got = net.numerical_gradient(x, t)
    assert np.isnan(want["b1"]).all() and np.isnan(got["b1"]).all()
    _assert_like_reference(got, want)


def test_inf_pixel_and_inf_weight_cost_only_their_rows(no_book_loop):
    """An inf input pixel (sigmoid net): the rows it reaches are re-evaluated from scratch,
    the rest incrementally; the result is the book's."""
    X, T = mnist_rows(2)
    X = X.copy()
    X[1, np.nonzero(X[1])[0][4]] = np.inf
    np.random.seed(0)
    ref = R.TwoLayerNet(784, 3, 10, weight_init_std=0.3)
    np.random.seed(0)
    net = TwoLayerNet(784, 3, 10, weight_init_std=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _assert_like_reference(net.numerical_gradient(X, T), ref.numerical_gradient(X, T))


# --- BatchNorm nets in the engine -----------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("hidden", [[4], [5, 3]])
@pytest.mark.parametrize("lam", [0, 0.1])
def test_batchnorm_net_matches_reference(activation, hidden, lam, rng, no_book_loop):
    kw = dict(activation=activation, weight_decay_lambda=lam, use_batchnorm=True)
    np.random.seed(4)
    ref = R.MultiLayerNetExtend(7, hidden, 3, **kw)
    np.random.seed(4)
    net = MultiLayerNetExtend(7, hidden, 3, **kw)
    x = rng.standard_normal((6, 7))
    x[rng.random((6, 7)) < 0.3] = 0.0
    t = rng.integers(0, 3, 6)
    want = ref.numerical_gradient(x, t)
    got = net.numerical_gradient(x, t)
    assert list(got) == list(want)
    assert _max_err(got, want) < ATOL
    # the book's 2 x (number of params) loss calls leave their running statistics behind
    for i in range(1, len(hidden) + 1):
        a, b = net.layers["BatchNorm%d" % i], ref.layers["BatchNorm%d" % i]
        np.testing.assert_allclose(a.running_mean, b.running_mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(a.running_var, b.running_var, rtol=1e-6, atol=1e-9)


def test_batchnorm_net_thread_counts_bitwise(rng):
    np.random.seed(5)
    net = MultiLayerNetExtend(30, [12, 9], 10, use_batchnorm=True, weight_decay_lambda=0.01)
    x, t = _data(rng, 20, 30, 10)
    runs = [net.numerical_gradient(x, t, n_threads=n) for n in (1, 2, 3)]
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
        np.testing.assert_array_equal(runs[0][k], runs[2][k])


def test_dropout_net_runs_the_books_loop(rng):
    """With dropout the book's loss draws new masks at every call: the book's loop, with
    the same draws under the same seed."""
    np.random.seed(6)
    ref = R.MultiLayerNetExtend(5, [3], 2, use_dropout=True, dropout_ration=0.3)
    np.random.seed(6)
    net = MultiLayerNetExtend(5, [3], 2, use_dropout=True, dropout_ration=0.3)
    x, t = _data(rng, 4, 5, 2)
    np.random.seed(7)
    want = ref.numerical_gradient(x, t)
    np.random.seed(7)
    got = net.numerical_gradient(x, t)
    assert list(got) == list(want)
    assert _max_err(got, want) < 1e-6


def test_dropout_and_batchnorm_net_draws_per_param_in_the_books_order(rng):
    # the book's loop visits W1, b1, gamma1, beta1, W2, ...: each parameter's losses get the
    # masks drawn in that order (fastnn visited the gammas and betas last: other draws)
    np.random.seed(6)
    ref = R.MultiLayerNetExtend(5, [3, 2], 2, use_dropout=True, dropout_ration=0.3,
                                use_batchnorm=True)
    np.random.seed(6)
    net = MultiLayerNetExtend(5, [3, 2], 2, use_dropout=True, dropout_ration=0.3,
                              use_batchnorm=True)
    x, t = _data(rng, 4, 5, 2)
    np.random.seed(7)
    want = ref.numerical_gradient(x, t)
    np.random.seed(7)
    got = net.numerical_gradient(x, t)
    assert list(got) == list(want)
    assert _max_err(got, want) < 1e-6


# --- ch05's ReLU net ----------------------------------------------------------------------------

@pytest.mark.parametrize("onehot", [False, True])
def test_relu_two_layer_net_matches_reference(onehot, rng, no_book_loop, engine_mode):
    x, t = _data(rng, 5, 9, 4)
    if onehot:
        t = _onehot(t, 4)
    np.random.seed(2)
    ref = R.TwoLayerNetCh05(9, 6, 4, weight_init_std=0.5)
    np.random.seed(2)
    net = ReluTwoLayerNet(9, 6, 4, weight_init_std=0.5)
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


# --- RuntimeWarnings where NumPy warns ----------------------------------------------------------

def test_engine_warns_overflow_in_exp_like_the_book(rng):
    x, t = _data(rng, 3, 6, 3)
    x *= 50
    np.random.seed(2)
    ref = R.TwoLayerNet(6, 4, 3, weight_init_std=40.0)
    np.random.seed(2)
    net = TwoLayerNet(6, 4, 3, weight_init_std=40.0)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        want = ref.numerical_gradient(x, t)
    with pytest.warns(RuntimeWarning, match="overflow encountered in exp"):
        got = net.numerical_gradient(x, t)
    assert _max_err(got, want) < ATOL
    with np.errstate(over="ignore"), warnings.catch_warnings():   # as NumPy: silent
        warnings.simplefilter("error")
        net.numerical_gradient(x, t)
    with np.errstate(over="raise"), pytest.raises(FloatingPointError, match="overflow"):
        net.numerical_gradient(x, t)
    net.params = {k: v * 1e-3 for k, v in net.params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.numerical_gradient(x, t)


def test_wide_batchnorm_layer(rng, no_book_loop):
    """A batchnorm layer wider than the engine's fixed scratch (its own buffers are sized
    by the net)."""
    np.random.seed(8)
    ref = R.MultiLayerNetExtend(3, [257], 2, use_batchnorm=True)
    np.random.seed(8)
    net = MultiLayerNetExtend(3, [257], 2, use_batchnorm=True)
    x = rng.standard_normal((3, 3))
    t = rng.integers(0, 2, 3)
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


# --- the engine on every ISA level (its forward runs the dispatched kernels) ---------------

@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("kind", ["sigmoid", "relu", "batchnorm", "float32"])
def test_engine_on_every_isa(kind, rng):
    x, t = _data(rng, 7, 40, 4)
    np.random.seed(9)
    if kind == "batchnorm":
        ref = R.MultiLayerNetExtend(40, [6, 5], 4, use_batchnorm=True, weight_decay_lambda=0.1)
        np.random.seed(9)
        net = MultiLayerNetExtend(40, [6, 5], 4, use_batchnorm=True, weight_decay_lambda=0.1)
    else:
        act = "relu" if kind == "relu" else "sigmoid"
        ref = R.MultiLayerNet(40, [6, 5], 4, activation=act, weight_decay_lambda=0.1)
        np.random.seed(9)
        net = MultiLayerNet(40, [6, 5], 4, activation=act, weight_decay_lambda=0.1)
    if kind == "float32":
        p32 = {k: v.astype(np.float32) for k, v in net.params.items()}
        net.params = p32
        want = _f32_reference(R.MultiLayerNet, p32, x, t, sizes=(40, [6, 5], 4),
                              activation="sigmoid", lam=0.1)
        got = net.numerical_gradient(x, t)
        for k in want:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=ATOL)
        return
    assert _max_err(net.numerical_gradient(x, t), ref.numerical_gradient(x, t)) < ATOL


# --- boundary cases the property suite found (tests/properties/prop_nets.py) ---------------

@pytest.mark.parametrize("name,hidden", [("MultiLayerNet", []), ("MultiLayerNet", [3]),
                                         ("TwoLayerNet", [3])])
def test_huge_input_times_h_stays_finite_like_the_book(name, hidden, rng, no_book_loop):
    # x = 1e300: a weight's change h * x = 1e296 overflowed the engine's exact forms
    # (expm1(1e304) = inf, inf - inf = NaN) where the book's perturbed losses are finite
    args = (2,) + ((hidden[0],) if name == "TwoLayerNet" else (hidden,)) + (2,)
    ref, net = _pair(name, *args)
    x = np.array([[1e300, 0.5], [-1e300, 1.0], [3.0, -2.0]])
    t = np.array([0, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = ref.numerical_gradient(x, t)
        got = net.numerical_gradient(x, t)
    assert np.isfinite(want["W1"]).any()
    _assert_like_reference(got, want, atol=1e-7)
