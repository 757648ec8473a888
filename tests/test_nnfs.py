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
    if np.dtype(dtype) == np.float32 and b.size:
        # float32 sums of many products round differently in another order (the baseline
        # kernels do not fuse multiply-adds): the error scales with the values' magnitude
        t["atol"] = max(t["atol"], 1e-6 * float(np.nanmax(np.abs(np.where(np.isinf(b), 0, b)))))
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
            results.append([d.output, a.output, s.output, a.dinputs, d.dweights, d.dbiases, d.dinputs])
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
