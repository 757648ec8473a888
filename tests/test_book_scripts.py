"""The books' scripts, swapped to fastnn as the README says, give the books' numbers.

Each test is one class of script, written from what the script does (its loop, its
arguments, its print lines), shortened to a few steps on small data, and run twice:
on fastnn's modules and on the books' semantics (tests/reference.py,
tests/reference_nnfs.py), from the same seed. Checks that one script class shares
with an existing test are not repeated here: the ch05 and ch07 gradient checks
(test_backprop.py, test_convnets.py), optimizer_compare_naive's float params
(test_optimizer.py), the Trainer's lines (test_trainer.py), chapter 14's loop after
nnfs.init() (test_nnfs.py) and the Model chapters (test_nnfs.py).
"""
import os
import pickle

import numpy as np
import pytest

import reference as R
import reference_nnfs as RN
from mnist_rows import mnist_rows

import fastnn.functions as FF
import fastnn.nnfs as FN
from fastnn.nets import DeepConvNet, MultiLayerNet, MultiLayerNetExtend, ReluTwoLayerNet, TwoLayerNet
from fastnn.optimizer import SGD, AdaGrad, Adam, Momentum
from fastnn.trainer import Trainer


# ../shared/data beside the repository (the book's trained sample_weight.pkl)
_SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def _one_hot(t, n=10):
    T = np.zeros((t.size, n))
    T[np.arange(t.size), t] = 1
    return T


# --- ch03 neuralnet_mnist.py / _batch.py: the book's trained net, one image or 100 at a time

