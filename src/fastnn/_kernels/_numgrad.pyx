# The finite-difference engine: central differences of a whole net's loss, per parameter,
# evaluated incrementally from the perturbed layer on, and the generic
# numerical_gradient(f, x) loop.
#
# Design (STYLE.md, DESIGN.md "The finite-difference engine"):
# * the Python layer (fastnn.nets) runs ONE forward pass in double and hands this module
#   the cache: every layer's input activations A, pre-activations Z, exp(-Z) (sigmoid),
#   the output probabilities P and, per layer and input unit i, the list of rows b with
#   A[b, i] != 0 (a CSC index: rows with A[b, i] == 0 see no change at all when W[i, j]
#   moves, so their per-row loss difference is exactly 0, as in the reference);
# * `cdef inline noexcept nogil` functions evaluate, for ONE row, the loss change caused
#   by a change d of one pre-activation z[b, j], for both perturbed points at once;
# * `numgrad_net` owns ONE parallel region over every parameter of every layer
#   (schedule='dynamic': zero-skipping makes the work uneven), with per-thread scratch
#   malloc'ed inside the region. Each gradient entry is computed by one thread, rows in
#   order, so the result is bitwise identical on any thread count.
#
# The perturbed points are the reference's, rounded in the parameter's dtype:
#   w+ = float(w) + h                 (double, then stored: rounded to float32 for float32)
#   w- = w - h                        (float32 params: a float32 subtraction, NumPy 2 / NEP 50)
# and the loss is evaluated in DOUBLE at those points (for float32 params this gives the
# true central difference at the float32 points rather than float32 noise).
#
# Per row, the loss change is computed directly, never as a difference of two totals:
#   softmax:  e'_k = e_k (1 + q_k), q_k = expm1(dz_k),  Q = sum_k p_k q_k
#             p'_t - p_t = p_t (q_t - Q) / (1 + Q)
#   loss:     r' - r = -log1p((p'_t - p_t) / (p_t + 1e-7))
#   sigmoid:  s(z+d) - s(z) = -E expm1(-d) / ((1 + E)(1 + E (1 + expm1(-d)))), E = exp(-z)
# expm1/log1p of the tiny arguments are short polynomials (truncation < 1e-19 relative),
# so no exp/log is spent on the unchanged parts of the net.

from cython.parallel cimport parallel, prange
from libc.math cimport expm1, log1p, exp, fabs, isfinite, NAN
from libc.stdlib cimport malloc, free
from libc.string cimport memset

cimport cython

cdef extern from "fastnn_openmp.h":
    int fastnn_openmp_enabled() noexcept nogil

cdef double H = 1e-4
cdef double EPS_LOG = 1e-7

ctypedef struct Layer:
    Py_ssize_t n_in
    Py_ssize_t n_out
    const double *W        # (n_in, n_out) weights, in double
    const double *bias     # (n_out,)
    const double *A        # (B, n_in) input activations of this layer (x for layer 0)
    const double *Z        # (B, n_out) pre-activations (hidden layers only)
    const double *E        # (B, n_out) exp(-Z) (sigmoid hidden layers only)
    const Py_ssize_t *nz_off   # (n_in + 1,) CSC offsets of nonzero A[:, i]
    const Py_ssize_t *nz_rows  # rows b with A[b, i] != 0, increasing
    int w_f32              # parameter dtype is float32: round perturbed points to float32
    int b_f32
    double *gW             # OUT (n_in, n_out)
    double *gb             # OUT (n_out,)


# --- tiny-argument expm1 / log1p -------------------------------------------------------

cdef inline double expm1_small(double x) noexcept nogil:
    # expm1(x) = x + x^2/2 + ... + x^8/8!; |x| < 1e-2: truncation < 3e-22 relative
    cdef double p
    if fabs(x) < 1e-2:
        p = 1.0 / 40320.0
        p = p * x + 1.0 / 5040.0
        p = p * x + 1.0 / 720.0
        p = p * x + 1.0 / 120.0
        p = p * x + 1.0 / 24.0
        p = p * x + 1.0 / 6.0
        p = p * x + 0.5
        p = p * x + 1.0
        return p * x
    return expm1(x)


cdef inline double log1p_small(double u) noexcept nogil:
    # log1p(u) = u - u^2/2 + ... - u^8/8; |u| < 1e-2: truncation < 1.2e-17 relative
    cdef double p
    if fabs(u) < 1e-3:
        p = -1.0 / 6.0
        p = p * u + 1.0 / 5.0
        p = p * u - 1.0 / 4.0
        p = p * u + 1.0 / 3.0
        p = p * u - 0.5
        p = p * u + 1.0
        return p * u            # truncation u^7/7 < 1.5e-19 relative for |u| < 1e-3
    return log1p(u)


