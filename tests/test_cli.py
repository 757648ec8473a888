"""The ``fastnn`` command end to end, on the bundled MNIST sample.

Runs that train use small settings (few steps, small nets, the NumPy reference skipped or
on a tiny net) and one thread where many steps are needed, so the file runs in seconds.
Usage errors run in-process (``main([...])``), a few also as a real process. No network:
--data mnist is pointed at a dead local port, or at ../shared/data when it is there.
"""
import json
import os
import re
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
from fastnn.cli import _check, _params

FAST = ["--threads", "1"]  # many tiny steps: one thread is the quickest on a busy machine
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"


def _env(**extra):
    env = dict(os.environ)
    src = str(Path(fastnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FASTNN_DATA", None)
    env.pop("FASTNN_MNIST_URL", None)
    env.update(extra)
    return env


def run(*args, timeout=300, cwd=None, **env):
    p = subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True,
                       text=True, timeout=timeout, env=_env(**env), cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def line(out, start):
    return next(ln for ln in out.splitlines() if ln.startswith(start))


def accuracy(out):
    """The held-out accuracy (%) of the report's accuracy line."""
    return float(re.search(r"accuracy: ([\d.]+)% on the", out).group(1))


def main_inprocess(capsys, *args):
    """``fastnn ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        rc = cli.main(list(args))
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


# --- help ---------------------------------------------------------------------------------

def test_bare_fastnn_prints_help(capsys):
    rc, out, err = main_inprocess(capsys)
    assert rc == 0 and "fastnn train" in out and "fastnn check" in out and err == ""
    rc, out, _ = run()
    assert rc == 0 and "commands:" in out


def _subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return parser, action.choices


def test_help_is_plain_text_and_every_option_has_help(capsys):
    parser, subs = _subparsers()
    assert set(subs) == {"train", "bench", "check"}
    texts = [parser.format_help()] + [p.format_help() for p in subs.values()]
    for text in texts:
        assert "``" not in text and ":func:" not in text and "seed's" not in text
    for name, p in subs.items():
        assert p.description, name  # `fastnn check --help` says what check does
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 15, (name, action.option_strings)
    train_help = subs["train"].format_help()
    assert "--seed" in train_help and "--half-hour" in train_help and "numerical" in train_help


# --- the main job ---------------------------------------------------------------------------

def test_main_job_settings_and_report():
    """The defaults, on a few steps: the book's ch04 net and batch, the half-hour line and
    the reference's timing, whose numbers agree with each other."""
    rc, out, err = run("train", "--steps", "4", "--reference-budget", "3")
    assert rc == 0, err
    assert out.startswith("fastnn train: TwoLayerNet 784-50-10 sigmoid, numerical gradients, "
                          "batches of 100, SGD lr 0.1")
    assert "MNIST sample bundled with fastnn: 5000 training images, 1000 held-out" in out
    trained = line(out, "trained 4 steps")
    m = re.search(r"in ([\d.]+) (ms|s): ([\d.]+) (ms|us) a step", trained)
    total = float(m.group(1)) * (1e-3 if m.group(2) == "ms" else 1)
    per = float(m.group(3)) * (1e-3 if m.group(4) == "ms" else 1e-6)
    assert per * 4 == pytest.approx(total, rel=0.05)
    assert line(out, "the half-hour run").endswith(("s", "ms")) and "100 steps of one image" in out
    ref = line(out, "the book's NumPy code:")
    m = re.search(r"code: ([\d.]+) (s|ms|min) a step .*, so about ([\d.]+) (s|min|minutes|hours)"
                  r" for these 4 steps; fastnn: ([\d.]+) (ms|s), ([\d,]+)x faster", ref)
    unit = {"ms": 1e-3, "s": 1, "min": 60, "minutes": 60, "hours": 3600}
    ref_step = float(m.group(1)) * unit[m.group(2)]
    ref_total = float(m.group(3)) * unit[m.group(4)]
    fast_total = float(m.group(5)) * unit[m.group(6)]
    ratio = float(m.group(7).replace(",", ""))
    assert ref_total == pytest.approx(4 * ref_step, rel=0.1)
    assert fast_total == pytest.approx(total, rel=0.05)
    assert ratio == pytest.approx(ref_total / fast_total, rel=0.1)
    assert "extrapolated" in ref or "timed here on one step" in ref
    assert err == ""  # stderr is not a terminal here: no progress bar


def test_main_job_reaches_90_percent():
    """The main job's path, run by backprop: numerical gradients agree with backprop to
    ~1e-9 (test_numerical_and_backprop_runs_agree), so the numerical run takes the same
    steps; backprop gets there in a second."""
    rc, out, err = run("train", "--gradient", "backprop", "--no-reference", *FAST)
    assert rc == 0, err
    assert "until 90% accuracy on the held-out images" in out
    assert "reached the 90% target at step" in out and accuracy(out) >= 90


def test_numerical_and_backprop_runs_agree(tmp_path):
    outs = {}
    for g in ("numerical", "backprop"):
        f = tmp_path / ("%s.npz" % g)
        rc, out, err = run("train", "--gradient", g, "--steps", "30", "--no-reference",
                           "--save", str(f), *FAST)
        assert rc == 0, err
        outs[g] = (_params.load_params(f)[0], line(out, "accuracy:"), line(out, "loss:"))
    assert outs["numerical"][1:] == outs["backprop"][1:]
    for k, want in outs["backprop"][0].items():
        got = outs["numerical"][0][k]
        # the weights are ~0.01: finite differences move them by ~1e-9 in 30 steps
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-8, err_msg=k)


def test_half_hour_run_is_one_option_away():
    rc, out, err = run("train", "--half-hour", "--no-reference")
    assert rc == 0, err
    assert "TwoLayerNet 784-100-10 sigmoid, numerical gradients, batches of 1, SGD lr 0.1" in out
    assert "100 steps" in out and "trained 100 steps" in out
    assert "the half-hour run (" not in out  # it is the run, not a line of the report


# --- save, load, plot -------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path):
    f = tmp_path / "net.npz"
    rc, out, err = run("train", "--gradient", "backprop", "--batch-size", "50", "--steps", "60",
                       "--layers", "2", "--hidden", "32", "--activation", "relu",
                       "--optimizer", "adam", "--lr", "0.01", "--save", str(f),
                       "--no-reference", *FAST)
    assert rc == 0, err
    assert "MultiLayerNet 784-32-32-10 relu, backprop gradients, batches of 50" in out
    assert "saved the params to" in out
    with np.load(f, allow_pickle=False) as z:
        assert sorted(k for k in z.files if k != "__fastnn__") == ["W1", "W2", "W3", "b1", "b2", "b3"]
        meta = json.loads(str(z["__fastnn__"]))
    assert meta["steps_done"] == 60 and meta["arch"]["hidden_size_list"] == [32, 32]
    assert accuracy(out) > 50
    rc, out2, err = run("train", "--load", str(f), "--steps", "0", "--no-reference")
    assert rc == 0, err
    assert line(out2, "accuracy:") == line(out, "accuracy:")
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
                       "--eval-every", "10", "--plot", str(png), "--no-reference")
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10000


