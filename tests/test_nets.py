"""TwoLayerNet / MultiLayerNet: the book's API, init draws, forward and backprop."""
import gzip
import os
import pickle

import numpy as np
import pytest

import reference as R
from mnist_rows import mnist_rows
from fastnn.nets import MultiLayerNet, TwoLayerNet

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def test_two_layer_net_init_predict_loss_accuracy(rng):
    np.random.seed(0)
    ref = R.TwoLayerNet(13, 7, 3)
    np.random.seed(0)
    net = TwoLayerNet(13, 7, 3)
    assert list(net.params) == ["W1", "b1", "W2", "b2"]
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    x = rng.standard_normal((5, 13))
    t = rng.integers(0, 3, 5)
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-12)
    np.testing.assert_allclose(net.loss(x, t), ref.loss(x, t), rtol=1e-12)
    assert net.accuracy(x, t) == ref.accuracy(x, t)
    assert net.accuracy(x, np.eye(3)[t]) == ref.accuracy(x, np.eye(3)[t])
    assert "13-7-3" in repr(net)


@pytest.mark.parametrize("onehot", [False, True])
def test_two_layer_net_gradient_backprop(onehot, rng):
    np.random.seed(1)
    ref = R.TwoLayerNet(9, 5, 4, weight_init_std=0.5)
    np.random.seed(1)
    net = TwoLayerNet(9, 5, 4, weight_init_std=0.5)
    x = rng.standard_normal((6, 9))
    t = rng.integers(0, 4, 6)
    if onehot:
        t = np.eye(4)[t]
    g, r = net.gradient(x, t), ref.gradient(x, t)
    for k in r:
        np.testing.assert_allclose(g[k], r[k], rtol=1e-10, atol=1e-14)
    # and backprop agrees with the engine's central differences
    n = net.numerical_gradient(x, t)
    for k in r:
        np.testing.assert_allclose(g[k], n[k], rtol=0, atol=1e-6)   # O(h^2) truncation


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("std", ["relu", "he", "sigmoid", "xavier", 0.05])
def test_multi_layer_net_init_matches(activation, std):
    np.random.seed(2)
    ref = R.MultiLayerNet(11, [6, 5], 3, activation=activation, weight_init_std=std)
    np.random.seed(2)
    net = MultiLayerNet(11, [6, 5], 3, activation=activation, weight_init_std=std)
    assert list(net.params) == list(ref.params)
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    assert net.hidden_layer_num == 2 and net.hidden_size_list == [6, 5]


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("lam", [0, 0.1])
def test_multi_layer_net_forward_and_backprop(activation, lam, rng):
    np.random.seed(3)
    ref = R.MultiLayerNet(11, [6, 5], 3, activation=activation, weight_decay_lambda=lam)
    np.random.seed(3)
    net = MultiLayerNet(11, [6, 5], 3, activation=activation, weight_decay_lambda=lam)
    x = rng.standard_normal((7, 11))
    t = rng.integers(0, 3, 7)
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.loss(x, t), ref.loss(x, t), rtol=1e-12)
    assert net.accuracy(x, t) == ref.accuracy(x, t)
    g, r = net.gradient(x, t), ref.gradient(x, t)
    for k in r:
        np.testing.assert_allclose(g[k], r[k], rtol=1e-10, atol=1e-14)
    # N-d x is flattened per sample, as the book's Affine does
    np.testing.assert_allclose(net.predict(x.reshape(7, 11, 1)), ref.predict(x), rtol=1e-12)


def test_multi_layer_net_bad_activation():
    with pytest.raises(ValueError, match="activation"):
        MultiLayerNet(4, [3], 2, activation="tanh")


def test_from_params_keeps_the_dict_arrays(rng):
    params = {"W1": np.asfortranarray(rng.standard_normal((6, 4)).astype(np.float32)),
              "b1": np.zeros(4, np.float32),
              "W2": rng.standard_normal((4, 3)).astype(np.float32),
              "b2": np.zeros(3, np.float32)}
    net = MultiLayerNet.from_params(params)
    assert net.params["W1"] is params["W1"]
    assert net.activation == "sigmoid" and net.hidden_size_list == [4]
    x = rng.standard_normal((5, 6)).astype(np.float32)
    t = rng.integers(0, 3, 5)
    g = net.numerical_gradient(x, t)
    assert g["W1"].dtype == np.float32 and g["W1"].shape == (6, 4)
    with pytest.raises(ValueError, match="W1, b1"):
        MultiLayerNet.from_params({"W1": params["W1"]})


def _idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def test_sample_weight_accuracy_on_mnist_test_set():
    pkl = os.path.join(DATA, "sample_weight.pkl")
    img = os.path.join(DATA, "mnist", "t10k-images-idx3-ubyte.gz")
    lab = os.path.join(DATA, "mnist", "t10k-labels-idx1-ubyte.gz")
    if not all(os.path.exists(p) for p in (pkl, img, lab)):
        pytest.skip("shared MNIST data / sample_weight.pkl not present")
    with open(pkl, "rb") as f:
        params = pickle.load(f)
    x = _idx(img).reshape(10000, 784).astype(np.float32) / 255.0   # the book's normalize
    t = _idx(lab).astype(np.intp)
    net = MultiLayerNet.from_params(params, activation="sigmoid")
    assert net.accuracy(x, t) == 0.9352


# --- ch05's ReLU TwoLayerNet, and the book's layers / last_layer ------------------------------

from collections import OrderedDict  # noqa: E402

from fastnn import layers as L  # noqa: E402
from fastnn.nets import MultiLayerNetExtend, ReluTwoLayerNet  # noqa: E402


