"""Real MNIST rows for tests, from the sample bundled in the package (always present)."""
import numpy as np

from fastnn.datasets import load_mnist


def mnist_rows(n):
    """The first ``n`` training images of the bundled sample as float64 in [0, 1], and int labels."""
    (x, t), _ = load_mnist(normalize=False, sample=True)
    return x[:n].astype(np.float64) / 255.0, t[:n].astype(int)
