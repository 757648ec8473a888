"""fastnn.layers.Convolution / Pooling against the book's layers (tests/reference.py)."""
import threading

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import layers as L

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]
# float64: the GEMM's order against BLAS's; float32 against the book's float64 (its im2col
# makes float64 arrays whatever the input dtype)
TOL = {np.float64: 1e-12, np.float32: 2e-5}

# (N, C, H, W, FN, FH, FW, stride, pad): odd sizes, stride 1 and 2, pad 0/1/2, non-square
# inputs and filters, batch 1, 1x1 filters, a filter as large as the padded input, a wide row
GEOMS = [
    (1, 1, 1, 1, 1, 1, 1, 1, 0),
    (2, 3, 7, 7, 4, 3, 3, 1, 0),
    (3, 2, 7, 9, 5, 3, 2, 1, 1),
    (1, 3, 8, 5, 3, 2, 3, 2, 0),
    (4, 2, 9, 9, 3, 3, 3, 2, 1),
    (2, 1, 5, 6, 2, 5, 5, 1, 2),
    (3, 4, 6, 6, 7, 1, 1, 1, 0),     # 1x1, stride 1, no pad: x is its own column matrix
    (2, 3, 5, 5, 2, 1, 1, 2, 1),
    (1, 2, 3, 3, 3, 7, 7, 1, 2),     # filter == padded input: one output pixel
    (2, 2, 3, 257, 3, 3, 5, 1, 1),
    (5, 3, 11, 10, 6, 4, 3, 3, 2),
    (9, 2, 6, 6, 3, 3, 3, 1, 1),     # more samples than one backward group (4)
    # C >= 4, stride 1, square filter, pad <= FH - 1: dx as a convolution of dout
    (2, 5, 7, 6, 3, 3, 3, 1, 2),
    (3, 6, 8, 9, 4, 5, 5, 1, 1),
    (2, 4, 5, 5, 3, 3, 3, 1, 0),
    (2, 4, 5, 5, 3, 1, 1, 1, 1),     # pad > FH - 1: the col2im path
    (2, 4, 5, 7, 3, 3, 2, 1, 1),     # non-square filter: the col2im path
]


def _ids(g):
    return "N%d_C%d_%dx%d_F%d_%dx%d_s%d_p%d" % g


def _close(got, ref, dtype):
    ref = np.asarray(ref, dtype=np.float64)
    scale = np.max(np.abs(ref)) if ref.size else 1.0
    np.testing.assert_allclose(got, ref, rtol=TOL[dtype], atol=TOL[dtype] * (scale + 1e-30))


