"""fastnn.util against the book's common/util.py (tests/reference.py)."""
import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import util as U

# im2col / col2im are kernels: run on each ISA level this CPU has
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]

# (N, C, H, W, filter_h, filter_w, stride, pad)
GEOMS = [
    (1, 1, 1, 1, 1, 1, 1, 0),
    (2, 3, 7, 7, 3, 3, 1, 0),
    (3, 2, 7, 9, 3, 2, 1, 1),
    (1, 3, 8, 5, 2, 3, 2, 0),
    (4, 2, 9, 9, 3, 3, 2, 2),
    (2, 1, 5, 6, 5, 5, 1, 2),
    (1, 2, 3, 257, 3, 7, 3, 1),
    (5, 3, 11, 10, 4, 3, 3, 2),
]


def _ids(g):
    return "N%d_C%d_%dx%d_f%dx%d_s%d_p%d" % g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", GEOMS, ids=_ids)
def test_im2col_col2im(geom, dtype, rng):
    N, C, H, W, fh, fw, stride, pad = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    col = U.im2col(x, fh, fw, stride, pad)
    r_col = R.im2col(x, fh, fw, stride, pad)
    assert col.shape == r_col.shape and col.dtype == dtype
    np.testing.assert_array_equal(col, r_col)          # a copy is exact
    img = U.col2im(col, x.shape, fh, fw, stride, pad)
    r_img = R.col2im(r_col, x.shape, fh, fw, stride, pad)
    assert img.shape == x.shape and img.dtype == dtype
    if dtype == np.float64:
        np.testing.assert_array_equal(img, r_img)      # the book's order of additions
    else:
        np.testing.assert_allclose(img, r_img, rtol=1e-5, atol=1e-5 * np.abs(r_img).max())
    # any column values, not only im2col's
    c2 = rng.standard_normal(col.shape).astype(dtype)
    r2 = R.col2im(c2, x.shape, fh, fw, stride, pad)
    got2 = U.col2im(c2, x.shape, fh, fw, stride, pad)
    if dtype == np.float64:
        np.testing.assert_array_equal(got2, r2)
    else:
        np.testing.assert_allclose(got2, r2, rtol=1e-5, atol=1e-5 * np.abs(r2).max())


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "int", "nan"])
def test_im2col_layouts(layout, rng):
    x = rng.standard_normal((3, 2, 6, 7))
    if layout == "fortran":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = rng.standard_normal((3, 4, 6, 14))[:, ::2, :, ::2]
    elif layout == "readonly":
        x.setflags(write=False)
    elif layout == "int":
        x = rng.integers(0, 255, x.shape).astype(np.uint8)
    elif layout == "nan":
        x[0, 0, 0, 0], x[1, 1, 3, 3], x[2, 0, 5, 6] = np.nan, np.inf, -np.inf
    col = U.im2col(x, 3, 2, 2, 1)
    np.testing.assert_array_equal(col, R.im2col(x, 3, 2, 2, 1))
    assert col.dtype == np.float64
    img = U.col2im(col if layout != "fortran" else np.asfortranarray(col), x.shape, 3, 2, 2, 1)
    np.testing.assert_array_equal(img, R.col2im(R.im2col(x, 3, 2, 2, 1), x.shape, 3, 2, 2, 1))


def test_col2im_accepts_any_shape_with_the_right_size(rng):
    col = rng.standard_normal((2 * 3 * 3, 2 * 2 * 2))
    np.testing.assert_array_equal(U.col2im(col.reshape(2, 3, 3, -1), (2, 2, 4, 4), 2, 2),
                                  R.col2im(col, (2, 2, 4, 4), 2, 2))


def test_threads_bitwise(rng):
    x = rng.standard_normal((40, 3, 20, 21))
    results = []
    try:
        for n in (1, 2, 3):
            fastnn.set_num_threads(n)
            col = U.im2col(x, 3, 3, 1, 1)
            results.append((col, U.col2im(col, x.shape, 3, 3, 1, 1)))
    finally:
        fastnn.set_num_threads(None)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_im2col_errors():
    with pytest.raises(ValueError, match=r"input_data has shape \(4, 4\).*4-D"):
        U.im2col(np.zeros((4, 4)), 2, 2)
    with pytest.raises(ValueError, match=r"filter \(5, 2\) is larger than the padded input "
                                         r"\(4, 4\)"):
        U.im2col(np.zeros((1, 1, 4, 4)), 5, 2)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        U.im2col(np.zeros((1, 1, 4, 4)), 2, 2, stride=0)
    with pytest.raises(TypeError, match="filter_h must be an integer"):
        U.im2col(np.zeros((1, 1, 4, 4)), 2.0, 2)
    with pytest.raises(ValueError, match="pad must be >= 0"):
        U.im2col(np.zeros((1, 1, 4, 4)), 2, 2, pad=-1)


def test_col2im_errors():
    with pytest.raises(ValueError, match=r"col has shape \(5, 4\).*needs \(9, 4\)"):
        U.col2im(np.zeros((5, 4)), (1, 1, 4, 4), 2, 2)
    with pytest.raises(ValueError, match="input_shape must be 4"):
        U.col2im(np.zeros((9, 4)), (1, 4, 4), 2, 2)
    with pytest.raises(TypeError, match="input_shape must be 4 integers"):
        U.col2im(np.zeros((9, 4)), (1, 1, 4.0, 4), 2, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        U.col2im(np.zeros((9, 4)), (1, 1, 1, 4), 2, 2)


@pytest.mark.parametrize("args", [(28, 5), (28, 5, 1, 0), (14, 5, 1, 2), (7, 3, 2, 0),
                                  (10, 3, 3, 1), (5, 5)])
def test_conv_output_size(args):
    got = U.conv_output_size(*args)
    assert got == R.conv_output_size(*args) and type(got) is type(R.conv_output_size(*args))


@pytest.mark.parametrize("n", [1, 2, 5, 10, 11, 12, 50, 201])
def test_smooth_curve(n, rng):
    x = np.cumsum(rng.standard_normal(n))
    try:
        ref = R.smooth_curve(x)
    except Exception as e:  # the book's recipe fails on the shortest inputs: so must ours
        with pytest.raises(type(e)):
            U.smooth_curve(x)
        return
    got = U.smooth_curve(x)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(U.smooth_curve(list(x)), ref)   # lists too (the book's loss lists)


@pytest.mark.parametrize("shape", [(10, 4), (7, 1, 3, 3), (5,)])
def test_shuffle_dataset(shape, rng):
    x = rng.standard_normal(shape)
    t = np.arange(shape[0])
    np.random.seed(3)
    rx, rt = R.shuffle_dataset(x, t) if len(shape) in (2, 4) else (x[np.random.permutation(shape[0])], None)
    np.random.seed(3)
    gx, gt = U.shuffle_dataset(x, t)
    np.testing.assert_array_equal(gx, rx)
    if rt is not None:
        np.testing.assert_array_equal(gt, rt)
    np.testing.assert_array_equal(gx, x[gt])     # samples and labels move together


def test_shuffle_dataset_errors():
    with pytest.raises(ValueError, match=r"x has shape \(3, 2\) and t has shape \(4,\)"):
        U.shuffle_dataset(np.zeros((3, 2)), np.zeros(4))
