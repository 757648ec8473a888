"""fastnn.trainer.Trainer against the book's common/trainer.py (tests/reference.py)."""
import io
from contextlib import redirect_stdout

import numpy as np
import pytest

import reference as R
from mnist_rows import mnist_rows
from fastnn.nets import MultiLayerNet, MultiLayerNetExtend, TwoLayerNet
from fastnn.optimizer import SGD, Adam
from fastnn.schedules import PiecewiseConstantDecay
from fastnn.trainer import Trainer

def _run(trainer_cls, net, X, T, seed, **kw):
    np.random.seed(seed)
    tr = trainer_cls(net, X[:80], T[:80], X[80:], T[80:], **kw)
    buf = io.StringIO()
    with redirect_stdout(buf):
        tr.train()
    return tr, buf.getvalue()


@pytest.mark.parametrize("optimizer,param", [("SGD", {"lr": 0.1}), ("Momentum", {"lr": 0.05}),
                                             ("AdaGrad", {"lr": 0.05}), ("Adam", {"lr": 0.01}),
                                             ("Nesterov", {"lr": 0.05}), ("rmsprpo", {"lr": 0.01})])
def test_same_run_as_reference(optimizer, param):
    X, T = mnist_rows(100)
    np.random.seed(0)
    ref_net = R.MultiLayerNet(784, [30], 10)
    np.random.seed(0)
    net = MultiLayerNet(784, [30], 10)
    kw = dict(epochs=3, mini_batch_size=20, optimizer=optimizer, optimizer_param=param,
              evaluate_sample_num_per_epoch=50)
    ref, ref_out = _run(R.Trainer, ref_net, X, T, 1, **kw)
    got, out = _run(Trainer, net, X, T, 1, **kw)
    assert got.max_iter == ref.max_iter == 12
    assert got.current_epoch == ref.current_epoch
    np.testing.assert_allclose(got.train_loss_list, ref.train_loss_list, rtol=1e-9)
    assert got.train_acc_list == ref.train_acc_list
    assert got.test_acc_list == ref.test_acc_list
    for k in net.params:
        np.testing.assert_allclose(net.params[k], ref_net.params[k], rtol=1e-8, atol=1e-12)
    # exactly the book's lines: str() of the same values (losses agree to ~1e-15, so
    # their shortest repr may differ in the last digit; the accuracies are the same)
    lines, ref_lines = out.splitlines(), ref_out.splitlines()
    assert len(lines) == len(ref_lines) == 12 + 3 + 2
    loss_lines = [ln for ln in lines if ln.startswith("train loss:")]
    assert loss_lines == ["train loss:" + str(v) for v in got.train_loss_list]
    assert [ln for ln in lines if not ln.startswith("train loss:")] == \
        [ln for ln in ref_lines if not ln.startswith("train loss:")]
    assert lines[-2] == "=============== Final Test Accuracy ==============="
    assert lines[-1].startswith("test acc:")


def test_two_layer_net_and_extend_train():
    X, T = mnist_rows(100)
    np.random.seed(0)
    net = TwoLayerNet(784, 20, 10)
    tr, out = _run(Trainer, net, X, T, 2, epochs=2, mini_batch_size=10, optimizer="sgd",
                   optimizer_param={"lr": 0.5}, verbose=False)
    assert out == ""
    assert len(tr.train_loss_list) == 16 and len(tr.train_acc_list) == 2
    np.random.seed(0)
    ext = MultiLayerNetExtend(784, [20, 20], 10, use_dropout=True, dropout_ration=0.2,
                              use_batchnorm=True)
    np.random.seed(0)
    ref_ext = R.MultiLayerNetExtend(784, [20, 20], 10, use_dropout=True, dropout_ration=0.2,
                                    use_batchnorm=True)
    kw = dict(epochs=2, mini_batch_size=16, optimizer="Adam", optimizer_param={"lr": 0.01},
              verbose=False)
    tr, _ = _run(Trainer, ext, X, T, 3, **kw)
    rtr, _ = _run(R.Trainer, ref_ext, X, T, 3, **kw)
    np.testing.assert_allclose(tr.train_loss_list, rtr.train_loss_list, rtol=1e-8)
    assert tr.test_acc_list == rtr.test_acc_list


