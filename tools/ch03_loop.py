"""The lead's reproducer of issue #9's ch03 symptom: the book's batch inference
(ch03 neuralnet_mnist_batch: sample_weight.pkl's 784-50-100-10 sigmoid net, 10,000 images
in batches of 100, np.dot between the activations) with NumPy's sigmoid/softmax and with
fastnn's, alternating. Before the thread policy, fastnn's 2-thread regions and OpenBLAS's
spinning threads fought each other (900 ms vs 16 ms); now these calls are far below the
grain and open no parallel region at all.

    PYTHONPATH=src python tools/ch03_loop.py [repeats]

benchmarks/bench_busy.py measures the same loop, quiet and busy, with interleaved rounds.
"""
import os
import pickle
import sys
import time

import numpy as np

import fastnn
from fastnn._kernels import _openmp
from fastnn.datasets import load_mnist

HERE = os.path.dirname(os.path.abspath(__file__))


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_softmax(a):
    a = a - np.max(a, axis=-1, keepdims=True)
    e = np.exp(a)
    return e / np.sum(e, axis=-1, keepdims=True)


def predict(net, x, sigmoid, softmax):
    a1 = np.dot(x, net["W1"]) + net["b1"]
    z1 = sigmoid(a1)
    a2 = np.dot(z1, net["W2"]) + net["b2"]
    z2 = sigmoid(a2)
    a3 = np.dot(z2, net["W3"]) + net["b3"]
    return softmax(a3)


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    (_, _), (x, t) = load_mnist(normalize=True, flatten=True, one_hot_label=False, sample=True)
    x, t = np.concatenate([x] * 10)[:10000], np.concatenate([t] * 10)[:10000]
    with open(os.path.join(HERE, "..", "..", "shared", "data", "sample_weight.pkl"), "rb") as f:
        net = pickle.load(f)
    _openmp.reset_policy_state()
    for _ in range(repeats):
        for name, sig, sm in (("numpy", np_sigmoid, np_softmax),
                              ("fastnn", fastnn.sigmoid, fastnn.softmax)):
            t0 = time.perf_counter()
            acc = 0
            for i in range(0, len(x), 100):
                y = predict(net, x[i:i + 100], sig, sm)
                acc += np.sum(np.argmax(y, axis=1) == t[i:i + 100])
            print("%-7s %7.1f ms  accuracy %.4f" % (name, (time.perf_counter() - t0) * 1e3,
                                                    acc / len(x)))
    st = _openmp.policy_state()
    print("fastnn regions that could have had a team: %d" % (st["n_timed"] + st["n_single"]))


if __name__ == "__main__":
    main()
