/* One instance of the element-wise operations (csrc/fastnn_ops.h includes this file once
 * per ISA level x {float, double}; no include guard on purpose).
 * FASTNN_OPS_T: the element type; FASTNN_OPS_E: d or s; FASTNN_OPS_SFX: base, avx2 or
 * avx512; FASTNN_OPS_ATTR: the target attribute. Each loop is written so that GCC
 * vectorises it at every level (no calls, no early exits, selects instead of branches). */

#define FASTNN_OPS_CAT3(a, b, c) a##_##b##_##c
#define FASTNN_OPS_XCAT3(a, b, c) FASTNN_OPS_CAT3(a, b, c)
#define FN(name) FASTNN_OPS_XCAT3(name, FASTNN_OPS_E, FASTNN_OPS_SFX)
#define T FASTNN_OPS_T
#define SQRT FASTNN_OPS_SQRT   /* sqrtf for float: sqrt(float) would compute in double */
#define QUAL FASTNN_OPS_ATTR FASTNN_NO_CONTRACT static

/* ---- activations -------------------------------------------------------------------- */

/* y = np.maximum(0, x): NaN propagates (NaN <= 0 is false), -0.0 gives 0 */
QUAL void FN(fastnn_relu)(const T *x, T *y, ptrdiff_t n)
{
    FASTNN_NO_CONTRACT_BODY
    for (ptrdiff_t i = 0; i < n; i++) {
        const T v = x[i];
        y[i] = v <= 0 ? (T)0 : v;
    }
}

/* out = dv with 0 where x <= 0 (dlfs Relu.backward's mask, nnfs dinputs[inputs <= 0] = 0) */
QUAL void FN(fastnn_relu_backward)(const T *x, const T *dv, T *out, ptrdiff_t n)
{
    FASTNN_NO_CONTRACT_BODY
    for (ptrdiff_t i = 0; i < n; i++) {
        const T d = dv[i];        /* loaded unconditionally: a select, never a branch (a */
        out[i] = x[i] <= 0 ? (T)0 : d;   /* conditional load stops SSE2 vectorising: 15x slower) */
    }
}

/* out = 1 where x >= 0, else 0 (dlfs relu_grad: 1 at 0; NaN gives 0) */
QUAL void FN(fastnn_relu_grad)(const T *x, T *out, ptrdiff_t n)
{
    FASTNN_NO_CONTRACT_BODY
    for (ptrdiff_t i = 0; i < n; i++) out[i] = x[i] >= 0 ? (T)1 : (T)0;
}

/* out = np.maximum(alpha * x, x): NaN if either is NaN (np.maximum's rule) */
QUAL void FN(fastnn_leaky_relu)(const T *x, T *out, ptrdiff_t n, double alpha)
{
    FASTNN_NO_CONTRACT_BODY
    const T a = (T)alpha;
    for (ptrdiff_t i = 0; i < n; i++) {
        const T ax = a * x[i];
        out[i] = (ax >= x[i] || ax != ax) ? ax : x[i];
    }
}

/* out = dv * (1 - y) * y, left to right (both books' sigmoid backward) */
QUAL void FN(fastnn_sigmoid_backward)(const T *y, const T *dv, T *out, ptrdiff_t n)
{
    FASTNN_NO_CONTRACT_BODY
    for (ptrdiff_t i = 0; i < n; i++) out[i] = dv[i] * ((T)1 - y[i]) * y[i];
}

/* nnfs Activation_Softmax.backward, row by row: (diagflat(y) - y y^T) @ dv
 * = y * dv - y * (y . dv), in double, rounded once */
QUAL void FN(fastnn_softmax_backward)(const T *y, const T *dv, T *out, ptrdiff_t rows, ptrdiff_t n)
{
    FASTNN_NO_CONTRACT_BODY
    for (ptrdiff_t r = 0; r < rows; r++) {
        const T *yr = y + r * n, *dr = dv + r * n;
        T *o = out + r * n;
        double s = 0.0;
        for (ptrdiff_t j = 0; j < n; j++) s += (double)yr[j] * (double)dr[j];   /* y . dv */
        for (ptrdiff_t j = 0; j < n; j++)
            o[j] = (T)((double)yr[j] * (double)dr[j] - (double)yr[j] * s);
    }
}

/* ---- regularisation (nnfs Layer_Dense) ----------------------------------------------- */

