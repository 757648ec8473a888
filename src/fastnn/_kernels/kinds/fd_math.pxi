# Finite differences, shared arithmetic (double): the reference's perturbed points, the
# tiny-argument expm1/log1p, and truncated power series (Taylor mode).
#
# Taylor mode: for a fixed row b and a unit j whose value moves by d, the row's loss
# change is an analytic function of d: r(d) - r = G_1 d + G_2 d^2 + ... Its coefficients
# are pushed through the layers after the perturbed one (each kind's fd_series hook:
# truncated power-series arithmetic) once per (row, unit), and every parameter of the
# unit then costs a few multiply-adds per row: sum_n G_n (d+^n - d-^n). The series is
# used only for |d| <= rad (the hooks shrink rad where their own series stops being
# valid, e.g. a ReLU that could change sides); elsewhere the row is evaluated exactly.

from libc.math cimport expm1, log1p, exp, fabs, pow, isfinite, NAN

cdef double FD_H = 1e-4
cdef double EPS_LOG = 1e-7
cdef double RAD_CAP = 1e-2
cdef bint NEP50 = True      # NumPy >= 2: np.float32 - python float is a float32 operation


cdef inline double perturbed_plus(double w, bint f32) noexcept nogil:
    """The reference's x[idx] = float(tmp_val) + h, stored in x's dtype."""
    if f32:
        return <double> (<float> (w + FD_H))       # double sum, stored as float32
    return w + FD_H


cdef inline double perturbed_minus(double w, bint f32) noexcept nogil:
    """The reference's x[idx] = tmp_val - h, in x's dtype."""
    cdef float w32, c32
    if f32 and not NEP50:
        return <double> (<float> (w - FD_H))       # NumPy 1.x: double, then stored
    if f32:
        w32 = <float> w
        c32 = <float> FD_H
        return <double> (<float> (w32 - c32))      # float32 - float32 (NEP 50)
    return w - FD_H


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
    # log1p(u) = u - u^2/2 + ... ; |u| < 1e-3: truncation u^7/7 < 1.5e-19 relative
    cdef double p
    if fabs(u) < 1e-3:
        p = -1.0 / 6.0
        p = p * u + 1.0 / 5.0
        p = p * u - 1.0 / 4.0
        p = p * u + 1.0 / 3.0
        p = p * u - 0.5
        p = p * u + 1.0
        return p * u
    return log1p(u)


cdef inline bint ser_is_zero(const double *c) noexcept nogil:
    cdef int n
    for n in range(1, NS):
        if c[n] != 0.0:
            return False
    return True


cdef inline double ser_abs_sum(const double *c) noexcept nogil:
    cdef double s = 0.0
    cdef int n
    for n in range(1, NS):
        s = s + fabs(c[n])
    return s


cdef inline void ser_compose(const double *f, const double *c, double *out,
                             double *pw, double *tmp) noexcept nogil:
    """out = sum_{q>=1} f[q] c^q, truncated at order NT (c has no constant term)."""
    cdef int n, q, i
    cdef double acc
    out[0] = 0.0
    pw[0] = 0.0
    for n in range(1, NS):
        pw[n] = c[n]
        out[n] = f[1] * c[n]
    for q in range(2, NS):
        for n in range(q, NS):                # tmp = pw * c: orders >= q
            acc = 0.0
            for i in range(q - 1, n):
                acc = acc + pw[i] * c[n - i]
            tmp[n] = acc
        pw[q - 1] = 0.0
        for n in range(q, NS):
            pw[n] = tmp[n]
            out[n] = out[n] + f[q] * tmp[n]


cdef inline void ser_powers(const double *s, double *P) noexcept nogil:
    """P[(q-1) NS + n] = [s^q]_n for q = 1..NT (s has no constant term)."""
    cdef int q, n, m
    cdef double acc
    for n in range(NS):
        P[n] = s[n]
    P[0] = 0.0
    for q in range(2, NS):
        for n in range(NS):
            P[(q - 1) * NS + n] = 0.0
        for n in range(q, NS):
            acc = 0.0
            for m in range(q - 1, n):
                acc = acc + P[(q - 2) * NS + m] * s[n - m]
            P[(q - 1) * NS + n] = acc


cdef inline double series_pair(const double *G, double dp, double dm) noexcept nogil:
    """sum_n G_n (dp^n - dm^n): the row's (r(d+) - r) - (r(d-) - r)."""
    cdef double pp = dp, pm = dm, acc = G[1] * (dp - dm)
    cdef int n
    for n in range(2, NS):
        pp = pp * dp
        pm = pm * dm
        acc = acc + G[n] * (pp - pm)
    return acc
