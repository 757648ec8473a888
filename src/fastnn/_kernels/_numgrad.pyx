# The finite-difference engine: central differences of a whole net's loss, per parameter,
# evaluated incrementally from the perturbed layer on, and the generic
# numerical_gradient(f, x) loop.
#
# Design (STYLE.md, DESIGN.md "The finite-difference engine"):
# * the Python layer (fastnn.nets) runs ONE forward pass in double and hands this module
#   the cache: every layer's input activations A, pre-activations Z, exp(-Z) (sigmoid),
#   the output probabilities P and, per layer and input unit i, the rows b with
#   A[b, i] != 0 and their values (a CSC index: rows with A[b, i] == 0 see no change at
#   all when W[i, j] moves, so their per-row loss difference is exactly 0, as in the
#   reference, and they are skipped);
# * `cdef ... noexcept nogil` functions work on ONE row: `row_pair` re-evaluates the row's
#   loss change exactly, from the perturbed layer on, for both perturbed points at once;
#   `row_series` computes the same change as a power series in the pre-activation change
#   (Taylor mode, below), shared by every parameter of a column;
# * `column` computes every gradient entry of one column j of one layer (W_l[:, j] and
#   b_l[j]); `numgrad_net` owns ONE parallel region over all columns of all layers
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
from libc.math cimport expm1, log1p, exp, fabs, pow
from libc.stdlib cimport malloc, free
from libc.string cimport memset

cimport cython

from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind, fastnn_team,
                                      fastnn_team_end)

fastnn_threads_bind(threads_state())

# fastnn_team() sizes the region from its single-thread time: engine_ops() x this many ns,
# measured on one thread (784-50-10, 784-100-10, 784-50-100-10 sigmoid nets on MNIST,
# batch 100, Zen 4: 0.31-0.38 ns; deep relu nets come out ~2x lower, their zeros skip work)
cdef double NUMGRAD_OP_NS = 0.35

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
    const double *nz_vals      # A[b, i] for those rows
    int w_f32              # parameter dtype is float32: round perturbed points to float32
    int b_f32
    double *gW             # OUT (n_in, n_out), or (n_out, n_in) when gWT
    int gWT                # gW is stored transposed (a column's entries contiguous)
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


cdef bint NEP50 = True      # NumPy >= 2: np.float32 - python float is a float32 operation


cdef inline double perturbed_minus(double w, int f32) noexcept nogil:
    """The reference's x[idx] = tmp_val - h, in x's dtype."""
    cdef float w32, c32
    if f32 and not NEP50:
        return <double> (<float> (w - H))           # NumPy 1.x: double, then stored
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


# --- Taylor mode: the per-row loss change as a power series in d ----------------------
#
# For a fixed row b and unit j of layer l, the row's loss change caused by z_l[b, j] += d
# is an analytic function of the scalar d: r(d) - r = G_1 d + G_2 d^2 + ... It does not
# depend on WHICH parameter moved z_l[b, j] (W_l[i, j] for any i, or b_l[j]), so its
# coefficients are computed once per (b, j) -- truncated power-series arithmetic through
# the activations, the next layers' rank-1/dense updates, softmax and -log(p_t + 1e-7) --
# and every parameter of column j then costs a few multiply-adds per row:
#   (r(d+) - r) - (r(d-) - r) = sum_n G_n (d+^n - d-^n).
# The series is used only for |d| <= rad[b], where its last terms are below 1e-19
# (sigmoid) and no ReLU downstream can change sides; elsewhere the row is evaluated
# exactly (row_pair). Only the arithmetic changes; the value is the loss at w+-h.

cdef enum:
    NT = 6      # series order
    NS = 7      # coefficients per series (index 0 = constant term, 0 for changes)

cdef double RAD_CAP = 1e-2
cdef Py_ssize_t CB = 1      # columns per work item