def test_plot_without_matplotlib_fails_before_training(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from fastnn.cli import main; "
            "sys.exit(main(['train', '--plot', %r, '--steps', '1']))" % str(tmp_path / "x.png"))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=_env())
    assert p.returncode == 2 and p.stdout == ""
    assert "matplotlib" in p.stderr and "fastnn[plot]" in p.stderr
    assert not (tmp_path / "x.png").exists()


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


# --- data --------------------------------------------------------------------------------------

def test_epochs_sets_the_step_count():
    rc, out, err = run("train", "--data", "spiral", "--gradient", "backprop", "--epochs", "2",
                       "--no-reference", *FAST)
    assert rc == 0, err
    assert "60 steps (2 epochs)" in out  # 3000 points, 100 per step, 2 epochs


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


# --- issue #11: every option checked before any work ---------------------------------------------

@pytest.mark.parametrize("args,msg", [
    (["--hidden", "0"], "--hidden: sizes must be positive"),
    (["--hidden", "a,b"], "--hidden: expected a size"),
    (["--hidden", "100000000"], "--hidden: a TwoLayerNet 784-100000000-10 sigmoid net needs"),
    (["--layers", "0"], "--layers: must be an integer from 1 to 100"),
    (["--layers", "-2"], "--layers: must be an integer from 1 to 100"),
    (["--hidden", "10,20", "--layers", "3"], "--layers 3 does not match --hidden 10,20"),
    (["--steps", "3", "--epochs", "1"], "not allowed with"),
    (["--steps", "-1"], "--steps: must be an integer from 0"),
    (["--epochs", "nan"], "--epochs: must be a positive number"),
    (["--epochs", "inf"], "--epochs: must be a positive number"),
    (["--epochs", "0"], "--epochs: must be a positive number"),
    (["--lr", "-1"], "--lr: must be a positive number"),
    (["--lr", "nan"], "--lr: must be a positive number"),
    (["--target", "-5"], "--target: must be a percentage"),
    (["--target", "101"], "--target: must be a percentage above 0 and at most 100"),
    (["--batch-size", "0"], "--batch-size: must be an integer from 1"),
    (["--batch-size", "6000"], "--batch-size 6000: the training set has only 5000"),
    (["--seed", "-1"], "--seed: must be an integer from 0 to 4294967295"),
    (["--seed", str(2**32)], "--seed: must be an integer from 0 to 4294967295"),
    (["--seed", "1.5"], "--seed: expected an integer"),
    (["--threads", "0"], "--threads: must be 1 to"),
    (["--threads", "100000"], "--threads: must be 1 to"),
    (["--eval-every", "0"], "--eval-every: must be an integer from 1"),
    (["--eval-every", "-1"], "--eval-every: must be an integer from 1"),
    (["--reference-budget", "inf"], "--reference-budget: must be a positive number"),
    (["--data", "cifar"], "--data: invalid choice"),
    (["--load", "/nonexistent/net.npz"], "--load /nonexistent/net.npz: No such file"),
    (["--save", "/nonexistent/net.npz"], "the folder /nonexistent does not exist"),
])
def test_usage_errors(capsys, args, msg):
    rc, out, err = main_inprocess(capsys, "train", *args, "--no-reference")
    assert rc == 2, (out, err)
    assert out == ""  # nothing was trained
    assert msg in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err  # one line


