"""fastnn's documented, deliberate differences from the books' code, as explicit rules.

Each rule returns a mode for ``_check.agree`` -- "ref" (match the reference, or both
raise), "raise" (fastnn must raise a clear error) or "either" (the reference's value or
a clear error) -- and, where the reference itself would go astray on an input fastnn
reads sensibly, the arguments to run the reference on instead.
Each rule is written in the README (the "Reliability" section lists the differences,
the sections above it the books' conventions); a rule says where.
"""
import contextlib

import numpy as np

from _gen import Labels


def _t(t):
    return t.build() if isinstance(t, Labels) else t


def dlfs_targets(y_shape, t):
    """The dlfs cross-entropy's targets (cross_entropy_error, softmax_loss, SoftmaxWithLoss,
    the nets' loss/gradient/numerical_gradient) for scores/probabilities of `y_shape`.

    Returns (mode, t_for_reference or None)."""
    tt = np.asarray(_t(t))
    if len(y_shape) == 1:
        rows, C = 1, y_shape[0]
    elif len(y_shape) == 2:
        rows, C = y_shape
    else:
        # y of another ndim: fastnn raises a ValueError naming y's shape (README: a 1-D y is
        # one sample, else (batch, classes)); the book's y[np.arange(batch), t] on an N-d y
        # picks whole sub-arrays and sums them
        return "raise", None
    if tt.dtype == object or tt.dtype.kind == "c":
        return "ref", None
    if C == 1 and len(y_shape) == 2 and tt.ndim <= 1 and tt.size == rows:
        # One class: a 1-D t holds class labels (README), where the book's size test reads
        # it as one-hot. Labels must be valid ones (all 0); compared with the book given
        # their one-hot, a column of ones (bool: y's dtype survives y - t, as with labels).
        if tt.dtype.kind not in "iu" or (tt.size and (tt.min() < 0 or tt.max() > 0)):
            return "raise", None
        return "ref", np.ones((rows, 1), dtype=bool)
    if tt.size == rows * C:  # the book's one-hot branch (t.size == y.size)
        if tt.shape == tuple(y_shape) or (len(y_shape) == 1 and tt.shape == (1, C)):
            return "ref", None
        if rows == 1 or C == 1:
            # One sample (or one class): the C entries can only mean one thing; fastnn may
            # read them as y's row where the book's argmax(axis=1) trips over the shape.
            # (README, Reliability.)
            return "either", tt.reshape(rows, C)
        # README: "mismatched shapes raise ValueError naming both shapes" -- a transposed
        # or flattened one-hot must not be read in memory order (issue #11 item 4).
        return "raise", None
    # the book's label branch: y[np.arange(rows), t]
    if tt.size != rows:
        # README: mismatched shapes raise ValueError naming both shapes (the book would
        # broadcast a single label to every row, or raise IndexError)
        return "raise", None
    if tt.dtype == bool:
        # bool labels are not class indices: the book raises IndexError or silently picks
        # columns through the bool mask; fastnn must not read them as 0/1 (issue #11 item 5)
        return "raise", None
    if tt.dtype.kind in "iu" and tt.size and tt.min() < 0:
        # README: negative labels raise ValueError where NumPy would wrap around
        return "raise", None
    if tt.ndim != 1 and tt.dtype.kind in "iu" and rows > 1:
        # labels as a (rows, 1) column: the book broadcasts them against arange(rows) into
        # a rows x rows block (a silently wrong loss); fastnn may take them as the labels
        # they are, or raise. (README, Reliability.)
        return "either", tt.reshape(rows)
    return "ref", None


def nnfs_targets(y_shape, t):
    """nnfs's Loss_CategoricalCrossentropy / Activation_Softmax_Loss_CategoricalCrossentropy
    targets for predictions of `y_shape` (2-D). Returns (mode, t_for_reference or None)."""
    raw = _t(t)
    tt = np.asarray(raw)
    rows, C = y_shape
    if isinstance(raw, list):
        # the book needs an ndarray (it reads y_true.shape); fastnn takes array-likes, as
        # everywhere else -- compare with the book run on np.asarray(y_true)
        mode, alt = nnfs_targets(y_shape, tt)
        return ("either" if mode == "ref" else mode), (tt if alt is None else alt)
    if tt.ndim == 1:
        if tt.size != rows:  # README: mismatched shapes raise ValueError
            return "raise", None
        if tt.dtype == bool:  # issue #11 item 5: bool labels are not class indices
            return "raise", None
        if tt.dtype.kind in "iu" and tt.size and tt.min() < 0:  # README: negative labels raise
            return "raise", None
        return "ref", None
    if tt.ndim == 2:
        if tt.shape != tuple(y_shape):
            # a (1, C) row would broadcast over every sample in the book; README: shapes
            # must match, ValueError naming both
            return "raise", None
        if tt.dtype == bool:
            # a bool one-hot is a 0/1 one-hot (README); the book's forward agrees, its
            # backward's -y_true fails on bool: compared with the book given it as int8
            # (small integers keep y_pred's float dtype, as bool does)
            return "ref", tt.astype(np.int8)
        return "ref", None
    # 0-d or 3-d targets: the book fails with UnboundLocalError; fastnn must say why
    return "raise", None


def complex_input(kind):
    """fastnn computes on real numbers: complex input raises TypeError (the reference
    computes complex results). (README, Reliability.)"""
    return kind == "complex128"


def object_input(kind):
    """Object arrays and None: the reference casts them to float64 when it can (None
    becomes NaN); fastnn may do the same or raise a TypeError naming the argument.
    (README, Reliability.)"""
    return kind in ("object", "none")


@contextlib.contextmanager
def ieee_dot():
    """Run the reference with IEEE arithmetic in np.dot: 0 * NaN = NaN and 0 * inf = NaN.

    NumPy's np.dot on OpenBLAS skips an exact zero of a one-row x (np.dot([[0.]], [[nan,
    1.]]) is [[0., 0.]], while NumPy's own @ gives [[nan, 0.]]); fastnn's kernels follow
    IEEE arithmetic (README: NaN and inf propagate). Used where the net's parameters or x
    hold a non-finite value."""
    orig = np.dot

    def dot(a, b, out=None):
        a, b = np.asarray(a), np.asarray(b)
        if out is None and a.ndim in (1, 2) and b.ndim in (1, 2):
            return np.matmul(a, b)
        return orig(a, b, out)
    np.dot = dot
    try:
        yield
    finally:
        np.dot = orig