def _conv_case(geom, dtype, rng):
    N, C, H, W, FN, FH, FW, stride, pad = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    Wt = rng.standard_normal((FN, C, FH, FW)).astype(dtype)
    b = rng.standard_normal(FN).astype(dtype)
    return x, Wt, b, stride, pad


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", GEOMS, ids=_ids)
def test_convolution(geom, dtype, rng):
    x, W, b, stride, pad = _conv_case(geom, dtype, rng)
    ref, got = R.Convolution(W, b, stride, pad), L.Convolution(W, b, stride, pad)
    out = got.forward(x)
    r_out = ref.forward(x)
    assert out.shape == r_out.shape and out.dtype == dtype
    _close(out, r_out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = got.backward(dout)
    r_dx = ref.backward(dout)
    assert dx.shape == x.shape and dx.dtype == got.dW.dtype == got.db.dtype == dtype
    assert got.dW.shape == W.shape and got.db.shape == b.shape
    _close(dx, r_dx, dtype)
    _close(got.dW, ref.dW, dtype)
    _close(got.db, ref.db, dtype)
    # the book's attributes
    assert got.x is x and got.W is W and got.b is b
    np.testing.assert_array_equal(got.col, ref.col)
    np.testing.assert_array_equal(got.col_W, ref.col_W)


@pytest.mark.parametrize("dtype", DTYPES)
def test_convolution_simple_convnet_shapes(dtype, rng):
    """SimpleConvNet's first layer: 1x28x28 MNIST-like input, 30 filters 5x5."""
    x = (rng.random((3, 1, 28, 28)) * (rng.random((3, 1, 28, 28)) > 0.8)).astype(dtype)
    W = (0.01 * rng.standard_normal((30, 1, 5, 5))).astype(dtype)
    b = np.zeros(30, dtype)
    ref, got = R.Convolution(W, b), L.Convolution(W, b)
    _close(got.forward(x), ref.forward(x), dtype)
    dout = rng.standard_normal((3, 30, 24, 24)).astype(dtype)
    _close(got.backward(dout), ref.backward(dout), dtype)
    _close(got.dW, ref.dW, dtype)
    _close(got.db, ref.db, dtype)


def test_convolution_keeps_W_by_reference(rng):
    x, W, b, stride, pad = _conv_case((2, 2, 6, 6, 3, 3, 3, 1, 1), np.float64, rng)
    layer = L.Convolution(W, b, stride, pad)
    first = layer.forward(x)
    W *= 2.0   # an optimizer's in-place update
    b += 1.0
    second = layer.forward(x)
    np.testing.assert_allclose(second, R.Convolution(W, b, stride, pad).forward(x), rtol=1e-12)
    assert not np.allclose(first, second)
    # col_W is a view of W, as the book's reshape(...).T
    assert np.shares_memory(layer.col_W, W)


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "int", "mixed"])
def test_convolution_layouts(layout, rng):
    x, W, b, stride, pad = _conv_case((3, 2, 7, 6, 4, 3, 2, 2, 1), np.float64, rng)
    if layout == "fortran":
        x, W = np.asfortranarray(x), np.asfortranarray(W)
    elif layout == "strided":
        big = rng.standard_normal((6, 2, 14, 6))
        x = big[::2, :, ::2, :]
    elif layout == "readonly":
        x.setflags(write=False)
        W.setflags(write=False)
    elif layout == "int":
        x = rng.integers(-5, 5, x.shape)
    elif layout == "mixed":
        W = W.astype(np.float32)   # float64 x with float32 W computes in float64
    ref, got = R.Convolution(W, b, stride, pad), L.Convolution(W, b, stride, pad)
    out = got.forward(x)
    assert out.dtype == np.float64
    _close(out, ref.forward(x), np.float64)
    dout = rng.standard_normal(out.shape)
    if layout == "fortran":
        dout = np.asfortranarray(dout)
    _close(got.backward(dout), ref.backward(dout), np.float64)
    _close(got.dW, ref.dW, np.float64)
    _close(got.db, ref.db, np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_convolution_nan_inf(dtype, rng):
    x, W, b, stride, pad = _conv_case((2, 2, 6, 5, 3, 3, 3, 1, 1), dtype, rng)
    x[0, 0, 2, 2] = np.nan
    x[1, 1, 0, 4] = np.inf
    x[1, 0, 5, 0] = -np.inf
    ref, got = R.Convolution(W, b, stride, pad), L.Convolution(W, b, stride, pad)
    with np.errstate(invalid="ignore"):
        r_out = ref.forward(x)
    out = got.forward(x)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(r_out))
    np.testing.assert_array_equal(np.isinf(out), np.isinf(r_out))
    finite = np.isfinite(r_out)
    np.testing.assert_allclose(out[finite], r_out[finite], rtol=TOL[dtype], atol=TOL[dtype] * 10)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dout[0, 1, 1, 1] = np.nan
    with np.errstate(invalid="ignore"):
        r_dx = ref.backward(dout)
    dx = got.backward(dout)
    for g, r in ((dx, r_dx), (got.dW, ref.dW), (got.db, ref.db)):
        np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
        np.testing.assert_array_equal(np.isinf(g), np.isinf(r))


def test_convolution_huge_values():
    x = np.full((1, 1, 4, 4), 1e300)
    W = np.full((1, 1, 2, 2), 1e10)
    out = L.Convolution(W, np.zeros(1)).forward(x)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(out, R.Convolution(W, np.zeros(1)).forward(x))  # inf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("what", ["conv", "pool"])
