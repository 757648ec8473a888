"""fastnn.nets.SimpleConvNet / MnistCNN / DeepConvNet against the book's nets
(tests/reference.py): loss, gradient and numerical_gradient in float32/float64, odd shapes,
stride/pad variants, batch 1, labels and one-hot, NaN/inf, the same bits on 1/2/3 threads,
every ISA level; the book's ch07/ch08 API (attributes, save/load, accuracy batching)."""
import pickle
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import layers as L
from fastnn import nets

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

# the book's ch07 gradient check net: input (1, 10, 10), 10 filters 3x3, hidden 10
CHECK = dict(input_dim=(1, 10, 10),
             conv_param={"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1},
             hidden_size=10, output_size=10, weight_init_std=0.01)

# small nets of odd shapes: (class name, constructor kwargs); SimpleConvNet needs an even
# conv output (the book sizes W2 as filter_num * (conv_out / 2)**2)
CASES = {
    "check": ("SimpleConvNet", CHECK),
    "simple_pad1_stride2": ("SimpleConvNet", dict(
        input_dim=(2, 11, 11), conv_param={"filter_num": 3, "filter_size": 3, "pad": 1,
                                           "stride": 2},
        hidden_size=7, output_size=3, weight_init_std=0.3)),
    "simple_pad2_4x4": ("SimpleConvNet", dict(
        input_dim=(3, 7, 7), conv_param={"filter_num": 5, "filter_size": 4, "pad": 2,
                                         "stride": 1},
        hidden_size=5, output_size=4, weight_init_std=0.2)),
    "course_small": ("MnistCNN", dict(input_dim=(1, 12, 12), filter_num=4, filter_size=5,
                                      pad=2, output_size=10, weight_init_std=0.3)),
    "course_nonsquare": ("MnistCNN", dict(input_dim=(2, 8, 13), filter_num=3, filter_size=3,
                                          pad=1, output_size=5, weight_init_std=0.4)),
}


def _pair(case, seed=3, dtype=np.float64):
    """(fastnn net, reference net) built from the same draws, params in dtype."""
    name, kw = CASES[case]
    np.random.seed(seed)
    got = getattr(nets, name)(**kw)
    np.random.seed(seed)
    ref = getattr(R, name)(**kw)
    for k in ref.params:
        np.testing.assert_array_equal(got.params[k], ref.params[k])
        got.params[k] = got.params[k].astype(dtype)
        ref.params[k] = ref.params[k].astype(dtype)
    for i, key in enumerate(ref._param_layers):     # the reference's layers follow too
        ref.layers[key].W = ref.params["W%d" % (i + 1)]
        ref.layers[key].b = ref.params["b%d" % (i + 1)]
    return got, ref


def _data(case, n, seed=0, dtype=np.float64, sparse=True):
    kw = CASES[case][1]
    r = np.random.default_rng(seed)
    x = r.random((n,) + tuple(kw["input_dim"]))
    if sparse:
        x *= r.random(x.shape) < 0.4                # MNIST-like exact zeros
    t = r.integers(0, kw["output_size"], n)
    return x.astype(dtype), t


def _close(got, ref, rtol, atol_scale, err=""):
    for k in ref:
        scale = np.max(np.abs(ref[k])) + 1e-300
        np.testing.assert_allclose(got[k], ref[k], rtol=rtol, atol=atol_scale * scale,
                                   err_msg="%s %s" % (err, k), equal_nan=True)


# --- the book's API ----------------------------------------------------------------------

def test_simple_convnet_is_the_books():
    np.random.seed(0)
    net = nets.SimpleConvNet()
    np.random.seed(0)
    ref = R.SimpleConvNet()
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
        assert net.params[k].dtype == np.float64
    assert net.params["W1"].shape == (30, 1, 5, 5) and net.params["W2"].shape == (4320, 100)
    assert isinstance(net.layers, OrderedDict)
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    types = [L.Convolution, L.Relu, L.Pooling, L.Affine, L.Relu, L.Affine]
    assert all(type(v) is t for v, t in zip(net.layers.values(), types))
    assert isinstance(net.last_layer, L.SoftmaxWithLoss)
    pool = net.layers["Pool1"]
    assert (pool.pool_h, pool.pool_w, pool.stride, pool.pad) == (2, 2, 2, 0)
    conv = net.layers["Conv1"]
    assert conv.W is net.params["W1"] and conv.b is net.params["b1"]
    assert (conv.stride, conv.pad) == (1, 0)
    # the layers follow params when an array is rebound
    net.params["W2"] = net.params["W2"] * 2
    assert net.layers["Affine1"].W is net.params["W2"]
    assert "SimpleConvNet" in repr(net)


def test_mnist_cnn_is_the_course_net():
    np.random.seed(0)
    net = nets.MnistCNN()
    np.random.seed(0)
    ref = R.MnistCNN()
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    assert net.params["W2"].shape == (20, 20, 5, 5) and net.params["W3"].shape == (980, 10)
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Conv2", "Relu2", "Pool2", "Affine1"]
    assert net.layers["Conv2"].pad == 2 and net.layers["Pool2"].stride == 2
    # 'he': sqrt(2 / fan_in) per layer, the same draws
    np.random.seed(0)
    he = nets.MnistCNN(weight_init_std="he")
    np.testing.assert_allclose(he.params["W2"], ref.params["W2"] / 0.01 * np.sqrt(2 / 500))
    with pytest.raises(ValueError, match="too small"):
        nets.MnistCNN(input_dim=(1, 3, 3), filter_size=5, pad=0)


def test_deep_convnet_is_the_books():
    np.random.seed(0)
    net = nets.DeepConvNet()
    np.random.seed(0)
    ref = R.DeepConvNet()
    assert sorted(net.params) == sorted(ref.params)
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    assert isinstance(net.layers, list) and len(net.layers) == len(ref.layers) == 20
    for a, b in zip(net.layers, ref.layers):
        assert type(a).__name__ == type(b).__name__
    for i, idx in enumerate((0, 2, 5, 7, 10, 12, 15, 18)):
        assert net.layers[idx].W is net.params["W%d" % (i + 1)]
    assert net.layers[7].pad == 2                    # conv_param_4 pads by 2
    assert not hasattr(net, "numerical_gradient")    # as the book's


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_loss_predict(case, dtype):
    got, ref = _pair(case, dtype=dtype)
    x, t = _data(case, 5, dtype=dtype)
    g = got.gradient(x, t)
    r = ref.gradient(x, t)
    assert list(g) == list(r)
    for k in r:
        assert g[k].shape == ref.params[k].shape and g[k].dtype == dtype
    # float64: the GEMMs' order against BLAS's; float32 against the book's float64 im2col
    tol = 1e-10 if dtype == np.float64 else 2e-4
    _close(g, r, tol, tol, case)
    y = got.predict(x)
    assert y.shape == (5, CASES[case][1]["output_size"]) and y.dtype == dtype
    np.testing.assert_allclose(y, ref.predict(x), rtol=tol, atol=tol * np.abs(y).max())
    np.testing.assert_allclose(got.loss(x, t), ref.loss(x, t), rtol=tol)
    assert got.last_layer.loss is not None           # the book's last_layer state


@pytest.mark.parametrize("case", ["check", "course_nonsquare"])
def test_gradient_batch_one_labels_and_one_hot(case):
    got, ref = _pair(case)
    x, t = _data(case, 1)
    onehot = np.eye(CASES[case][1]["output_size"])[t]
    for tt in (t, onehot, t.reshape(1, 1)):      # (1, 1): ch07 gradient_check.py's T
        _close(got.gradient(x, tt), ref.gradient(x, tt), 1e-10, 1e-12, str(tt.shape))


def test_the_gradient_check_script_of_ch07():
    """ch07/gradient_check.py: numerical and backprop gradients agree (to ~1e-6 where a
    ReLU or a pool's argmax switches within h, as in the book's run), and both are the
    book's."""
    np.random.seed(0)
    net = nets.SimpleConvNet(**CHECK)
    np.random.seed(0)
    ref = R.SimpleConvNet(**CHECK)
    X = np.random.rand(100).reshape((1, 1, 10, 10))
    T = np.array([1]).reshape((1, 1))
    grad_num = net.numerical_gradient(X, T)
    grad = net.gradient(X, T)
    assert list(grad_num) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    ref_num = _reference_check_script()
    ref_grad = ref.gradient(X, T)
    for key in grad_num:
        assert np.abs(grad_num[key] - grad[key]).mean() < 1e-5, key
        np.testing.assert_allclose(grad_num[key], ref_num[key], rtol=0, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(grad[key], ref_grad[key], rtol=1e-10, atol=1e-15, err_msg=key)


@lru_cache(maxsize=None)
def _reference_check_script():
    np.random.seed(0)
    ref = R.SimpleConvNet(**CHECK)
    X = np.random.rand(100).reshape((1, 1, 10, 10))
    return ref.numerical_gradient(X, np.array([1]).reshape((1, 1)))


@lru_cache(maxsize=None)
def _reference_numerical(case, dtype, seed, n):
    # the book's loop is slow: once per case, whatever the ISA level
    got, ref = _pair(case, seed=seed, dtype=np.dtype(dtype).type)
    x, t = _data(case, n, seed=seed, dtype=np.dtype(dtype).type)
    return ref.numerical_gradient(x, t)


@pytest.mark.parametrize("case,n", [("check", 1), ("check", 3), ("simple_pad1_stride2", 2),
                                    ("simple_pad2_4x4", 1), ("course_small", 2),
                                    ("course_nonsquare", 1)])
def test_numerical_gradient_matches_the_books_loop(case, n):
    got, _ = _pair(case, seed=4)
    x, t = _data(case, n, seed=4)
    g = got.numerical_gradient(x, t)
    r = _reference_numerical(case, "float64", 4, n)
    assert list(g) == list(r)
    for k in r:
        assert g[k].shape == r[k].shape and g[k].dtype == np.float64
        np.testing.assert_allclose(g[k], r[k], rtol=0, atol=1e-9, err_msg=k)


def test_numerical_gradient_float32_params():
    """float32 params: perturbed at the book's float32 points, the loss evaluated in
    double (the true central difference there, not float32 noise): close to the book's
    float64 numbers at the same float32 points."""
    got, _ = _pair("check", seed=5, dtype=np.float32)
    x, t = _data("check", 2, seed=5)
    g = got.numerical_gradient(x, t)
    ref64 = _reference_numerical("check", "float64", 5, 2)
    for k in ref64:
        assert g[k].dtype == np.float32
        np.testing.assert_allclose(g[k], ref64[k], rtol=0, atol=2e-5, err_msg=k)


def test_numerical_gradient_dense_input_and_one_hot():
    got, ref = _pair("check", seed=6)
    x, t = _data("check", 2, seed=6, sparse=False)
    onehot = np.eye(10)[t]
    g = got.numerical_gradient(x, onehot)
    r = ref.numerical_gradient(x, onehot)
    for k in r:
        np.testing.assert_allclose(g[k], r[k], rtol=0, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("where", ["x_nan", "W1_nan", "x_inf", "W3_inf"])
def test_nan_and_inf_give_the_books_answer(where):
    got, ref = _pair("check", seed=7)
    x, t = _data("check", 2, seed=7)
    if where == "x_nan":
        x[0, 0, 2, 3] = np.nan
    elif where == "x_inf":
        x[1, 0, 4, 4] = np.inf
    else:
        key = where[:2]
        for net in (got, ref):
            net.params[key][(0,) * net.params[key].ndim] = np.nan if where.endswith("nan") \
                else np.inf
    with np.errstate(all="ignore"):
        _close(got.gradient(x, t), ref.gradient(x, t), 1e-10, 1e-12, where)
        g = got.numerical_gradient(x, t)
        r = ref.numerical_gradient(x, t)
    for k in r:
        np.testing.assert_array_equal(np.isnan(g[k]), np.isnan(r[k]), err_msg=k)
        np.testing.assert_array_equal(np.isinf(g[k]), np.isinf(r[k]), err_msg=k)
        ok = np.isfinite(r[k])
        np.testing.assert_allclose(g[k][ok], r[k][ok], rtol=0, atol=1e-9, err_msg=k)


@pytest.mark.usefixtures("exact_threads")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["check", "course_small"])
def test_same_bits_on_1_2_3_threads(case, dtype):
    got, _ = _pair(case, dtype=dtype)
    x, t = _data(case, 9, dtype=dtype)
    runs = []
    for n in (1, 2, 3):
        fastnn.set_num_threads(n)
        try:
            runs.append((got.gradient(x, t), got.predict(x),
                         got.numerical_gradient(x[:2], t[:2], n_threads=n)))
        finally:
            fastnn.set_num_threads(None)
    for g, y, ng in runs[1:]:
        for k in g:
            np.testing.assert_array_equal(g[k], runs[0][0][k], err_msg=k)
            np.testing.assert_array_equal(ng[k], runs[0][2][k], err_msg=k)
        np.testing.assert_array_equal(y, runs[0][1])


def test_same_bits_on_1_and_2_threads_at_mnist_size(exact_threads):
    """Batch 100 of 28x28 images: big enough for every region to get a team."""
    np.random.seed(0)
    net = nets.SimpleConvNet()
    r = np.random.default_rng(1)
    x = r.random((100, 1, 28, 28)) * (r.random((100, 1, 28, 28)) < 0.2)
    t = r.integers(0, 10, 100)
    fastnn.set_num_threads(1)
    try:
        want = net.gradient(x, t)
        fastnn.set_num_threads(2)
        got = net.gradient(x, t)
    finally:
        fastnn.set_num_threads(None)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


def test_deep_convnet_gradient_and_dropout_draws():
    np.random.seed(0)
    net = nets.DeepConvNet()
    np.random.seed(0)
    ref = R.DeepConvNet()
    r = np.random.default_rng(2)
    x = r.random((3, 1, 28, 28)) * (r.random((3, 1, 28, 28)) < 0.3)
    t = r.integers(0, 10, 3)
    np.random.seed(11)
    g = net.gradient(x, t)
    after = np.random.rand()
    np.random.seed(11)
    rg = ref.gradient(x, t)
    assert np.random.rand() == after                 # the same draws, the same order
    assert list(g) == list(rg)
    _close(g, rg, 1e-9, 1e-11, "deep")
    np.random.seed(12)
    loss = net.loss(x, t)
    np.random.seed(12)
    np.testing.assert_allclose(loss, ref.loss(x, t), rtol=1e-10)
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-10, atol=1e-12)
    assert net.accuracy(x, t, batch_size=2) == ref.accuracy(x, t, batch_size=2)


def test_deep_convnet_float32():
    np.random.seed(0)
    net = nets.DeepConvNet()
    np.random.seed(0)
    ref = R.DeepConvNet()
    for k in ref.params:
        net.params[k] = net.params[k].astype(np.float32)
    r = np.random.default_rng(3)
    x = r.random((2, 1, 28, 28)).astype(np.float32)
    t = r.integers(0, 10, 2)
    np.random.seed(5)
    g = net.gradient(x, t)
    np.random.seed(5)
    rg = ref.gradient(x.astype(np.float64), t)
    for k in rg:
        assert g[k].dtype == np.float32
    _close(g, rg, 1e-3, 1e-3, "deep32")


# --- save / load in the book's pickle format -----------------------------------------------

@pytest.mark.parametrize("name", ["SimpleConvNet", "MnistCNN", "DeepConvNet"])
def test_save_and_load_in_the_books_format(name, tmp_path):
    np.random.seed(1)
    ref = getattr(R, name)()
    path = str(tmp_path / "params.pkl")
    ref.save_params(path)                            # written by the book's code
    np.random.seed(2)
    net = getattr(nets, name)()
    net.load_params(path)
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    layer = net.layers[0] if isinstance(net.layers, list) else net.layers["Conv1"]
    assert layer.W is net.params["W1"]
    r = np.random.default_rng(0)
    x = r.random((2, 1, 28, 28))
    if name == "DeepConvNet":
        np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-10, atol=1e-12)
    # and back: the book's load_params reads fastnn's file
    path2 = str(tmp_path / "mine.pkl")
    net.params["b1"] = net.params["b1"] + 1.0
    net.save_params(path2)
    with open(path2, "rb") as f:
        raw = pickle.load(f)
    assert type(raw) is dict and sorted(raw) == sorted(ref.params)
    ref.load_params(path2)
    np.testing.assert_array_equal(ref.params["b1"], net.params["b1"])


