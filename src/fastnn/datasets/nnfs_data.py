"""The nnfs book's toy data sets: ``spiral_data``, ``vertical_data``, ``sine_data``.

The same formulas, shapes and dtypes as the ``nnfs`` package (``nnfs.datasets``), drawing
from NumPy's global random state as nnfs does, so ``np.random.seed(0)`` (or ``nnfs.init()``)
reproduces its data exactly. ``np.zeros`` and ``np.random.randn`` are looked up at call time,
so data made after ``nnfs.init()`` gets nnfs's float32 default as well. The optional
``seed`` gives the data of ``np.random.seed(seed)`` without touching the global state.
The spiral is the cs231n "neural networks case study" spiral (Andrej Karpathy).
"""
import numpy as np

__all__ = ["spiral_data", "vertical_data", "sine_data"]


def _randn(seed):
    # the legacy global generator, or a private one that draws the same stream as
    # np.random.seed(seed) would
    return np.random.randn if seed is None else np.random.RandomState(seed).randn


def _check(samples, classes):
    for name, v in (("samples", samples), ("classes", classes)):
        if isinstance(v, bool) or not hasattr(v, "__index__") or v.__index__() < 0:
            raise ValueError("%s must be a non-negative integer, got %r" % (name, v))
    return samples.__index__(), classes.__index__()


def spiral_data(samples, classes, seed=None):
    """Points on ``classes`` interleaved spiral arms, ``samples`` points per arm.

    Parameters
    ----------
    samples : int
        Points per class.
    classes : int
        Number of spiral arms (classes).
    seed : int, optional
        Draw the noise from ``np.random.RandomState(seed)`` instead of the global state.

    Returns
    -------
    X : ndarray, shape (samples * classes, 2), float64 (float32 after ``nnfs.init()``)
    y : ndarray, shape (samples * classes,), uint8
        Class of each point: ``samples`` zeros, then ones, and so on.
    """
    samples, classes = _check(samples, classes)
    randn = _randn(seed)
    X = np.zeros((samples * classes, 2))
    y = np.zeros(samples * classes, dtype="uint8")
    for c in range(classes):
        rows = slice(samples * c, samples * (c + 1))
        r = np.linspace(0.0, 1, samples)  # radius 0 -> 1 along the arm
        # angle: 4 radians per class, plus N(0, 0.2^2) noise
        t = np.linspace(c * 4, (c + 1) * 4, samples) + randn(samples) * 0.2
        X[rows] = np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]
        y[rows] = c
    return X, y


def vertical_data(samples, classes, seed=None):
    """Gaussian blobs side by side: class c centred at (c / 3, 0.5), standard deviation 0.1.

    Parameters, returns: as :func:`spiral_data`.
    """
    samples, classes = _check(samples, classes)
    randn = _randn(seed)
    X = np.zeros((samples * classes, 2))
    y = np.zeros(samples * classes, dtype="uint8")
    for c in range(classes):
        rows = slice(samples * c, samples * (c + 1))
        # x ~ N(c/3, 0.1^2), y ~ N(0.5, 0.1^2): x drawn first, as nnfs does
        X[rows] = np.c_[randn(samples) * .1 + c / 3, randn(samples) * .1 + 0.5]
        y[rows] = c
    return X, y


def sine_data(samples=1000):
    """One period of a sine wave for regression (no randomness).

    Returns
    -------
    X : ndarray, shape (samples, 1), float64
        ``k / samples`` for k = 0 .. samples-1.
    y : ndarray, shape (samples, 1), float64
        ``sin(2 pi X)``.
    """
    X = np.arange(samples).reshape(-1, 1) / samples
    y = np.sin(2 * np.pi * X).reshape(-1, 1)
    return X, y
