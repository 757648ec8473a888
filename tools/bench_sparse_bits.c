/* Checks and times the mask-based sparse first-layer kernels (csrc/fastnn_sparse_bits.h)
 * outside Python, against the row-pair kernels of csrc/fastnn_sparse.h.
 *
 * Check (every ISA level this CPU has, float and double, many shapes incl. 1, 3, 7, 257,
 * NaN in x): the masks against x != 0; fastnn_sparse_rows_bits_* and
 * fastnn_sparse_xtd_bits_* bitwise against fastnn_sparse_rows_* / fastnn_sparse_xtd_*
 * (themselves the dense GEMM's bits), with the rows / columns split in two pieces as
 * threads split them; a NaN or inf in W makes the rows kernel return 0.
 * Time: one thread, thread CPU time, min of many calls, on real MNIST rows.
 *
 * Build: gcc -O3 -fno-math-errno -fno-trapping-math -I csrc -o /tmp/bench_sparse_bits tools/bench_sparse_bits.c
 * Run:   /tmp/bench_sparse_bits [rows.f64]   (rows.f64: raw float64 MNIST rows, 100 x 784,
 *        see tools/bench_sparse.c; without it, random rows with ~20% non-zeros)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "fastnn_sparse_bits.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static const char *ISA[] = {"baseline", "avx2", "avx512"};
static double urand(void) { return rand() / (double)RAND_MAX * 2 - 1; }

#define KIT(SUF, T)                                                                          \
static int run_##SUF(const double *xd, long M, long K, long N, int timeit)                  \
{                                                                                            \
    long W64 = (K + 63) / 64, G = FASTNN_SPARSE_G, ng = (K + G - 1) / G;                     \
    T *x = malloc(sizeof(T) * (M * K + 1)), *W = malloc(sizeof(T) * (K * N + 1));            \
    T *b = malloc(sizeof(T) * (N + 1)), *d = malloc(sizeof(T) * (M * N + 1));                \
    T *z1 = malloc(sizeof(T) * (M * N + 1)), *z2 = malloc(sizeof(T) * (M * N + 1));          \
    T *dW1 = malloc(sizeof(T) * (K * N + 1)), *dW2 = malloc(sizeof(T) * (K * N + 1));        \
    T *val = malloc(sizeof(T) * (M * K + 1));                                                \
    int *idx = malloc(sizeof(int) * (M * K + 1)), *rows = malloc(sizeof(int) * (M + FASTNN_XB_PAD)); \
    int *scr = malloc(sizeof(int) * (ng + 1) * (M + 3));                                     \
    long *nnz = malloc(sizeof(long) * (M + 1));                                              \
    fastnn_xb_word *bits = malloc(sizeof(fastnn_xb_word) * (W64 * M + 1));                   \
    int bad = 0;                                                                             \
    for (long i = 0; i < M * K; i++) x[i] = (T)xd[i];                                        \
    for (long i = 0; i < K * N; i++) W[i] = (T)urand();                                      \
    for (long i = 0; i < M * N; i++) d[i] = (T)urand();                                      \
    for (long i = 0; i < N; i++) b[i] = (T)urand();                                          \
    for (long i = 0; i < M; i++) {                                                           \
        long n1 = fastnn_bp_compress_##SUF(x + i * K, K, idx + i * K, val + i * K);          \
        long n2 = fastnn_xb_mask_row_##SUF(x + i * K, K, bits + i, M);                       \
        nnz[i] = n1;                                                                         \
        bad |= n1 != n2;                                                                     \
        for (long k = 0; k < K; k++)                                                         \
            bad |= (int)((bits[(k >> 6) * M + i] >> (k & 63)) & 1) != (x[i * K + k] != 0);    \
    }                                                                                        \
    if (bad) { printf("mask mismatch %s M=%ld K=%ld\n", #SUF, M, K); return 1; }             \
    fastnn_sparse_rows_##SUF(M, N, K, idx, val, K, nnz, W, N, b, z1, N);                     \
    long h = M / 2;                                                                          \
    bad |= !fastnn_sparse_rows_bits_##SUF(h, N, K, x, K, bits, M, W, N, b, z2, N);           \
    bad |= !fastnn_sparse_rows_bits_##SUF(M - h, N, K, x + h * K, K, bits + h, M, W, N, b, z2 + h * N, N); \
    for (long i = 0; i < M * N; i++) bad |= memcmp(z1 + i, z2 + i, sizeof(T)) != 0;          \
    if (bad) { printf("rows mismatch %s M=%ld K=%ld N=%ld\n", #SUF, M, K, N); return 1; }    \
    fastnn_sparse_xtd_##SUF(M, N, x, K, 0, ng, K, idx, K, nnz, d, N, dW1, N, scr);           \
    long c = (K / 2) / FASTNN_XB_G * FASTNN_XB_G;                                            \
    fastnn_sparse_xtd_bits_##SUF(M, N, x, K, 0, c, bits, M, d, N, dW2, N, rows);             \
    fastnn_sparse_xtd_bits_##SUF(M, N, x, K, c, K, bits, M, d, N, dW2, N, rows);             \
    if (memcmp(dW1, dW2, sizeof(T) * K * N)) { printf("xtd mismatch %s M=%ld K=%ld N=%ld\n", #SUF, M, K, N); return 1; } \
    if (K * N > 0) {                                                                         \
        T keep = W[(K * N) / 2]; W[(K * N) / 2] = (T)INFINITY;                               \
        if (fastnn_sparse_rows_bits_##SUF(M, N, K, x, K, bits, M, W, N, b, z2, N) && M > 0) { \
            printf("inf in W not seen %s M=%ld K=%ld N=%ld\n", #SUF, M, K, N); return 1; }   \
        W[(K * N) / 2] = keep;                                                               \
    }                                                                                        \
    if (timeit) {                                                                            \
        double t[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};                                        \
        for (int r = 0; r < 300; r++) {                                                      \
            double t0 = now();                                                               \
            for (long i = 0; i < M; i++) nnz[i] = fastnn_bp_compress_##SUF(x + i * K, K, idx + i * K, val + i * K); \
            double t1 = now();                                                               \
            fastnn_sparse_rows_##SUF(M, N, K, idx, val, K, nnz, W, N, b, z1, N);             \
            double t2 = now();                                                               \
            fastnn_sparse_xtd_##SUF(M, N, x, K, 0, ng, K, idx, K, nnz, d, N, dW1, N, scr);   \
            double t3 = now();                                                               \
            for (long i = 0; i < M; i++) fastnn_xb_mask_row_##SUF(x + i * K, K, bits + i, M); \
            double t4 = now();                                                               \
            fastnn_sparse_rows_bits_##SUF(M, N, K, x, K, bits, M, W, N, b, z2, N);           \
            double t5 = now();                                                               \
            fastnn_sparse_xtd_bits_##SUF(M, N, x, K, 0, K, bits, M, d, N, dW2, N, rows);     \
            double t6 = now();                                                               \
            double dt[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5};           \
            for (int q = 0; q < 6; q++) if (dt[q] < t[q]) t[q] = dt[q];                      \
        }                                                                                    \
        printf("  %s N=%ld: pairs: compress %5.1f rows %5.1f dW %5.1f = %5.1f us | masks: mask %5.1f rows %5.1f dW %5.1f = %5.1f us\n", \
               #SUF, N, t[0] * 1e6, t[1] * 1e6, t[2] * 1e6, (t[0] + t[1] + t[2]) * 1e6,        \
               t[3] * 1e6, t[4] * 1e6, t[5] * 1e6, (t[3] + t[4] + t[5]) * 1e6);              \
    }                                                                                        \
    free(x); free(W); free(b); free(d); free(z1); free(z2); free(dW1); free(dW2); free(val); \
    free(idx); free(rows); free(scr); free(nnz); free(bits);                                 \
    return 0;                                                                                \
}
KIT(d, double)
KIT(s, float)

int main(int argc, char **argv)
{
    long M = 100, K = 784;
    double *xd = malloc(sizeof(double) * M * K);
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (f && fread(xd, sizeof(double), M * K, f) == (size_t)(M * K)) printf("x: %s\n", argv[1]);
    else for (long i = 0; i < M * K; i++) xd[i] = rand() % 5 == 0 ? rand() / (double)RAND_MAX : 0;
    if (f) fclose(f);
    long shapes[][3] = {{1, 1, 1}, {3, 7, 3}, {7, 257, 10}, {257, 3, 50}, {1, 784, 7}, {100, 784, 50},
                        {5, 130, 100}, {100, 784, 257}, {33, 129, 17}, {2, 64, 16}, {9, 200, 1000}, {0, 5, 5}};
    int top = fastnn_cpu_probe(), fails = 0;
    for (int isa = 0; isa <= top; isa++) {
        fastnn_isa_private = isa;
        for (unsigned s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            long m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
            double *r = malloc(sizeof(double) * (m * k + 1));
            for (long i = 0; i < m * k; i++) r[i] = rand() % 5 == 0 ? urand() : 0.0;
            if (s == 6) r[3] = NAN;
            fails += run_d(r, m, k, n, 0) + run_s(r, m, k, n, 0);
            free(r);
        }
        printf("%s: %s\n", ISA[isa], fails ? "FAILED" : "checked");
    }
    for (int isa = 0; isa <= top; isa++) {
        fastnn_isa_private = isa;
        printf("%s, M=100 K=784, one thread:\n", ISA[isa]);
        run_d(xd, M, K, 50, 1); run_s(xd, M, K, 50, 1);
        run_d(xd, M, K, 100, 1); run_s(xd, M, K, 100, 1);
    }
    return fails != 0;
}