def test_relu_two_layer_net_is_the_books_ch05_net(rng):
    np.random.seed(0)
    ref = R.TwoLayerNetCh05(13, 7, 4)
    np.random.seed(0)
    net = ReluTwoLayerNet(13, 7, 4)
    assert list(net.params) == ["W1", "b1", "W2", "b2"]
    for k in ref.params:
        np.testing.assert_array_equal(net.params[k], ref.params[k])
    assert isinstance(net.layers, OrderedDict)
    assert list(net.layers) == ["Affine1", "Relu1", "Affine2"]
    assert [type(v).__name__ for v in net.layers.values()] == ["Affine", "Relu", "Affine"]
    assert isinstance(net.lastLayer, L.SoftmaxWithLoss)
    assert net.layers["Affine1"].W is net.params["W1"]
    x = rng.standard_normal((6, 13))
    t = rng.integers(0, 4, 6)
    np.testing.assert_allclose(net.predict(x), ref.predict(x), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.loss(x, t), ref.loss(x, t), rtol=1e-12)
    assert net.accuracy(x, t) == ref.accuracy(x, t)
    assert net.accuracy(x, np.eye(4)[t]) == ref.accuracy(x, np.eye(4)[t])
    assert "13-7-4" in repr(net)


@pytest.mark.parametrize("onehot", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_two_layer_net_gradient_equals_the_books_backprop(onehot, dtype, rng):
    X, T = mnist_rows(50)
    np.random.seed(1)
    ref = R.TwoLayerNetCh05(784, 50, 10)
    np.random.seed(1)
    net = ReluTwoLayerNet(784, 50, 10)
    net.params = {k: v.astype(dtype) for k, v in net.params.items()}
    t = np.eye(10)[T] if onehot else T
    got, want = net.gradient(X.astype(dtype), t), ref.gradient(X, t)
    for k in want:
        assert got[k].dtype == dtype
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=tol * np.max(np.abs(want[k])))


def test_relu_two_layer_net_trains_like_the_book():
    """ch05's train_neural_net loop, a few steps: the same params (float64, 1e-12)."""
    X, T = mnist_rows(300)
    np.random.seed(2)
    ref = R.TwoLayerNetCh05(784, 50, 10)
    np.random.seed(2)
    net = ReluTwoLayerNet(784, 50, 10)
    for step in range(20):
        xb, tb = X[step * 10:step * 10 + 100], T[step * 10:step * 10 + 100]
        gr, gn = ref.gradient(xb, tb), net.gradient(xb, tb)
        for k in ("W1", "b1", "W2", "b2"):
            ref.params[k] -= 0.1 * gr[k]
            net.params[k] -= 0.1 * gn[k]
    for k in ref.params:
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=0, atol=1e-12)
    assert net.accuracy(X, T) == ref.accuracy(X, T)


def test_multi_layer_net_has_the_books_layers_and_last_layer():
    np.random.seed(3)
    ref = R.MultiLayerNet(11, [6, 5], 3, activation="sigmoid")
    np.random.seed(3)
    net = MultiLayerNet(11, [6, 5], 3, activation="sigmoid")
    assert isinstance(net.layers, OrderedDict)
    assert list(net.layers) == list(ref.layers)
    assert [type(v).__name__ for v in net.layers.values()] == \
        [type(v).__name__ for v in ref.layers.values()]
    assert isinstance(net.last_layer, L.SoftmaxWithLoss)
    x = np.random.default_rng(0).standard_normal((4, 11))
    h = x
    for layer in net.layers.values():     # the book's predict, through the layers
        h = layer.forward(h)
    np.testing.assert_allclose(h, ref.predict(x), rtol=1e-12)
    net2 = MultiLayerNet.from_params(net.params, activation="sigmoid")
    assert list(net2.layers) == list(ref.layers)


@pytest.mark.parametrize("cls", ["MultiLayerNet", "MultiLayerNetExtend", "ReluTwoLayerNet"])
def test_layers_follow_rebound_params(cls, rng):
    """net.params['W1'] = new: the book's layers (and every fused path) use the new array."""
    np.random.seed(4)
    if cls == "ReluTwoLayerNet":
        net = ReluTwoLayerNet(8, 5, 3)
    elif cls == "MultiLayerNet":
        net = MultiLayerNet(8, [5], 3)
    else:
        net = MultiLayerNetExtend(8, [5], 3, use_batchnorm=True)
    new = rng.standard_normal((8, 5))
    net.params["W1"] = new
    assert net.layers["Affine1"].W is new
    if cls == "MultiLayerNetExtend":
        g = np.full(5, 2.0)
        net.params["gamma1"] = g
        assert net.layers["BatchNorm1"].gamma is g
    x = rng.standard_normal((4, 8))
    h = x
    for name, layer in net.layers.items():
        h = layer.forward(h, True) if "BatchNorm" in name else layer.forward(h)
    manual = x @ new + net.params["b1"]
    if cls == "MultiLayerNetExtend":
        mu = manual.mean(0)
        manual = 2.0 * (manual - mu) / np.sqrt(((manual - mu) ** 2).mean(0) + 10e-7)
    np.testing.assert_allclose(h, np.maximum(manual, 0) @ net.params["W2"] + net.params["b2"],
                               rtol=1e-10)


def test_nets_pickle_round_trip(rng):
    import pickle
    np.random.seed(5)
    for net in (TwoLayerNet(6, 4, 3), ReluTwoLayerNet(6, 4, 3), MultiLayerNet(6, [4], 3),
                MultiLayerNetExtend(6, [4], 3, use_batchnorm=True, use_dropout=True)):
        clone = pickle.loads(pickle.dumps(net))
        x = rng.standard_normal((3, 6))
        np.testing.assert_array_equal(clone.predict(x), net.predict(x))
        assert list(clone.params) == list(net.params)
