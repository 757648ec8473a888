"""The TensorFlow notes' custom-loss example ("yogurt"), with fastnn.

A shop predicts tomorrow's yogurt sales y from two features x1, x2; the truth is
y = x1 + x2 plus noise of +-0.05. Selling out loses PROFIT per unit not sold, and an unsold
unit costs COST, so the loss is asymmetric:

    loss = sum(where(y > y_, (y - y_) * COST, (y_ - y) * PROFIT))

and the fitted weights lean to the cheaper mistake: above 1 when PROFIT > COST (make
more), below 1 when COST > PROFIT (make less). With the mean squared error they come out
near 1. The model is y = x @ w, w of shape (2, 1), trained by plain gradient descent
(20,000 steps, learning rate 0.002) on 32 samples, as in the notes.

The gradient comes from fastnn.gradient.numerical_gradient (central differences, the
"from scratch" way) and, to show both agree, from the formula:
d loss / d w = x.T @ where(y > y_, COST, -PROFIT); the MSE run uses fastnn.losses.MSE
(Keras's per-sample mean squared error) and its gradient, mean_squared_error_grad.
They agree except at steps where a sample sits on the loss's kink (|y - y_| within the
finite difference's reach), where the formula picks one side and the difference averages
both; the script counts those steps.

The notes draw the initial w with tf.random.normal([2, 1], stddev=1, seed=1), which NumPy
cannot reproduce; this script draws it from np.random.RandomState(1).normal(0, 1, (2, 1)).
The MSE run ends within 0.002 of the notes' w whatever the draw; the asymmetric runs
oscillate around their optimum by steps of lr * gradient, so their exact values depend on
the draw, and only their side of 1 is the notes'.

Usage: python examples/custom_loss.py [--steps 20000] [--lr 0.002]
"""
import argparse
import sys
import time

import numpy as np

from fastnn import losses
from fastnn.gradient import numerical_gradient

SEED = 23455          # the notes' np.random.RandomState(23455)
INIT_SEED = 1         # stands in for the notes' tf.random.normal(..., seed=1)
H = 1e-4              # numerical_gradient's step, as in the book
NOTES = {             # the final w the notes print after 20,000 steps
    "COST=1, PROFIT=99": (1.12, 1.08),
    "COST=99, PROFIT=1": (0.71, 0.84),
    "MSE": (1.0038, 0.9952),
}


def make_data():
    """The notes' 32 samples: x uniform in [0, 1)^2, y_ = x1 + x2 + noise in [-0.05, 0.05)."""
    rdm = np.random.RandomState(SEED)
    X = rdm.rand(32, 2)
    Y_ = np.array([[x1 + x2 + (rdm.rand() / 10.0 - 0.05)] for (x1, x2) in X])
    return X, Y_


def initial_w():
    return np.random.RandomState(INIT_SEED).normal(0.0, 1.0, (2, 1))


def custom_loss(cost, profit):
    """(loss(w), its gradient) of the asymmetric loss for the data given later."""
    def loss(w, X, Y_):
        y = X @ w
        return np.sum(np.where(y > Y_, (y - Y_) * cost, (Y_ - y) * profit))

    def grad(w, X, Y_):
        y = X @ w
        return X.T @ np.where(y > Y_, cost, -profit)  # d/dw of each branch, summed
    return loss, grad


def mse_loss():
    """The notes' tf.reduce_mean(tf.square(y_ - y)): fastnn.losses.MSE per sample (Keras's
    mean over the last axis), averaged over the batch; its gradient by the chain rule from
    MSE's own (the gradient of the summed per-sample losses w.r.t. y)."""
    def loss(w, X, Y_):
        return np.mean(losses.MSE(Y_, X @ w))

    def grad(w, X, Y_):
        dy = losses.mean_squared_error_grad(Y_, X @ w) / len(X)   # d mean / d y
        return X.T @ dy                                            # y = X @ w
    return loss, grad


def train(loss, grad, X, Y_, steps, lr, on_kink_band=None):
    """Gradient descent from initial_w() on numerical gradients.

    Returns (w, largest |numerical - analytic| away from the kink, steps on the kink).
    """
    w = initial_w()
    worst, kink_steps = 0.0, 0
    f = lambda W: loss(W, X, Y_)  # noqa: E731 - numerical_gradient perturbs w in place
    for _ in range(steps):
        g = numerical_gradient(f, w)
        exact = grad(w, X, Y_)
        # a sample within h * |x| of the kink: the two gradients may rightly differ there
        near_kink = on_kink_band is not None and np.any(
            np.abs(X @ w - Y_) <= H * np.abs(X).sum(axis=1, keepdims=True))
        if near_kink:
            kink_steps += 1
        else:
            worst = max(worst, float(np.max(np.abs(g - exact)) / max(1.0, np.max(np.abs(exact)))))
        w -= lr * g
    return w, worst, kink_steps


def fmt(w):
    return "[[%.4f], [%.4f]]" % (w[0, 0], w[1, 0])


def main(argv=None):
    ap = argparse.ArgumentParser(description="The TensorFlow notes' yogurt example "
                                 "(a custom loss) with fastnn's numerical_gradient.")
    ap.add_argument("--steps", type=int, default=20000, help="gradient steps (default: 20000)")
    ap.add_argument("--lr", type=float, default=0.002, help="learning rate (default: 0.002)")
    args = ap.parse_args(argv)

    X, Y_ = make_data()
    print("yogurt: fit y = x @ w to y_ = x1 + x2 + noise, 32 samples "
          "(np.random.RandomState(%d))" % SEED)
    print("initial w = %s: np.random.RandomState(%d).normal(0, 1, (2, 1)) (the notes use "
          "tf.random.normal(seed=1), which NumPy cannot reproduce)" % (fmt(initial_w()), INIT_SEED))
    print("%d steps of gradient descent, lr %g, gradients from fastnn.gradient."
          "numerical_gradient, each checked against the formula" % (args.steps, args.lr))
    print()
    print("%-19s %-22s %-22s %s" % ("loss", "final w", "the notes' w", "numerical vs formula"))
    results = {}
    t0 = time.perf_counter()
    for name, (loss, grad), kink in (
            ("COST=1, PROFIT=99", custom_loss(1, 99), True),
            ("COST=99, PROFIT=1", custom_loss(99, 1), True),
            ("MSE", mse_loss(), None)):
        w, worst, kinks = train(loss, grad, X, Y_, args.steps, args.lr, kink)
        results[name] = w
        note = "agree to %.0e" % worst if worst > 0 else "agree exactly"
        if kinks:
            note += " (%d steps on the kink left out)" % kinks
        print("%-19s %-22s %-22s %s" % (name, fmt(w), "[[%s], [%s]]" % NOTES[name], note))
    print()
    up, down = results["COST=1, PROFIT=99"], results["COST=99, PROFIT=1"]
    print("PROFIT > COST: w %s 1 (the notes: above); COST > PROFIT: w %s 1 (the notes: below)"
          % ("above" if np.all(up > 1) else "NOT above", "below" if np.all(down < 1)
             else "NOT below"))
    gap = np.max(np.abs(results["MSE"].ravel() - np.array(NOTES["MSE"])))
    print("MSE: %.4f from the notes' w; %.1f s in all" % (gap, time.perf_counter() - t0))
    return 0 if np.all(up > 1) and np.all(down < 1) and gap <= 0.002 else 1


if __name__ == "__main__":
    sys.exit(main())