def test_threads_bitwise(what, dtype, rng):
    """Samples (and backward groups) go to threads; the bits never depend on how many."""
    x = rng.standard_normal((37, 4, 18, 17)).astype(dtype)
    W = rng.standard_normal((9, 4, 3, 3)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    results = []
    try:
        for n in (1, 2, 3):
            fastnn.set_num_threads(n)
            layer = L.Convolution(W, b, 1, 1) if what == "conv" else L.Pooling(3, 3, 2)
            out = layer.forward(x)
            dx = layer.backward(np.cos(out))
            extra = (layer.dW, layer.db) if what == "conv" else (layer.arg_max,)
            results.append((out, dx) + extra)
    finally:
        fastnn.set_num_threads(None)
    for other in results[1:]:
        for a, c in zip(results[0], other):
            np.testing.assert_array_equal(a, c)


def test_concurrent_python_threads(rng):
    x, W, b, stride, pad = _conv_case((8, 3, 12, 12, 6, 3, 3, 1, 1), np.float64, rng)
    expected = L.Convolution(W, b, stride, pad).forward(x)
    errors = []

    def work():
        try:
            for _ in range(5):
                layer = L.Convolution(W, b, stride, pad)
                np.testing.assert_array_equal(layer.forward(x), expected)
                layer.backward(np.ones_like(expected))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


# --- Pooling --------------------------------------------------------------------------

# (N, C, H, W, pool_h, pool_w, stride, pad)
POOLS = [
    (1, 1, 2, 2, 2, 2, 2, 0),
    (2, 3, 8, 8, 2, 2, 2, 0),        # the nets' pooling
    (3, 2, 7, 9, 2, 2, 2, 0),        # odd sizes: the last row/column is dropped
    (2, 2, 7, 7, 3, 3, 1, 0),        # overlapping windows
    (2, 3, 9, 8, 3, 2, 2, 0),        # overlapping in y only, non-square
    (1, 2, 6, 5, 2, 2, 1, 0),        # the book's default stride
    (2, 2, 1, 257, 1, 3, 2, 0),
    (2, 2, 3, 4, 2, 3, 4, 1),        # padded, where the book's size agrees
    (5, 4, 6, 6, 3, 3, 3, 0),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", POOLS, ids=lambda g: "N%d_C%d_%dx%d_pool%dx%d_s%d_p%d" % g)
def test_pooling(geom, dtype, rng):
    N, C, H, W, ph, pw, stride, pad = geom
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    ref, got = R.Pooling(ph, pw, stride, pad), L.Pooling(ph, pw, stride, pad)
    out = got.forward(x)
    r_out = ref.forward(x)
    assert out.dtype == dtype and out.shape == r_out.shape
    np.testing.assert_array_equal(out, r_out)          # a max is exact
    np.testing.assert_array_equal(got.arg_max, ref.arg_max)
    assert got.arg_max.dtype == ref.arg_max.dtype and got.x is x
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = got.backward(dout)
    r_dx = ref.backward(dout)
    assert dx.dtype == dtype and dx.shape == x.shape
    if dtype == np.float64:
        np.testing.assert_array_equal(dx, r_dx)        # the book's order of additions
    else:
        _close(dx, r_dx, dtype)


def test_pooling_default_stride_is_the_books():
    layer = L.Pooling(2, 2)
    assert (layer.stride, layer.pad) == (1, 0) == (R.Pooling(2, 2).stride, R.Pooling(2, 2).pad)
    assert layer.forward(np.zeros((1, 1, 5, 4))).shape == (1, 1, 4, 3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pooling_tie_rule_and_nan(dtype):
    """np.argmax: the first of equal maxima wins, and the first NaN wins over anything."""
    x = np.array([[[[1, 1, 5, 2],
                    [1, 1, 2, 5],
                    [3, np.nan, -np.inf, -np.inf],
                    [5, np.nan, -np.inf, -np.inf]]]], dtype=dtype)
    x = np.concatenate([x, -np.zeros_like(x) + 7, np.where(np.isnan(x), np.inf, x)], axis=1)
    ref, got = R.Pooling(2, 2, 2), L.Pooling(2, 2, 2)
    out = got.forward(x)
    r_out = ref.forward(x)
    np.testing.assert_array_equal(out, r_out)
    np.testing.assert_array_equal(got.arg_max, ref.arg_max)
    # window (0,0) ties 1,1,1,1 -> 0; (0,1) ties 5 at 0 and 3 -> 0; (1,0) 3, NaN, 5, NaN -> 1
    assert got.arg_max.reshape(1, 2, 2, 3)[0, 0, 0, 0] == 0
    assert got.arg_max.reshape(1, 2, 2, 3)[0, 0, 1, 0] == 0
    assert got.arg_max.reshape(1, 2, 2, 3)[0, 1, 0, 0] == 1
    assert got.arg_max.reshape(1, 2, 2, 3)[0, 1, 1, 0] == 0     # all -inf: the first
    dout = np.arange(1, out.size + 1, dtype=dtype).reshape(out.shape)
    np.testing.assert_array_equal(got.backward(dout), ref.backward(dout))


def test_pooling_user_arg_max(rng):
    x = rng.standard_normal((2, 3, 4, 4))
    ref, got = R.Pooling(2, 2, 2), L.Pooling(2, 2, 2)
    ref.forward(x)
    got.forward(x)
    new = (np.arange(got.arg_max.size) % 4).astype(np.int32)   # the user's own indices
    ref.arg_max, got.arg_max = new, new
    dout = rng.standard_normal((2, 3, 2, 2))
    np.testing.assert_array_equal(got.backward(dout), ref.backward(dout))
    got.arg_max = new + 4
    with pytest.raises(ValueError, match=r"arg_max must be in \[0, 4\)"):
        got.backward(dout)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten_order_into_affine(dtype, rng):
    """conv - relu - pool - affine - relu - affine - softmax (SimpleConvNet's layers): Affine
    flattens the pooled (N, C, H, W) map as x.reshape(N, -1), channel-major."""
    x = rng.random((3, 2, 10, 9)).astype(dtype)
    W1 = (0.3 * rng.standard_normal((4, 2, 3, 3))).astype(dtype)
    b1 = (0.1 * rng.standard_normal(4)).astype(dtype)
    W2 = (0.3 * rng.standard_normal((4 * 4 * 3, 5))).astype(dtype)
    b2 = np.zeros(5, dtype)
    W3 = (0.3 * rng.standard_normal((5, 3))).astype(dtype)
    b3 = np.zeros(3, dtype)
    t = np.array([0, 2, 1])

    def net(lib):
        return [lib.Convolution(W1, b1), lib.Relu(), lib.Pooling(2, 2, stride=2),
                lib.Affine(W2, b2), lib.Relu(), lib.Affine(W3, b3)], lib.SoftmaxWithLoss()

    results = []
    for lib in (R, L):
        layers, last = net(lib)
        h = x
        for layer in layers:
            h = layer.forward(h)
        loss = last.forward(h, t)
        d = last.backward(1)
        for layer in reversed(layers):
            d = layer.backward(d)
        results.append((loss, d, layers[0].dW, layers[0].db, layers[3].dW))
    for g, r in zip(results[1], results[0]):
        _close(g, r, dtype)


# --- errors ---------------------------------------------------------------------------

def test_convolution_errors(rng):
    W = rng.standard_normal((3, 2, 3, 3))
    b = np.zeros(3)
    conv = L.Convolution(W, b)
    with pytest.raises(ValueError, match=r"x has shape \(2, 5, 5\).*4-D"):
        conv.forward(np.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match=r"x has shape \(1, 3, 5, 5\).*W has shape \(3, 2, 3, 3\)"):
        conv.forward(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"b has shape \(4,\).*W has shape \(3, 2, 3, 3\)"):
        L.Convolution(W, np.zeros(4)).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"W has shape \(3, 2, 9\)"):
        L.Convolution(W.reshape(3, 2, 9), b).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"filter \(3, 3\) is larger than the padded input "
                                         r"\(2, 6\)"):
        conv.forward(np.zeros((1, 2, 2, 6)))
    assert L.Convolution(W, b, pad=1).forward(np.zeros((1, 2, 1, 6))).shape == (1, 3, 1, 6)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        L.Convolution(W, b, stride=0).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(TypeError, match="stride must be an integer"):
        L.Convolution(W, b, stride=1.5).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="pad must be >= 0"):
        L.Convolution(W, b, pad=-1).forward(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="called before forward"):
        L.Convolution(W, b).backward(np.zeros((1, 3, 3, 3)))
    conv.forward(np.zeros((2, 2, 5, 5)))
    with pytest.raises(ValueError, match=r"dout has shape \(2, 3, 4, 3\), expected \(2, 3, 3, 3\)"):
        conv.backward(np.zeros((2, 3, 4, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        conv.forward(np.zeros((1, 2, 5, 5), dtype=complex))


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"x has shape \(5, 5\)"):
        L.Pooling(2, 2).forward(np.zeros((5, 5)))
    with pytest.raises(ValueError, match=r"pooling window \(3, 2\) is larger than the padded "
                                         r"input \(2, 5\)"):
        L.Pooling(3, 2).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        L.Pooling(2, 2, stride=0).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="pool_w must be >= 1"):
        L.Pooling(2, 0).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="sizes its output"):
        L.Pooling(2, 2, stride=2, pad=1).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="called before forward"):
        L.Pooling(2, 2).backward(np.zeros((1, 1, 1, 1)))
    p = L.Pooling(2, 2, 2)
    p.forward(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"dout has shape \(2, 3, 2\), expected \(2, 3, 2, 2\)"):
        p.backward(np.zeros((2, 3, 2)))


