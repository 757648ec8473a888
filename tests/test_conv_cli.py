"""``fastnn train --model cnn`` (the course's MNIST CNN) end to end on the bundled sample,
its usage errors, ``fastnn check``'s conv family, and the NumPy twin it is timed against."""
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
import reference as R
from fastnn import cli


def run(*args, timeout=300):
    env = {"PYTHONPATH": str(Path(fastnn.__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"}
    p = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                       text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout, p.stderr


def main_inprocess(capsys, *args):
    try:
        rc = cli.main(list(args))
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_short_cnn_run_trains_saves_plots_and_loads(tmp_path):
    save, plot = tmp_path / "cnn.npz", tmp_path / "cnn.png"
    rc, out, err = run("train", "--model", "cnn", "--steps", "40", "--eval-every", "20",
                       "--threads", "1", "--no-reference", "--save", str(save),
                       "--plot", str(plot))
    assert rc == 0, err
    head = out.splitlines()[0]
    assert head.startswith("fastnn train: MnistCNN (2x conv 20 5x5 pad 2 + pool 2, affine "
                           "980-10, float32), backprop gradients, batches of 100, SGD lr 0.01")
    assert "trained 40 steps (0.8 epochs)" in out
    m = re.search(r"loss: ([\d.]+) -> ([\d.]+)", out)
    assert float(m.group(2)) < float(m.group(1)) - 0.3      # it learns
    acc = float(re.search(r"accuracy: ([\d.]+)% on the 1000 held-out", out).group(1))
    assert acc > 60
    assert save.exists() and plot.stat().st_size > 1000
    with np.load(save) as z:
        assert z["W2"].shape == (20, 20, 5, 5) and z["W2"].dtype == np.float32
    # the saved net scores the same
    rc, out2, err = run("train", "--model", "cnn", "--load", str(save), "--steps", "0",
                        "--threads", "1")
    assert rc == 0, err
    assert "%.2f%% on the 1000 held-out" % acc in out2
    # an MLP run cannot load it
    rc, _, err = run("train", "--load", str(save), "--steps", "0")
    assert rc == 2 and "it holds a MnistCNN; add --model cnn" in err


def test_cnn_default_run_is_the_course_settings(monkeypatch):
    from fastnn.cli import _train
    args = cli.build_parser().parse_args(["train", "--model", "cnn"])
    steps, target = _train._resolve(args)
    assert (args.gradient, args.batch_size, args.lr, args.optimizer) == ("backprop", 100, 0.01,
                                                                         "sgd")
    assert (steps, target) == (10000, 96.0)
    args = cli.build_parser().parse_args(["train", "--model", "cnn", "--batch-size", "32",
                                          "--epochs", "2"])
    assert _train._resolve(args) == (None, None) and args.batch_size == 32
    args = cli.build_parser().parse_args(["train"])        # the MLP main job is unchanged
    assert _train._resolve(args) == (10000, 90.0) and args.gradient == "numerical"


@pytest.mark.parametrize("args,msg", [
    (["--model", "cnn", "--hidden", "10"], "--hidden: --model cnn is the course's CNN"),
    (["--model", "cnn", "--activation", "relu"], "--activation: --model cnn"),
    (["--model", "cnn", "--gradient", "numerical"], "the CNN trains by backprop"),
    (["--model", "cnn", "--data", "spiral"], "a CNN needs images"),
    (["--model", "cnn", "--half-hour"], "drop --model cnn"),
    (["--model", "rnn"], "invalid choice: 'rnn'"),
])
def test_cnn_usage_errors(capsys, args, msg):
    rc, out, err = main_inprocess(capsys, "train", *args)
    assert rc == 2 and msg in err, err
    assert len(err.strip().splitlines()) == 1


def test_reference_twin_is_the_oracle():
    """fastnn._reference_numpy's conv nets (what `fastnn train --model cnn` times) compute
    what tests/reference.py computes."""
    from fastnn import _reference_numpy as T
    r = np.random.default_rng(0)
    x = r.random((3, 1, 28, 28))
    t = r.integers(0, 10, 3)
    for name, kw in (("SimpleConvNet", {}), ("MnistCNN", {"weight_init_std": 0.1})):
        np.random.seed(1)
        twin = getattr(T, name)(**kw)
        np.random.seed(1)
        ref = getattr(R, name)(**kw)
        for k in ref.params:
            np.testing.assert_array_equal(twin.params[k], ref.params[k])
        g1, g2 = twin.gradient(x, t), ref.gradient(x, t)
        for k in g2:
            np.testing.assert_allclose(g1[k], g2[k], rtol=1e-12, atol=1e-15, err_msg=k)
        assert twin.loss(x, t) == ref.loss(x, t)
        assert twin.accuracy(x, t, 2) == ref.accuracy(x, t, 2)


def test_check_has_a_conv_family():
    from fastnn.cli import _check
    assert "conv" in dict(_check.FAMILIES)
    rows = list(dict(_check.FAMILIES)["conv"](np.random.default_rng(0), np.float64))
    assert len(rows) >= 10
    for what, got, want, tol in rows:
        assert _check._err(got, want) <= tol, what