cdef inline void sig_coeffs(double s0, double c0, double *s) noexcept nogil:
    """Taylor coefficients s_n = sigmoid^(n)(z) / n! at z; s0 = sigmoid(z), c0 = 1 - s0."""
    cdef int n, i
    cdef double acc
    s[0] = s0
    s[1] = s0 * c0                           # S' = S (1 - S)
    for n in range(1, NT):
        # (n + 1) s_{n+1} = s_n (1 - 2 s_0) - sum_{i=1}^{n-1} s_i s_{n-i}
        acc = s[n] * (c0 - s0)
        for i in range(1, n):
            acc = acc - s[i] * s[n - i]
        s[n + 1] = acc / (n + 1)


cdef inline bint ser_is_zero(const double *c) noexcept nogil:
    cdef int n
    for n in range(1, NS):
        if c[n] != 0.0:
            return False
    return True


cdef inline void ser_compose(const double *sig, const double *c, double *out,
                             double *pw, double *tmp) noexcept nogil:
    """out = sum_{q>=1} sig[q] c^q, truncated at order NT (c has no constant term)."""
    cdef int n, q, i
    cdef double acc
    out[0] = 0.0
    pw[0] = 0.0
    for n in range(1, NS):
        pw[n] = c[n]
        out[n] = sig[1] * c[n]
    for q in range(2, NS):
        for n in range(q, NS):                # tmp = pw * c: orders >= q
            acc = 0.0
            for i in range(q - 1, n):
                acc = acc + pw[i] * c[n - i]
            tmp[n] = acc
        pw[q - 1] = 0.0
        for n in range(q, NS):
            pw[n] = tmp[n]
            out[n] = out[n] + sig[q] * tmp[n]


cdef void out_series(const double *V, Py_ssize_t C, const double *p, Py_ssize_t t,
                     double *G, double *wk) noexcept nogil:
    """G = series of r' - r, r = -log(p_t + 1e-7), when the logits move by V (C x NS)."""
    cdef double *e = wk
    cdef double *D = wk + NS
    cdef double *Num = wk + 2 * NS
    cdef double *r = wk + 3 * NS
    cdef double *u = wk + 4 * NS
    cdef const double *c
    cdef Py_ssize_t k
    cdef int n, m
    cdef double acc, f
    for n in range(NS):
        D[n] = 0.0
        Num[n] = 0.0
    for k in range(C):
        c = V + k * NS
        if ser_is_zero(c):
            continue
        # e = exp(c): e_0 = 1, n e_n = sum_{m=1}^{n} m c_m e_{n-m}
        e[0] = 1.0
        for n in range(1, NS):
            acc = 0.0
            for m in range(1, n + 1):
                acc = acc + m * c[m] * e[n - m]
            e[n] = acc / n
        for n in range(1, NS):
            D[n] = D[n] + p[k] * e[n]        # sum_k e'_k / S = 1 + sum_k p_k (e^c_k - 1)
            if k == t:
                Num[n] = e[n]
    # R = (1 + Num) / (1 + D) = p'_t / p_t: r_0 = 1, r_n = Num_n - sum_{m=1}^{n} D_m r_{n-m}
    r[0] = 1.0
    for n in range(1, NS):
        acc = Num[n]
        for m in range(1, n + 1):
            acc = acc - D[m] * r[n - m]
        r[n] = acc
    # U = (p'_t - p_t) / (p_t + 1e-7) = p_t (R - 1) / (p_t + 1e-7)
    f = p[t] / (p[t] + EPS_LOG)
    for n in range(1, NS):
        u[n] = f * r[n]
    # r' - r = -log(1 + U):  n l_n = n u_n - sum_{m=1}^{n-1} m l_m u_{n-m}
    G[0] = 0.0
    for n in range(1, NS):
        acc = n * u[n]
        for m in range(1, n):
            acc = acc - m * (-G[m]) * u[n - m]
        G[n] = -acc / n