def test_default_file_name_is_params_pkl(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.random.seed(0)
    net = nets.SimpleConvNet(**CHECK)
    net.save_params()
    assert (tmp_path / "params.pkl").exists()
    np.random.seed(1)
    other = nets.SimpleConvNet(**CHECK)
    other.load_params()
    np.testing.assert_array_equal(other.params["W1"], net.params["W1"])


# --- accuracy: the book's batching ----------------------------------------------------------

def test_accuracy_is_the_books_batched_loop():
    got, ref = _pair("check", seed=8)
    x, t = _data("check", 7, seed=8)
    onehot = np.eye(10)[t]
    for bs in (1, 2, 3, 7, 100):
        assert got.accuracy(x, t, batch_size=bs) == ref.accuracy(x, t, batch_size=bs)
        assert got.accuracy(x, onehot, batch_size=bs) == ref.accuracy(x, onehot, batch_size=bs)
    assert got.accuracy(x, t) == 0.0                 # batch_size 100 > 7 images: no batch


def test_predict_in_chunks_matches_one_call():
    """predict works through the rows 100 at a time: the rows do not depend on it."""
    got, _ = _pair("check", seed=9)
    r = np.random.default_rng(0)
    x = r.random((257, 1, 10, 10))
    y = got.predict(x)
    for a, b in ((0, 1), (3, 103), (200, 257)):
        np.testing.assert_array_equal(got.predict(x[a:b]), y[a:b])


# --- training: the book's Trainer loop gives the book's numbers ------------------------------

def test_trainer_steps_match_the_books():
    from fastnn.trainer import Trainer
    got, ref = _pair("check", seed=10)
    x, t = _data("check", 40, seed=10)
    xt, tt = _data("check", 20, seed=11)
    kw = dict(epochs=1, mini_batch_size=8, optimizer="Adam", optimizer_param={"lr": 0.01},
              verbose=False)
    np.random.seed(3)
    a = Trainer(got, x, t, xt, tt, progress=False, **kw)
    for _ in range(6):
        a.train_step()
    np.random.seed(3)
    b = R.Trainer(ref, x, t, xt, tt, **kw)
    for _ in range(6):
        b.train_step()
    np.testing.assert_allclose(a.train_loss_list, b.train_loss_list, rtol=1e-9)
    for k in ref.params:
        np.testing.assert_allclose(got.params[k], ref.params[k], rtol=1e-8, atol=1e-12)


# --- errors ---------------------------------------------------------------------------------

def test_errors_name_the_shapes():
    got, _ = _pair("check")
    x, t = _data("check", 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        got.gradient(x.reshape(2, -1), t)
    with pytest.raises(ValueError, match="W1 has shape"):
        got.gradient(np.zeros((2, 3, 10, 10)), t)
    with pytest.raises(ValueError, match="W2 has shape"):
        got.gradient(np.zeros((2, 1, 12, 12)), t)      # a bigger image: Affine1 mismatches
    with pytest.raises(ValueError, match="labels must be in"):
        got.gradient(x, np.array([0, 10]))
    with pytest.raises(ValueError, match="labels must be in"):
        got.numerical_gradient(x, np.array([0, -1]))
    with pytest.raises(ValueError, match="does not fit"):
        nets.SimpleConvNet(input_dim=(1, 2, 2)).gradient(np.zeros((1, 1, 2, 2)), [0])
    with pytest.raises(TypeError, match="integers"):
        got.gradient(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="batch is empty"):
        got.gradient(x[:0], t[:0])