# --- the perturbed points --------------------------------------------------------------

cdef inline double perturbed_plus(double w, int f32) noexcept nogil:
    """The reference's x[idx] = float(tmp_val) + h, stored in x's dtype."""
    if f32:
        return <double> (<float> (w + H))           # double sum, stored as float32
    return w + H


cdef inline double perturbed_minus(double w, int f32) noexcept nogil:
    """The reference's x[idx] = tmp_val - h, in x's dtype."""
    cdef float w32, c32
    if f32:
        w32 = <float> w
        c32 = <float> H
        return <double> (<float> (w32 - c32))       # float32 - float32 (NEP 50)
    return w - H


# --- activation deltas ------------------------------------------------------------------

cdef inline double act_delta(int act, double z, double E, double d) noexcept nogil:
    """act(z + d) - act(z) for one unit; act 0 = relu, 1 = sigmoid (E = exp(-z))."""
    cdef double zp, em, a0, a1
    if d == 0.0:
        return 0.0
    if act == 0:
        zp = z + d
        a1 = zp if zp > 0.0 else 0.0
        a0 = z if z > 0.0 else 0.0
        return a1 - a0
    if E < 1e150 and fabs(d) < 1e-2:
        em = expm1_small(-d)
        # s(z+d) - s(z) = -E expm1(-d) / ((1 + E)(1 + E (1 + expm1(-d))))
        return -E * em / ((1.0 + E) * (1.0 + E * (1.0 + em)))
    return 1.0 / (1.0 + exp(-(z + d))) - 1.0 / (1.0 + exp(-z))


# --- output row: loss change from a change of the logits ---------------------------------

cdef inline double out_delta_col(const double *p, Py_ssize_t t, Py_ssize_t j, double d) noexcept nogil:
    """r' - r when only logit j of this row moves by d (p: the row's probabilities)."""
    cdef double q, Q, qt, u
    if d == 0.0:
        return 0.0
    q = expm1_small(d)
    Q = p[j] * q                              # Q = sum_k p_k q_k
    qt = q if t == j else 0.0
    u = p[t] * (qt - Q) / ((1.0 + Q) * (p[t] + EPS_LOG))   # (p'_t - p_t) / (p_t + 1e-7)
    return -log1p_small(u)                    # r' - r = -log1p(u)


cdef inline double out_delta_vec(const double *p, Py_ssize_t t, const double *dz, Py_ssize_t C) noexcept nogil:
    """r' - r when the row's logits move by dz[0:C]."""
    cdef double Q = 0.0, qt = 0.0, q, u
    cdef Py_ssize_t k
    for k in range(C):
        q = expm1_small(dz[k])
        Q += p[k] * q                         # Q = sum_k p_k q_k
        if k == t:
            qt = q
    u = p[t] * (qt - Q) / ((1.0 + Q) * (p[t] + EPS_LOG))
    return -log1p_small(u)


