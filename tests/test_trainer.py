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
    # the book's lines, plus fastnn's progress after each epoch line
    lines, ref_lines = out.splitlines(), ref_out.splitlines()
    assert len(lines) == len(ref_lines)
    assert sum(ln.startswith("train loss:") for ln in lines) == 12
    assert [ln.split(" (step")[0] for ln in lines if ln.startswith("===")] == \
        [ln for ln in ref_lines if ln.startswith("===")]
    assert lines[-2:] == ref_lines[-2:]
    assert "(step " in [ln for ln in lines if ln.startswith("=== epoch")][-1]


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