/* dw += l1 * dL1 (dL1 = 1, or -1 where w < 0); then dw += 2 * l2 * w, each in T */
QUAL void FN(fastnn_penalty_grad)(const T *w, T *dw, ptrdiff_t n, double l1, double l2)
{
    FASTNN_NO_CONTRACT_BODY
    const T f1 = (T)l1, f2 = (T)(2 * l2);
    if (l1 > 0)
        for (ptrdiff_t i = 0; i < n; i++) dw[i] = dw[i] + (w[i] < 0 ? -f1 : f1);
    if (l2 > 0)
        for (ptrdiff_t i = 0; i < n; i++) dw[i] = dw[i] + f2 * w[i];
}

/* sum(|w|) and sum(w * w), in double, in order */
QUAL void FN(fastnn_penalty_sums)(const T *w, ptrdiff_t n, double *sabs, double *ssq)
{
    FASTNN_NO_CONTRACT_BODY
    double a = 0.0, q = 0.0;
    for (ptrdiff_t i = 0; i < n; i++) {
        const double v = (double)w[i];
        a += fabs(v);
        q += v * v;
    }
    *sabs = a;
    *ssq = q;
}

/* ---- optimizer rules: one run of one parameter ---------------------------------------- */
/* Each line is the book's NumPy statement with Python scalars rounded to T first. */
/* p, g, s1 and s2 never share memory: the boundary updates parameters whose memory overlaps
 * anything one at a time, with a copy of the gradient (restrict lets every level vectorise) */
QUAL void FN(fastnn_optimizer_step)(const fastnn_optimizer *h, T *FASTNN_RESTRICT p,
                                    const T *FASTNN_RESTRICT g, T *FASTNN_RESTRICT s1,
                                    T *FASTNN_RESTRICT s2, ptrdiff_t n)
{
    FASTNN_NO_CONTRACT_BODY
    const T lr = (T)h->lr;
    const T neg_lr = (T)(-h->lr);
    const T mom = (T)h->momentum;
    switch (h->kind) {
    case FASTNN_OPT_SGD:
        for (ptrdiff_t i = 0; i < n; i++) p[i] = p[i] - lr * g[i];            /* p -= lr * g */
        break;
    case FASTNN_OPT_MOMENTUM:
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = mom * s1[i] - lr * g[i];                 /* v = momentum * v - lr * g */
            p[i] = p[i] + s1[i];                             /* p += v */
        }
        break;
    case FASTNN_OPT_NESTEROV: {
        const T mom2 = (T)(h->momentum * h->momentum);
        const T lr1 = (T)((1 + h->momentum) * h->lr);
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = s1[i] * mom;                             /* v *= momentum */
            s1[i] = s1[i] - lr * g[i];                       /* v -= lr * g */
            p[i] = p[i] + mom2 * s1[i];                      /* p += momentum * momentum * v */
            p[i] = p[i] - lr1 * g[i];                        /* p -= (1 + momentum) * lr * g */
        }
        break;
    }
    case FASTNN_OPT_ADAGRAD: {
        const T eps = (T)1e-7;
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = s1[i] + g[i] * g[i];                     /* h += g * g */
            p[i] = p[i] - lr * g[i] / (SQRT(s1[i]) + eps);   /* p -= lr * g / (sqrt(h) + 1e-7) */
        }
        break;
    }
    case FASTNN_OPT_RMSPROP: {
        const T eps = (T)1e-7, dr = (T)h->rho, dr1 = (T)(1 - h->rho);
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = s1[i] * dr;                              /* h *= decay_rate */
            s1[i] = s1[i] + dr1 * g[i] * g[i];               /* h += (1 - decay_rate) * g * g */
            p[i] = p[i] - lr * g[i] / (SQRT(s1[i]) + eps);   /* p -= lr * g / (sqrt(h) + 1e-7) */
        }
        break;
    }
    case FASTNN_OPT_ADAM: {
        const T eps = (T)1e-7, b1 = (T)(1 - h->beta1), b2 = (T)(1 - h->beta2);
        const double lr_t = h->step_size;
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = s1[i] + b1 * (g[i] - s1[i]);             /* m += (1 - beta1) * (g - m) */
            s2[i] = s2[i] + b2 * (g[i] * g[i] - s2[i]);      /* v += (1 - beta2) * (g**2 - v) */
            /* p -= lr_t * m / (sqrt(v) + 1e-7): lr_t is a float64 scalar, so NumPy computes
             * this in float64 for float32 arrays too */
            p[i] = (T)((double)p[i] - lr_t * (double)s1[i] / (double)(SQRT(s2[i]) + eps));
        }
        break;
    }
    case FASTNN_OPT_NNFS_SGD:
        for (ptrdiff_t i = 0; i < n; i++) p[i] = p[i] + neg_lr * g[i];        /* w += -lr * dw */
        break;
    case FASTNN_OPT_NNFS_MOMENTUM:
        for (ptrdiff_t i = 0; i < n; i++) {
            const T u = mom * s1[i] - lr * g[i];    /* updates = momentum * momentums - lr * dw */
            s1[i] = u;                              /* momentums = updates */
            p[i] = p[i] + u;                        /* w += updates */
        }
        break;
    case FASTNN_OPT_NNFS_ADAGRAD: {
        const T eps = (T)h->eps;
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = s1[i] + g[i] * g[i];                             /* cache += dw ** 2 */
            p[i] = p[i] + neg_lr * g[i] / (SQRT(s1[i]) + eps);       /* w += -lr * dw / (sqrt(cache) + eps) */
        }
        break;
    }
    case FASTNN_OPT_NNFS_RMSPROP: {
        const T eps = (T)h->eps, rho = (T)h->rho, rho1 = (T)(1 - h->rho);
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = rho * s1[i] + rho1 * (g[i] * g[i]);    /* cache = rho * cache + (1 - rho) * dw ** 2 */
            p[i] = p[i] + neg_lr * g[i] / (SQRT(s1[i]) + eps);
        }
        break;
    }
    case FASTNN_OPT_NNFS_ADAM: {
        const T eps = (T)h->eps, b1 = (T)h->beta1, b1c = (T)(1 - h->beta1);
        const T b2 = (T)h->beta2, b2c = (T)(1 - h->beta2);
        const T c1 = (T)h->correction1, c2 = (T)h->correction2;
        for (ptrdiff_t i = 0; i < n; i++) {
            s1[i] = b1 * s1[i] + b1c * g[i];                 /* m = beta_1 * m + (1 - beta_1) * dw */
            const T mc = s1[i] / c1;                         /* m / (1 - beta_1 ** (iterations + 1)) */
            s2[i] = b2 * s2[i] + b2c * (g[i] * g[i]);        /* cache = beta_2 * cache + (1 - beta_2) * dw ** 2 */
            const T cc = s2[i] / c2;
            p[i] = p[i] + neg_lr * mc / (SQRT(cc) + eps);    /* w += -lr * m_hat / (sqrt(c_hat) + eps) */
        }
        break;
    }
    default:
        break;
    }
}