def test_layers_star_import_has_the_conv_layers():
    ns = {}
    exec("from fastnn.layers import *", ns)
    assert ns["Convolution"] is L.Convolution and ns["Pooling"] is L.Pooling


def test_empty_batch():
    W = np.ones((2, 1, 3, 3))
    conv = L.Convolution(W, np.zeros(2))
    out = conv.forward(np.zeros((0, 1, 5, 5)))
    assert out.shape == (0, 2, 3, 3)
    assert conv.backward(out).shape == (0, 1, 5, 5)
    np.testing.assert_array_equal(conv.dW, np.zeros_like(W))
    np.testing.assert_array_equal(conv.db, np.zeros(2))
    pool = L.Pooling(2, 2, 2)
    assert pool.forward(np.zeros((0, 3, 4, 4))).shape == (0, 3, 2, 2)
    assert pool.backward(np.zeros((0, 3, 2, 2))).shape == (0, 3, 4, 4)


def test_gradients_match_numerical_gradient(rng):
    """A tiny conv - relu - pool - affine - softmax net: fastnn's backward against the
    reference's own central differences (float64)."""
    x = rng.standard_normal((2, 2, 6, 5))
    t = np.array([1, 0])
    params = {"W1": 0.5 * rng.standard_normal((3, 2, 3, 2)), "b1": 0.1 * rng.standard_normal(3),
              "W2": 0.5 * rng.standard_normal((3 * 3 * 3, 2)), "b2": np.zeros(2)}

    def layers():
        return [L.Convolution(params["W1"], params["b1"], 1, 1), L.Relu(),
                L.Pooling(2, 2, stride=2), L.Affine(params["W2"], params["b2"])]

    def loss(_):
        h = x
        for layer in layers():
            h = layer.forward(h)
        return L.SoftmaxWithLoss().forward(h, t)

    net, last = layers(), L.SoftmaxWithLoss()
    h = x
    for layer in net:
        h = layer.forward(h)
    last.forward(h, t)
    d = last.backward(1)
    for layer in reversed(net):
        d = layer.backward(d)
    got = {"W1": net[0].dW, "b1": net[0].db, "W2": net[3].dW, "b2": net[3].db}
    for key in params:
        num = R.numerical_gradient(loss, params[key])
        np.testing.assert_allclose(got[key], num, rtol=1e-5, atol=1e-7)


