"""fastnn.nnfs against tests/reference_nnfs.py (the book's NumPy classes)."""
import contextlib
import copy
import io
import pickle

import numpy as np
import pytest

import fastnn
import fastnn.nnfs as F
import reference_nnfs as R

# every test runs on each ISA level this CPU has (baseline, avx2, avx512)
pytestmark = pytest.mark.usefixtures("isa")

DTYPES = [np.float64, np.float32]


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if np.dtype(dtype) == np.float64 else dict(rtol=2e-5, atol=2e-6)


def close(a, b, dtype=np.float64, **kw):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    t = tol(dtype)
    finite = np.abs(b[np.isfinite(b)])
    if np.dtype(dtype) == np.float32 and finite.size:
        # float32 sums of many products round differently in another order (the baseline
        # kernels do not fuse multiply-adds): the error scales with the values' magnitude
        t["atol"] = max(t["atol"], 1e-6 * float(finite.max()))
    np.testing.assert_allclose(a, b, **{**t, **kw})


def pair(cls, *args, seed=0, **kwargs):
    """The same layer built by fastnn and by the reference from the same RNG draws."""
    np.random.seed(seed)
    f = getattr(F, cls)(*args, **kwargs)
    np.random.seed(seed)
    r = getattr(R, cls)(*args, **kwargs)
    return f, r


def dense_pair(n_in, n_out, dtype, **reg):
    f, r = pair("Layer_Dense", n_in, n_out, **reg)
    close(f.weights, r.weights)
    assert f.biases.shape == (1, n_out) and not f.biases.any()
    rng = np.random.default_rng(1)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal((1, n_out)).astype(dtype)
    f.set_parameters(W.copy(), b.copy())
    r.set_parameters(W.copy(), b.copy())
    return f, r


# ---- Layer_Dense ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows", [1, 3, 7, 257])
@pytest.mark.parametrize("shape", [(2, 3), (4, 64), (64, 3), (5, 1)])
def test_dense_forward_backward(dtype, rows, shape):
    f, r = dense_pair(*shape, dtype)
    rng = np.random.default_rng(2)
    X = rng.standard_normal((rows, shape[0])).astype(dtype)
    dv = rng.standard_normal((rows, shape[1])).astype(dtype)
    f.forward(X)
    r.forward(X)
    assert f.inputs is X
    close(f.output, r.output, dtype)
    f.backward(dv)
    r.backward(dv)
    for name in ("dweights", "dbiases", "dinputs"):
        close(getattr(f, name), getattr(r, name), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reg", [dict(weight_regularizer_l1=1e-3), dict(weight_regularizer_l2=5e-4),
                                 dict(bias_regularizer_l1=2e-3, bias_regularizer_l2=5e-4),
                                 dict(weight_regularizer_l1=1e-3, weight_regularizer_l2=5e-4,
                                      bias_regularizer_l1=2e-3, bias_regularizer_l2=5e-4)])
def test_dense_regularisation(dtype, reg):
    f, r = dense_pair(3, 7, dtype, **reg)
    X = np.random.default_rng(3).standard_normal((11, 3)).astype(dtype)
    dv = np.random.default_rng(4).standard_normal((11, 7)).astype(dtype)
    for layer in (f, r):
        layer.forward(X)
        layer.backward(dv)
    for name in ("dweights", "dbiases", "dinputs"):
        close(getattr(f, name), getattr(r, name), dtype)
    loss_f, loss_r = F.Loss_CategoricalCrossentropy(), R.Loss_CategoricalCrossentropy()
    loss_f.remember_trainable_layers([f])
    loss_r.remember_trainable_layers([r])
    np.testing.assert_allclose(loss_f.regularization_loss(), loss_r.regularization_loss(), **tol(dtype))


def test_dense_layouts_and_inputs():
    f, r = dense_pair(6, 5, np.float64)
    base = np.random.default_rng(5).standard_normal((20, 6))
    ro = base.copy()
    ro.flags.writeable = False
    for X in (base[::2], np.asfortranarray(base), ro, base[:, ::-1], base.tolist()):
        f.forward(X)
        r.forward(np.asarray(X))
        close(f.output, r.output)
        dv = np.ones_like(r.output)
        f.backward(dv)
        r.inputs = np.asarray(X)
        r.backward(dv)
        for name in ("dweights", "dbiases", "dinputs"):
            close(getattr(f, name), getattr(r, name))
    # Fortran-ordered / read-only weights (pickled nets)
    W = np.asfortranarray(f.weights)
    W.flags.writeable = False
    f.set_parameters(W, f.biases)
    f.forward(base)
    close(f.output, np.dot(base, W) + f.biases)
    # one sample as a 1-D vector: (1, n_neurons), as np.dot(x, W) + b gives
    f.forward(base[0])
    close(f.output, np.dot(base[0], W) + f.biases)


def test_dense_mixed_dtypes_follow_numpy():
    f, r = dense_pair(4, 3, np.float64)
    X = np.random.default_rng(6).standard_normal((9, 4)).astype(np.float32)
    f.forward(X)
    r.forward(X)
    close(f.output, r.output)          # float32 inputs, float64 weights -> float64
    Xi = np.arange(36).reshape(9, 4)
    f.forward(Xi)
    r.forward(Xi)
    close(f.output, r.output)
    f.backward(np.ones((9, 3), np.float32))
    r.backward(np.ones((9, 3), np.float32))
    for name in ("dweights", "dbiases", "dinputs"):
        close(getattr(f, name), getattr(r, name))