@pytest.mark.parametrize("batch_size", [None, 100])
def test_ch03_neuralnet_mnist(batch_size):
    path = os.path.join(_SHARED_DATA, "sample_weight.pkl")
    if not os.path.exists(path):
        pytest.skip("sample_weight.pkl is not in ../shared/data")
    with open(path, "rb") as f:
        network = pickle.load(f)          # float32, Fortran-ordered weights
    x, t = mnist_rows(300)
    x = x.astype(np.float32)              # the book's load_mnist(normalize=True): float32

    def predict(M, x):
        W1, W2, W3 = network["W1"], network["W2"], network["W3"]
        b1, b2, b3 = network["b1"], network["b2"], network["b3"]
        z1 = M.sigmoid(np.dot(x, W1) + b1)
        z2 = M.sigmoid(np.dot(z1, W2) + b2)
        return M.softmax(np.dot(z2, W3) + b3)

    if batch_size is None:                # neuralnet_mnist.py: one 1-D image per call
        got = [predict(FF, x[i]) for i in range(len(x))]
        ref = [predict(R, x[i]) for i in range(len(x))]
        assert got[0].shape == (10,) and got[0].dtype == np.float32
        hits = sum(int(np.argmax(y) == t[i]) for i, y in enumerate(got))
        ref_hits = sum(int(np.argmax(y) == t[i]) for i, y in enumerate(ref))
    else:                                 # neuralnet_mnist_batch.py
        got = [predict(FF, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        ref = [predict(R, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        hits = sum(int(np.sum(np.argmax(y, axis=1) == t[i * batch_size:(i + 1) * batch_size]))
                   for i, y in enumerate(got))
        ref_hits = sum(int(np.sum(np.argmax(y, axis=1) == t[i * batch_size:(i + 1) * batch_size]))
                       for i, y in enumerate(ref))
    for a, b in zip(got, ref):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
    assert hits == ref_hits and hits / len(x) > 0.9   # "Accuracy:0.9352" on all 10,000


# --- ch04/ch05 train_neuralnet.py: params[key] -= lr * grad[key], accuracy per "epoch" ---------

@pytest.mark.parametrize("chapter", ["ch04", "ch05"])
def test_train_neuralnet_loop(chapter):
    x_train, t = mnist_rows(300)
    t_train = _one_hot(t)                 # load_mnist(normalize=True, one_hot_label=True)
    net_cls, ref_cls = {"ch04": (TwoLayerNet, R.TwoLayerNet),
                        "ch05": (ReluTwoLayerNet, R.TwoLayerNetCh05)}[chapter]

    def run(cls):
        np.random.seed(0)
        network = cls(input_size=784, hidden_size=50, output_size=10)
        train_size, batch_size, learning_rate = x_train.shape[0], 100, 0.1
        iter_per_epoch = max(train_size / batch_size, 1)
        losses, accs = [], []
        for i in range(30):
            batch_mask = np.random.choice(train_size, batch_size)
            x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
            grad = network.gradient(x_batch, t_batch)
            for key in ("W1", "b1", "W2", "b2"):
                network.params[key] -= learning_rate * grad[key]
            losses.append(network.loss(x_batch, t_batch))
            if i % iter_per_epoch == 0:
                accs.append(network.accuracy(x_train, t_train))
        return network, losses, accs

    net, losses, accs = run(net_cls)
    ref, ref_losses, ref_accs = run(ref_cls)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)
    assert accs == ref_accs and len(accs) == 10
    for k in ref.params:
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=1e-10, atol=1e-15)
    if chapter == "ch05":                 # the ch05 net, not ch04's sigmoid one
        assert list(net.layers) == ["Affine1", "Relu1", "Affine2"]
        assert type(net.lastLayer).__name__ == "SoftmaxWithLoss"


# --- ch06 optimizer_compare_mnist.py / weight_init_compare.py / overfit_weight_decay.py ------

@pytest.mark.parametrize("script", ["optimizer_compare_mnist", "weight_init_compare",
                                    "overfit_weight_decay"])
def test_ch06_multi_layer_net_scripts(script):
    x_train, t_train = mnist_rows(200)    # load_mnist(normalize=True): integer labels

    def run(M):
        np.random.seed(0)
        if script == "optimizer_compare_mnist":
            optimizers = {"SGD": M.SGD(), "Momentum": M.Momentum(), "AdaGrad": M.AdaGrad(),
                          "Adam": M.Adam()}
            networks = {k: M.MultiLayerNet(input_size=784, hidden_size_list=[40, 40, 40, 40],
                                           output_size=10) for k in optimizers}
        elif script == "weight_init_compare":
            types = {"std=0.01": 0.01, "Xavier": "sigmoid", "He": "relu"}
            shared = M.SGD(lr=0.01)       # one optimizer for every net, as the script does
            optimizers = {k: shared for k in types}
            networks = {k: M.MultiLayerNet(input_size=784, hidden_size_list=[40, 40, 40, 40],
                                           output_size=10, weight_init_std=w)
                        for k, w in types.items()}
        else:
            optimizers = {"SGD": M.SGD(lr=0.01)}
            networks = {"SGD": M.MultiLayerNet(input_size=784, hidden_size_list=[30] * 6,
                                               output_size=10, weight_decay_lambda=0.1)}
        train_loss = {k: [] for k in optimizers}
        for i in range(12):
            batch_mask = np.random.choice(x_train.shape[0], 64)
            x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
            for key in optimizers:
                grads = networks[key].gradient(x_batch, t_batch)
                optimizers[key].update(networks[key].params, grads)
                train_loss[key].append(networks[key].loss(x_batch, t_batch))
        acc = {k: networks[k].accuracy(x_train, t_train) for k in networks}
        return train_loss, acc

    mods = type("M", (), dict(SGD=SGD, Momentum=Momentum, AdaGrad=AdaGrad, Adam=Adam,
                              MultiLayerNet=MultiLayerNet))
    (loss, acc), (ref_loss, ref_acc) = run(mods), run(R)
    for k in ref_loss:
        np.testing.assert_allclose(loss[k], ref_loss[k], rtol=1e-10, err_msg=k)
    assert acc == ref_acc


# --- ch06 batch_norm_test.py: a batch-norm net and a plain one, one SGD, per weight scale ----

@pytest.mark.parametrize("weight_init_std", [1.0, 0.01])
def test_ch06_batch_norm_test(weight_init_std):
    x_train, t_train = mnist_rows(200)

    def run(cls, sgd):
        np.random.seed(0)
        bn_network = cls(input_size=784, hidden_size_list=[30] * 5, output_size=10,
                         weight_init_std=weight_init_std, use_batchnorm=True)
        network = cls(input_size=784, hidden_size_list=[30] * 5, output_size=10,
                      weight_init_std=weight_init_std)
        optimizer = sgd(lr=0.01)
        accs = []
        for i in range(8):
            batch_mask = np.random.choice(x_train.shape[0], 50)
            x_batch, t_batch = x_train[batch_mask], t_train[batch_mask]
            for _network in (bn_network, network):
                grads = _network.gradient(x_batch, t_batch)
                optimizer.update(_network.params, grads)
            if i % 4 == 0:
                accs.append((network.accuracy(x_train, t_train),
                             bn_network.accuracy(x_train, t_train)))
        return bn_network, accs

    (bn, accs), (ref_bn, ref_accs) = run(MultiLayerNetExtend, SGD), run(R.MultiLayerNetExtend, R.SGD)
    assert accs == ref_accs
    for k in ref_bn.params:
        np.testing.assert_allclose(bn.params[k], ref_bn.params[k], rtol=1e-9, atol=1e-13, err_msg=k)
    # the running statistics the test-mode accuracy uses are the book's
    for key in ("BatchNorm1", "BatchNorm5"):
        np.testing.assert_allclose(bn.layers[key].running_mean, ref_bn.layers[key].running_mean,
                                   rtol=1e-9, atol=1e-13)


# --- ch06 hyperparameter_optimization.py: shuffle_dataset, then quiet Trainers ------------------

def test_ch06_hyperparameter_optimization():
    from fastnn.util import shuffle_dataset

    x, t = mnist_rows(150)

    def run(shuffle, net_cls, trainer_cls):
        np.random.seed(0)
        x_train, t_train = shuffle(x, t)
        validation_num = int(x_train.shape[0] * 0.20)
        x_val, t_val = x_train[:validation_num], t_train[:validation_num]
        x_train, t_train = x_train[validation_num:], t_train[validation_num:]
        results = []
        for _ in range(2):
            weight_decay = 10 ** np.random.uniform(-4, -8)
            lr = 10 ** np.random.uniform(-2, -6)
            network = net_cls(input_size=784, hidden_size_list=[20] * 6, output_size=10,
                              weight_decay_lambda=weight_decay)
            trainer = trainer_cls(network, x_train, t_train, x_val, t_val, epochs=3,
                                  mini_batch_size=40, optimizer="sgd",
                                  optimizer_param={"lr": lr}, verbose=False)
            trainer.train()
            results.append((trainer.test_acc_list, trainer.train_acc_list))
        return results

    got = run(shuffle_dataset, MultiLayerNet, Trainer)
    ref = run(R.shuffle_dataset, R.MultiLayerNet, R.Trainer)
    assert got == ref


# --- ch08 deep_convnet.py without the pretrained pkl: built, then a few Adam steps ------------

def test_ch08_deep_convnet_steps():
    (x, t), _ = __import__("fastnn.datasets", fromlist=["load_mnist"]).load_mnist(
        flatten=False, sample=True)
    x = x[:60]

    def run(net_cls, adam):
        np.random.seed(0)
        network = net_cls()
        opt = adam(lr=0.001)
        losses = []
        for i in range(2):
            mask = np.random.choice(x.shape[0], 8)
            grads = network.gradient(x[mask], t[mask])   # dropout draws its masks here
            opt.update(network.params, grads)
            losses.append(network.loss(x[mask], t[mask]))
        return network, losses

    (net, losses), (ref, ref_losses) = run(DeepConvNet, Adam), run(R.DeepConvNet, R.Adam)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for k in ref.params:
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=1e-5, atol=1e-8, err_msg=k)


# --- nnfs chapters 15-17: the chapter loops with the classes from `from fastnn.nnfs import *` --

def _chapter_layers(M, chapter):
    """The layers of chapter 15 (dropout), 16 (binary) or 17 (regression); Ch17's dense
    layers draw 0.1 * randn, the README's subclass recipe on fastnn's side."""
    if chapter == 17:
        if M is FN:
            class Layer_Dense(FN.Layer_Dense):
                def __init__(self, n_inputs, n_neurons, *args, **kwargs):
                    super().__init__(0, n_neurons, *args, **kwargs)   # randn(0, n) draws nothing
                    self.weights = 0.1 * np.random.randn(n_inputs, n_neurons)
        else:
            class Layer_Dense(RN.Layer_Dense):
                def __init__(self, n_inputs, n_neurons):
                    self.weights = 0.1 * np.random.randn(n_inputs, n_neurons)   # the chapter's own
                    self.biases = np.zeros((1, n_neurons))
                    self.weight_regularizer_l1 = self.weight_regularizer_l2 = 0
                    self.bias_regularizer_l1 = self.bias_regularizer_l2 = 0
        return [Layer_Dense(1, 64), M.Activation_ReLU(), Layer_Dense(64, 64), M.Activation_ReLU(),
                Layer_Dense(64, 1), M.Activation_Linear()], M.Loss_MeanSquaredError()
    if chapter == 16:
        return [M.Layer_Dense(2, 16, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4),
                M.Activation_ReLU(), M.Layer_Dense(16, 1), M.Activation_Sigmoid()], \
            M.Loss_BinaryCrossentropy()
    return [M.Layer_Dense(2, 16, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4),
            M.Activation_ReLU(), M.Layer_Dropout(0.1), M.Layer_Dense(16, 3)], \
        M.Activation_Softmax_Loss_CategoricalCrossentropy()


def _chapter_run(M, chapter, epochs=40):
    np.random.seed(0)
    if chapter == 17:
        X, y = RN.sine_data(200)
        optimizer = M.Optimizer_Adam(learning_rate=0.005, decay=1e-3)
    elif chapter == 16:
        X, y = RN.spiral_data(samples=50, classes=2)
        y = y.reshape(-1, 1)
        optimizer = M.Optimizer_Adam(decay=5e-7)
    else:
        X, y = RN.spiral_data(samples=50, classes=3)
        optimizer = M.Optimizer_Adam(learning_rate=0.05, decay=5e-5)
    layers, loss_fn = _chapter_layers(M, chapter)
    dense = [l for l in layers if hasattr(l, "weights")]
    penalty = (lambda l: RN.regularization_loss_ch14(l)) if M is RN else \
        (lambda l: (loss_fn.loss if chapter == 15 else loss_fn).regularization_loss(l))
    out = []
    for epoch in range(epochs):
        x = X
        for layer in layers:
            layer.forward(x)                  # chapter form: no `training` argument
            x = layer.output
        if chapter == 15:
            data_loss = loss_fn.forward(x, y)
            acc = np.mean(np.argmax(loss_fn.output, axis=1) == y)
        else:
            data_loss = loss_fn.calculate(x, y)
            acc = np.mean((x > 0.5) * 1 == y) if chapter == 16 else \
                np.mean(np.absolute(x - y) < np.std(y) / 250)
        reg = sum(penalty(l) for l in dense)
        out.append((float(data_loss), float(reg), float(acc)))
        if chapter == 15:
            loss_fn.backward(loss_fn.output, y)
        else:
            loss_fn.backward(x, y)
        d = loss_fn.dinputs
        for layer in reversed(layers):
            layer.backward(d)
            d = layer.dinputs
        optimizer.pre_update_params()
        for l in dense:
            optimizer.update_params(l)
        optimizer.post_update_params()
    return out, dense


@pytest.mark.parametrize("chapter", [15, 16, 17])
def test_nnfs_chapter_loops(chapter):
    (got, dense), (ref, ref_dense) = _chapter_run(FN, chapter), _chapter_run(RN, chapter)
    np.testing.assert_allclose(np.array(got), np.array(ref), rtol=1e-9, atol=1e-12)
    for a, b in zip(dense, ref_dense):
        np.testing.assert_allclose(a.weights, b.weights, rtol=1e-9, atol=1e-12)


def test_ch17_recipe_keeps_the_chapters_draws():
    def chapter_init():      # Chapter 17's Layer_Dense.__init__: weights = 0.1 * randn
        return [0.1 * np.random.randn(i, o) for i, o in ((1, 64), (64, 64), (64, 1))]

    class Layer_Dense(FN.Layer_Dense):
        def __init__(self, n_inputs, n_neurons, *args, **kwargs):
            super().__init__(0, n_neurons, *args, **kwargs)
            self.weights = 0.1 * np.random.randn(n_inputs, n_neurons)

    np.random.seed(0)
    want = chapter_init()
    after = np.random.rand()
    np.random.seed(0)
    got = [Layer_Dense(i, o).weights for i, o in ((1, 64), (64, 64), (64, 1))]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert np.random.rand() == after     # and leaves the generator where the chapter does


# --- examples/book_modules: the book's module files as one-line `import *` shims ------------

def test_book_module_shims_run_a_book_script_unchanged():
    import subprocess
    import sys
    root = os.path.join(os.path.dirname(__file__), "..")
    shims = os.path.join(root, "examples", "book_modules")
    # the book's imports, verbatim; then the names its scripts use after them
    code = "\n".join([
        "import numpy as np",
        "from common.layers import *",
        "from common.functions import *",
        "from common.optimizer import *",
        "from common.trainer import Trainer",
        "from common.util import smooth_curve, shuffle_dataset",
        "from common.gradient import numerical_gradient",
        "from common.multi_layer_net import MultiLayerNet",
        "from common.multi_layer_net_extend import MultiLayerNetExtend",
        "from dataset.mnist import load_mnist",
        "import two_layer_net_ch05 as ch05, simple_convnet, deep_convnet",
        "from collections import OrderedDict",
        "assert Affine.__module__ == 'fastnn.layers' and im2col.__module__ == 'fastnn.util'",
        "assert MultiLayerNet.__module__ == 'fastnn.nets' and SGD.__module__ == 'fastnn.optimizer'",
        "assert ch05.TwoLayerNet.__name__ == 'ReluTwoLayerNet' and ch05.OrderedDict is OrderedDict",
        "assert simple_convnet.SimpleConvNet.__module__ == 'fastnn.convnets'",
        "(x, t), _ = load_mnist(normalize=True, sample=True)",
        "np.random.seed(0)",
        "net = MultiLayerNet(input_size=784, hidden_size_list=[20], output_size=10)",
        "opt = Adam()",
        "for i in range(3):",
        "    grads = net.gradient(x[:50], t[:50])",
        "    opt.update(net.params, grads)",
        "print(net.loss(x[:50], t[:50]), softmax(np.zeros(2)), type(net.layers).__name__)",
    ])
    # the fastnn this process imported (an install in CI, src/ when built in place)
    import fastnn
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([shims, pkg_root]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=shims)
    assert out.returncode == 0, out.stderr
    loss, rest = out.stdout.split(" ", 1)
    np.random.seed(0)
    (x, t), _ = __import__("fastnn.datasets", fromlist=["x"]).load_mnist(normalize=True, sample=True)
    net = R.MultiLayerNet(784, [20], 10)
    opt = R.Adam()
    for i in range(3):
        opt.update(net.params, net.gradient(x[:50], t[:50]))
    np.testing.assert_allclose(float(loss), net.loss(x[:50], t[:50]), rtol=1e-6)
    assert rest.split()[-1] == "OrderedDict"