def test_usage_errors_exit_2_as_a_process():
    for args in (["train", "--seed", "-1"], ["train", "--epochs", "nan"],
                 ["check", "--seed", "-1"], ["bench", "--threads", "100000"], ["nonsense"]):
        rc, out, err = run(*args)
        assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, (args, err)
        assert "Traceback" not in err


def _unwritable_folder():
    """A folder that even root cannot create files in (tests run as root in CI)."""
    for cand in ("/proc", "/sys"):
        if os.path.isdir(cand):
            return cand
    pytest.skip("no read-only folder here")


@pytest.mark.parametrize("option", ["--save", "--plot"])
def test_output_paths_fail_before_training(capsys, tmp_path, option):
    if option == "--plot":
        pytest.importorskip("matplotlib")
    name = "x.npz" if option == "--save" else "x.png"
    bad = [
        (str(tmp_path), "is a folder"),
        (os.path.join(_unwritable_folder(), name), "cannot write"),
        (str(tmp_path / "missing" / name), "does not exist"),
    ]
    if option == "--plot":
        bad.append((str(tmp_path / "x.xyz"), "matplotlib cannot write .xyz files"))
    for path, msg in bad:
        rc, out, err = main_inprocess(capsys, "train", option, path, "--no-reference")
        assert rc == 2 and out == "" and msg in err and option in err, (path, err)
        assert len(err.strip().splitlines()) == 1


def _saved_net(tmp_path):
    f = tmp_path / "good.npz"
    rc, out, err = run("train", "--gradient", "backprop", "--steps", "2", "--hidden", "8",
                       "--save", str(f), "--no-reference")
    assert rc == 0, err
    return f


def test_load_rejects_bad_files_with_one_line(capsys, tmp_path):
    good = _saved_net(tmp_path)
    params, meta = _params.load_params(good)
    cases = {}
    cases["empty.npz"] = (b"", "the file is empty")
    cases["random.npz"] = (np.random.default_rng(0).bytes(3000), "not an .npz file")
    cases["zipjunk.npz"] = (b"PK\x03\x04" + bytes(200), "a damaged .npz file")
    for name, (data, msg) in cases.items():
        (tmp_path / name).write_bytes(data)
    def save(name, p, m=meta):
        _params.save_params(tmp_path / name, p, m)
    save("missing.npz", {k: v for k, v in params.items() if k != "W2"})
    cases["missing.npz"] = (None, "parameter W2 missing")
    save("shape.npz", dict(params, W1=params["W1"][:, :5]))
    cases["shape.npz"] = (None, "W1 has shape (784, 5), the net needs (784, 8)")
    save("nan.npz", dict(params, b1=params["b1"] * np.nan))
    cases["nan.npz"] = (None, "b1 holds NaN")
    save("arch.npz", params, dict(meta, arch={"net": "ResNet"}))
    cases["arch.npz"] = (None, "names no net fastnn train builds")
    save("spiral.npz", params, meta)
    np.savez(tmp_path / "plain.npz", W1=np.zeros(3))
    cases["plain.npz"] = (None, "no __fastnn__ entry")
    np.savez(tmp_path / "objects.npz", __fastnn__=np.array([{"a": 1}], dtype=object))
    cases["objects.npz"] = (None, "holds Python objects")
    for name, (_, msg) in cases.items():
        rc, out, err = main_inprocess(capsys, "train", "--load", str(tmp_path / name),
                                      "--no-reference")
        assert rc == 2 and out == "", (name, err)
        assert "--load %s" % (tmp_path / name) in err and msg in err, (name, err)
        assert len(err.strip().splitlines()) == 1 and "pickled" not in err, (name, err)
    rc, out, err = main_inprocess(capsys, "train", "--load", str(tmp_path / "spiral.npz"),
                                  "--data", "spiral", "--no-reference")
    assert rc == 2 and "does not fit --data spiral" in err
    rc, out, err = main_inprocess(capsys, "train", "--load", str(good), "--hidden", "8")
    assert rc == 2 and "drop --hidden" in err


