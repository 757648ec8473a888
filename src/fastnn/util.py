"""The book's ``common/util.py``: ``im2col``, ``col2im``, ``conv_output_size``,
``smooth_curve`` and ``shuffle_dataset``, with the book's names, arguments and numbers.

``im2col`` and ``col2im`` are kernels (GIL released, ``fastnn.get_num_threads()`` threads,
the same bits on any thread count): ``col[(n, oy, ox), (c, fy, fx)]`` is the zero-padded
input pixel ``(n, c, oy*stride + fy, ox*stride + fx)``, exactly the book's layout, and
``col2im`` adds each entry back onto its pixel in the book's order. One documented
difference: the book builds its arrays with ``np.zeros`` and so returns float64 for any
input; here float32 stays float32 (integer input gives float64, as in the book).
"""
import numpy as np

from ._kernels import _convolution
from ._threads import resolve_n_threads
from ._validate import as_kernel_array, compute_dtypes, finish

# `import *` also gives `np`, as the book's common/util.py does
__all__ = ["np", "smooth_curve", "shuffle_dataset", "conv_output_size", "im2col", "col2im"]


def smooth_curve(x):
    """Smooth a loss curve for plotting: a normalised Kaiser window (length 11, beta 2)
    slid over ``x``, whose ends are mirrored first (the book's recipe; the result has
    ``len(x) - 1`` points, as the book's does).

    Parameters
    ----------
    x : array_like (n,)

    Returns
    -------
    ndarray (n - 1,)
    """
    x = np.asarray(x)
    half = 10                                    # window length 11, minus one
    window = np.kaiser(half + 1, 2)
    # mirror: x[10], ..., x[1] before and x[-1], ..., x[-10] after
    padded = np.r_[x[half:0:-1], x, x[-1:-half - 1:-1]]
    smoothed = np.convolve(window / window.sum(), padded, mode="valid")
    return smoothed[5:len(smoothed) - 5]


def shuffle_dataset(x, t):
    """Shuffle samples and labels together with one ``np.random.permutation`` draw
    (NumPy's global random state, so ``np.random.seed`` reproduces the book's order).

    Parameters
    ----------
    x : array (N, ...)
    t : array (N, ...)

    Returns
    -------
    x, t : the shuffled copies
    """
    x = np.asarray(x)
    t = np.asarray(t)
    if x.ndim == 0 or t.ndim == 0 or t.shape[0] != x.shape[0]:
        raise ValueError("shuffle_dataset: x has shape %s and t has shape %s: they must hold "
                         "the same number of samples" % (x.shape, t.shape))
    permutation = np.random.permutation(x.shape[0])
    return x[permutation], t[permutation]


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """``(input_size + 2*pad - filter_size) / stride + 1`` (true division, as the book)."""
    return (input_size + 2 * pad - filter_size) / stride + 1


def _int_arg(value, name, func, minimum):
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError("%s: %s must be an integer, got %r" % (func, name, value))
    value = int(value.__index__())
    if value < minimum:
        raise ValueError("%s: %s must be >= %d, got %d" % (func, name, minimum, value))
    return value


def _geometry(func, x_shape, filter_h, filter_w, stride, pad, what="filter",
              names=("filter_h", "filter_w")):
    """Check a convolution/pooling geometry the way the kernels need it; return
    (filter_h, filter_w, stride, pad, out_h, out_w) as ints."""
    filter_h = _int_arg(filter_h, names[0], func, 1)
    filter_w = _int_arg(filter_w, names[1], func, 1)
    stride = _int_arg(stride, "stride", func, 1)
    pad = _int_arg(pad, "pad", func, 0)
    N, C, H, W = x_shape
    if filter_h > H + 2 * pad or filter_w > W + 2 * pad:
        raise ValueError("%s: the %s (%d, %d) is larger than the padded input (%d, %d) "
                         "(input shape %s, pad=%d)" % (func, what, filter_h, filter_w,
                                                        H + 2 * pad, W + 2 * pad,
                                                        tuple(x_shape), pad))
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    return filter_h, filter_w, stride, pad, out_h, out_w


def _four_d(x, name, func, layout="(N, C, H, W)"):
    if x.ndim != 4:
        raise ValueError("%s: %s has shape %s; expected a 4-D array %s"
                         % (func, name, x.shape, layout))


def im2col(input_data, filter_h, filter_w, stride=1, pad=0, n_threads=None):
    """Unfold every filter-sized window of a batch of images into a row.

    Parameters
    ----------
    input_data : array (N, C, H, W)
    filter_h, filter_w : int, the window's height and width
    stride : int >= 1
    pad : int >= 0, zeros added on every side
    n_threads : int, optional (default ``fastnn.get_num_threads()``)

    Returns
    -------
    col : ndarray (N * out_h * out_w, C * filter_h * filter_w), with
        ``out_h = (H + 2*pad - filter_h) // stride + 1`` (``out_w`` likewise); row
        ``(n, oy, ox)``, column ``(c, fy, fx)``.
    """
    x = np.asarray(input_data)
    _four_d(x, "input_data", "im2col")
    fh, fw, stride, pad, out_h, out_w = _geometry("im2col", x.shape, filter_h, filter_w,
                                                  stride, pad)
    dt, res = compute_dtypes(x.dtype)
    N, C = x.shape[:2]
    col = np.empty((N * out_h * out_w, C * fh * fw), dtype=dt)
    _convolution.im2col_rows_batch(as_kernel_array(x, dt), fh, fw, stride, pad, col,
                                   resolve_n_threads(n_threads))
    return finish(col, res)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0, n_threads=None):
    """Fold rows of windows back into images, adding overlapping entries (the adjoint of
    ``im2col``; entries that fall into the padding are dropped).

    Parameters
    ----------
    col : array with N * out_h * out_w * C * filter_h * filter_w elements, laid out as
        ``im2col``'s result (usually of shape (N * out_h * out_w, C * filter_h * filter_w))
    input_shape : (N, C, H, W) of the images
    filter_h, filter_w, stride, pad : as for ``im2col``
    n_threads : int, optional

    Returns
    -------
    img : ndarray (N, C, H, W); each pixel is the sum of its entries, filter offsets
        (fy, fx) in order, as the book's ``col2im`` adds them.
    """
    col = np.asarray(col)
    try:
        shape = tuple(int(s.__index__()) for s in input_shape)
    except (TypeError, AttributeError):
        raise TypeError("col2im: input_shape must be 4 integers (N, C, H, W), got %r"
                        % (input_shape,)) from None
    if len(shape) != 4 or min(shape) < 0:
        raise ValueError("col2im: input_shape must be 4 non-negative integers (N, C, H, W), "
                         "got %r" % (input_shape,))
    fh, fw, stride, pad, out_h, out_w = _geometry("col2im", shape, filter_h, filter_w,
                                                  stride, pad)
    N, C, H, W = shape
    rows, K = N * out_h * out_w, C * fh * fw
    if col.size != rows * K:
        raise ValueError("col2im: col has shape %s, but input_shape %s with a (%d, %d) filter, "
                         "stride %d and pad %d needs %s" % (col.shape, shape, fh, fw, stride,
                                                            pad, (rows, K)))
    dt, res = compute_dtypes(col.dtype)
    img = np.empty(shape, dtype=dt)
    _convolution.col2im_rows_batch(as_kernel_array(col.reshape(rows, K), dt), fh, fw, stride,
                                   pad, img, resolve_n_threads(n_threads))
    return finish(img, res)
