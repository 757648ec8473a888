"""``fastnn check``: how this build was made, and every kernel family compared with NumPy.

For each instruction-set level the CPU runs (baseline, AVX2+FMA, AVX-512) and each dtype
(float64, float32), every family runs on small random data and is compared with the
books' NumPy code (``fastnn._reference_numpy``) or, for the nnfs classes, with the book's
formulas written out in NumPy here: the functions, the losses, the layers, the nets'
gradients and numerical gradients, the optimizers, the nnfs classes; then the same bits
on one thread and on all. A family is a generator of comparisons, so a new kernel family
is one more function in FAMILIES.

Error measure: max |fastnn - NumPy| / max |NumPy| over the array (norm-wise, so a sum of
784 products is judged against its size, not against an accidental near-zero element).
"""
import numpy as np

from ._common import set_threads

__all__ = ["run", "FAMILIES", "compare_all"]

TOL = {np.float64: 1e-12, np.float32: 1e-5}
TOL_SUMS = {np.float64: 1e-10, np.float32: 2e-5}  # long sums: GEMM, batch means
TOL_NUMERICAL = 1e-7  # finite differences: f(w+h) - f(w-h) summed per row vs two totals


def _err(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return np.inf
    same_nonfinite = ~np.isfinite(want) & ((got == want) | (np.isnan(got) & np.isnan(want)))
    if (~np.isfinite(got) & ~same_nonfinite).any():
        return np.inf
    ok = np.isfinite(want)
    if not ok.any():
        return 0.0
    scale = np.max(np.abs(want[ok]))
    return float(np.max(np.abs(got[ok] - want[ok])) / (scale if scale > 0 else 1.0))


# --- the families: each yields (what, fastnn's result, NumPy's result, tolerance) ---------

def functions(rng, dt):
    from fastnn import _reference_numpy as R
    from fastnn import functions as F
    tol, tol_sums = TOL[dt], TOL_SUMS[dt]
    x = (rng.standard_normal((7, 257)) * 4).astype(dt)
    x1 = x[0].copy()
    for name in ("identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu",
                 "relu_grad", "tanh", "leaky_relu", "softmax"):
        yield name, getattr(F, name)(x), getattr(R, name)(x), tol
    yield "softmax, 1-D", F.softmax(x1), R.softmax(x1), tol
    xt = np.asfortranarray(x)
    yield "sigmoid, Fortran order", F.sigmoid(xt), R.sigmoid(xt), tol
    a = rng.random((33, 784)).astype(dt)
    W = (rng.standard_normal((784, 50)) * 0.1).astype(dt)
    b = rng.standard_normal(50).astype(dt)
    want = R.affine(a.astype(np.float64), W.astype(np.float64), b.astype(np.float64))
    yield "affine", F.affine(a, W, b), want, tol_sums
    yield "affine, one row", F.affine(a[:1], W, b), want[:1], tol_sums


def losses(rng, dt):
    from fastnn import _reference_numpy as R
    from fastnn import functions as F
    tol = TOL_SUMS[dt]
    s = (rng.standard_normal((100, 10)) * 3).astype(dt)
    t = rng.integers(0, 10, 100)
    onehot = np.eye(10, dtype=dt)[t]
    p = R.softmax(s.astype(np.float64)).astype(dt)
    yield "cross_entropy_error, labels", F.cross_entropy_error(p, t), \
        R.cross_entropy_error(p.astype(np.float64), t), tol
    yield "cross_entropy_error, one-hot", F.cross_entropy_error(p, onehot), \
        R.cross_entropy_error(p.astype(np.float64), onehot), tol
    yield "cross_entropy_error, 1-D", F.cross_entropy_error(p[0], t[:1]), \
        R.cross_entropy_error(p[0].astype(np.float64), t[:1]), tol
    yield "softmax_loss", F.softmax_loss(s, t), R.softmax_loss(s.astype(np.float64), t), tol
    yield "sum_squared_error", F.sum_squared_error(p, onehot), \
        R.sum_squared_error(p.astype(np.float64), onehot), tol
    # fastnn.losses (Keras / tf.nn), per sample, against their formulas in float64
    from fastnn import losses as K
    s64, p64, t64 = s.astype(np.float64), p.astype(np.float64), onehot.astype(np.float64)
    eps = 1e-7
    pc = np.clip(p64 / p64.sum(axis=-1, keepdims=True), eps, 1 - eps)
    log_softmax = s64 - s64.max(axis=-1, keepdims=True)
    log_softmax = log_softmax - np.log(np.exp(log_softmax).sum(axis=-1, keepdims=True))
    yield "losses.categorical_crossentropy", K.categorical_crossentropy(onehot, p), \
        -np.sum(t64 * np.log(pc), axis=-1), tol
    yield "losses.categorical_crossentropy, logits", \
        K.categorical_crossentropy(onehot, s, from_logits=True), \
        -np.sum(t64 * log_softmax, axis=-1), tol
    # (Keras's sparse form feeds log(clip(p)) to a softmax: the clipped row is normalised)
    c = np.clip(p64, eps, 1 - eps)
    yield "losses.sparse_categorical_crossentropy", K.sparse_categorical_crossentropy(t, p), \
        np.log(c.sum(axis=-1)) - np.log(c[np.arange(len(t)), t]), tol
    yield "losses.softmax_cross_entropy_with_logits", \
        K.softmax_cross_entropy_with_logits(onehot, s), -np.sum(t64 * log_softmax, axis=-1), tol
    z = s64[:, :3]
    yt = (rng.random(z.shape) < 0.5).astype(dt)
    yield "losses.sigmoid_cross_entropy_with_logits", \
        K.sigmoid_cross_entropy_with_logits(yt, z.astype(dt)), \
        np.maximum(z, 0) - z * yt + np.log1p(np.exp(-np.abs(z))), tol
    yield "losses.MSE", K.MSE(onehot, p), np.mean((p64 - t64) ** 2, axis=-1), tol


def layers(rng, dt):
    from fastnn import _reference_numpy as R
    from fastnn import layers as L
    tol, tol_sums = TOL[dt], TOL_SUMS[dt]
    x = rng.standard_normal((16, 30)).astype(dt)
    dout = rng.standard_normal((16, 30)).astype(dt)
    for name in ("Relu", "Sigmoid"):
        f, r = getattr(L, name)(), getattr(R, name)()
        yield name + ".forward", f.forward(x.copy()), r.forward(x.copy()), tol
        yield name + ".backward", f.backward(dout.copy()), r.backward(dout.copy()), tol
    W = (rng.standard_normal((30, 12)) * 0.3).astype(dt)
    b = rng.standard_normal(12).astype(dt)
    d12 = rng.standard_normal((16, 12)).astype(dt)
    f, r = L.Affine(W, b), R.Affine(W.astype(np.float64), b.astype(np.float64))
    yield "Affine.forward", f.forward(x), r.forward(x.astype(np.float64)), tol_sums
    yield "Affine.backward dx", f.backward(d12), r.backward(d12.astype(np.float64)), tol_sums
    yield "Affine.backward dW", f.dW, r.dW, tol_sums
    yield "Affine.backward db", f.db, r.db, tol_sums
    t = rng.integers(0, 12, 16)
    f, r = L.SoftmaxWithLoss(), R.SoftmaxWithLoss()
    yield "SoftmaxWithLoss.forward", f.forward(d12, t), \
        r.forward(d12.astype(np.float64), t), tol_sums
    yield "SoftmaxWithLoss.backward", f.backward(), r.backward(), tol
    f, r = L.Dropout(0.3), R.Dropout(0.3)
    yield "Dropout.forward (test time)", f.forward(x, train_flg=False), \
        r.forward(x, train_flg=False), tol
    np.random.seed(1)
    got = f.forward(x, train_flg=True)
    np.random.seed(1)
    yield "Dropout.forward (training)", got, r.forward(x, train_flg=True), tol
    yield "Dropout.backward", f.backward(dout), r.backward(dout), tol
    gamma = (1 + 0.1 * rng.standard_normal(30)).astype(dt)
    beta = (0.1 * rng.standard_normal(30)).astype(dt)
    f, r = L.BatchNormalization(gamma.copy(), beta.copy()), \
        R.BatchNormalization(gamma.astype(np.float64), beta.astype(np.float64))
    yield "BatchNormalization.forward", f.forward(x), r.forward(x.astype(np.float64)), tol_sums
    yield "BatchNormalization.backward", f.backward(dout), \
        r.backward(dout.astype(np.float64)), tol_sums
    yield "BatchNormalization.dgamma", f.dgamma, r.dgamma, tol_sums


def nets(rng, dt):
    """gradient (fused backprop) in both dtypes; numerical_gradient (the finite-difference
    engine) in float64, where the book's own finite differences are the oracle."""
    from fastnn import _reference_numpy as R
    from fastnn import nets as N
    tol_sums = TOL_SUMS[dt]
    x = rng.random((5, 20)).astype(dt)
    x[x < 0.5] = 0  # MNIST-like exact zeros: the engine's sparse path
    t = rng.integers(0, 4, 5)
    makers = [
        ("TwoLayerNet", lambda m: m.TwoLayerNet(20, 7, 4, weight_init_std=0.5)),
        ("MultiLayerNet relu, weight decay",
         lambda m: m.MultiLayerNet(20, [9, 6], 4, activation="relu", weight_decay_lambda=0.1)),
        ("MultiLayerNet sigmoid", lambda m: m.MultiLayerNet(20, [8], 4, activation="sigmoid",
                                                            weight_init_std="sigmoid")),
    ]
    for name, make in makers:
        np.random.seed(0)
        fast = make(N)
        np.random.seed(0)
        ref = make(R)
        for k in fast.params:
            fast.params[k] = fast.params[k].astype(dt)
        if isinstance(fast, N.MultiLayerNet):
            fast = N.MultiLayerNet.from_params(fast.params, activation=ref.layers[
                "Activation_function1"].__class__.__name__.lower(),
                weight_decay_lambda=ref.weight_decay_lambda)
        for k in ref.params:
            ref.params[k][...] = fast.params[k]
        x64 = x.astype(np.float64)
        yield name + " loss", fast.loss(x, t), ref.loss(x64, t), tol_sums
        got, want = fast.gradient(x, t), ref.gradient(x64, t)
        for k in want:
            yield "%s gradient %s" % (name, k), got[k], want[k], tol_sums
        if dt == np.float64:
            got, want = fast.numerical_gradient(x, t), ref.numerical_gradient(x64, t)
            for k in want:
                yield "%s numerical_gradient %s" % (name, k), got[k], want[k], TOL_NUMERICAL
    if dt == np.float64:
        from fastnn.gradient import numerical_gradient

        def f(w):
            return float(np.sum(np.sin(w) * w))
        w = rng.standard_normal((3, 5))
        yield "numerical_gradient(f, x)", numerical_gradient(f, w.copy()), \
            R.numerical_gradient(f, w.copy()), 1e-12


def optimizers(rng, dt):
    from fastnn import _reference_numpy as R
    from fastnn import optimizer as O
    tol = TOL[dt] * 10
    for key, cls in R.OPTIMIZERS.items():
        fast_cls = getattr(O, cls.__name__)
        params = {"W": rng.standard_normal((13, 7)).astype(dt),
                  "b": rng.standard_normal(7).astype(dt)}
        mine = {k: v.copy() for k, v in params.items()}
        theirs = {k: v.copy() for k, v in params.items()}
        fast, ref = fast_cls(lr=0.05), cls(lr=0.05)
        for _ in range(3):
            grads = {k: rng.standard_normal(v.shape).astype(dt) for k, v in params.items()}
            fast.update(mine, grads)
            ref.update(theirs, grads)
        for k in params:
            yield "%s.update, 3 steps, %s" % (cls.__name__, k), mine[k], theirs[k], tol


def nnfs(rng, dt):
    """The nnfs book's classes against its formulas, written out in NumPy."""
    from fastnn import _reference_numpy as R
    from fastnn import nnfs as M
    tol, tol_sums = TOL[dt], TOL_SUMS[dt]
    x = rng.standard_normal((20, 6)).astype(dt)
    y = rng.integers(0, 3, 20)
    np.random.seed(0)
    dense = M.Layer_Dense(6, 3, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
    dense.weights = (rng.standard_normal((6, 3)) * 0.5).astype(dt)
    dense.biases = (rng.standard_normal((1, 3)) * 0.1).astype(dt)
    W, b = dense.weights.astype(np.float64), dense.biases.astype(np.float64)
    x64 = x.astype(np.float64)
    dense.forward(x)
    out = x64 @ W + b  # output = inputs . weights + biases
    yield "Layer_Dense.forward", dense.output, out, tol_sums
    relu = M.Activation_ReLU()
    relu.forward(dense.output)
    yield "Activation_ReLU.forward", relu.output, np.maximum(0, out), tol_sums
    soft = M.Activation_Softmax()
    soft.forward(dense.output)
    probs = R.softmax(out)
    yield "Activation_Softmax.forward", soft.output, probs, tol_sums
    loss = M.Loss_CategoricalCrossentropy()
    yield "Loss_CategoricalCrossentropy.calculate", loss.calculate(soft.output, y), \
        np.mean(-np.log(np.clip(probs, 1e-7, 1 - 1e-7)[np.arange(20), y])), tol_sums
    both = M.Activation_Softmax_Loss_CategoricalCrossentropy()
    both.forward(dense.output, y)
    both.backward(both.output, y)
    dinputs = probs.copy()
    dinputs[np.arange(20), y] -= 1  # softmax + cross-entropy: (p - onehot) / n
    dinputs /= 20
    yield "Activation_Softmax_Loss_CategoricalCrossentropy.backward", both.dinputs, dinputs, \
        tol_sums
    dense.backward(both.dinputs)
    dvals = both.dinputs.astype(np.float64)
    yield "Layer_Dense.backward dweights (L2)", dense.dweights, \
        x64.T @ dvals + 2 * 5e-4 * W, tol_sums
    yield "Layer_Dense.backward dbiases (L2)", dense.dbiases, \
        dvals.sum(axis=0, keepdims=True) + 2 * 5e-4 * b, tol_sums
    yield "Layer_Dense.backward dinputs", dense.dinputs, dvals @ W.T, tol_sums
    relu.backward(dense.output)
    yield "Activation_ReLU.backward", relu.dinputs, \
        np.where(dense.output > 0, dense.output, 0), tol
    sig = M.Activation_Sigmoid()
    sig.forward(x)
    yield "Activation_Sigmoid.forward", sig.output, 1 / (1 + np.exp(-x64)), tol
    # the optimizers, one step from the same gradients: the book's update rules
    for name, kw in (("Optimizer_SGD", {"learning_rate": 0.1, "momentum": 0.9}),
                     ("Optimizer_Adagrad", {"learning_rate": 0.1}),
                     ("Optimizer_RMSprop", {"learning_rate": 0.01}),
                     ("Optimizer_Adam", {"learning_rate": 0.01})):
        opt = getattr(M, name)(**kw)
        layer = M.Layer_Dense(6, 3)
        layer.weights = W.astype(dt).copy()
        layer.biases = b.astype(dt).copy()
        layer.dweights = dense.dweights.copy()
        layer.dbiases = dense.dbiases.copy()
        opt.pre_update_params()
        opt.update_params(layer)
        opt.post_update_params()
        g = dense.dweights.astype(np.float64)
        lr = kw["learning_rate"]
        if name == "Optimizer_SGD":  # momentum: m = -lr g (from zero)
            want = W - lr * g
        elif name == "Optimizer_Adagrad":  # cache = g^2
            want = W - lr * g / (np.sqrt(g * g) + 1e-7)
        elif name == "Optimizer_RMSprop":  # cache = (1 - rho) g^2
            want = W - lr * g / (np.sqrt(0.1 * g * g) + 1e-7)
        else:  # Adam, step 1: m_hat = g, v_hat = g^2
            want = W - lr * g / (np.sqrt(g * g) + 1e-7)
        yield name + ".update_params weights", layer.weights, want, tol * 100


def conv(rng, dt):
    """ch07-ch08: im2col/col2im, Convolution, Pooling, and the conv nets' gradient and
    numerical gradient (the executor's conv and pool kinds, the FD engine's pattern blocks)."""
    from fastnn import _reference_numpy as R
    from fastnn import layers as L
    from fastnn import nets as N
    from fastnn import util as U
    tol = TOL_SUMS[dt]
    x = rng.random((3, 2, 9, 8)).astype(dt)
    W = (rng.standard_normal((4, 2, 3, 3)) * 0.3).astype(dt)
    b = rng.standard_normal(4).astype(dt)
    x64, W64, b64 = x.astype(np.float64), W.astype(np.float64), b.astype(np.float64)
    yield "im2col, stride 2, pad 1", U.im2col(x, 3, 3, 2, 1), R.im2col(x64, 3, 3, 2, 1), TOL[dt]
    col = rng.standard_normal((3 * 9 * 8, 18)).astype(dt)
    yield "col2im, pad 1", U.col2im(col, x.shape, 3, 3, 1, 1), \
        R.col2im(col.astype(np.float64), x.shape, 3, 3, 1, 1), tol
    for stride, pad in ((1, 0), (2, 1), (1, 2)):
        mine, theirs = L.Convolution(W, b, stride, pad), R.Convolution(W64, b64, stride, pad)
        out = mine.forward(x)
        yield "Convolution.forward, stride %d pad %d" % (stride, pad), out, \
            theirs.forward(x64), tol
        dout = rng.standard_normal(out.shape).astype(dt)
        yield "Convolution.backward dx, stride %d pad %d" % (stride, pad), mine.backward(dout), \
            theirs.backward(dout.astype(np.float64)), tol
        yield "Convolution.backward dW, stride %d pad %d" % (stride, pad), mine.dW, \
            theirs.dW, tol
    pool, ref_pool = L.Pooling(2, 2, stride=2), R.Pooling(2, 2, stride=2)
    out = pool.forward(x)
    yield "Pooling.forward 2x2/2", out, ref_pool.forward(x64), TOL[dt]
    dout = rng.standard_normal(out.shape).astype(dt)
    yield "Pooling.backward 2x2/2", pool.backward(dout), \
        ref_pool.backward(dout.astype(np.float64)), TOL[dt]
    for name, kw in (("SimpleConvNet", dict(input_dim=(1, 10, 10), hidden_size=10,
                                            conv_param={"filter_num": 10, "filter_size": 3,
                                                        "pad": 0, "stride": 1},
                                            weight_init_std=0.1)),
                     ("MnistCNN", dict(input_dim=(1, 12, 12), filter_num=4,
                                       weight_init_std=0.3))):
        np.random.seed(0)
        mine = getattr(N, name)(**kw)
        np.random.seed(0)
        theirs = getattr(R, name)(**kw)
        for k in mine.params:
            mine.params[k] = mine.params[k].astype(dt)
            theirs.params[k] = mine.params[k].astype(np.float64)
        for i, key in enumerate(theirs._param_layers):
            theirs.layers[key].W = theirs.params["W%d" % (i + 1)]
            theirs.layers[key].b = theirs.params["b%d" % (i + 1)]
        xi = (rng.random((4,) + kw["input_dim"]) * (rng.random((4,) + kw["input_dim"]) < 0.4))
        ti = rng.integers(0, 10, 4)
        g, want = mine.gradient(xi.astype(dt), ti), theirs.gradient(xi, ti)
        for k in want:
            yield "%s.gradient %s" % (name, k), g[k], want[k], tol * 10
        if dt is np.float64:   # the engine evaluates in double: compare once
            g = mine.numerical_gradient(xi[:1], ti[:1])
            loss_w = lambda w: theirs.loss(xi[:1], ti[:1])  # noqa: E731 - the book's idiom
            for k in ("W1", "b1"):
                yield "%s.numerical_gradient %s" % (name, k), g[k], \
                    R.numerical_gradient(loss_w, theirs.params[k]), TOL_NUMERICAL


FAMILIES = [("functions", functions), ("losses", losses), ("layers", layers),
            ("nets", nets), ("optimizers", optimizers), ("nnfs", nnfs), ("conv", conv)]


def compare_all(seed, report):
    """Run every family on every ISA level and dtype; ``report(isa, family, dtype, what,
    err, tol)`` is called for each comparison. Returns the number of mismatches."""
    from fastnn._kernels import _cpu
    failures = 0
    old = _cpu.get_isa()
    try:
        for isa in _cpu.supported_isas():
            _cpu.set_isa(isa)
            for fam, gen in FAMILIES:
                for dt in (np.float64, np.float32):
                    rng = np.random.default_rng(seed)
                    state = np.random.get_state()
                    try:
                        for what, got, want, tol in gen(rng, dt):
                            err = _err(got, want)
                            failures += not err <= tol
                            report(isa, fam, np.dtype(dt).name, what, err, tol)
                    finally:
                        np.random.set_state(state)
    finally:
        _cpu.set_isa(old)
    return failures


def _same_bits_on_any_thread_count(seed):
    """The nets' numerical gradient and backprop on 1 thread and on all: the same bits."""
    import fastnn
    from fastnn.nets import MultiLayerNet
    rng = np.random.default_rng(seed)
    x = rng.random((50, 784))
    x[x < 0.8] = 0
    t = rng.integers(0, 10, 50)
    np.random.seed(seed % 2**32)
    net = MultiLayerNet(784, [30, 20], 10, activation="sigmoid", weight_init_std="sigmoid")
    results = []
    for n in (1, None):
        fastnn.set_num_threads(n)
        results.append((net.numerical_gradient(x, t), net.gradient(x, t)))
    return all(np.array_equal(a[k], b[k]) for a, b in zip(*results) for k in a)


def run(args):
    import fastnn
    from fastnn._kernels import _cpu
    threads = set_threads(args.threads)
    print("fastnn %s" % fastnn.__version__)
    print("  OpenMP:  %s" % ("yes" if fastnn.openmp_enabled() else "no (a serial build)"))
    print("  threads: %d" % threads)
    print("  ISA:     %s kernels (this CPU runs %s; the check runs each)"
          % (_cpu.get_isa(), ", ".join(_cpu.supported_isas())))
    print("checking every kernel family against NumPy (relative error; float64 to %g, "
          "float32 to %g, long sums to %g/%g, numerical gradients to %g):"
          % (TOL[np.float64], TOL[np.float32], TOL_SUMS[np.float64], TOL_SUMS[np.float32],
             TOL_NUMERICAL))
    counts, worst, bad = {}, {}, []

    def report(isa, fam, dtype, what, err, tol):
        key = (isa, fam)
        counts[key] = counts.get(key, 0) + 1
        worst[key] = max(worst.get(key, 0.0), err / tol if tol else err)
        if not err <= tol:
            bad.append("  MISMATCH %s %s %s: %s: error %.2g, tolerance %.2g"
                       % (isa, dtype, fam, what, err, tol))

    failures = compare_all(args.seed, report)
    for isa in _cpu.supported_isas():
        parts = ["%s %d %s" % (fam, counts.get((isa, fam), 0),
                               "ok" if worst.get((isa, fam), 0) <= 1 else "MISMATCH")
                 for fam, _ in FAMILIES]
        print("  %-9s %s" % (isa, ", ".join(parts)))
    for line in bad:
        print(line)
    total = sum(counts.values())
    same = _same_bits_on_any_thread_count(args.seed)
    set_threads(args.threads)
    print("  threads: the nets' gradients on 1 thread and on %d: %s"
          % (threads, "the same bits" if same else "DIFFERENT BITS"))
    failures += not same
    if failures:
        print("%d of %d comparisons disagree with NumPy" % (failures, total + 1))
        return 1
    print("all kernels agree with NumPy (%d comparisons)" % (total + 1))
    return 0
