"""The ``fastnn`` command end to end, in a subprocess, on the bundled MNIST sample.

Small settings only (few steps, small nets, the NumPy reference skipped or on a tiny net),
so the file runs in seconds. No network: --data mnist is pointed at a dead local port.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import cli

OPT = ["--optimizer", "adam", "--lr", "0.01"]


def _env(**extra):
    env = dict(os.environ)
    src = str(Path(fastnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FASTNN_DATA", None)
    env.pop("FASTNN_MNIST_URL", None)
    env.update(extra)
    return env


def run(*args, timeout=120, **env):
    p = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                       text=True, timeout=timeout, env=_env(**env))
    return p.returncode, p.stdout, p.stderr


def _accuracy_line(out):
    return next(line for line in out.splitlines() if line.startswith("accuracy:"))


def test_check_still_works():
    rc, out, err = run("check")
    assert rc == 0, err
    assert "all kernels agree with NumPy" in out


def test_train_default_net_on_the_sample():
    # the seed's run, shortened: 784-100-10 sigmoid, numerical gradients, one image per step
    rc, out, err = run("train", "--steps", "4", "--no-reference")
    assert rc == 0, err
    assert "TwoLayerNet 784-100-10 sigmoid, numerical gradient, batch 1, 4 steps, sgd lr 0.1" in out
    assert "MNIST sample bundled with fastnn: 5000 training, 1000 held-out" in out
    assert "trained 4 steps in" in out and "accuracy: test" in out
    assert "NumPy reference" not in out
    assert "step 4/4  loss" in err  # progress with the loss (stderr is not a terminal here)


def test_train_times_the_reference_on_a_tiny_net():
    rc, out, err = run("train", "--steps", "3", "--hidden", "3", "--seed", "1")
    assert rc == 0, err
    line = next(l for l in out.splitlines() if l.startswith("NumPy reference"))
    assert "measured on one step" in line and "x faster" in line
    assert "the whole run:" in out


def test_save_load_round_trip(tmp_path):
    f = tmp_path / "net.npz"
    rc, out, err = run("train", "--gradient", "backprop", "--batch-size", "50", "--steps", "60",
                       "--layers", "2", "--hidden", "32", "--activation", "relu",
                       *OPT, "--save", str(f), "--no-reference")
    assert rc == 0, err
    assert "MultiLayerNet 784-32-32-10 relu, backprop gradient, batch 50" in out
    assert "saved params to" in out
    with np.load(f, allow_pickle=False) as z:
        assert sorted(k for k in z.files if k != "__fastnn__") == ["W1", "W2", "W3", "b1", "b2", "b3"]
        meta = json.loads(str(z["__fastnn__"]))
    assert meta["steps_done"] == 60 and meta["arch"]["hidden_size_list"] == [32, 32]
    acc = float(_accuracy_line(out).split()[2].rstrip("%"))
    assert acc > 50  # backprop learns the sample quickly
    # --load with no steps: the same net, the same accuracy
    rc, out2, err = run("train", "--load", str(f), "--steps", "0", "--no-reference")
    assert rc == 0, err
    assert _accuracy_line(out2) == _accuracy_line(out)
    # --load and train on: the file's net shape is used
    g = tmp_path / "more.npz"
    rc, out3, err = run("train", "--load", str(f), "--steps", "5", "--gradient", "backprop",
                        "--save", str(g), "--no-reference")
    assert rc == 0, err
    assert "MultiLayerNet 784-32-32-10 relu" in out3
    with np.load(g) as z:
        assert json.loads(str(z["__fastnn__"]))["steps_done"] == 65


def test_plot_file(tmp_path):
    pytest.importorskip("matplotlib")  # the [test] extra installs it; CI runs this
    png = tmp_path / "curves.png"
    rc, out, err = run("train", "--gradient", "backprop", "--batch-size", "20", "--steps", "30",
                       "--plot", str(png), "--no-reference")
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000


def test_plot_without_matplotlib_says_what_to_install(tmp_path):
    # hide matplotlib from the subprocess whether or not it is installed
    code = ("import sys; sys.modules['matplotlib'] = None; from fastnn.cli import main; "
            "sys.exit(main(['train', '--plot', %r, '--steps', '1']))" % str(tmp_path / "x.png"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=_env())
    rc, err = p.returncode, p.stderr
    assert rc == 2
    assert "matplotlib" in err and "fastnn[plot]" in err
    assert not (tmp_path / "x.png").exists()


def test_spiral_data():
    rc, out, err = run("train", "--data", "spiral", "--gradient", "backprop", "--batch-size", "30",
                       "--steps", "200", "--lr", "1.0", "--no-reference")
    assert rc == 0, err
    assert "TwoLayerNet 2-100-3 sigmoid" in out and "nnfs spiral data" in out


def test_mnist_offline_fails_with_a_clear_message(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc, out, err = run("train", "--data", "mnist", "--steps", "1", "--no-reference",
                       FASTNN_DATA=str(tmp_path), FASTNN_MNIST_URL="http://127.0.0.1:%d/" % port,
                       no_proxy="127.0.0.1")
    assert rc == 2
    assert "train-images-idx3-ubyte.gz" in err and str(tmp_path / "mnist") in err
    assert "--data sample" in err and "Traceback" not in err


@pytest.mark.parametrize("args,msg", [
    (["--hidden", "0"], "sizes must be positive"),
    (["--hidden", "a,b"], "comma-separated"),
    (["--steps", "3", "--epochs", "1"], "not allowed with"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--threads", "0"], "--threads"),
    (["--hidden", "10,20", "--layers", "3"], "--layers 3 does not match"),
    (["--load", "/nonexistent/net.npz"], "--load /nonexistent/net.npz"),
    (["--save", "/nonexistent/net.npz"], "the folder /nonexistent does not exist"),
])
def test_usage_errors(args, msg):
    rc, out, err = run("train", *args, "--no-reference")
    assert rc == 2, (out, err)
    assert msg in err and "Traceback" not in err


def test_ctrl_c_stops_cleanly_and_saves(tmp_path):
    f = tmp_path / "net.npz"
    p = subprocess.Popen([sys.executable, "-m", "fastnn", "train", "--gradient", "backprop",
                          "--steps", "1000000", "--eval-every", "1000000", "--save", str(f),
                          "--no-reference"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        for line in p.stdout:  # wait until training starts
            if line.startswith("threads:"):
                break
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert "interrupted: stopped cleanly after step" in out and "Traceback" not in err
    params, meta = cli.load_params(f)
    assert meta["steps_done"] > 0 and set(params) == {"W1", "b1", "W2", "b2"}


def test_epochs_sets_the_step_count():
    rc, out, err = run("train", "--data", "spiral", "--gradient", "backprop", "--epochs", "2",
                       "--batch-size", "100", "--no-reference")
    assert rc == 0, err
    assert "6 steps" in out  # 300 points, 100 per step, 2 epochs


def test_save_params_is_atomic_and_round_trips(tmp_path):
    f = tmp_path / "p.npz"
    params = {"W1": np.arange(6.0).reshape(2, 3), "b1": np.zeros(3, np.float32)}
    cli.save_params(f, params, {"arch": {"net": "x"}})
    got, meta = cli.load_params(f)
    assert meta == {"arch": {"net": "x"}}
    for k in params:
        np.testing.assert_array_equal(got[k], params[k])
        assert got[k].dtype == params[k].dtype
    assert os.listdir(tmp_path) == ["p.npz"]  # no temporary file left behind
    np.savez(tmp_path / "other.npz", W1=np.zeros(2))
    with pytest.raises(cli.UsageError, match="not a file written by fastnn"):
        cli.load_params(tmp_path / "other.npz")


def test_bench_markdown():
    rc, out, err = run("bench", "--quick", "--markdown", timeout=180)
    assert rc == 0, err
    assert "| benchmark | shape | fastnn | NumPy reference | speed-up |" in out
    assert "BLAS:" in out and "thread" in out
    assert "TwoLayerNet.numerical_gradient" in out


def test_timed_reference_is_the_oracle():
    """The NumPy code `fastnn train`/`bench` time (fastnn._reference_numpy, shipped because
    tests/ is not installed) computes what tests/reference.py computes."""
    import reference as R
    from fastnn import _reference_numpy as T

    rng = np.random.default_rng(3)
    x = rng.random((4, 6))
    t = np.eye(3)[rng.integers(0, 3, 4)]
    for make in (lambda m: m.TwoLayerNet(6, 5, 3),
                 lambda m: m.MultiLayerNet(6, [5, 4], 3, activation="sigmoid"),
                 lambda m: m.MultiLayerNet(6, [5], 3, weight_decay_lambda=0.1)):
        np.random.seed(0)
        timed = make(T)
        np.random.seed(0)
        oracle = make(R)
        assert timed.loss(x, t) == oracle.loss(x, t)
        for grads in ("numerical_gradient", "gradient"):
            got, want = getattr(timed, grads)(x, t), getattr(oracle, grads)(x, t)
            assert got.keys() == want.keys()
            for k in want:
                np.testing.assert_array_equal(got[k], want[k], err_msg=k)
