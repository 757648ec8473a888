/* Element-wise operations of both books, compiled per ISA level x {float, double} from one
 * source (csrc/fastnn_ops_tmpl.h, included once per instance) and picked at run time with
 * fastnn_isa(): activation derivatives (ReLU, leaky ReLU, sigmoid, softmax's Jacobian
 * product), the point-wise losses (binary cross-entropy, MSE, MAE) and the gradient of the
 * categorical cross-entropy on probabilities, the L1/L2 penalty, and every optimizer rule
 * of both books as kinds of one step function.
 *
 * Bitwise promise: these loops do, operation for operation and in the array's own
 * precision, what the books' NumPy expressions do (Python scalars rounded to the array's
 * dtype first, as NumPy does). So no multiply-add may be fused into an FMA here, which
 * would round once instead of twice: every function carries FASTNN_NO_CONTRACT. Sums
 * (penalties, per-row losses) are kept in double.
 *
 * Nothing here allocates or fails; the loops that NumPy would warn about report how many
 * elements would have warned, and the Python boundary raises the RuntimeWarning. */
#ifndef FASTNN_OPS_H
#define FASTNN_OPS_H

#include <math.h>
#include <stddef.h>

#include "fastnn_cpu.h"
#include "fastnn_math.h"   /* fastnn_log (vectorisable) */

/* ---- the optimizer rules --------------------------------------------------------------- */
enum {
    /* Deep Learning from Scratch, common/optimizer.py (eps is the book's 1e-7) */
    FASTNN_OPT_SGD = 0, FASTNN_OPT_MOMENTUM, FASTNN_OPT_NESTEROV, FASTNN_OPT_ADAGRAD,
    FASTNN_OPT_RMSPROP, FASTNN_OPT_ADAM,
    /* Neural Networks from Scratch, Optimizer_* (update_params) */
    FASTNN_OPT_NNFS_SGD, FASTNN_OPT_NNFS_MOMENTUM, FASTNN_OPT_NNFS_ADAGRAD,
    FASTNN_OPT_NNFS_RMSPROP, FASTNN_OPT_NNFS_ADAM,
    FASTNN_OPT_N_KINDS
};

/* One step's hyperparameters, by name; a rule reads the fields it needs. */
typedef struct fastnn_optimizer {
    int kind;
    double lr;            /* learning rate of this step (nnfs: current_learning_rate) */
    double momentum;      /* Momentum, Nesterov, nnfs SGD with momentum */
    double rho;           /* dlfs RMSprop decay_rate, nnfs RMSprop rho */
    double beta1, beta2;  /* Adam */
    double eps;           /* nnfs epsilon (the dlfs rules use the book's 1e-7) */
    double step_size;     /* dlfs Adam: lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t) */
    double correction1;   /* nnfs Adam: 1 - beta_1 ** (iterations + 1) */
    double correction2;   /* nnfs Adam: 1 - beta_2 ** (iterations + 1) */
} fastnn_optimizer;

/* Single-thread cost of one element of each rule (ns, measured on Zen 4 at the AVX2 level,
 * rounded up), for fastnn_team(): the sqrt-and-divide rules cost ~5x the plain ones. */
static const double fastnn_opt_ns_per_elem[FASTNN_OPT_N_KINDS] = {
    0.25, 0.35, 0.45, 1.1, 1.1, 1.4, 0.25, 0.35, 1.1, 1.1, 1.6
};

/* ---- the point-wise losses ----------------------------------------------------------- */
enum {
    FASTNN_LOSS_BCE = 0,      /* nnfs: -(t log(c) + (1 - t) log(1 - c)), c = clip(y, eps, 1 - eps) */
    FASTNN_LOSS_BCE_KERAS,    /* tf.keras: -(t log(c + eps) + (1 - t) log(1 - c + eps)) */
    FASTNN_LOSS_BCE_LOGITS,   /* tf.nn.sigmoid_cross_entropy_with_logits: max(x, 0) - x t + log(1 + exp(-|x|)) */
    FASTNN_LOSS_MSE,          /* (t - y)^2 */
    FASTNN_LOSS_MAE           /* |t - y| */
};

/* ---- no FMA contraction in these loops (see the bitwise promise above) ------------------- */
#if defined(__clang__)
#define FASTNN_NO_CONTRACT
#define FASTNN_NO_CONTRACT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define FASTNN_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#define FASTNN_NO_CONTRACT_BODY
#else
#define FASTNN_NO_CONTRACT
#define FASTNN_NO_CONTRACT_BODY
#endif

#if defined(_MSC_VER)
#define FASTNN_RESTRICT __restrict
#else
#define FASTNN_RESTRICT restrict
#endif

/* ---- the instances -------------------------------------------------------------------- */
#define FASTNN_OPS_T double
#define FASTNN_OPS_E d
#define FASTNN_OPS_SQRT sqrt
#define FASTNN_OPS_SFX base
#define FASTNN_OPS_ATTR
#include "fastnn_ops_tmpl.h"
#undef FASTNN_OPS_T
#undef FASTNN_OPS_E
#undef FASTNN_OPS_SQRT
#define FASTNN_OPS_T float
#define FASTNN_OPS_E s
#define FASTNN_OPS_SQRT sqrtf
#include "fastnn_ops_tmpl.h"
#undef FASTNN_OPS_T
#undef FASTNN_OPS_E
#undef FASTNN_OPS_SQRT
#undef FASTNN_OPS_SFX
#undef FASTNN_OPS_ATTR