cdef double row_pair(const Layer *L, Py_ssize_t n_layers, int act, Py_ssize_t l,
                     Py_ssize_t j, Py_ssize_t b, double dp, double dm,
                     const double *P, const Py_ssize_t *t,
                     double *s0p, double *s0m, double *s1p, double *s1m) noexcept nogil:
    """(r+ - r) - (r- - r) for row b when z_l[b, j] moves by dp (w+) and dm (w-)."""
    cdef Py_ssize_t C = L[n_layers - 1].n_out
    cdef const double *prow = P + b * C
    cdef Py_ssize_t tb = t[b]
    cdef double ap, am, ep, em_, v
    cdef Py_ssize_t k, m, n, kk
    cdef const double *Wn
    cdef double *tmp
    if l == n_layers - 1:
        return out_delta_col(prow, tb, j, dp) - out_delta_col(prow, tb, j, dm)
    # hidden unit j of layer l: its activation moves by ap / am
    n = L[l].n_out
    ap = act_delta(act, L[l].Z[b * n + j], L[l].E[b * n + j] if act == 1 else 0.0, dp)
    am = act_delta(act, L[l].Z[b * n + j], L[l].E[b * n + j] if act == 1 else 0.0, dm)
    if ap == 0.0 and am == 0.0:
        return 0.0
    # next pre-activations move by a rank-1 update: dz_{l+1}[k] = da * W_{l+1}[j, k]
    Wn = L[l + 1].W + j * L[l + 1].n_out
    n = L[l + 1].n_out
    for k in range(n):
        s0p[k] = ap * Wn[k]
        s0m[k] = am * Wn[k]
    # deeper hidden layers: activation deltas, then dz_{m+1} = da_m @ W_{m+1}
    for m in range(l + 1, n_layers - 1):
        n = L[m].n_out
        for k in range(n):
            s0p[k] = act_delta(act, L[m].Z[b * n + k], L[m].E[b * n + k] if act == 1 else 0.0, s0p[k])
            s0m[k] = act_delta(act, L[m].Z[b * n + k], L[m].E[b * n + k] if act == 1 else 0.0, s0m[k])
        Wn = L[m + 1].W
        memset(s1p, 0, L[m + 1].n_out * sizeof(double))
        memset(s1m, 0, L[m + 1].n_out * sizeof(double))
        for k in range(n):
            ep = s0p[k]
            em_ = s0m[k]
            if ep == 0.0 and em_ == 0.0:
                continue
            for kk in range(L[m + 1].n_out):
                v = Wn[k * L[m + 1].n_out + kk]
                s1p[kk] += ep * v
                s1m[kk] += em_ * v
        tmp = s0p; s0p = s1p; s1p = tmp
        tmp = s0m; s0m = s1m; s1m = tmp
    return out_delta_vec(prow, tb, s0p, C) - out_delta_vec(prow, tb, s0m, C)