# --- the book's ch07/ch08 nets with fastnn's layers swapped in ---------------------------

def _with_fastnn_layers(net):
    """The book's net with fastnn's Convolution, Pooling, Affine, Relu and SoftmaxWithLoss in
    place of its own, sharing its params (what `from fastnn.layers import *` does to ch07's
    code). The book's Dropout stays: its predict() tests isinstance(layer, Dropout)."""
    def swap(layer):
        kind = type(layer).__name__
        if kind == "Convolution":
            return L.Convolution(layer.W, layer.b, layer.stride, layer.pad)
        if kind == "Pooling":
            return L.Pooling(layer.pool_h, layer.pool_w, layer.stride, layer.pad)
        if kind == "Affine":
            return L.Affine(layer.W, layer.b)
        if kind == "Relu":
            return L.Relu()
        return layer
    if isinstance(net.layers, dict):
        for key in net.layers:
            net.layers[key] = swap(net.layers[key])
    else:
        net.layers = [swap(layer) for layer in net.layers]
    net.last_layer = L.SoftmaxWithLoss()
    return net


def _book_net(kind, seed):
    np.random.seed(seed)
    if kind == "simple_check":   # the book's ch07 gradient check net
        return R.SimpleConvNet(input_dim=(1, 10, 10), conv_param={"filter_num": 10, "filter_size": 3,
                                                                  "pad": 0, "stride": 1},
                               hidden_size=10, output_size=10, weight_init_std=0.01)
    if kind == "simple":
        return R.SimpleConvNet()
    if kind == "course":
        return R.MnistCNN(weight_init_std=0.1)
    return R.DeepConvNet()