def test_ctrl_c_stops_cleanly_and_saves(tmp_path):
    f = tmp_path / "net.npz"
    p = subprocess.Popen([sys.executable, "-m", "fastnn", "train", "--gradient", "backprop",
                          "--steps", "1000000", "--save", str(f), "--no-reference"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        for ln in p.stdout:  # wait until training starts
            if ln.startswith("  threads:"):
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


# --- progress bar: only on a terminal ------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "openpty"), reason="no pseudo-terminals")
def test_progress_bar_on_a_terminal_only():
    from test_trainer import _run_with_stderr_on_a_terminal
    code = ("import sys; from fastnn.cli import main; sys.exit(main(['train', '--gradient', "
            "'backprop', '--steps', '200', '--no-reference', '--threads', '1']))")
    rc, out, term = _run_with_stderr_on_a_terminal(code)
    assert rc == 0, term
    assert "/200" in term and "loss" in term and "\x1b[K" in term
    assert "\x1b[K" not in out and out.startswith("fastnn train:")


# --- check and bench -------------------------------------------------------------------------------

def test_check_finds_a_wrong_kernel(monkeypatch):
    from fastnn import functions as F
    real = F.softmax
    monkeypatch.setattr(F, "softmax", lambda x, n_threads=None: real(x) * (1 + 1e-6))
    bad = []
    n = _check.compare_all(0, lambda isa, fam, dt, what, err, tol:
                           bad.append(what) if not err <= tol else None)
    assert n == len(bad) > 0 and "softmax" in bad


def test_bench_cases_compute_the_same_thing():
    """Each shared case's fastnn and reference callables compute the same result (the
    slow numerical references are checked on their nets' loss instead)."""
    from fastnn.cli._cases import cases
    for case in cases():
        if case.slow:
            net, x, t = case._numerical()
            fast = case.make("fastnn")
            assert fast().keys() == {"W1", "b1", "W2", "b2"}
            continue
        got, want = case.make("fastnn")(), case.make("reference")()
        if got is None:  # the updates: compare the params they changed
            continue
        if isinstance(got, dict):
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_timed_reference_is_the_oracle():
    """The NumPy code `fastnn train`/`bench`/`check` use (fastnn._reference_numpy, shipped
    because tests/ is not installed) computes what tests/reference.py computes."""
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
    for name in T.OPTIMIZERS.values():
        params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
        mine = {k: v.copy() for k, v in params.items()}
        oracle_params = {k: v.copy() for k, v in params.items()}
        a, b = name(lr=0.1), getattr(R, name.__name__)(lr=0.1)
        for _ in range(3):
            grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
            a.update(mine, grads)
            b.update(oracle_params, grads)
        for k in params:
            np.testing.assert_array_equal(mine[k], oracle_params[k])
    for fn in ("identity_function", "step_function", "sigmoid_grad", "relu", "relu_grad",
               "tanh", "leaky_relu", "softmax"):
        np.testing.assert_array_equal(getattr(T, fn)(x - 0.5), getattr(R, fn)(x - 0.5))
    gamma, beta = rng.random(6) + 0.5, rng.random(6)
    bt, br = T.BatchNormalization(gamma, beta), R.BatchNormalization(gamma, beta)
    np.testing.assert_array_equal(bt.forward(x), br.forward(x))
    np.testing.assert_array_equal(bt.backward(x * 2), br.backward(x * 2))
