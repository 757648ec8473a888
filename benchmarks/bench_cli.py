"""The main job's step, as ``fastnn train`` runs it: one SGD step of the seed's net
(784-100-10 sigmoid, numerical gradient, one real MNIST image), fastnn against the books'
NumPy code; and loading the bundled sample (no reference: the book reads a pickle)."""
import numpy as np
import pytest

import reference as R
from fastnn import datasets
from fastnn.datasets import mnist as M
from fastnn.nets import TwoLayerNet

(X, T), _ = datasets.load_mnist(sample=True)


def _step(net, x, t, lr=0.1):
    grads = net.numerical_gradient(x, t)
    for key in ("W1", "b1", "W2", "b2"):  # the book's SGD
        net.params[key] -= lr * grads[key]


@pytest.mark.benchmark(group="train step: 784-100-10 sigmoid, numerical, 1 image")
@pytest.mark.parametrize("impl", ["fastnn", "reference"])
def test_seed_step(benchmark, impl):
    np.random.seed(0)
    net = (TwoLayerNet if impl == "fastnn" else R.TwoLayerNet)(784, 100, 10)
    x, t = X[:1], T[:1]
    if impl == "reference":  # about 5-10 s per step: one round
        benchmark.pedantic(_step, args=(net, x, t), rounds=1, iterations=1)
    else:
        benchmark(_step, net, x, t)


@pytest.mark.benchmark(group="load_mnist(sample=True)")
def test_load_sample(benchmark):
    def load():
        M._raw_cache.clear()
        return datasets.load_mnist(sample=True)
    benchmark(load)