cdef double row_series(const Layer *L, Py_ssize_t n_layers, int act, const double **S,
                       Py_ssize_t l, Py_ssize_t j, Py_ssize_t b,
                       const double *P, const Py_ssize_t *t, double *G,
                       double *V0, double *V1, double *Abuf, double *wk) noexcept nogil:
    """Fill G (NS) with the series of row b's loss change in d = change of z_l[b, j];
    return the radius within which it is used (0: always evaluate exactly)."""
    cdef Py_ssize_t C = L[n_layers - 1].n_out
    cdef double rad = RAD_CAP, z, sc, acc
    cdef double *da = wk + 5 * NS
    cdef double *pw = wk + 6 * NS
    cdef double *tmp = wk + 7 * NS
    cdef double *sw
    cdef const double *c
    cdef const double *Wr
    cdef Py_ssize_t n, k, kk, m, n2
    cdef int q
    for q in range(NS):
        G[q] = 0.0
    if l == n_layers - 1:
        for k in range(C * NS):
            V0[k] = 0.0
        V0[j * NS + 1] = 1.0                 # logit j moves by d
    else:
        n = L[l].n_out
        # unit j's activation change: da(d) = act(z + d) - act(z)
        if act == 1:
            c = S[l] + (b * n + j) * NS
            da[0] = 0.0
            for q in range(1, NS):
                da[q] = c[q]
        else:
            z = L[l].Z[b * n + j]
            if z == 0.0:
                return 0.0
            rad = min(rad, 0.5 * fabs(z))    # |d| < |z|: the ReLU stays on its side
            for q in range(NS):
                da[q] = 0.0
            if z > 0.0:
                da[1] = 1.0
            else:
                return rad                   # G = 0: the row's loss does not move
        # next pre-activations: dz_{l+1}[kk] = da * W_{l+1}[j, kk]   (rank 1)
        n2 = L[l + 1].n_out
        Wr = L[l + 1].W + j * n2
        for kk in range(n2):
            for q in range(NS):
                V0[kk * NS + q] = da[q] * Wr[kk]
        if act == 1 and l + 1 < n_layers - 1:
            # powers of da, shared by every unit of layer l+1 (dz = W[j, k] da there):
            # Abuf[(q-1) NS + n] = [da^q]_n
            for q in range(NS):
                Abuf[q] = da[q]
            for q in range(2, NS):
                for n in range(NS):
                    Abuf[(q - 1) * NS + n] = 0.0
                for n in range(q, NS):
                    acc = 0.0
                    for m in range(q - 1, n):
                        acc = acc + Abuf[(q - 2) * NS + m] * da[n - m]
                    Abuf[(q - 1) * NS + n] = acc
        for m in range(l + 1, n_layers - 1):
            n = L[m].n_out
            n2 = L[m + 1].n_out
            if act == 1 and m == l + 1:
                # da_m[k] = sum_q sig_q (W[j, k] da)^q = sum_q sig_q W[j, k]^q da^q
                Wr = L[l + 1].W + j * n
                for k in range(n):
                    c = S[m] + (b * n + k) * NS
                    sw = V1 + k * NS
                    for q in range(NS):
                        sw[q] = 0.0
                    z = Wr[k]
                    if z == 0.0:
                        continue
                    sc = z
                    for q in range(1, NS):
                        for kk in range(q, NS):
                            sw[kk] = sw[kk] + c[q] * sc * Abuf[(q - 1) * NS + kk]
                        sc = sc * z
                for k in range(n * NS):
                    Abuf[k] = V1[k]
            for k in range(n):
                if act == 1 and m == l + 1:
                    break
                c = V0 + k * NS
                if ser_is_zero(c):
                    for q in range(NS):
                        Abuf[k * NS + q] = 0.0
                    continue
                if act == 1:
                    ser_compose(S[m] + (b * n + k) * NS, c, Abuf + k * NS, pw, tmp)
                else:
                    z = L[m].Z[b * n + k]
                    sc = 0.0
                    for q in range(1, NS):
                        sc = sc + fabs(c[q])
                    if z == 0.0:
                        return 0.0
                    rad = min(rad, 0.5 * fabs(z) / sc)
                    for q in range(NS):
                        Abuf[k * NS + q] = c[q] if z > 0.0 else 0.0
            # dz_{m+1} = da_m @ W_{m+1}, series coefficient by coefficient
            for kk in range(n2 * NS):
                V1[kk] = 0.0
            for k in range(n):
                c = Abuf + k * NS
                if ser_is_zero(c):
                    continue
                Wr = L[m + 1].W + k * n2
                for kk in range(n2):
                    for q in range(1, NS):
                        V1[kk * NS + q] = V1[kk * NS + q] + c[q] * Wr[kk]
            sw = V0; V0 = V1; V1 = sw
    out_series(V0, C, P + b * C, t[b], G, wk)
    # truncation: the last two terms must be negligible at |d| = rad
    if G[NT] != 0.0:
        rad = min(rad, pow(1e-19 / fabs(G[NT]), 1.0 / NT))
    if G[NT - 1] != 0.0:
        rad = min(rad, pow(1e-16 / fabs(G[NT - 1]), 1.0 / (NT - 1)))
    return rad


