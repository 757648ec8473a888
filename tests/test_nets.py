"""TwoLayerNet / MultiLayerNet: the book's API, init draws, forward and backprop."""
import gzip
import os
import pickle

import numpy as np
import pytest

import reference as R
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
