/* Checks and times the sparse first-layer kernels of csrc/fastnn_sparse.h outside Python.
 *
 * Check (every ISA level this CPU has, float and double): fastnn_sparse_rows_* and
 * fastnn_sparse_xtd_* against a long-double sparse sum, for many shapes (1, 3, 7, 257,
 * ...), and the same bits when the rows (forward) or the columns of x (dW) are split
 * into pieces, as threads split them.
 * Time: one thread, thread CPU time (CLOCK_THREAD_CPUTIME_ID: time slices given to other
 * processes on a busy machine do not count), min of many calls; the row-at-a-time path
 * (compress + fastnn_bp_sprow per row; column lists + sprow per column for dW) against
 * the blocked kernels, on real MNIST rows when a file is given.
 *
 * Build: gcc -O3 -fno-math-errno -fno-trapping-math -I csrc -o /tmp/bench_sparse tools/bench_sparse.c
 * Run:   /tmp/bench_sparse [check|time] [rows.f64]
 * rows.f64: raw float64 MNIST rows (M x 784), e.g. from
 *   PYTHONPATH=src:tests python -c "from mnist_rows import mnist_rows; mnist_rows(100)[0].tofile('/tmp/rows.f64')"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "fastnn_sparse.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static const char *ISA[] = {"baseline", "avx2", "avx512"};
static double urand(void) { return rand() / (double)RAND_MAX * 2 - 1; }

/* x with ~20% non-zeros, denser in the middle columns (like MNIST) */
static void sparse_x(double *x, fastnn_bp_idx M, fastnn_bp_idx K)
{
    for (fastnn_bp_idx i = 0; i < M; i++)
        for (fastnn_bp_idx k = 0; k < K; k++) {
            double mid = 1.0 - fabs((k + 0.5) / K - 0.5) * 2;   /* 0 at the edges, 1 mid */
            x[i * K + k] = (rand() / (double)RAND_MAX < 0.4 * mid) ? urand() : 0.0;
        }
}

