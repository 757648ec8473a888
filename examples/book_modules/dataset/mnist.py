"""The book's dataset/mnist.py on fastnn: ``load_mnist(normalize=True, flatten=True,
one_hot_label=False)`` with the book's arrays (float32 in [0, 1], one-hot float64, or read-only
uint8). The files come from FASTNN_DATA, fastnn's cache, or a download; see fastnn.datasets."""
from fastnn.datasets import load_mnist  # noqa: F401