cdef inline double series_pair(const double *G, double dp, double dm) noexcept nogil:
    """sum_n G_n (dp^n - dm^n)."""
    cdef double pp = dp, pm = dm, acc = G[1] * (dp - dm)
    cdef int n
    for n in range(2, NS):
        pp = pp * dp
        pm = pm * dm
        acc = acc + G[n] * (pp - pm)
    return acc


cdef double engine_ops(const Layer *L, Py_ssize_t n_layers, int act,
                       Py_ssize_t B) noexcept nogil:
    """~Operations of one numgrad_net call, for its time estimate: per column j of layer
    l, every row's loss-change series through the layers above (R, as row_series and
    out_series compute it), then one short series per non-zero input (and per row for
    the bias)."""
    cdef Py_ssize_t l, m, C = L[n_layers - 1].n_out
    cdef double R, dense, units, total = 0.0
    for l in range(n_layers):
        if l == n_layers - 1:
            R = NS * NS * C                              # out_series
        else:
            dense = L[l + 1].n_out                       # rank-1 change of z_{l+1}
            units = C
            for m in range(l + 1, n_layers - 1):
                dense += <double> L[m].n_out * L[m + 1].n_out
                units += L[m].n_out
            R = NS * dense + NS * NS * units             # products, compositions
            if act == 1:
                R += NS * NS * NS + NS * NS * L[l + 1].n_out   # sigmoid powers
        total += L[l].n_out * (B * R + 20.0 * (L[l].nz_off[L[l].n_in] + B))
    return total