def test_optimizer_object_and_schedule():
    X, T = mnist_rows(100)
    np.random.seed(0)
    net = MultiLayerNet(784, [10], 10)
    opt = SGD(lr=PiecewiseConstantDecay([4], [0.5, 0.05]))
    tr, _ = _run(Trainer, net, X, T, 4, epochs=1, mini_batch_size=10, optimizer=opt, verbose=False)
    assert tr.optimizer is opt and opt._step == 8
    np.random.seed(0)
    tr2 = Trainer(net, X, T, X, T, optimizer="adam", optimizer_param={"lr": 0.002}, verbose=False)
    assert isinstance(tr2.optimizer, Adam) and tr2.optimizer.lr == 0.002
    assert tr2.max_iter == 20 and tr2.batch_size == 100 and tr2.epochs == 20


def test_errors():
    X, T = np.zeros((10, 4)), np.zeros(10, dtype=int)
    net = MultiLayerNet(4, [3], 2)
    with pytest.raises(ValueError, match="unknown optimizer 'foo'"):
        Trainer(net, X, T, X, T, optimizer="foo")
    with pytest.raises(ValueError, match="10 samples but t_train has 9"):
        Trainer(net, X, T[:9], X, T)
    with pytest.raises(ValueError, match="mini_batch_size"):
        Trainer(net, X, T, X, T, mini_batch_size=0)
    with pytest.raises(TypeError, match="optimizer must be"):
        Trainer(net, X, T, X, T, optimizer=3)


def test_train_returns_none_like_the_book():
    X, T = mnist_rows(100)
    np.random.seed(0)
    tr = Trainer(MultiLayerNet(784, [10], 10), X[:80], T[:80], X[80:], T[80:], epochs=1,
                 mini_batch_size=40, verbose=False)
    assert tr.train() is None


def test_numerical_gradient_training():
    """gradient='numerical': the book's ch04 loop (numerical_gradient, then the update)."""
    X, T = mnist_rows(100)
    np.random.seed(0)
    net = TwoLayerNet(784, 5, 10)
    np.random.seed(0)
    ref = R.TwoLayerNet(784, 5, 10)
    np.random.seed(5)
    tr = Trainer(net, X[:80], T[:80], X[80:], T[80:], epochs=1, mini_batch_size=40,
                 optimizer="sgd", optimizer_param={"lr": 0.1}, verbose=False,
                 gradient="numerical")
    tr.train()
    np.random.seed(5)
    for _ in range(2):  # the same batches, the book's numerical_gradient and SGD
        mask = np.random.choice(80, 40)
        grads = ref.numerical_gradient(X[:80][mask], T[:80][mask])
        for k in ref.params:
            ref.params[k] -= 0.1 * grads[k]
    for k in net.params:
        np.testing.assert_allclose(net.params[k], ref.params[k], rtol=1e-7, atol=1e-12)
    with pytest.raises(ValueError, match="gradient must be one of"):
        Trainer(net, X, T, X, T, gradient="finite")


def test_import_star_exports_what_the_books_module_does():
    ns = {}
    exec("from fastnn.trainer import *", ns)
    for name in ("Trainer", "SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam",
                 "np", "sys", "os"):
        assert name in ns, name
    assert ns["np"] is np and ns["SGD"] is SGD


_SCRIPT = """
import numpy as np
from fastnn.nets import MultiLayerNet
from fastnn.trainer import Trainer
rng = np.random.default_rng(0)
X = rng.random((60, 20)); T = rng.integers(0, 3, 60)
np.random.seed(0)
Trainer(MultiLayerNet(20, [8], 3), X[:40], T[:40], X[40:], T[40:], epochs=3,
        mini_batch_size=10, verbose=%s).train()
"""


def _run_with_stderr_on_a_terminal(code):
    """Run ``code`` with stdout on a pipe and stderr on a pseudo-terminal."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    master, slave = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        p = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                           stderr=slave, text=True, timeout=120)
    finally:
        os.close(slave)
    reader.join(5)
    os.close(master)
    return p.returncode, p.stdout, b"".join(chunks).decode(errors="replace")


@pytest.mark.skipif(not hasattr(__import__("os"), "openpty"), reason="no pseudo-terminals")
@pytest.mark.parametrize("verbose", [False, True])
def test_progress_bar_only_on_a_terminal(verbose):
    import subprocess
    import sys
    rc, out, term = _run_with_stderr_on_a_terminal(_SCRIPT % verbose)
    assert rc == 0, term
    assert "[" in term and "12/12" in term and "epoch 3" in term  # the bar, on stderr
    assert "\x1b[K" in term and "[#" not in out  # and never in the book's lines
    if verbose:
        assert out.count("train loss:") == 12 and out.rstrip().endswith(
            out.rstrip().splitlines()[-1]) and "Final Test Accuracy" in out
    else:
        assert out == ""
    # stderr to a pipe: no bar at all
    p = subprocess.run([sys.executable, "-c", _SCRIPT % verbose], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == ""