/* ---- point-wise losses: per-row mean over n, in double; returns the sum of the rows ---- */

QUAL double FN(fastnn_pointwise_loss)(int kind, const T *y, const T *t, ptrdiff_t rows, ptrdiff_t n,
                                      double eps, double smoothing, T *out_rows)
{
    FASTNN_NO_CONTRACT_BODY
    double total = 0.0;
    double term[64];   /* a chunk's terms: computed in a loop that vectorises (logs included), then
                        * summed in order (a running sum in the same loop would not vectorise) */
    const double keep = 1.0 - smoothing, shift = 0.5 * smoothing;   /* Keras's binary smoothing */
    /* np.clip's bounds, rounded to T as np.clip(float32 array, 1e-7, 1 - 1e-7) rounds them */
    const double lo = (double)(T)eps, hi = (double)(T)(1 - eps);
    const double add = kind == FASTNN_LOSS_BCE_KERAS ? eps : 0.0;
    for (ptrdiff_t r = 0; r < rows; r++) {
        double s = 0.0;
        for (ptrdiff_t j0 = 0; j0 < n; j0 += 64) {
            const T *yr = y + r * n + j0, *tr = t + r * n + j0;
            const ptrdiff_t len = n - j0 < 64 ? n - j0 : 64;
            switch (kind) {
            case FASTNN_LOSS_BCE:
            case FASTNN_LOSS_BCE_KERAS:
                for (ptrdiff_t j = 0; j < len; j++) {
                    const double tj = (double)tr[j] * keep + shift;
                    double c = (double)yr[j];
                    c = c < lo ? lo : (c > hi ? hi : c);                 /* NaN passes through */
                    term[j] = -(tj * fastnn_log(c + add) + (1 - tj) * fastnn_log(1 - c + add));
                }
                break;
            case FASTNN_LOSS_BCE_LOGITS:
                for (ptrdiff_t j = 0; j < len; j++) {
                    const double x = (double)yr[j], z = (double)tr[j] * keep + shift;
                    term[j] = (x > 0 ? x : 0.0) - x * z + log1p(exp(-fabs(x)));
                }
                break;
            case FASTNN_LOSS_MSE:
                for (ptrdiff_t j = 0; j < len; j++) {
                    const double d = (double)tr[j] - (double)yr[j];
                    term[j] = d * d;
                }
                break;
            default:   /* FASTNN_LOSS_MAE */
                for (ptrdiff_t j = 0; j < len; j++) term[j] = fabs((double)tr[j] - (double)yr[j]);
                break;
            }
            for (ptrdiff_t j = 0; j < len; j++) s += term[j];
        }
        const T row = (T)(s / (double)n);
        if (out_rows) out_rows[r] = row;
        total += (double)row;
    }
    return total;
}