cdef void column(const Layer *L, Py_ssize_t n_layers, int act, const double **S,
                 Py_ssize_t l, Py_ssize_t j, Py_ssize_t B, const double *P,
                 const Py_ssize_t *t, double lam, bint use_series, double *scratch,
                 Py_ssize_t maxw) noexcept nogil:
    """Gradient entries of column j of layer l: W_l[:, j] and b_l[j]."""
    cdef Py_ssize_t n = L[l].n_out, i, k, b, r0, r1
    cdef double *G = scratch + 4 * maxw + 3 * maxw * NS + 8 * NS
    cdef double *rad = G + B * NS
    cdef double w, wp, wm, dp, dm, acc, a, decay
    cdef double *ex0 = scratch
    cdef double *ex1 = scratch + maxw
    cdef double *ex2 = scratch + 2 * maxw
    cdef double *ex3 = scratch + 3 * maxw
    # the series of z_l[b, j] for every row (or none: exact evaluation)
    for b in range(B):
        if use_series:
            rad[b] = row_series(L, n_layers, act, S, l, j, b, P, t, G + b * NS,
                                scratch + 4 * maxw, scratch + 4 * maxw + maxw * NS,
                                scratch + 4 * maxw + 2 * maxw * NS,
                                scratch + 4 * maxw + 3 * maxw * NS)
        else:
            rad[b] = -1.0
    # W_l[i, j] for every i: z_l[b, j] moves by (w' - w) * a_{l-1}[b, i]
    for i in range(L[l].n_in):
        r0 = L[l].nz_off[i]
        r1 = L[l].nz_off[i + 1]
        w = L[l].W[i * n + j]
        if r0 == r1 and lam == 0.0:
            # a[:, i] == 0: the loss does not move at all
            L[l].gW[j * L[l].n_in + i if L[l].gWT else i * n + j] = 0.0
            continue
        wp = perturbed_plus(w, L[l].w_f32)
        wm = perturbed_minus(w, L[l].w_f32)
        dp = wp - w
        dm = wm - w
        acc = 0.0
        for k in range(r0, r1):             # rows with a[b, i] != 0 only
            b = L[l].nz_rows[k]
            a = L[l].nz_vals[k]
            if fabs(dp * a) <= rad[b] and fabs(dm * a) <= rad[b]:
                acc += series_pair(G + b * NS, dp * a, dm * a)
            else:
                acc += row_pair(L, n_layers, act, l, j, b, dp * a, dm * a, P, t,
                                ex0, ex1, ex2, ex3)
        decay = 0.0
        if lam != 0.0:
            decay = 0.5 * lam * (wp - wm) * (wp + wm)   # 0.5 lambda (w+^2 - w-^2)
        # (f(w+) - f(w-)) / 2h, f = mean row loss (+ decay)
        L[l].gW[j * L[l].n_in + i if L[l].gWT else i * n + j] = (acc / B + decay) / (2.0 * H)
    # b_l[j]: z_l[b, j] moves by (b' - b) in every row
    w = L[l].bias[j]
    wp = perturbed_plus(w, L[l].b_f32)
    wm = perturbed_minus(w, L[l].b_f32)
    dp = wp - w
    dm = wm - w
    acc = 0.0
    for b in range(B):
        if fabs(dp) <= rad[b] and fabs(dm) <= rad[b]:
            acc += series_pair(G + b * NS, dp, dm)
        else:
            acc += row_pair(L, n_layers, act, l, j, b, dp, dm, P, t, ex0, ex1, ex2, ex3)
    L[l].gb[j] = (acc / B) / (2.0 * H)