#define KIT(SUF, T, EPS)                                                                     \
static int check_##SUF(fastnn_bp_idx M, fastnn_bp_idx K, fastnn_bp_idx N, int withbias)    \
{                                                                                            \
    double *xd = malloc(sizeof(double) * (M * K + 1));                                       \
    T *x = malloc(sizeof(T) * (M * K + 1)), *W = malloc(sizeof(T) * (K * N + 1));           \
    T *b = malloc(sizeof(T) * (N + 1)), *out = malloc(sizeof(T) * (M * N + 1));              \
    T *out2 = malloc(sizeof(T) * (M * N + 1)), *d = malloc(sizeof(T) * (M * N + 1));        \
    T *dW = malloc(sizeof(T) * (K * N + 1)), *dW2 = malloc(sizeof(T) * (K * N + 1));        \
    int *idx = malloc(sizeof(int) * (M * K + 1));                                            \
    T *val = malloc(sizeof(T) * (M * K + 1));                                                \
    fastnn_bp_idx *nnz = malloc(sizeof(fastnn_bp_idx) * (M + 1));                            \
    sparse_x(xd, M, K);                                                                      \
    for (fastnn_bp_idx i = 0; i < M * K; i++) x[i] = (T)xd[i];                               \
    for (fastnn_bp_idx i = 0; i < K * N; i++) W[i] = (T)urand();                             \
    for (fastnn_bp_idx i = 0; i < M * N; i++) d[i] = (T)urand();                             \
    for (fastnn_bp_idx i = 0; i < N; i++) b[i] = (T)urand();                                 \
    for (fastnn_bp_idx i = 0; i < M; i++) nnz[i] = fastnn_bp_compress_##SUF(x + i * K, K, idx + i * K, val + i * K); \
    const T *bp = withbias ? b : NULL;                                                       \
    int bad = 0;                                                                             \
    fastnn_sparse_rows_##SUF(M, N, K, idx, val, K, nnz, W, N, bp, out, N);                  \
    for (fastnn_bp_idx i = 0; i < M && !bad; i++)                                            \
        for (fastnn_bp_idx j = 0; j < N; j++) {                                              \
            long double s = 0, sa = 0;                                                       \
            for (fastnn_bp_idx k = 0; k < K; k++) {                                          \
                long double p = (long double)x[i * K + k] * W[k * N + j]; s += p; sa += fabsl(p); \
            }                                                                                \
            if (withbias) { s += b[j]; sa += fabsl((long double)b[j]); }                     \
            if (fabsl(out[i * N + j] - s) > (EPS) * (sa + 1e-30L) * (K + 2)) {               \
                printf("ROWS MISMATCH %s M=%ld K=%ld N=%ld (%ld,%ld): %g vs %Lg\n", #SUF,     \
                       (long)M, (long)K, (long)N, (long)i, (long)j, (double)out[i * N + j], s); \
                bad = 1; break;                                                              \
            }                                                                                \
        }                                                                                    \
    for (fastnn_bp_idx i = 0; i < M && !bad; i++)  /* rows one at a time: the same bits */   \
        fastnn_sparse_rows_##SUF(1, N, K, idx + i * K, val + i * K, K, nnz + i, W, N, bp, out2 + i * N, N); \
    if (!bad && memcmp(out, out2, sizeof(T) * M * N)) {                                      \
        printf("ROWS SPLIT DIFFERS %s M=%ld K=%ld N=%ld\n", #SUF, (long)M, (long)K, (long)N); bad = 1; \
    }                                                                                        \
    const fastnn_bp_idx G = FASTNN_SPARSE_G, ng = (K + G - 1) / G;                           \
    int *scr = malloc(sizeof(int) * (ng * (M + 3) + 1));                                     \
    fastnn_sparse_xtd_##SUF(M, N, x, K, 0, ng, K, idx, K, nnz, d, N, dW, N, scr);            \
    for (fastnn_bp_idx k = 0; k < K && !bad; k++)                                            \
        for (fastnn_bp_idx j = 0; j < N; j++) {                                              \
            long double s = 0, sa = 0;                                                       \
            for (fastnn_bp_idx i = 0; i < M; i++) {                                          \
                long double p = (long double)x[i * K + k] * d[i * N + j]; s += p; sa += fabsl(p); \
            }                                                                                \
            if (fabsl(dW[k * N + j] - s) > (EPS) * (sa + 1e-30L) * (M + 2)) {                \
                printf("XTD MISMATCH %s M=%ld K=%ld N=%ld (%ld,%ld): %g vs %Lg\n", #SUF,      \
                       (long)M, (long)K, (long)N, (long)k, (long)j, (double)dW[k * N + j], s); \
                bad = 1; break;                                                              \
            }                                                                                \
        }                                                                                    \
    memset(dW2, 0xff, sizeof(T) * K * N);                                                    \
    for (fastnn_bp_idx g = 0; g < ng && !bad; g += 3)  /* groups in pieces: the same bits */  \
        fastnn_sparse_xtd_##SUF(M, N, x, K, g, g + 3 < ng ? g + 3 : ng, K, idx, K, nnz, d, N, dW2, N, scr); \
    if (!bad && memcmp(dW, dW2, sizeof(T) * K * N)) {                                        \
        printf("XTD SPLIT DIFFERS %s M=%ld K=%ld N=%ld\n", #SUF, (long)M, (long)K, (long)N); bad = 1; \
    }                                                                                        \
    free(xd); free(x); free(W); free(b); free(out); free(out2); free(d); free(dW); free(dW2); \
    free(idx); free(val); free(nnz); free(scr);                                              \
    return bad;                                                                              \
}                                                                                            \
static void time_##SUF(const double *xd, fastnn_bp_idx M, fastnn_bp_idx K, fastnn_bp_idx N, int reps) \
{                                                                                            \
    T *x = malloc(sizeof(T) * M * K), *W = malloc(sizeof(T) * K * N), *b = malloc(sizeof(T) * N); \
    T *out = malloc(sizeof(T) * M * N), *d = malloc(sizeof(T) * M * N), *dW = malloc(sizeof(T) * K * N); \
    int *idx = malloc(sizeof(int) * M * K), *cidx = malloc(sizeof(int) * M * (K + 64));      \
    T *val = malloc(sizeof(T) * M * K), *cval = malloc(sizeof(T) * M * (K + 64));            \
    fastnn_bp_idx *nnz = malloc(sizeof(fastnn_bp_idx) * M), cnt[64];                         \
    fastnn_bp_idx *ccnt = malloc(sizeof(fastnn_bp_idx) * (K + 64));                           \
    int *scr = malloc(sizeof(int) * ((K / FASTNN_SPARSE_G + 1) * (M + 3)));                   \
    for (fastnn_bp_idx i = 0; i < M * K; i++) x[i] = (T)xd[i];                               \
    for (fastnn_bp_idx i = 0; i < K * N; i++) W[i] = (T)urand();                             \
    for (fastnn_bp_idx i = 0; i < M * N; i++) d[i] = (T)urand();                             \
    for (fastnn_bp_idx i = 0; i < N; i++) b[i] = (T)urand();                                 \
    double t_comp = 1e9, t_old = 1e9, t_new = 1e9, t_csc = 1e9, t_oldw = 1e9, t_neww = 1e9;  \
    fastnn_bp_idx total = 0;                                                                 \
    for (int r = 0; r < reps; r++) {                                                         \
        double t0 = now();                                                                   \
        total = 0;                                                                           \
        for (fastnn_bp_idx i = 0; i < M; i++)                                                \
            total += nnz[i] = fastnn_bp_compress_##SUF(x + i * K, K, idx + i * K, val + i * K); \
        double t1 = now();                                                                   \
        for (fastnn_bp_idx i = 0; i < M; i++)                                                \
            fastnn_bp_sprow_##SUF(nnz[i], idx + i * K, val + i * K, W, N, N, b, out + i * N); \
        double t2 = now();                                                                   \
        fastnn_sparse_rows_##SUF(M, N, K, idx, val, K, nnz, W, N, b, out, N);                \
        double t3 = now();                                                                   \
        for (fastnn_bp_idx c0 = 0; c0 < K; c0 += 64) {  /* the old dW: column lists + sprow */ \
            const int w = K - c0 < 64 ? (int)(K - c0) : 64;                                  \
            fastnn_bp_csc_##SUF(x, M, K, c0, w, cidx + c0 * M, cval + c0 * M, cnt);          \
            for (int j = 0; j < w; j++) ccnt[c0 + j] = cnt[j];                               \
        }                                                                                    \
        double t4 = now();                                                                   \
        for (fastnn_bp_idx k = 0; k < K; k++)                                                \
            fastnn_bp_sprow_##SUF(ccnt[k], cidx + k * M, cval + k * M, d, N, N, NULL, dW + k * N); \
        double t5 = now();                                                                   \
        for (fastnn_bp_idx i = 0; i < M; i++)                                                \
            nnz[i] = fastnn_bp_compress_##SUF(x + i * K, K, idx + i * K, val + i * K);       \
        double t6 = now();                                                                   \
        fastnn_sparse_xtd_##SUF(M, N, x, K, 0, (K + FASTNN_SPARSE_G - 1) / FASTNN_SPARSE_G, K, idx, K, nnz, d, N, dW, N, scr); \
        double t7 = now();                                                                   \
        if (t1 - t0 < t_comp) t_comp = t1 - t0;                                              \
        if (t2 - t1 < t_old) t_old = t2 - t1;                                                \
        if (t3 - t2 < t_new) t_new = t3 - t2;                                                \
        if (t4 - t3 < t_csc) t_csc = t4 - t3;                                                \
        if (t5 - t4 < t_oldw) t_oldw = t5 - t4;                                              \
        if (t7 - t6 < t_neww) t_neww = t7 - t6;                                              \
        (void)t6;                                                                            \
    }                                                                                        \
    printf("  %s N=%ld nnz %.1f%%: compress %6.1f | forward: sprow rows %6.1f  blocked %6.1f us"   \
           " | dW: csc %6.1f + sprow cols %6.1f  blocked %6.1f us  (%.1f GF/s fwd)\n",         \
           #SUF, (long)N, 100.0 * total / (M * K), t_comp * 1e6, t_old * 1e6, t_new * 1e6,   \
           t_csc * 1e6, t_oldw * 1e6, t_neww * 1e6, 2.0 * total * N / t_new * 1e-9);         \
    free(x); free(W); free(b); free(out); free(d); free(dW); free(idx); free(cidx); free(val); \
    free(cval); free(nnz); free(ccnt); free(scr);                                            \
}
KIT(d, double, 1e-15L)
KIT(s, float, 1e-6L)

int main(int argc, char **argv)
{
    const int top = fastnn_cpu_probe();
    const int do_check = argc < 2 || !strcmp(argv[1], "check");
    const int do_time = argc < 2 || !strcmp(argv[1], "time");
    if (do_check) {
        static const fastnn_bp_idx Ms[] = {1, 3, 7, 100, 300}, Ks[] = {1, 7, 64, 784},
            Ns[] = {1, 2, 3, 7, 8, 10, 16, 17, 33, 50, 100, 257, 300};
        int bad = 0, n = 0;
        for (int isa = 0; isa <= top; isa++) {
            fastnn_isa_private = isa;
            for (int a = 0; a < 5; a++) for (int c = 0; c < 4; c++) for (int e = 0; e < 13; e++)
                for (int wb = 0; wb < 2; wb++) {
                    bad += check_d(Ms[a], Ks[c], Ns[e], wb);
                    bad += check_s(Ms[a], Ks[c], Ns[e], wb);
                    n += 2;
                }
            printf("%s: checked\n", ISA[isa]);
        }
        printf("%d cases, %d bad\n", n, bad);
        if (bad) return 1;
    }
    if (do_time) {
        fastnn_bp_idx M = 100, K = 784;
        double *xd = malloc(sizeof(double) * M * K);
        FILE *f = argc > 2 ? fopen(argv[2], "rb") : NULL;
        if (f && fread(xd, sizeof(double), M * K, f) == (size_t)(M * K)) printf("x: %s\n", argv[2]);
        else { sparse_x(xd, M, K); printf("x: synthetic\n"); }
        if (f) fclose(f);
        for (int isa = 0; isa <= top; isa++) {
            fastnn_isa_private = isa;
            printf("%s, M=100 K=784, one thread:\n", ISA[isa]);
            for (int n = 0; n < 2; n++) {
                const fastnn_bp_idx N = n ? 100 : 50;
                time_d(xd, M, K, N, 200);
                time_s(xd, M, K, N, 200);
            }
        }
        free(xd);
    }
    return 0;
}
