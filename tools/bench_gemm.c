/* Checks and times csrc/fastnn_gemm.h outside Python.
 *
 * Check: every ISA level this CPU has, float and double, many shapes (1, 3, 7, 257, ...),
 * strided/transposed A and B, against a long-double reference; and the same bits when
 * the work is split into row blocks or column chunks (as threads split it).
 * Time: single-thread CPU time (CLOCK_THREAD_CPUTIME_ID, so time slices given to other
 * processes on a busy machine do not count), min of many calls, GFLOP/s.
 *
 * Build: gcc -O3 -fno-math-errno -fno-trapping-math -I csrc -o /tmp/bench_gemm tools/bench_gemm.c
 * Run:   /tmp/bench_gemm [check|time]            (from the repository root) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "fastnn_gemm.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static const char *ISA[] = {"baseline", "avx2", "avx512"};

static double urand(void) { return rand() / (double)RAND_MAX * 2 - 1; }

#define CHECK(SUF, T, EPS)                                                                     \
static int check_##SUF(fastnn_idx M, fastnn_idx N, fastnn_idx K, int ta, int tb, int withbias) \
{                                                                                            \
    /* A stored (M, K) or transposed (K, M); B stored (K, N) or transposed (N, K) */          \
    T *a = malloc(sizeof(T) * (M * K + 1)), *b = malloc(sizeof(T) * (K * N + 1));            \
    T *bias = malloc(sizeof(T) * (N + 1)), *c = malloc(sizeof(T) * (M * N + 1));             \
    T *c2 = malloc(sizeof(T) * (M * N + 1));                                                 \
    for (fastnn_idx i = 0; i < M * K; i++) a[i] = (T)urand();                                \
    for (fastnn_idx i = 0; i < K * N; i++) b[i] = (T)urand();                                \
    for (fastnn_idx i = 0; i < N; i++) bias[i] = (T)urand();                                 \
    fastnn_idx rsa = ta ? 1 : K, csa = ta ? M : 1, rsb = tb ? 1 : N, csb = tb ? K : 1;       \
    const T *bp = withbias ? bias : NULL;                                                    \
    fastnn_gemm_block_##SUF(0, M, 0, N, N, K, a, rsa, csa, b, rsb, csb, bp, c, N, NULL);     \
    int bad = 0;                                                                             \
    for (fastnn_idx i = 0; i < M && !bad; i++)                                               \
        for (fastnn_idx j = 0; j < N; j++) {                                                 \
            long double s = 0, sa = 0;                                                       \
            for (fastnn_idx k = 0; k < K; k++) {                                             \
                long double p = (long double)a[i * rsa + k * csa] * b[k * rsb + j * csb];   \
                s += p; sa += fabsl(p);                                                      \
            }                                                                                \
            if (withbias) { s += bias[j]; sa += fabsl((long double)bias[j]); }               \
            if (fabsl(c[i * N + j] - s) > (EPS) * (sa + 1e-30L) * (K + 2)) {                 \
                printf("MISMATCH %s M=%ld N=%ld K=%ld ta=%d tb=%d at (%ld,%ld): %g vs %Lg\n", \
                       #SUF, (long)M, (long)N, (long)K, ta, tb, (long)i, (long)j,            \
                       (double)c[i * N + j], s);                                             \
                bad = 1; break;                                                              \
            }                                                                                \
        }                                                                                    \
    /* splits: rows one by one, row blocks of 5, column chunks of nr */                      \
    for (int split = 0; split < 3 && !bad; split++) {                                        \
        memset(c2, 0xff, sizeof(T) * M * N);                                                 \
        if (split == 0) for (fastnn_idx i = 0; i < M; i++)                                   \
            fastnn_gemm_block_##SUF(i, i + 1, 0, N, N, K, a, rsa, csa, b, rsb, csb, bp, c2, N, NULL); \
        if (split == 1) for (fastnn_idx i = 0; i < M; i += 5)                                \
            fastnn_gemm_block_##SUF(i, i + 5 < M ? i + 5 : M, 0, N, N, K, a, rsa, csa, b, rsb, csb, bp, c2, N, NULL); \
        if (split == 2) { fastnn_idx nr = fastnn_gemm_nr(sizeof(T));                         \
            for (fastnn_idx j = 0; j < N; j += nr)                                           \
                fastnn_gemm_block_##SUF(0, M, j, j + nr < N ? j + nr : N, N, K, a, rsa, csa, b, rsb, csb, bp, c2, N, NULL); } \
        if (memcmp(c, c2, sizeof(T) * M * N)) {                                              \
            printf("SPLIT DIFFERS %s split=%d M=%ld N=%ld K=%ld ta=%d tb=%d\n", #SUF, split,  \
                   (long)M, (long)N, (long)K, ta, tb);                                       \
            bad = 1;                                                                         \
        }                                                                                    \
    }                                                                                        \
    free(a); free(b); free(bias); free(c); free(c2);                                         \
    return bad;                                                                              \
}
CHECK(d, double, 1e-15L)
CHECK(s, float, 1e-6L)