#ifdef FASTNN_X86_DISPATCH
#define FASTNN_OPS_SFX avx2
#define FASTNN_OPS_ATTR __attribute__((target("avx2,fma")))
#define FASTNN_OPS_T double
#define FASTNN_OPS_E d
#define FASTNN_OPS_SQRT sqrt
#include "fastnn_ops_tmpl.h"
#undef FASTNN_OPS_T
#undef FASTNN_OPS_E
#undef FASTNN_OPS_SQRT
#define FASTNN_OPS_T float
#define FASTNN_OPS_E s
#define FASTNN_OPS_SQRT sqrtf
#include "fastnn_ops_tmpl.h"
#undef FASTNN_OPS_T
#undef FASTNN_OPS_E
#undef FASTNN_OPS_SQRT
#undef FASTNN_OPS_SFX
#undef FASTNN_OPS_ATTR

#define FASTNN_OPS_SFX avx512
#define FASTNN_OPS_ATTR __attribute__((target("avx512f,avx2,fma")))
#define FASTNN_OPS_T double
#define FASTNN_OPS_E d
#define FASTNN_OPS_SQRT sqrt
#include "fastnn_ops_tmpl.h"
#undef FASTNN_OPS_T
#undef FASTNN_OPS_E
#undef FASTNN_OPS_SQRT
#define FASTNN_OPS_T float
#define FASTNN_OPS_E s
#define FASTNN_OPS_SQRT sqrtf
#include "fastnn_ops_tmpl.h"
#undef FASTNN_OPS_T
#undef FASTNN_OPS_E
#undef FASTNN_OPS_SQRT
#undef FASTNN_OPS_SFX
#undef FASTNN_OPS_ATTR
#endif

/* ---- dispatch: the entry points the kernels call ---------------------------------------- */
#ifdef FASTNN_X86_DISPATCH
#define FASTNN_OPS_PICK(NAME, ...)                                                            \
    (fastnn_isa() == FASTNN_ISA_AVX512 ? NAME##_avx512(__VA_ARGS__)                          \
     : fastnn_isa() == FASTNN_ISA_AVX2 ? NAME##_avx2(__VA_ARGS__) : NAME##_base(__VA_ARGS__))
#else
#define FASTNN_OPS_PICK(NAME, ...) NAME##_base(__VA_ARGS__)
#endif

#define FASTNN_OPS_ENTRIES(T, E)                                                               \
static inline void fastnn_relu_##E(const T *x, T *y, ptrdiff_t n)                             \
{ FASTNN_OPS_PICK(fastnn_relu_##E, x, y, n); }                                                 \
static inline void fastnn_relu_backward_##E(const T *x, const T *dv, T *out, ptrdiff_t n)    \
{ FASTNN_OPS_PICK(fastnn_relu_backward_##E, x, dv, out, n); }                                  \
static inline void fastnn_relu_grad_##E(const T *x, T *out, ptrdiff_t n)                      \
{ FASTNN_OPS_PICK(fastnn_relu_grad_##E, x, out, n); }                                          \
static inline void fastnn_leaky_relu_##E(const T *x, T *out, ptrdiff_t n, double alpha)      \
{ FASTNN_OPS_PICK(fastnn_leaky_relu_##E, x, out, n, alpha); }                                  \
static inline void fastnn_sigmoid_backward_##E(const T *y, const T *dv, T *out, ptrdiff_t n) \
{ FASTNN_OPS_PICK(fastnn_sigmoid_backward_##E, y, dv, out, n); }                               \
static inline void fastnn_softmax_backward_##E(const T *y, const T *dv, T *out,              \
                                               ptrdiff_t rows, ptrdiff_t n)                   \
{ FASTNN_OPS_PICK(fastnn_softmax_backward_##E, y, dv, out, rows, n); }                         \
static inline void fastnn_penalty_grad_##E(const T *w, T *dw, ptrdiff_t n, double l1, double l2) \
{ FASTNN_OPS_PICK(fastnn_penalty_grad_##E, w, dw, n, l1, l2); }                                \
static inline void fastnn_penalty_sums_##E(const T *w, ptrdiff_t n, double *sabs, double *ssq) \
{ FASTNN_OPS_PICK(fastnn_penalty_sums_##E, w, n, sabs, ssq); }                                 \
static inline void fastnn_optimizer_step_##E(const fastnn_optimizer *h, T *p, const T *g,     \
                                             T *s1, T *s2, ptrdiff_t n)                       \
{ FASTNN_OPS_PICK(fastnn_optimizer_step_##E, h, p, g, s1, s2, n); }                            \
static inline double fastnn_pointwise_loss_##E(int kind, const T *y, const T *t, ptrdiff_t rows, \
                                               ptrdiff_t n, double eps, double smoothing,     \
                                               T *out_rows)                                   \
{ return FASTNN_OPS_PICK(fastnn_pointwise_loss_##E, kind, y, t, rows, n, eps, smoothing, out_rows); } \
static inline void fastnn_pointwise_loss_grad_##E(int kind, const T *y, const T *t,          \
                                                  ptrdiff_t size, double eps, double smoothing, \
                                                  double d1, double d2, T *out)               \
{ FASTNN_OPS_PICK(fastnn_pointwise_loss_grad_##E, kind, y, t, size, eps, smoothing, d1, d2, out); } \
static inline ptrdiff_t fastnn_cce_grad_##E(const T *y, const T *t, ptrdiff_t size, double d, \
                                            T *out, ptrdiff_t *n_invalid)                     \
{ return FASTNN_OPS_PICK(fastnn_cce_grad_##E, y, t, size, d, out, n_invalid); }

FASTNN_OPS_ENTRIES(double, d)
FASTNN_OPS_ENTRIES(float, s)

#endif