def numgrad_net(list layers,            # IN  per layer: dict of arrays (see nets.py)
                const double[:, ::1] P,  # IN  (B, C) output probabilities
                const Py_ssize_t[::1] t,  # IN  (B,) labels
                int act,                 # 0 relu, 1 sigmoid
                double weight_decay_lambda,
                int n_threads):
    """Fill every layer's gW/gb with the central-difference gradient of the net's loss."""
    cdef Py_ssize_t n_layers = len(layers)
    cdef Py_ssize_t B = P.shape[0]
    cdef Layer *L = <Layer *> malloc(n_layers * sizeof(Layer))
    cdef Py_ssize_t *offs = <Py_ssize_t *> malloc((n_layers + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t l, g, gl, i, j, k, b, r0, r1, maxw = 1, total
    cdef double *scratch
    cdef double w, wp, wm, dp, dm, acc, a, decay, lam = weight_decay_lambda
    cdef const double[:, ::1] mW, mA, mZ, mE
    cdef const double[::1] mb
    cdef const Py_ssize_t[::1] moff, mrows
    cdef double[:, ::1] mgW
    cdef double[::1] mgb
    if L == NULL or offs == NULL:
        free(L); free(offs)
        raise MemoryError()
    try:
        offs[0] = 0
        for l in range(n_layers):
            d = layers[l]
            mW = d["W"]; mb = d["b"]; mA = d["A"]; moff = d["nz_off"]; mrows = d["nz_rows"]
            mgW = d["gW"]; mgb = d["gb"]
            L[l].n_in = mW.shape[0]
            L[l].n_out = mW.shape[1]
            L[l].W = &mW[0, 0]
            L[l].bias = &mb[0]
            L[l].A = &mA[0, 0]
            L[l].nz_off = &moff[0]
            L[l].nz_rows = &mrows[0] if mrows.shape[0] > 0 else NULL
            L[l].w_f32 = d["w_f32"]
            L[l].b_f32 = d["b_f32"]
            L[l].gW = &mgW[0, 0]
            L[l].gb = &mgb[0]
            L[l].Z = NULL
            L[l].E = NULL
            if l < n_layers - 1:
                mZ = d["Z"]
                L[l].Z = &mZ[0, 0]
                if act == 1:
                    mE = d["E"]
                    L[l].E = &mE[0, 0]
            maxw = max(maxw, L[l].n_out)
            offs[l + 1] = offs[l] + L[l].n_in * L[l].n_out + L[l].n_out
        total = offs[n_layers]
        with nogil, parallel(num_threads=n_threads):
            scratch = <double *> malloc(4 * maxw * sizeof(double))
            for g in prange(total, schedule="dynamic", chunksize=32):
                # which layer, and which parameter in it (W entries first, then b)
                l = 0
                while g >= offs[l + 1]:
                    l = l + 1
                gl = g - offs[l]
                acc = 0.0
                decay = 0.0
                if gl < L[l].n_in * L[l].n_out:
                    i = gl // L[l].n_out
                    j = gl - i * L[l].n_out
                    w = L[l].W[gl]
                    wp = perturbed_plus(w, L[l].w_f32)
                    wm = perturbed_minus(w, L[l].w_f32)
                    dp = wp - w
                    dm = wm - w
                    r0 = L[l].nz_off[i]
                    r1 = L[l].nz_off[i + 1]
                    for k in range(r0, r1):
                        b = L[l].nz_rows[k]
                        a = L[l].A[b * L[l].n_in + i]
                        # z_l[b, j] moves by (w' - w) * a_{l-1}[b, i]
                        acc = acc + row_pair(L, n_layers, act, l, j, b, dp * a, dm * a, &P[0, 0], &t[0],
                                             scratch, scratch + maxw, scratch + 2 * maxw, scratch + 3 * maxw)
                    if lam != 0.0:
                        # 0.5 lambda (w+^2 - w-^2), exactly the decay term's change
                        decay = 0.5 * lam * (wp - wm) * (wp + wm)
                    # (f(w+) - f(w-)) / 2h, f = mean row loss (+ decay)
                    L[l].gW[gl] = (acc / B + decay) / (2.0 * H)
                else:
                    j = gl - L[l].n_in * L[l].n_out
                    w = L[l].bias[j]
                    wp = perturbed_plus(w, L[l].b_f32)
                    wm = perturbed_minus(w, L[l].b_f32)
                    dp = wp - w
                    dm = wm - w
                    for b in range(B):
                        acc = acc + row_pair(L, n_layers, act, l, j, b, dp, dm, &P[0, 0], &t[0],
                                             scratch, scratch + maxw, scratch + 2 * maxw, scratch + 3 * maxw)
                    L[l].gb[j] = (acc / B) / (2.0 * H)
            free(scratch)
    finally:
        free(L)
        free(offs)


# --- generic numerical_gradient(f, x) -----------------------------------------------------

cdef inline double load(char *p, int kind) noexcept nogil:
    if kind == 0:
        return (<double *> p)[0]
    return <double> (<float *> p)[0]


cdef inline void store(char *p, int kind, double v) noexcept nogil:
    if kind == 0:
        (<double *> p)[0] = v
    else:
        (<float *> p)[0] = <float> v


def generic_loop(f, x, grad, Py_ssize_t[::1] shape, Py_ssize_t[::1] xstrides,
                 Py_ssize_t[::1] gstrides, Py_ssize_t[::1] order, size_t xaddr, size_t gaddr,
                 int kind, bint nep50):
    """The book's loop: for each element (axes nested as in `order`, last fastest),
    x[idx] = float(x[idx]) + h; f(x); x[idx] = x[idx] - h; f(x); restore; grad[idx] =
    (f+ - f-) / (2h). kind 0: float64, 1: float32. f is called with `x` itself."""
    cdef Py_ssize_t nd = shape.shape[0], n = 1, e, ax, kx, kg
    cdef Py_ssize_t idx[64]
    cdef char *xb = <char *> xaddr
    cdef char *gb = <char *> gaddr
    cdef char *px
    cdef double tmp, fp, fm
    cdef float t32, c32 = <float> H
    cdef object f1, f2
    for ax in range(nd):
        n *= shape[ax]
        idx[ax] = 0
    for e in range(n):
        kx = 0
        kg = 0
        for ax in range(nd):
            kx += idx[ax] * xstrides[ax]
            kg += idx[ax] * gstrides[ax]
        px = xb + kx
        tmp = load(px, kind)
        try:
            store(px, kind, tmp + H)                 # x[idx] = float(tmp_val) + h
            f1 = f(x)
            if kind == 1 and nep50:
                t32 = <float> tmp
                (<float *> px)[0] = t32 - c32        # float32 - float32 (NEP 50)
            else:
                store(px, kind, tmp - H)             # x[idx] = tmp_val - h
            f2 = f(x)
        finally:
            store(px, kind, tmp)                     # x[idx] = tmp_val (exact)
        if (type(f1) is float or type(f1) is _f64) and (type(f2) is float or type(f2) is _f64):
            fp = f1
            fm = f2
            store(gb + kg, kind, (fp - fm) / (2.0 * H))
        else:
            store(gb + kg, kind, float((f1 - f2) / (2 * H)))
        # next multi-index, last axis of `order` fastest
        ax = nd - 1
        while ax >= 0:
            kx = order[ax]
            idx[kx] += 1
            if idx[kx] < shape[kx]:
                break
            idx[kx] = 0
            ax -= 1


import numpy as _np
_f64 = _np.float64
