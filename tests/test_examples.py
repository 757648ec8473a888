"""The scripts in examples/ run and print what they promise."""
import importlib.util
import re
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / (name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_custom_loss_yogurt(capsys):
    """The notes' three runs, all 20,000 steps: MSE within 0.002 of the notes' w, the
    asymmetric losses on the notes' side of 1, numerical and exact gradients agreeing."""
    mod = _load("custom_loss")
    X, Y_ = mod.make_data()
    assert X.shape == (32, 2) and Y_.shape == (32, 1)
    assert np.all(np.abs(Y_[:, 0] - X.sum(axis=1)) <= 0.05)
    assert mod.main([]) == 0
    out = capsys.readouterr().out
    rows = {}
    for name in ("COST=1, PROFIT=99", "COST=99, PROFIT=1", "MSE"):
        row = next(ln for ln in out.splitlines() if ln.startswith(name))
        w = [float(v) for v in re.findall(r"\[\[([-\d.]+)\], \[([-\d.]+)\]\]", row)[0]]
        notes = mod.NOTES[name]
        assert "[[%s], [%s]]" % notes in row  # printed beside the notes' values
        rows[name] = (np.array(w), row)
        agree = float(re.search(r"agree to ([\d.e+-]+)", row).group(1))
        assert agree < 1e-8, row
    assert np.all(rows["COST=1, PROFIT=99"][0] > 1)
    assert np.all(rows["COST=99, PROFIT=1"][0] < 1)
    assert np.max(np.abs(rows["MSE"][0] - np.array(mod.NOTES["MSE"]))) <= 0.002


def test_custom_loss_gradients_match_the_formulas():
    mod = _load("custom_loss")
    from fastnn.gradient import numerical_gradient
    X, Y_ = mod.make_data()
    w = np.array([[0.3], [1.7]])  # far from every kink
    for loss, grad in (mod.custom_loss(1, 99), mod.custom_loss(99, 1), mod.mse_loss()):
        num = numerical_gradient(lambda W: loss(W, X, Y_), w.copy())
        np.testing.assert_allclose(num, grad(w, X, Y_), rtol=1e-8, atol=1e-8)


def test_half_hour_run_example(capsys):
    mod = _load("half_hour_run")
    mod.main(["--steps", "5", "--no-reference"])
    out = capsys.readouterr().out
    assert re.search(r"fastnn: 5 steps in [\d.]+ s", out)