@pytest.mark.parametrize("kind", ["simple_check", "simple", "course", "deep"])
def test_book_nets_with_fastnn_layers(kind, rng):
    ref = _book_net(kind, 7)
    got = _with_fastnn_layers(_book_net(kind, 7))
    size = 10 if kind == "simple_check" else 28
    n = 1 if kind == "simple_check" else 2
    x = rng.random((n, 1, size, size)) * (rng.random((n, 1, size, size)) < 0.3)
    t = rng.integers(0, 10, n)
    np.random.seed(1)   # DeepConvNet's dropout masks
    r_grads = ref.gradient(x, t)
    np.random.seed(1)
    g_grads = got.gradient(x, t)
    assert sorted(g_grads) == sorted(r_grads)
    for key in r_grads:
        scale = np.max(np.abs(r_grads[key])) + 1e-300
        np.testing.assert_allclose(g_grads[key], r_grads[key], rtol=1e-10, atol=1e-12 * scale,
                                   err_msg=key)
    assert got.accuracy(x, t, batch_size=n) == ref.accuracy(x, t, batch_size=n)
    if kind == "simple_check":   # the conv layer's params by the book's central differences
        for key in ("W1", "b1"):
            num_ref = R.numerical_gradient(lambda w: ref.loss(x, t), ref.params[key])
            num_got = R.numerical_gradient(lambda w: got.loss(x, t), got.params[key])
            np.testing.assert_allclose(num_got, num_ref, rtol=1e-6, atol=1e-9, err_msg=key)


def test_kernel_workspace(rng):
    """The kernels' scratch: their own (None), or the caller's of work_bytes() bytes; same bits."""
    from fastnn._kernels import _convolution as K
    x, W, b, stride, pad = _conv_case((5, 4, 7, 6, 3, 3, 3, 1, 1), np.float64, rng)
    out1, out2 = np.empty((5, 3, 7, 6)), np.empty((5, 3, 7, 6))
    nbytes = K.work_bytes(5, 4, 7, 6, 3, 3, 3, stride, pad, 2, 8)
    work = np.full(nbytes, 255, dtype=np.uint8)    # garbage in the scratch must not matter
    assert K.convolution_forward(x, W, b, stride, pad, out1, 2) == 0
    assert K.convolution_forward(x, W, b, stride, pad, out2, 2, work) == 0
    np.testing.assert_array_equal(out1, out2)
    grads = []
    for wk in (None, work):
        dx, dW, db = np.empty_like(x), np.empty_like(W), np.empty_like(b)
        assert K.convolution_backward(x, W, out1, stride, pad, dx, dW, db, 2, wk) == 0
        grads.append((dx, dW, db))
    for a, c in zip(*grads):
        np.testing.assert_array_equal(a, c)
    with pytest.raises(ValueError, match="work is too small"):
        K.convolution_forward(x, W, b, stride, pad, out2, 2, work[:nbytes // 2])
    with pytest.raises(ValueError, match="work is too small"):
        K.convolution_backward(x, W, out1, stride, pad, dx, dW, db, 2, work[:10])