/* d loss / d y per element, divided by d1 and then by d2 in T (nnfs: outputs, samples):
 *  BCE:        -(t / c - (1 - t) / (1 - c))           c = clip(y)          (nnfs backward)
 *  BCE_KERAS:  -(t / (c + eps) - (1 - t) / (1 - c + eps)), 0 where clip holds y at a bound
 *  BCE_LOGITS: sigmoid(x) - t
 *  MSE:        -2 * (t - y)
 *  MAE:        sign(t - y)                                                  */
QUAL void FN(fastnn_pointwise_loss_grad)(int kind, const T *y, const T *t, ptrdiff_t size,
                                         double eps, double smoothing, double d1, double d2, T *out)
{
    FASTNN_NO_CONTRACT_BODY
    const T f1 = (T)d1, f2 = (T)d2;
    const double keep = 1.0 - smoothing, shift = 0.5 * smoothing;
    switch (kind) {
    case FASTNN_LOSS_BCE: {
        const T lo = (T)eps, hi = (T)(1 - eps);
        for (ptrdiff_t i = 0; i < size; i++) {
            T c = y[i] < lo ? lo : (y[i] > hi ? hi : y[i]);
            out[i] = -(t[i] / c - ((T)1 - t[i]) / ((T)1 - c)) / f1 / f2;
        }
        break;
    }
    case FASTNN_LOSS_BCE_KERAS: {
        const double lo = (double)(T)eps, hi = (double)(T)(1 - eps);
        for (ptrdiff_t i = 0; i < size; i++) {
            const double tj = (double)t[i] * keep + shift, v = (double)y[i];
            const double c = v < lo ? lo : (v > hi ? hi : v);
            const double gd = -(tj / (c + eps) - (1 - tj) / (1 - c + eps));
            const double inside = (v >= lo && v <= hi) ? 1.0 : 0.0;   /* clip_by_value's gradient */
            out[i] = (T)(gd * inside) / f1 / f2;
        }
        break;
    }
    case FASTNN_LOSS_BCE_LOGITS:
        for (ptrdiff_t i = 0; i < size; i++) {
            const double x = (double)y[i], z = (double)t[i] * keep + shift;
            out[i] = (T)(1.0 / (1.0 + exp(-x)) - z) / f1 / f2;
        }
        break;
    case FASTNN_LOSS_MSE:
        for (ptrdiff_t i = 0; i < size; i++) out[i] = (T)(-2) * (t[i] - y[i]) / f1 / f2;
        break;
    default: {  /* FASTNN_LOSS_MAE: np.sign (NaN stays NaN) */
        for (ptrdiff_t i = 0; i < size; i++) {
            const T d = t[i] - y[i];
            out[i] = (d > 0 ? (T)1 : (d < 0 ? (T)-1 : (d == 0 ? (T)0 : d))) / f1 / f2;
        }
        break;
    }
    }
}

/* nnfs Loss_CategoricalCrossentropy.backward on one-hot (or soft) t: -t / y / d, in T.
 * Returns how many divisions were by zero with t != 0 (NumPy: "divide by zero") and sets
 * *n_invalid to how many were 0 / 0 (NumPy: "invalid value"). */
QUAL ptrdiff_t FN(fastnn_cce_grad)(const T *y, const T *t, ptrdiff_t size, double d, T *out,
                                   ptrdiff_t *n_invalid)
{
    FASTNN_NO_CONTRACT_BODY
    const T fd = (T)d;
    ptrdiff_t div0 = 0, inv = 0;
    for (ptrdiff_t i = 0; i < size; i++) {
        out[i] = (-t[i]) / y[i] / fd;
        div0 += (y[i] == 0) & (t[i] != 0) & (t[i] == t[i]);
        inv += (y[i] == 0) & (t[i] == 0);
    }
    *n_invalid = inv;
    return div0;
}

#undef FN
#undef T
#undef SQRT
#undef QUAL
#undef FASTNN_OPS_CAT3
#undef FASTNN_OPS_XCAT3