#define TIME(SUF, T)                                                                         \
static double time_##SUF(fastnn_idx M, fastnn_idx N, fastnn_idx K, int ta, int tb, int reps) \
{                                                                                            \
    T *a = malloc(sizeof(T) * M * K), *b = malloc(sizeof(T) * K * N);                        \
    T *bias = malloc(sizeof(T) * N), *c = malloc(sizeof(T) * M * N);                         \
    for (fastnn_idx i = 0; i < M * K; i++) a[i] = (T)urand();                                \
    for (fastnn_idx i = 0; i < K * N; i++) b[i] = (T)urand();                                \
    for (fastnn_idx i = 0; i < N; i++) bias[i] = (T)urand();                                 \
    double best = 1e30;                                                                      \
    for (int r = 0; r < reps; r++) {                                                         \
        double t0 = now();                                                                   \
        fastnn_gemm_block_##SUF(0, M, 0, N, N, K, a, ta ? 1 : K, ta ? M : 1, b, tb ? 1 : N,  \
                                tb ? K : 1, ta || tb ? NULL : bias, c, N, NULL);             \
        double t = now() - t0;                                                               \
        if (t < best) best = t;                                                              \
    }                                                                                        \
    free(a); free(b); free(bias); free(c);                                                   \
    return best;                                                                             \
}
TIME(d, double)
TIME(s, float)

int main(int argc, char **argv)
{
    const int top = fastnn_cpu_probe();
    const int do_check = argc < 2 || !strcmp(argv[1], "check");
    const int do_time = argc < 2 || !strcmp(argv[1], "time");
    if (do_check) {
        static const fastnn_idx sizes[] = {1, 2, 3, 7, 8, 13, 16, 17, 33, 50, 64, 100, 257};
        const int ns = sizeof(sizes) / sizeof(sizes[0]);
        int bad = 0, n = 0;
        for (int isa = 0; isa <= top; isa++) {
            fastnn_isa_private = isa;
            for (int im = 0; im < ns; im++) for (int in = 0; in < ns; in++)
                for (int ik = 0; ik < 5; ik++) for (int t = 0; t < 8; t++) {
                    static const fastnn_idx ks[] = {0, 1, 7, 100, 300};
                    fastnn_idx M = sizes[im], N = sizes[in], K = ks[ik];
                    bad += check_d(M, N, K, t & 1, (t >> 1) & 1, t >> 2);
                    bad += check_s(M, N, K, t & 1, (t >> 1) & 1, t >> 2);
                    n += 2;
                }
            printf("%s: checked\n", ISA[isa]);
        }
        printf("%d cases, %d bad\n", n, bad);
        if (bad) return 1;
    }
    if (do_time) {
        /* M, K, N, A transposed (x.T @ dz), B transposed (dz @ W.T); the last six are the
         * nnfs spiral net's (3000 samples, 2-64-3): forward, then dW and dx of each layer */
        static const fastnn_idx shapes[][5] = {{100, 784, 50, 0, 0}, {50, 784, 50, 0, 0},
            {1, 784, 100, 0, 0}, {100, 50, 10, 0, 0}, {784, 50, 100, 0, 0}, {12, 1000000, 1, 0, 0},
            {100, 7, 3, 0, 0}, {3000, 2, 64, 0, 0}, {3000, 64, 3, 0, 0}, {64, 3000, 3, 1, 0},
            {3000, 3, 64, 0, 1}, {2, 3000, 64, 1, 0}, {3000, 64, 2, 0, 1}};
        for (int s = 0; s < (int)(sizeof(shapes) / sizeof(shapes[0])); s++) {
            fastnn_idx M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
            int ta = (int)shapes[s][3], tb = (int)shapes[s][4];
            for (int isa = 0; isa <= top; isa++) {
                fastnn_isa_private = isa;
                const int reps = M * N * K > 10000000 ? 20 : 300;
                double td = time_d(M, N, K, ta, tb, reps), ts = time_s(M, N, K, ta, tb, reps);
                double fl = 2.0 * M * N * K;
                printf("%4ldx%4ldx%4ld%s %-8s f64 %8.2f us %6.1f GF/s   f32 %8.2f us %6.1f GF/s\n",
                       (long)M, (long)K, (long)N, ta ? " A^T" : tb ? " B^T" : "    ", ISA[isa],
                       td * 1e6, fl / td * 1e-9, ts * 1e6, fl / ts * 1e-9);
            }
        }
    }
    return 0;
}