def test_dense_errors():
    f = F.Layer_Dense(4, 3)
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(4, 3\)"):
        f.forward(np.zeros((5, 3)))
    f.forward(np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(5, 3\)"):
        f.backward(np.zeros((5, 2)))


def test_dense_init_draws_like_the_book():
    np.random.seed(7)
    f = F.Layer_Dense(2, 64, weight_regularizer_l2=5e-4)
    np.random.seed(7)
    r = R.Layer_Dense(2, 64, weight_regularizer_l2=5e-4)
    np.testing.assert_array_equal(f.weights, r.weights)
    assert f.weights.dtype == np.float64 and f.biases.dtype == np.float64
    assert f.weight_regularizer_l2 == 5e-4 and f.bias_regularizer_l1 == 0


# ---- activations --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (257, 64)])
def test_relu(dtype, shape):
    x = np.random.default_rng(8).standard_normal(shape).astype(dtype)
    x.flat[0] = 0
    if x.size > 2:
        x.flat[1] = np.nan
    dv = np.random.default_rng(9).standard_normal(shape).astype(dtype)
    f, r = F.Activation_ReLU(), R.Activation_ReLU()
    for a in (f, r):
        a.forward(x)
        a.backward(dv)
    close(f.output, r.output, dtype, equal_nan=True)
    close(f.dinputs, r.dinputs, dtype)
    assert f.predictions(x) is x
    # non-contiguous and integer inputs
    f.forward(x.T)
    r.forward(x.T)
    close(f.output, r.output, dtype, equal_nan=True)
    f.forward(np.arange(-3, 3))
    np.testing.assert_array_equal(f.output, np.maximum(0, np.arange(-3, 3)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (7, 3), (300, 3), (257, 10)])
def test_softmax(dtype, shape):
    rng = np.random.default_rng(10)
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    dv = rng.standard_normal(shape).astype(dtype)
    f, r = F.Activation_Softmax(), R.Activation_Softmax()
    for a in (f, r):
        a.forward(x)
        a.backward(dv)
    close(f.output, r.output, dtype)
    close(f.dinputs, r.dinputs, dtype, atol=1e-6 if dtype == np.float32 else 1e-12)
    np.testing.assert_array_equal(f.predictions(f.output), r.predictions(r.output))


def test_softmax_extremes_and_errors():
    x = np.array([[1000.0, 0.0, -1000.0], [-1e300, -1e300, -1e300], [np.inf, 0, 0], [np.nan, 1, 2]])
    f, r = F.Activation_Softmax(), R.Activation_Softmax()
    with np.errstate(all="ignore"):
        f.forward(x)
        r.forward(x)
    np.testing.assert_allclose(f.output, r.output, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(f.predictions(x), np.argmax(x, axis=1))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        f.forward(np.zeros(3))
    f.forward(np.arange(6).reshape(2, 3))   # integers compute in float64, as the book's
    close(f.output, _ref_softmax(np.arange(6).reshape(2, 3)))


def _ref_softmax(x):
    a = R.Activation_Softmax()
    a.forward(x)
    return a.output


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_linear(dtype):
    x = np.random.default_rng(11).standard_normal((7, 3)).astype(dtype) * 4
    dv = np.random.default_rng(12).standard_normal((7, 3)).astype(dtype)
    for name in ("Activation_Sigmoid", "Activation_Linear"):
        f, r = getattr(F, name)(), getattr(R, name)()
        for a in (f, r):
            a.forward(x)
            a.backward(dv)
        close(f.output, r.output, dtype)
        close(f.dinputs, r.dinputs, dtype)
        np.testing.assert_array_equal(f.predictions(f.output), r.predictions(r.output))


# ---- losses -------------------------------------------------------------------------------

def _probs(rows, n, dtype, seed=13):
    a = R.Activation_Softmax()
    a.forward(np.random.default_rng(seed).standard_normal((rows, n)) * 3)
    p = a.output.astype(dtype)
    p[0, 0] = 0.0        # exercises the clipping
    if rows > 1:
        p[1, :] = 1.0
    return p


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,n", [(1, 1), (3, 3), (7, 4), (257, 10)])
@pytest.mark.parametrize("labels", [np.uint8, np.int32, np.int64, np.int16, "onehot", "onehot_int"])
def test_categorical_crossentropy(dtype, rows, n, labels):
    p = _probs(rows, n, dtype)
    y = np.random.default_rng(14).integers(0, n, rows)
    if labels == "onehot":
        t = np.eye(n, dtype=dtype)[y]
    elif labels == "onehot_int":
        t = np.eye(n, dtype=np.int64)[y]
    else:
        t = y.astype(labels)
    f, r = F.Loss_CategoricalCrossentropy(), R.Loss_CategoricalCrossentropy()
    close(f.forward(p, t), r.forward(p, t), dtype)
    lf, lr = f.calculate(p, t), r.calculate(p, t)
    assert type(lf) is type(lr)
    np.testing.assert_allclose(lf, lr, **tol(dtype))
    np.testing.assert_allclose(f.calculate_accumulated(), r.calculate_accumulated(), **tol(dtype))
    dv = p + 0.1
    f.backward(dv, t)
    r.backward(dv, t)
    close(f.dinputs, r.dinputs, dtype)


def test_categorical_crossentropy_errors():
    f = F.Loss_CategoricalCrossentropy()
    p = _probs(4, 3, np.float64)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        f.calculate(p, np.array([0, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4, 3\)"):
        f.calculate(p, np.zeros(5, dtype=int))
    with pytest.raises(TypeError, match="integers"):
        f.calculate(p, np.zeros(4))
    with pytest.raises(ValueError, match=r"\(4, 2\).*\(4, 3\)"):
        f.calculate(p, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        f.backward(p, np.array([0, 1, -1, 0]))
    s = F.Activation_Softmax_Loss_CategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        s.backward(p, np.array([0, 1, 7, 0], dtype=np.uint8))


def test_accumulation_and_regularisation_include():
    f, r = F.Loss_CategoricalCrossentropy(), R.Loss_CategoricalCrossentropy()
    lf_, lr_ = pair("Layer_Dense", 2, 3, weight_regularizer_l2=1e-2, bias_regularizer_l1=1e-2)
    lf_.biases = lr_.biases = np.full((1, 3), -0.5)
    f.remember_trainable_layers([lf_])
    r.remember_trainable_layers([lr_])
    for a in (f, r):
        a.new_pass()
    for seed in range(3):
        p = _probs(5, 3, np.float64, seed)
        t = np.arange(5) % 3
        np.testing.assert_allclose(f.calculate(p, t, include_regularization=True),
                                   r.calculate(p, t, include_regularization=True), rtol=1e-12)
    np.testing.assert_allclose(f.calculate_accumulated(include_regularization=True),
                               r.calculate_accumulated(include_regularization=True), rtol=1e-12)
    assert f.accumulated_count == r.accumulated_count == 15


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("onehot", [False, True])
def test_softmax_loss_combined(dtype, onehot):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((9, 4)).astype(dtype)
    y = rng.integers(0, 4, 9).astype(np.uint8)
    t = np.eye(4, dtype=dtype)[y] if onehot else y
    f = F.Activation_Softmax_Loss_CategoricalCrossentropy()
    r = R.Activation_Softmax_Loss_CategoricalCrossentropy()
    np.testing.assert_allclose(f.forward(x, t), r.forward(x, t), **tol(dtype))     # chapter 10 way
    close(f.output, r.output, dtype)
    f.backward(f.output, t)
    r.backward(r.output, t)
    close(f.dinputs, r.dinputs, dtype)
    # the combined gradient equals softmax backward of the loss gradient
    s, l = F.Activation_Softmax(), F.Loss_CategoricalCrossentropy()
    s.forward(x.astype(np.float64))
    l.backward(s.output, t)
    s.backward(l.dinputs)
    np.testing.assert_allclose(f.dinputs, s.dinputs, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["Loss_BinaryCrossentropy", "Loss_MeanSquaredError", "Loss_MeanAbsoluteError"])
def test_other_losses(dtype, name):
    rng = np.random.default_rng(16)
    p = rng.uniform(0, 1, (8, 2)).astype(dtype)
    t = (rng.uniform(0, 1, (8, 2)) > 0.5).astype(dtype)
    f, r = getattr(F, name)(), getattr(R, name)()
    np.testing.assert_allclose(f.calculate(p, t), r.calculate(p, t), **tol(dtype))
    f.backward(p, t)
    r.backward(p, t)
    close(f.dinputs, r.dinputs, dtype)


def test_accuracy():
    f, r = F.Accuracy_Categorical(), R.Accuracy_Categorical()
    p = np.array([0, 1, 2, 1])
    for y in (np.array([0, 1, 1, 1]), np.eye(3)[[0, 1, 1, 1]]):
        assert f.calculate(p, y) == r.calculate(p, y) == 0.75
    fb = F.Accuracy_Categorical(binary=True)
    assert fb.calculate(np.array([[1], [0]]), np.array([[1], [1]])) == 0.5
    fr, rr = F.Accuracy_Regression(), R.Accuracy_Regression()
    y = np.linspace(0, 1, 50).reshape(-1, 1)
    fr.init(y)
    rr.init(y)
    assert fr.precision == rr.precision == np.std(y) / 250
    assert fr.calculate(y + 1e-5, y) == rr.calculate(y + 1e-5, y)


def test_accuracy_of_bool_comparisons_is_the_books():
    # 1-D bool comparisons are counted once (np.count_nonzero): the same mean, sum and
    # types as the book's np.mean / np.sum, accumulated the same way
    rng = np.random.default_rng(8)
    for n in (0, 1, 3, 7, 3000):
        f, r = F.Accuracy_Categorical(), R.Accuracy_Categorical()
        for _ in range(3):
            p, y = rng.integers(0, 3, n), rng.integers(0, 3, n)
            if n == 0:
                with np.errstate(invalid="ignore", divide="ignore"), pytest.warns(RuntimeWarning):
                    a, b = f.calculate(p, y), r.calculate(p, y)
                assert np.isnan(a) and np.isnan(b)
            else:
                a, b = f.calculate(p, y), r.calculate(p, y)
                assert a == b and type(a) is type(b)
        assert f.accumulated_sum == r.accumulated_sum and type(f.accumulated_sum) is type(r.accumulated_sum)
        assert f.accumulated_count == r.accumulated_count
        if n:
            assert f.calculate_accumulated() == r.calculate_accumulated()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_fast_path_is_taken_only_for_plain_arrays(dtype):
    # the C check (plain_dense_args) sends one-dtype C-contiguous arrays with (1, N)
    # biases to the kernels; everything else goes through the cast and gives the book's
    # shapes and dtypes
    f, r = dense_pair(4, 3, dtype)
    rng = np.random.default_rng(6)
    X = rng.standard_normal((9, 4)).astype(dtype)
    dv = rng.standard_normal((9, 3)).astype(dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    cases = [(X, dv), (X.astype(other), dv), (X, dv.astype(other)), (np.asfortranarray(X), dv),
             (X, dv[:, ::-1].copy()[:, ::-1]), (X[::-1].copy()[::-1], dv)]
    for x, d in cases:
        for layer in (f, r):
            layer.forward(x)
            layer.backward(d)
        for name in ("output", "dweights", "dbiases", "dinputs"):
            a, b = getattr(f, name), getattr(r, name)
            assert a.shape == b.shape and a.dtype == b.dtype, name
            close(a, b, np.float32 if np.float32 in (np.asarray(x).dtype, d.dtype, dtype) else np.float64)
    for bias in (f.biases.reshape(-1).copy(), f.biases.astype(other)):   # not (1, N) of W's dtype
        f.biases, r.biases = bias, bias.copy()
        for layer in (f, r):
            layer.forward(X)
            layer.backward(dv)
        for name in ("output", "dweights", "dbiases", "dinputs"):
            a, b = getattr(f, name), getattr(r, name)
            assert a.shape == b.shape and a.dtype == b.dtype, name


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_train_on_the_benchmark_shapes(dtype):
    # spiral_data(1000, 3): 3000 x 2 inputs, a 2-64-3 net, Adam - the shapes of the nnfs
    # benchmark, where the dense layers take the narrow-output and few-row GEMM paths
    np.random.seed(0)
    X, y = R.spiral_data(1000, 3)
    X = X.astype(dtype)
    mf = _classifier(F, dtype)
    mr = _classifier(R, dtype)
    out_f = _train(F, mf, X, y, epochs=3, print_every=1)
    out_r = _train(R, mr, X, y, epochs=3, print_every=1)
    if dtype == np.float64:
        assert out_f == out_r
    else:
        assert out_f.count("\n") == out_r.count("\n")
    rt = dict(rtol=1e-9, atol=1e-11) if dtype == np.float64 else dict(rtol=1e-3, atol=1e-4)
    for (wf, bf), (wr, br) in zip(mf.get_parameters(), mr.get_parameters()):
        close(wf, wr, dtype, **rt)
        close(bf, br, dtype, **rt)
    for lf, lr in zip(mf.layers, mr.layers):
        for name in ("output", "dinputs"):
            close(getattr(lf, name), getattr(lr, name), dtype, **rt)


# ---- optimizers ---------------------------------------------------------------------------

OPTIMIZERS = [
    ("Optimizer_SGD", {}),
    ("Optimizer_SGD", dict(learning_rate=0.5, decay=1e-2, momentum=0.9)),
    ("Optimizer_Adagrad", dict(decay=1e-3)),
    ("Optimizer_RMSprop", dict(learning_rate=0.02, decay=1e-3, rho=0.95)),
    ("Optimizer_Adam", {}),
    ("Optimizer_Adam", dict(learning_rate=0.05, decay=5e-5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_optimizers(dtype, name, kw):
    f, r = dense_pair(3, 5, dtype)
    of, orf = getattr(F, name)(**kw), getattr(R, name)(**kw)
    rng = np.random.default_rng(17)
    for step in range(5):
        dW = rng.standard_normal((3, 5)).astype(dtype)
        db = rng.standard_normal((1, 5)).astype(dtype)
        for layer, opt in ((f, of), (r, orf)):
            layer.dweights, layer.dbiases = dW.copy(), db.copy()
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
        close(f.weights, r.weights, dtype)
        close(f.biases, r.biases, dtype)
        assert of.current_learning_rate == orf.current_learning_rate
        assert of.iterations == orf.iterations
    state = sorted(k for k in vars(r) if k.endswith(("momentums", "cache")))
    assert sorted(k for k in vars(f) if k.endswith(("momentums", "cache"))) == state
    for k in state:
        close(getattr(f, k), getattr(r, k), dtype)


def test_optimizer_defaults():
    assert (F.Optimizer_SGD().learning_rate, F.Optimizer_SGD().momentum) == (1.0, 0.0)
    assert F.Optimizer_Adagrad().epsilon == 1e-7
    o = F.Optimizer_RMSprop()
    assert (o.learning_rate, o.decay, o.epsilon, o.rho) == (0.001, 0.0, 1e-7, 0.9)
    o = F.Optimizer_Adam()
    assert (o.learning_rate, o.beta_1, o.beta_2, o.iterations) == (0.001, 0.9, 0.999, 0)


def test_optimizer_on_noncontiguous_parameters_uses_book_formula():
    f, r = dense_pair(4, 6, np.float64)
    for layer in (f, r):
        layer.weights = np.asfortranarray(layer.weights)
        layer.dweights = np.ones((4, 6))
        layer.dbiases = np.ones((1, 6))
        R.Optimizer_Adam(learning_rate=0.1).update_params(layer) if layer is r else \
            F.Optimizer_Adam(learning_rate=0.1).update_params(layer)
    close(f.weights, r.weights)


# ---- the seed's random search ------------------------------------------------------------

def _random_search(M, iterations=200):
    np.random.seed(0)
    X, y = R.vertical_data(samples=100, classes=3)
    dense1, activation1 = M.Layer_Dense(2, 3), M.Activation_ReLU()
    dense2, activation2 = M.Layer_Dense(3, 3), M.Activation_Softmax()
    loss_function = M.Loss_CategoricalCrossentropy()
    lowest_loss = 9999999
    best = [dense1.weights.copy(), dense1.biases.copy(), dense2.weights.copy(), dense2.biases.copy()]
    history = []
    for iteration in range(iterations):
        dense1.weights += 0.05 * np.random.randn(2, 3)
        dense1.biases += 0.05 * np.random.randn(1, 3)
        dense2.weights += 0.05 * np.random.randn(3, 3)
        dense2.biases += 0.05 * np.random.randn(1, 3)
        dense1.forward(X)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        activation2.forward(dense2.output)
        loss = loss_function.calculate(activation2.output, y)
        accuracy = np.mean(np.argmax(activation2.output, axis=1) == y)
        if loss < lowest_loss:
            history.append((iteration, loss, accuracy))
            best = [dense1.weights.copy(), dense1.biases.copy(), dense2.weights.copy(), dense2.biases.copy()]
            lowest_loss = loss
        else:
            dense1.weights, dense1.biases = best[0].copy(), best[1].copy()
            dense2.weights, dense2.biases = best[2].copy(), best[3].copy()
    return history, best


def test_random_search_matches_reference():
    hf, bf = _random_search(F)
    hr, br = _random_search(R)
    assert [h[0] for h in hf] == [h[0] for h in hr]
    np.testing.assert_allclose([h[1:] for h in hf], [h[1:] for h in hr], rtol=1e-12)
    for a, b in zip(bf, br):
        close(a, b)


# ---- Model ------------------------------------------------------------------------------

def _classifier(M, dtype=np.float64, dropout=0.0, optimizer=None):
    np.random.seed(42)
    model = M.Model()
    model.add(M.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
    model.add(M.Activation_ReLU())
    if dropout:
        model.add(M.Layer_Dropout(dropout))
    model.add(M.Layer_Dense(64, 3))
    model.add(M.Activation_Softmax())
    opt = optimizer(M) if optimizer else M.Optimizer_Adam(learning_rate=0.05, decay=5e-5)
    model.set(loss=M.Loss_CategoricalCrossentropy(), optimizer=opt, accuracy=M.Accuracy_Categorical())
    model.finalize()
    if dtype != np.float64:
        for layer in model.trainable_layers:
            layer.set_parameters(layer.weights.astype(dtype), layer.biases.astype(dtype))
    return model


def _train(M, model, X, y, **kw):
    buf = io.StringIO()
    np.random.seed(3)
    with contextlib.redirect_stdout(buf):
        model.train(X, y, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["full", "batches+dropout", "sgd-momentum"])
def test_model_train_matches_reference(dtype, case):
    np.random.seed(0)
    X, y = R.spiral_data(100, 3)
    X = X.astype(dtype)
    Xv, yv = R.spiral_data(30, 3)
    kw = dict(epochs=6, print_every=2)
    opt = None
    dropout = 0.0
    if case == "batches+dropout":
        kw.update(batch_size=64, validation_data=(Xv.astype(dtype), yv))
        dropout = 0.1
    elif case == "sgd-momentum":
        opt = lambda M: M.Optimizer_SGD(learning_rate=1.0, decay=1e-3, momentum=0.9)
    mf = _classifier(F, dtype, dropout, opt)
    mr = _classifier(R, dtype, dropout, opt)
    out_f = _train(F, mf, X, y, **kw)
    out_r = _train(R, mr, X, y, **kw)
    for (wf, bf), (wr, br) in zip(mf.get_parameters(), mr.get_parameters()):
        rt = dict(rtol=1e-8, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-3, atol=2e-4)
        close(wf, wr, dtype, **rt)
        close(bf, br, dtype, **rt)
    if dtype == np.float64:
        assert out_f == out_r
    else:
        assert out_f.count("\n") == out_r.count("\n")
    close(mf.predict(X), mr.predict(X), dtype, **(dict(rtol=1e-7, atol=1e-9) if dtype == np.float64 else dict(rtol=1e-2, atol=1e-3)))


def test_model_regression_sine():
    X, y = R.sine_data(200)

    def build(M):
        np.random.seed(5)
        m = M.Model()
        m.add(M.Layer_Dense(1, 16))
        m.add(M.Activation_ReLU())
        m.add(M.Layer_Dense(16, 1))
        m.add(M.Activation_Linear())
        m.set(loss=M.Loss_MeanSquaredError(), optimizer=M.Optimizer_Adam(learning_rate=0.005, decay=1e-3),
              accuracy=M.Accuracy_Regression())
        m.finalize()
        return m
    mf, mr = build(F), build(R)
    assert _train(F, mf, X, y, epochs=5, batch_size=50) == _train(R, mr, X, y, epochs=5, batch_size=50)
    for (wf, bf), (wr, br) in zip(mf.get_parameters(), mr.get_parameters()):
        close(wf, wr)
        close(bf, br)


def test_model_binary_sigmoid():
    np.random.seed(0)
    X, y = R.spiral_data(50, 2)
    y = y.reshape(-1, 1)

    def build(M):
        np.random.seed(6)
        m = M.Model()
        m.add(M.Layer_Dense(2, 8, weight_regularizer_l1=1e-4, bias_regularizer_l1=1e-4))
        m.add(M.Activation_ReLU())
        m.add(M.Layer_Dense(8, 1))
        m.add(M.Activation_Sigmoid())
        m.set(loss=M.Loss_BinaryCrossentropy(), optimizer=M.Optimizer_RMSprop(learning_rate=0.01),
              accuracy=M.Accuracy_Categorical(binary=True))
        m.finalize()
        return m
    mf, mr = build(F), build(R)
    out_f, out_r = _train(F, mf, X, y, epochs=4), _train(R, mr, X, y, epochs=4)
    assert out_f == out_r
    for (wf, bf), (wr, br) in zip(mf.get_parameters(), mr.get_parameters()):
        close(wf, wr, rtol=1e-9)
        close(bf, br, rtol=1e-9)


def test_model_save_load_round_trip(tmp_path):
    np.random.seed(0)
    X, y = R.spiral_data(40, 3)
    model = _classifier(F, dropout=0.1)
    _train(F, model, X, y, epochs=3)
    expected = model.predict(X)
    model.save(tmp_path / "m.model")
    loaded = F.Model.load(tmp_path / "m.model")
    for layer in loaded.layers:
        assert not {"inputs", "output", "dinputs", "dweights", "dbiases"} & set(vars(layer))
    np.testing.assert_array_equal(loaded.predict(X), expected)
    # the saved model keeps training exactly like the original
    a, b = copy.deepcopy(model), F.Model.load(tmp_path / "m.model")
    _train(F, a, X, y, epochs=2)
    _train(F, b, X, y, epochs=2)
    for (wa, ba), (wb, bb) in zip(a.get_parameters(), b.get_parameters()):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    # parameters alone, into a fresh model
    model.save_parameters(tmp_path / "m.parms")
    fresh = _classifier(F, dropout=0.1)
    fresh.load_parameters(tmp_path / "m.parms")
    np.testing.assert_array_equal(fresh.predict(X), expected)
    # a layer is a plain picklable object
    layer = pickle.loads(pickle.dumps(model.layers[0]))
    np.testing.assert_array_equal(layer.weights, model.layers[0].weights)


def test_thread_count_does_not_change_results(exact_threads):
    rng = np.random.default_rng(20)
    X = rng.standard_normal((1100, 256))
    dv = rng.standard_normal((1100, 512))
    results = []
    try:
        for n in (1, 2):
            fastnn.set_num_threads(n)
            np.random.seed(0)
            d, a, s = F.Layer_Dense(256, 512, weight_regularizer_l2=1e-3), F.Activation_ReLU(), F.Activation_Softmax()
            d.forward(X)
            a.forward(d.output)
            s.forward(a.output)
            a.backward(dv)
            d.backward(a.dinputs)
            loss = F.Loss_CategoricalCrossentropy()
            loss.backward(s.output, np.arange(1100) % 512)
            mse = F.Loss_MeanSquaredError()
            mse.backward(a.output, dv)
            results.append([d.output, a.output, s.output, a.dinputs, d.dweights, d.dbiases, d.dinputs,
                            s.predictions(s.output), loss.dinputs, mse.dinputs])
    finally:
        fastnn.set_num_threads(None)
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)


def test_star_import_names():
    ns = {}
    exec("from fastnn.nnfs import *", ns)
    for name in ("Layer_Dense", "Activation_ReLU", "Activation_Softmax", "Loss_CategoricalCrossentropy",
                 "Activation_Softmax_Loss_CategoricalCrossentropy", "Optimizer_Adam", "Model",
                 "Accuracy_Regression", "Layer_Dropout", "Layer_Input"):
        assert name in ns


def test_buffer_reuse_is_invisible():
    """Big per-step arrays are recycled only when nothing outside the layers can see them."""
    np.random.seed(0)
    X, y = R.spiral_data(100, 3)
    model = _classifier(F)
    model.forward(X, training=True)
    model.backward(model.layers[-1].output, y)
    dense1, relu, dense2 = model.layers[:3]
    ids = [id(dense1.output), id(relu.output), id(relu.dinputs), id(dense2.dinputs)]
    model.forward(X, training=True)
    model.backward(model.layers[-1].output, y)
    # nobody held them: recycled in place
    assert ids == [id(dense1.output), id(relu.output), id(relu.dinputs), id(dense2.dinputs)]
    # held by the user (or a view of them): never written again
    held = [dense1.output, relu.output[:5], relu.dinputs, dense2.dinputs]
    before = [h.copy() for h in held]
    for layer in model.trainable_layers:
        layer.weights += 0.1
    model.forward(X, training=True)
    model.backward(model.layers[-1].output, y)
    for h, b in zip(held, before):
        np.testing.assert_array_equal(h, b)
    assert dense1.output is not held[0] and relu.dinputs is not held[2]
    # and the results are the reference's
    mr = _classifier(R)
    for lf, lr in zip(model.trainable_layers, mr.trainable_layers):
        lr.set_parameters(lf.weights.copy(), lf.biases.copy())
    for m in (model, mr):
        m.forward(X, training=True)
        m.backward(m.layers[-1].output, y)
    for lf, lr in zip(model.layers[:4], mr.layers[:4]):
        close(lf.output, lr.output)
        close(lf.dinputs, lr.dinputs)


def test_standalone_outputs_are_fresh():
    relu = F.Activation_ReLU()
    x = np.random.default_rng(0).standard_normal((50, 4))
    relu.forward(x)
    first = relu.output
    snapshot = first.copy()
    relu.forward(-x)
    np.testing.assert_array_equal(first, snapshot)
    relu.backward(x)
    d = relu.dinputs
    relu.backward(2 * x)
    assert d is not relu.dinputs


def test_layers_from_several_python_threads():
    from concurrent.futures import ThreadPoolExecutor
    np.random.seed(0)
    X, y = R.spiral_data(100, 3)

    # models built up front: their initial weights come from NumPy's global generator
    models = [_classifier(F, optimizer=lambda M: M.Optimizer_SGD(learning_rate=0.5)) for _ in range(5)]

    def run(m):
        for _ in range(3):
            out = m.forward(X, training=True)
            m.backward(out, y)
            for layer in m.trainable_layers:
                m.optimizer.update_params(layer)
        return [p.copy() for pair_ in m.get_parameters() for p in pair_]

    expected = run(models[0])
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(run, models[1:]))
    for r in results:
        for a, b in zip(r, expected):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_arrays_everywhere(dtype):
    f, r = dense_pair(3, 4, dtype)
    rng = np.random.default_rng(21)
    X = rng.standard_normal((6, 3)).astype(dtype)
    dv = rng.standard_normal((6, 4)).astype(dtype)
    for a in (X, dv, f.weights, f.biases):
        a.flags.writeable = False
    f.forward(X)
    r.forward(X)
    f.backward(dv)
    r.backward(dv)
    for name in ("output", "dweights", "dbiases", "dinputs"):
        close(getattr(f, name), getattr(r, name), dtype)
    relu = F.Activation_ReLU()
    relu.forward(X)
    relu.backward(X)
    sm = F.Activation_Softmax()
    sm.forward(X)
    sm.backward(X)
    y = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    y.flags.writeable = False
    F.Loss_CategoricalCrossentropy().calculate(sm.output, y)
    F.Activation_Softmax_Loss_CategoricalCrossentropy().backward(sm.output, y)


# ---- reliability at the boundary (issue #11) -----------------------------------------------

@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_optimizers_reject_gradients_of_the_wrong_shape(name, kw):
    """Issue #11 (6): a dweights of the right size but the wrong shape is a broadcast error
    in the book; it was applied in memory order."""
    f, r = dense_pair(3, 5, np.float64)
    for layer in (f, r):
        layer.dweights = np.ones((5, 3))
        layer.dbiases = np.ones((1, 5))
    with pytest.raises(ValueError):
        getattr(R, name)(**kw).update_params(r)
    with pytest.raises(ValueError, match=r"dweights has shape \(5, 3\) but layer.weights has shape \(3, 5\)"):
        getattr(F, name)(**kw).update_params(f)
    # a gradient that broadcasts is applied as the book applies it
    f, r = dense_pair(3, 5, np.float64)
    for layer in (f, r):
        layer.dweights = np.full((1, 5), 0.5)
        layer.dbiases = np.ones((1, 5))
    getattr(R, name)(**kw).update_params(r)
    getattr(F, name)(**kw).update_params(f)
    close(f.weights, r.weights)


def _unaligned(a):
    """A copy of `a` that is not aligned: a field of a packed record array."""
    rec = np.zeros(a.shape, dtype=[("pad", "u1"), ("v", a.dtype)])
    rec["v"] = a
    v = rec["v"]
    assert not v.flags.aligned
    return v


@pytest.mark.parametrize("dtype", DTYPES)
def test_unaligned_arrays_work_like_the_reference(dtype):
    """Issue #11 (7): unaligned inputs (and weights) used to fail with an AttributeError."""
    f, r = dense_pair(4, 3, dtype)
    X = np.random.default_rng(30).standard_normal((9, 4)).astype(dtype)
    dv = np.random.default_rng(31).standard_normal((9, 3)).astype(dtype)
    f.weights = _unaligned(f.weights)
    f.forward(_unaligned(X))
    r.forward(X)
    close(f.output, r.output, dtype)
    f.backward(_unaligned(dv))
    r.backward(dv)
    for name in ("dweights", "dbiases", "dinputs"):
        close(getattr(f, name), getattr(r, name), dtype)
    for cls in ("Activation_Softmax", "Activation_ReLU", "Activation_Sigmoid"):
        a, b = getattr(F, cls)(), getattr(R, cls)()
        a.forward(_unaligned(X))
        b.forward(X)
        close(a.output, b.output, dtype)
        a.backward(_unaligned(X))
        b.backward(X)
        close(a.dinputs, b.dinputs, dtype, atol=1e-6 if dtype == np.float32 else 1e-12)
    sm = R.Activation_Softmax()
    sm.forward(X)
    y = np.arange(9) % 4
    np.testing.assert_allclose(F.Loss_CategoricalCrossentropy().calculate(_unaligned(sm.output), y),
                               R.Loss_CategoricalCrossentropy().calculate(sm.output, y), **tol(dtype))


@pytest.mark.parametrize("name,kw", [o for o in OPTIMIZERS if o != ("Optimizer_SGD", {})])
def test_optimizer_state_is_kept_when_the_parameters_change_dtype(name, kw):
    """Issue #11 (8): the book keeps momentums / caches when the weights change dtype."""
    f, r = dense_pair(3, 5, np.float64)
    of, orf = getattr(F, name)(**kw), getattr(R, name)(**kw)
    rng = np.random.default_rng(32)

    def step(dtype):
        dW = rng.standard_normal((3, 5)).astype(dtype)
        db = rng.standard_normal((1, 5)).astype(dtype)
        for layer, opt in ((f, of), (r, orf)):
            layer.dweights, layer.dbiases = dW.copy(), db.copy()
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
    for _ in range(3):
        step(np.float64)
    state = [k for k in vars(f) if k.endswith(("momentums", "cache"))]
    assert state
    for layer in (f, r):
        layer.set_parameters(layer.weights.astype(np.float32), layer.biases.astype(np.float32))
    before = {k: getattr(f, k).copy() for k in state}
    step(np.float32)
    for k in state:
        assert getattr(f, k).dtype == np.float32
        assert np.any(getattr(f, k) != 0) and np.any(before[k] != 0)
    np.testing.assert_allclose(f.weights, r.weights, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f.biases, r.biases, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,kw", OPTIMIZERS)
def test_optimizers_with_overlapping_weights_and_biases(name, kw):
    """Issue #11 (9)-(10): biases that are a view of the weights' memory: the book updates
    the weights, then the biases, each seeing the other's update."""
    rng = np.random.default_rng(33)
    W0 = rng.standard_normal((4, 5))
    layers = []
    for M in (F, R):
        layer = M.Layer_Dense(4, 5)
        W = W0.copy()
        layer.weights, layer.biases = W, W[1:2]
        layers.append(layer)
    opts = [getattr(F, name)(**kw), getattr(R, name)(**kw)]
    for _ in range(3):
        dW, db = rng.standard_normal((4, 5)), rng.standard_normal((1, 5))
        for layer, opt in zip(layers, opts):
            layer.dweights, layer.dbiases = dW.copy(), db.copy()
            opt.pre_update_params()
            opt.update_params(layer)
            opt.post_update_params()
        np.testing.assert_array_equal(layers[0].weights, layers[1].weights)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bool_labels_and_wrong_one_hot_shapes_raise(dtype):
    p = _probs(4, 3, dtype)
    labels = np.array([True, False, True, True])
    with pytest.raises(IndexError):
        R.Loss_CategoricalCrossentropy().calculate(p, labels)
    with pytest.raises(TypeError, match="integers, got dtype bool"):
        F.Loss_CategoricalCrossentropy().calculate(p, labels)
    with pytest.raises(TypeError, match="integers, got dtype bool"):
        F.Activation_Softmax_Loss_CategoricalCrossentropy().backward(p, labels)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        F.Loss_CategoricalCrossentropy().calculate(p, np.eye(4)[:3])
    # one-hot bool targets are numbers to the book
    onehot = np.eye(3, dtype=bool)[[0, 2, 1, 1]]
    np.testing.assert_allclose(F.Loss_CategoricalCrossentropy().calculate(p, onehot),
                               R.Loss_CategoricalCrossentropy().calculate(p, onehot), **tol(dtype))


# ---- chapters 14-17: regularization_loss(layer) (issue #12) --------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reg", [dict(), dict(weight_regularizer_l1=1e-3), dict(weight_regularizer_l2=5e-4),
                                 dict(weight_regularizer_l1=1e-3, weight_regularizer_l2=5e-4,
                                      bias_regularizer_l1=2e-3, bias_regularizer_l2=5e-4)])
def test_chapter_form_regularization_loss(dtype, reg):
    f, r = dense_pair(4, 6, dtype, **reg)
    for loss in (F.Loss_CategoricalCrossentropy(), F.Loss_MeanSquaredError()):
        got, want = loss.regularization_loss(f), R.regularization_loss_ch14(r)
        np.testing.assert_allclose(got, want, **tol(dtype))
        assert type(got) is type(want) or not reg
    # the final form still sums the trainable layers
    loss = F.Loss_CategoricalCrossentropy()
    loss.remember_trainable_layers([f, f])
    np.testing.assert_allclose(loss.regularization_loss(), 2 * R.regularization_loss_ch14(r), **tol(dtype))


# ---- NumPy's RuntimeWarnings where the book's NumPy warns ----------------------------------

def _warnings_of(call):
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return {(w.category, str(w.message)) for w in caught}


def test_runtime_warnings_match_the_book():
    def sigmoid(M):
        M.Activation_Sigmoid().forward(np.array([[-1000.0, 0.0]]))

    def softmax(M):
        M.Activation_Softmax().forward(np.array([[np.inf, 0.0], [0.0, 1.0]]))

    def cce_backward(M):
        M.Loss_CategoricalCrossentropy().backward(np.array([[0.0, 1.0], [0.0, 0.5]]), np.array([0, 1]))

    def quiet(M):
        M.Loss_CategoricalCrossentropy().calculate(np.array([[0.0, 1.0]]), np.array([0]))
    for case in (sigmoid, softmax, cce_backward, quiet):
        want = _warnings_of(lambda: case(R))
        assert _warnings_of(lambda: case(F)) == want, case.__name__
        assert bool(want) == (case is not quiet)


# ---- nnfs.init(): float64 dot products, float32 results (issue #12) --------------------------

@pytest.fixture
def numpy_restored():
    saved = (np.dot, np.zeros, np.eye, np.random.randn)
    state = np.random.get_state()
    fastnn.set_num_threads(1)   # numerics only here: no thread waits on a busy machine
    yield
    fastnn.set_num_threads(None)
    np.dot, np.zeros, np.eye, np.random.randn = saved
    np.random.set_state(state)


def test_init_patches_numpy_as_nnfs_does(numpy_restored):
    F.init()
    assert np.zeros(3).dtype == np.float32 and np.zeros(3, dtype=np.float64).dtype == np.float64
    assert np.eye(2).dtype == np.float32 and np.random.randn(2).dtype == np.float32
    np.random.seed(0)
    a = np.random.randn(5, 7)
    F.init()
    np.testing.assert_array_equal(np.random.randn(5, 7), a)            # seeded with 0
    b = np.random.randn(7, 3)
    d = np.dot(a, b)
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32))


def _chapter_run(M, X, y, epochs):
    # chapter 14's training loop (before the Model class), float32 after nnfs.init()
    np.random.seed(0)
    dense1 = M.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
    activation1 = M.Activation_ReLU()
    dense2 = M.Layer_Dense(64, 3)
    loss_activation = M.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = M.Optimizer_Adam(learning_rate=0.02, decay=5e-7)
    losses = []
    for epoch in range(epochs):
        dense1.forward(X)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        data_loss = loss_activation.forward(dense2.output, y)
        if M is R:   # the oracle keeps the final form; its chapter form is a function
            reg = R.regularization_loss_ch14(dense1) + R.regularization_loss_ch14(dense2)
        else:
            reg = loss_activation.loss.regularization_loss(dense1) + loss_activation.loss.regularization_loss(dense2)
        losses.append(data_loss + reg)
        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        activation1.backward(dense2.dinputs)
        dense1.backward(activation1.dinputs)
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()
    return dense1, dense2, losses


@pytest.mark.parametrize("how", ["fastnn.nnfs.init", "the nnfs package's dot"])
def test_after_init_dense_layers_compute_like_the_patched_dot(numpy_restored, how):
    if how == "fastnn.nnfs.init":
        F.init()
    else:
        # what nnfs.init() installs: a function `dot` of module nnfs.core
        numpy_dot = np.dot

        def dot(*args, **kwargs):
            return numpy_dot(*[a.astype("float64") for a in args], **kwargs).astype("float32")
        dot.__module__ = "nnfs.core"
        np.dot = dot
        np.random.seed(0)
    X, y = R.spiral_data(100, 3)
    X = X.astype(np.float32)
    f, r = dense_pair(2, 64, np.float32)
    f.forward(X)
    r.forward(X)
    assert f.output.dtype == r.output.dtype == np.float32
    np.testing.assert_array_max_ulp(f.output, r.output, maxulp=1)
    dv = np.random.default_rng(34).standard_normal((300, 64)).astype(np.float32)
    f.backward(dv)
    r.backward(dv)
    for name in ("dweights", "dinputs"):
        a, b = getattr(f, name), getattr(r, name)
        assert a.dtype == b.dtype == np.float32, name
        np.testing.assert_array_max_ulp(a, b, maxulp=1)
    # dbiases is np.sum, not a dot: the book's float32 running sum, fastnn's in double
    assert f.dbiases.dtype == np.float32
    np.testing.assert_allclose(f.dbiases, r.dbiases, rtol=2e-5, atol=1e-5)
    if how != "fastnn.nnfs.init":
        return
    # a short chapter-style training run (all float32, as after nnfs.init()) stays on the
    # book's path (the softmax's float32 exp can still differ from NumPy's by an ulp, which
    # training amplifies slowly)
    (f1, f2, lf), (r1, r2, lr_) = _chapter_run(F, X, y, 30), _chapter_run(R, X, y, 30)
    for a, b in ((f1.weights, r1.weights), (f2.weights, r2.weights), (f2.dweights, r2.dweights)):
        assert a.dtype == b.dtype
    np.testing.assert_allclose(lf, lr_, rtol=2e-5)
    np.testing.assert_allclose(f2.weights, r2.weights, rtol=1e-3, atol=3e-4)


# --- boundary cases the property suite found (tests/properties/prop_nnfs.py) ---------------

def test_activations_of_a_0d_input_give_numpys_scalars():
    # np.maximum(0, x) and 1 / (1 + np.exp(-x)) of a 0-d array are NumPy scalars
    x = np.array(0.5)
    for name in ("Activation_ReLU", "Activation_Sigmoid"):
        got, ref = getattr(F, name)(), getattr(R, name)()
        got.forward(x), ref.forward(x)
        assert type(got.output) is type(ref.output) is np.float64 and got.output == ref.output
    got, ref = F.Activation_Sigmoid(), R.Activation_Sigmoid()
    got.forward(x), ref.forward(x)
    got.backward(np.array(2.0)), ref.backward(np.array(2.0))
    assert type(got.dinputs) is type(ref.dinputs) and got.dinputs == ref.dinputs


def test_binary_crossentropy_clips_in_y_preds_dtype():
    # float32 y_pred, float64 y_true: the book clips y_pred in float32 (1 - 1e-7 rounds to
    # 0.99999988, log(1 - c) = -15.94); fastnn clipped in the promoted float64 (-16.12)
    y = np.array([[-1.9, 1.6, 0.3, np.nan]], np.float32)
    t = np.array([[0.1, -0.1, 1.0, 0.5]])
    got, ref = F.Loss_BinaryCrossentropy(), R.Loss_BinaryCrossentropy()
    with np.errstate(invalid="ignore"):
        close(got.forward(y, t), ref.forward(y, t), np.float32)
        np.testing.assert_allclose(got.calculate(y[:, :3], t[:, :3]), ref.calculate(y[:, :3], t[:, :3]),
                                   rtol=1e-6)
        got.backward(y, t), ref.backward(y, t)
    close(got.dinputs, ref.dinputs, np.float32)
