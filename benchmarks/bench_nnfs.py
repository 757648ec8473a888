"""fastnn.nnfs vs the NumPy reference (tests/reference_nnfs.py), side by side per group.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src:tests \
     python -m pytest benchmarks/bench_nnfs.py --benchmark-only --benchmark-columns=median,iqr,rounds
"""
import contextlib
import io

import numpy as np
import pytest

import fastnn.nnfs as F
import reference_nnfs as R

IMPLS = [pytest.param(F, id="fastnn"), pytest.param(R, id="reference")]


def random_search(M, X, y, iterations):
    """The seed's random search over weights (nnfs chapter 6) on vertical_data."""
    dense1, activation1 = M.Layer_Dense(2, 3), M.Activation_ReLU()
    dense2, activation2 = M.Layer_Dense(3, 3), M.Activation_Softmax()
    loss_function = M.Loss_CategoricalCrossentropy()
    lowest_loss = 9999999
    best_dense1_weights, best_dense1_biases = dense1.weights.copy(), dense1.biases.copy()
    best_dense2_weights, best_dense2_biases = dense2.weights.copy(), dense2.biases.copy()
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
        predictions = np.argmax(activation2.output, axis=1)
        accuracy = np.mean(predictions == y)
        if loss < lowest_loss:
            best_dense1_weights, best_dense1_biases = dense1.weights.copy(), dense1.biases.copy()
            best_dense2_weights, best_dense2_biases = dense2.weights.copy(), dense2.biases.copy()
            lowest_loss = loss
        else:
            dense1.weights, dense1.biases = best_dense1_weights.copy(), best_dense1_biases.copy()
            dense2.weights, dense2.biases = best_dense2_weights.copy(), best_dense2_biases.copy()
    return lowest_loss, accuracy


@pytest.mark.benchmark(group="random search: vertical_data(100, 3), 2-3-3, 1000 iterations")
@pytest.mark.parametrize("M", IMPLS)
def test_random_search(benchmark, M):
    np.random.seed(0)
    X, y = R.vertical_data(samples=100, classes=3)
    benchmark(random_search, M, X, y, 1000)


def spiral_model(M, dtype=np.float64):
    model = M.Model()
    model.add(M.Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4))
    model.add(M.Activation_ReLU())
    model.add(M.Layer_Dense(64, 3))
    model.add(M.Activation_Softmax())
    model.set(loss=M.Loss_CategoricalCrossentropy(),
              optimizer=M.Optimizer_Adam(learning_rate=0.05, decay=5e-5),
              accuracy=M.Accuracy_Categorical())
    model.finalize()
    for layer in model.trainable_layers:
        layer.set_parameters(layer.weights.astype(dtype), layer.biases.astype(dtype))
    return model


@pytest.mark.benchmark(group="Model.train: spiral_data(1000, 3), 2-64-3 Adam, 10 epochs")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("M", IMPLS)
def test_model_train(benchmark, M, dtype):
    np.random.seed(0)
    X, y = R.spiral_data(samples=1000, classes=3)
    X = X.astype(dtype)
    model = spiral_model(M, dtype)

    def train():
        with contextlib.redirect_stdout(io.StringIO()):
            model.train(X, y, epochs=10, print_every=100)
    benchmark(train)


@pytest.mark.benchmark(group="Model.train: spiral_data(1000, 3), 2-64-3 Adam, batch_size=128, 1 epoch")
@pytest.mark.parametrize("M", IMPLS)
def test_model_train_batches(benchmark, M):
    np.random.seed(0)
    X, y = R.spiral_data(samples=1000, classes=3)
    model = spiral_model(M)

    def train():
        with contextlib.redirect_stdout(io.StringIO()):
            model.train(X, y, epochs=1, batch_size=128, print_every=100)
    benchmark(train)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("K,N", [(2, 64), (64, 3)], ids=["2to64", "64to3"])
@pytest.mark.parametrize("M", IMPLS)
def test_dense_layer_step(benchmark, M, K, N, dtype):
    """Layer_Dense forward + backward on the spiral net's shapes (3000 samples)."""
    np.random.seed(0)
    layer = M.Layer_Dense(K, N, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
    layer.set_parameters(layer.weights.astype(dtype), layer.biases.astype(dtype))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, K)).astype(dtype)
    dv = rng.standard_normal((3000, N)).astype(dtype)
    benchmark.group = "Layer_Dense forward+backward, 3000 x %d -> %d %s" % (K, N, np.dtype(dtype).name)

    def step():
        layer.forward(x, training=True)
        layer.backward(dv)
    benchmark(step)


@pytest.mark.benchmark(group="Activation_Softmax forward+backward (300, 3)")
@pytest.mark.parametrize("M", IMPLS)
def test_softmax_layer(benchmark, M):
    x = np.random.default_rng(0).standard_normal((300, 3))
    a = M.Activation_Softmax()

    def step():
        a.forward(x)
        a.backward(x)
    benchmark(step)
