"""Data for the books' examples: MNIST (``load_mnist``, a bundled real sample, the seed's
CSV files) and the nnfs book's toy sets (``spiral_data``, ``vertical_data``, ``sine_data``).
"""
from .mnist import (
    MNIST_FILES,
    MNIST_MIRRORS,
    SAMPLE_PATH,
    IDXFormatError,
    MNISTNotAvailableError,
    fetch_mnist,
    get_data_home,
    load_mnist,
    read_idx,
)
from .mnist_csv import load_mnist_csv
from .nnfs_data import sine_data, spiral_data, vertical_data

__all__ = [
    "load_mnist", "load_mnist_csv", "read_idx", "fetch_mnist", "get_data_home",
    "IDXFormatError", "MNISTNotAvailableError", "MNIST_FILES", "MNIST_MIRRORS", "SAMPLE_PATH",
    "spiral_data", "vertical_data", "sine_data",
]