def numgrad_net(list layers,            # IN  per layer: dict of arrays (see nets.py)
                const double[:, ::1] P,  # IN  (B, C) output probabilities
                const Py_ssize_t[::1] t,  # IN  (B,) labels
                int act,                 # 0 relu, 1 sigmoid
                double weight_decay_lambda,
                int n_threads,
                bint use_series=True):
    """Fill every layer's gW/gb with the central-difference gradient of the net's loss.

    Work items are the columns j of every layer (W_l[:, j] and b_l[j] share the per-row
    series of z_l[:, j]); one thread computes a whole column, rows in order.
    """
    cdef Py_ssize_t n_layers = len(layers)
    cdef Py_ssize_t B = P.shape[0]
    cdef Layer *L = <Layer *> malloc(n_layers * sizeof(Layer))
    cdef Py_ssize_t *offs = <Py_ssize_t *> malloc((n_layers + 1) * sizeof(Py_ssize_t))
    cdef const double **S = <const double **> malloc(n_layers * sizeof(double *))
    cdef Py_ssize_t l, g, i, j, k, b, r0, r1, maxw = 1, total, n, q
    cdef double *scratch
    cdef double *Sbuf = NULL
    cdef double *G
    cdef double *rad
    cdef double w, wp, wm, dp, dm, acc, a, decay, lam = weight_decay_lambda, E, s0, c0
    cdef const double[:, ::1] mW, mA, mZ, mE
    cdef const double[::1] mb, mvals
    cdef const Py_ssize_t[::1] moff, mrows
    cdef double[:, ::1] mgW
    cdef double[::1] mgb
    cdef size_t n_scratch, n_S = 0
    cdef Py_ssize_t failed = 0
    if L == NULL or offs == NULL or S == NULL:
        free(L); free(offs); free(S)
        raise MemoryError()
    try:
        offs[0] = 0
        for l in range(n_layers):
            d = layers[l]
            mW = d["W"]; mb = d["b"]; mA = d["A"]; moff = d["nz_off"]; mrows = d["nz_rows"]
            mvals = d["nz_vals"]; mgW = d["gW"]; mgb = d["gb"]
            L[l].n_in = mW.shape[0]
            L[l].n_out = mW.shape[1]
            L[l].W = &mW[0, 0]
            L[l].bias = &mb[0]
            L[l].A = &mA[0, 0]
            L[l].nz_off = &moff[0]
            L[l].nz_rows = &mrows[0] if mrows.shape[0] > 0 else NULL
            L[l].nz_vals = &mvals[0] if mvals.shape[0] > 0 else NULL
            L[l].w_f32 = d["w_f32"]
            L[l].b_f32 = d["b_f32"]
            L[l].gW = &mgW[0, 0]
            L[l].gWT = d["gWT"]
            L[l].gb = &mgb[0]
            L[l].Z = NULL
            L[l].E = NULL
            S[l] = NULL
            if l < n_layers - 1:
                mZ = d["Z"]
                L[l].Z = &mZ[0, 0]
                if act == 1:
                    mE = d["E"]
                    L[l].E = &mE[0, 0]
                    n_S += B * L[l].n_out * NS
            maxw = max(maxw, L[l].n_out)
            # work items: blocks of CB columns
            offs[l + 1] = offs[l] + (L[l].n_out + CB - 1) // CB
        total = offs[n_layers]
        maxw = max(maxw, NS)                 # series scratch also holds NT powers
        if use_series and n_S:
            # sigmoid Taylor coefficients of every hidden unit, once per call
            Sbuf = <double *> malloc(n_S * sizeof(double))
            if Sbuf == NULL:
                raise MemoryError()
            with nogil:
                k = 0
                for l in range(n_layers - 1):
                    S[l] = Sbuf + k
                    for i in range(B * L[l].n_out):
                        E = L[l].E[i]
                        s0 = 1.0 / (1.0 + E)                   # sigmoid(z)
                        c0 = E / (1.0 + E) if E < 1e300 else 1.0   # 1 - sigmoid(z)
                        sig_coeffs(s0, c0, Sbuf + k + i * NS)
                    k += B * L[l].n_out * NS
        n_scratch = 4 * maxw + 3 * maxw * NS + 8 * NS + B * NS + B
        n_threads = fastnn_team(n_threads, engine_ops(L, n_layers, act, B) * NUMGRAD_OP_NS)
        with nogil, parallel(num_threads=n_threads):
            scratch = <double *> malloc(n_scratch * sizeof(double))
            for g in prange(total, schedule="dynamic", chunksize=1):
                if scratch == NULL:
                    failed += 1                          # reported after the region
                    continue
                l = 0
                while g >= offs[l + 1]:
                    l = l + 1
                n = L[l].n_out
                for j in range((g - offs[l]) * CB, min((g - offs[l] + 1) * CB, n)):
                    column(L, n_layers, act, S, l, j, B, &P[0, 0], &t[0], lam, use_series,
                           scratch, maxw)
            free(scratch)
        fastnn_team_end()
        if failed:
            raise MemoryError("numgrad_net: could not allocate per-thread scratch")
    finally:
        free(L)
        free(offs)
        free(S)
        free(Sbuf)


def set_nep50(bint on):
    """Tell the engine how NumPy rounds np.float32(v) - 1e-4 (set once at import)."""
    global NEP50
    NEP50 = on


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
