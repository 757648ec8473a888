/* The one OpenMP shim: <omp.h> when the build really has OpenMP, one-thread stubs
 * otherwise, so every .pyx compiles either way and fastnn.openmp_enabled() can tell
 * how this module was built (sklearn shipped silently-serial prange loops once).
 *
 * It also holds the thread policy: fastnn_team() is the one place that decides how
 * many threads a parallel region gets, fastnn_team_end() reports how the region went.
 *
 * THE POLICY (measured on 2-vCPU KVM guests, Zen 4; docs/threads.md)
 *
 *  1. Grain. A region gets a second thread only when the kernel's estimate of its
 *     single-thread time is at least 2 x min_ns (FASTNN_PARALLEL_MIN_NS = 30 us): a
 *     team of T threads needs T x min_ns of work. Waking and joining an OpenMP worker
 *     costs ~2-5 us when it is spinning and ~40-80 us when it sleeps; regions below
 *     ~60 us of work save at most some tens of us on an idle machine and lose
 *     milliseconds on a busy one. (The book's batch-inference loop calls sigmoid and
 *     softmax on 100-row batches, 2-12 us each: never a region.)
 *
 *  2. Back-off. On a busy machine (another process, or NumPy's OpenBLAS threads that
 *     spin ~0.1 s after each call, holds a core) a worker of a 2-thread region waits for
 *     a scheduler slice: the region takes 4-30 ms instead of 50 us. So every region with
 *     a second thread is timed; when its wall time exceeds 1.25 x what ONE thread is
 *     expected to take (the kernel's estimate x `slow`, see 3; the margin keeps a team
 *     that merely ties with one thread, or an estimate a little low, from counting as a
 *     late worker, which costs 10-100x), threads hurt: for the next `level` ns every
 *     region runs on half that team (1 thread on 2 CPUs). The first region after that
 *     is a probe: hurt again, the back-off doubles (20 ms, 40 ms, ... up to 2 s),
 *     and it always lasts at least 20 x the time the hurt region lost, so probes cost at
 *     most ~5% of the time even when regions are long (on a machine that stays busy,
 *     well under 1% once at 2 s); each region where the team did well halves the next
 *     back-off (a single lucky probe does not undo the escalation, a good stretch does).
 *
 *  3. Calibration. Regions that would have had a team but ran on one thread because of
 *     the back-off are timed too: `slow` follows a low quantile of (one thread's wall
 *     time / the kernel's estimate), so a CPU slower than the estimates does not
 *     mistake its honest speed for a late worker for long, and a preempted caller does
 *     not inflate it.
 *
 *  1b. Warm grain. For FASTNN_WARM_WINDOW_NS (1 ms) after a region with a team ended,
 *     its workers are still spinning (libgomp spins ~7 ms), so a team costs ~1-3 us
 *     more, not 40-80: then a region needs only warm_min_ns (FASTNN_WARM_MIN_NS = 10 us)
 *     of work per thread. A net's regions come back to back (the executor: the sparse
 *     first layer's region, then the 100 x 100 x 100 GEMMs of the hidden layers, ~35 us
 *     each on one thread): measured on a 2-vCPU Zen 4 guest, 784-100-100-10 relu
 *     gradient, AVX2, min over calls: 283 us with the 30 us grain alone, 242 us with the
 *     warm grain (1 thread: 383 us). A lone call never finds the workers warm, so the
 *     ch03 loop's small regions and a first call after idling keep the 30 us grain.
 *     Warm regions are timed and backed off like any other (2.). The window is one
 *     process-wide time, not per calling thread: another Python thread may take a team
 *     whose workers are asleep, once, which the back-off then sees.
 *
 *  1c. Cold wake-up. A team whose workers sleep (no region with a team ended within the
 *     warm window) pays 30-370 us to wake them on a quiet KVM guest (a halted vCPU must be
 *     woken), ~280 us for the very first region (thread creation). A back-off's probe (the
 *     first team after a backed-off stretch on one thread) always finds them asleep, so
 *     its verdict (2.) does not count the first 1 ms (FASTNN_COLD_WAKE_NS) against
 *     threads; the warm regions after it are judged in full. Without this, probes hurt on every region
 *     of a few hundred us and kept a quiet machine on one thread for good (measured:
 *     784-100-100-10 gradient, probes of a 102 us region took 128-370 us, the back-off
 *     doubled to 320 ms and never let go). A busy machine's hurt is 4-30 ms.
 *
 *  4. The OpenMP wait policy is left alone (libgomp spins ~300k pauses, ~7 ms, after a
 *     region, then sleeps): it is process-wide, read once when libgomp loads, and the
 *     back-off already stops fastnn's regions where spinning workers would collide.
 *     OMP_WAIT_POLICY / GOMP_SPINCOUNT remain the user's to set.
 *
 * Results never depend on the policy: every kernel computes each output element in one
 * thread in a fixed order, whatever the team. Only the speed does.
 *
 * The policy state is ONE struct owned by fastnn._kernels._openmp; every kernel module
 * binds this header's pointer to it at import, like the ISA state (csrc/fastnn_cpu.h):
 *     from fastnn._kernels._openmp cimport (threads_state, fastnn_threads_bind,
 *                                           fastnn_team, fastnn_team_end)
 *     fastnn_threads_bind(threads_state())
 * A module that does not bind (a plain C harness) gets a private state with the same
 * defaults. Concurrent kernel calls update the state with relaxed atomic loads/stores:
 * a lost update only changes when a back-off starts or ends.
 *
 * Call-site recipe (one line before, one line after each region):
 *     team = fastnn_team(n_threads, est_ns)   # est_ns: single-thread ns, from measured
 *     if team == 1: <serial code>             #   throughput (elements or multiply-adds)
 *     else:         <prange(..., num_threads=team)>
 *     fastnn_team_end()                       # after the region (also after the serial
 *                                             #   branch: it times backed-off regions)
 * fastnn_team_end() reads what fastnn_team() left in thread-local storage, so it takes
 * no arguments; a fastnn_team() without its fastnn_team_end() is harmless. */
#ifndef FASTNN_OPENMP_H
#define FASTNN_OPENMP_H

#ifdef _OPENMP
#include <omp.h>
static inline int fastnn_openmp_enabled(void) { return 1; }
static inline int fastnn_omp_max_threads(void) { return omp_get_max_threads(); }
static inline int fastnn_omp_thread_num(void) { return omp_get_thread_num(); }
#else
static inline int fastnn_openmp_enabled(void) { return 0; }
static inline int fastnn_omp_max_threads(void) { return 1; }
static inline int fastnn_omp_thread_num(void) { return 0; }
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <time.h>
#endif

/* ---- defaults (fastnn._kernels._openmp can change them at run time, tests do) ---- */

/* Single-thread time (ns) a region must have per thread before a thread is worth
 * waking: below it, waking and joining a second thread costs more than it saves. */
#define FASTNN_PARALLEL_MIN_NS 30000.0
/* The grain while a team's workers are still spinning, and for how long after a region
 * with a team ended they are taken to be (1b.). */
#define FASTNN_WARM_MIN_NS 10000.0
#define FASTNN_WARM_WINDOW_NS 1000000LL
/* What waking a team's sleeping workers may cost without counting against threads (1c.) */
#define FASTNN_COLD_WAKE_NS 1000000LL
/* First and longest back-off after a region where threads hurt (ns). */
#define FASTNN_BACKOFF_MIN_NS 20000000LL
#define FASTNN_BACKOFF_MAX_NS 2000000000LL
/* Threads hurt when a team's region takes longer than this times one thread's time. */
#define FASTNN_HURT_RATIO 1.25
/* ... plus this much: a preempting interrupt or a late cache costs a region tens of us now
 * and then on a quiet guest; a busy machine's hurt is milliseconds (2.) */
#define FASTNN_HURT_SLACK_NS 50000.0
/* A back-off lasts at least this many times the time the hurt region lost, so that
 * probing costs at most ~1/20 of the time even when regions are long. */
#define FASTNN_BACKOFF_PER_LOSS 20
/* `slow` is kept x1024 and clamped to [1/4, 16] (one thread's wall / estimate). */
#define FASTNN_SLOW_ONE 1024LL
/* The last timed regions (team, estimate, wall), for diagnostics. */
#define FASTNN_RECENT 32

typedef struct {
    /* settings */
    double min_ns;             /* grain: single-thread ns per thread of a team */
    int backoff;               /* 1: busy-machine back-off on */
    int exact;                 /* 1 (tests only): a region gets n_threads, always */
    long long backoff_min_ns;  /* first back-off */
    long long backoff_max_ns;  /* longest back-off */
    /* back-off state */
    long long until_ns;        /* regions get at most `backoff_team` until then */
    long long level_ns;        /* length of the last back-off (0: teams did well since) */
    long long backoff_team;    /* team limit while backed off */
    long long slow_x1024;      /* one thread's wall / estimate, x1024 (moving average) */
    /* counters (fastnn._kernels._openmp.policy_state) */
    long long n_timed;         /* regions timed with a team */
    long long n_hurt;          /* ... of which threads hurt (each starts/extends a back-off) */
    long long n_single;        /* regions run on one thread because of the back-off */
    long long recent[FASTNN_RECENT][3];  /* team, est_ns, wall_ns of the last timed regions */
    double warm_min_ns;        /* setting: the grain while warm (>= min_ns: no warm grain) */
    long long warm_until_ns;   /* a team's workers are taken to spin until then */
    double hurt_slack_ns;      /* setting: a team's region is hurt beyond 1.25x one thread + this */
} fastnn_threads_t;

#define FASTNN_THREADS_DEFAULTS { FASTNN_PARALLEL_MIN_NS, 1, 0, FASTNN_BACKOFF_MIN_NS, \
                                  FASTNN_BACKOFF_MAX_NS, 0, 0, 1, FASTNN_SLOW_ONE, 0, 0, 0, {{0}}, \
                                  FASTNN_WARM_MIN_NS, 0, FASTNN_HURT_SLACK_NS }

static fastnn_threads_t fastnn_threads_private = FASTNN_THREADS_DEFAULTS;
static fastnn_threads_t *fastnn_threads_state = &fastnn_threads_private;

/* Point this module's policy at the shared state (called once at module import). */
static inline void fastnn_threads_bind(fastnn_threads_t *state) { fastnn_threads_state = state; }

/* Relaxed atomic access to the shared fields (plain accesses where the compiler has no
 * __atomic builtins: a torn value only mistimes a back-off). */
#if defined(__GNUC__) || defined(__clang__)
#define FASTNN_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define FASTNN_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define FASTNN_ADD(p, v) ((void) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED))
#define FASTNN_TLS __thread
#else
#define FASTNN_LOAD(p) (*(volatile long long *) (p))
#define FASTNN_STORE(p, v) (*(volatile long long *) (p) = (v))
#define FASTNN_ADD(p, v) (*(volatile long long *) (p) += (v))
#if defined(_MSC_VER)
#define FASTNN_TLS __declspec(thread)
#else
#define FASTNN_TLS _Thread_local
#endif
#endif

/* Monotonic clock in ns (only read around regions that may have a team). */
static inline long long fastnn_now_ns(void)
{
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000000000LL + ts.tv_nsec;
#elif defined(_OPENMP)
    return (long long) (omp_get_wtime() * 1e9);
#else
    return 0;
#endif
}

/* ---- the policy as pure functions of (state, inputs, now): unit-tested directly ---- */

/* Team the grain allows: min(n_threads, est_ns / min_ns), or 1 below two threads' worth. */
static inline int fastnn_team_grain(const fastnn_threads_t *s, int n_threads, double est_ns)
{
    double cap;
    if (n_threads <= 1)
        return 1;
    if (s->exact)
        return n_threads;
    cap = est_ns / s->min_ns;
    if (!(cap >= 2.0))  /* NaN estimate: one thread */
        return 1;
    return cap < (double) n_threads ? (int) cap : n_threads;
}

/* Whether a region below the grain may take the warm grain (1b.): worth reading the clock */
static inline int fastnn_team_may_warm(const fastnn_threads_t *s, int n_threads, double est_ns)
{
    return n_threads > 1 && s->backoff && !s->exact && s->warm_min_ns < s->min_ns
           && est_ns >= 2.0 * s->warm_min_ns;
}

/* The warm grain's answer at time `now` for a region below the grain: min(n_threads,
 * est_ns / warm_min_ns) while a team's workers still spin (1b.), else 1. */
static inline int fastnn_team_warm(const fastnn_threads_t *s, int n_threads, double est_ns,
                                   long long now)
{
    double cap;
    if (!fastnn_team_may_warm(s, n_threads, est_ns) || now >= FASTNN_LOAD(&s->warm_until_ns))
        return 1;
    cap = est_ns / s->warm_min_ns;
    return cap < (double) n_threads ? (int) cap : n_threads;
}

/* The team at time `now`, given the grain's answer `grain` (>= 2): limited while a
 * back-off is running. */
static inline int fastnn_team_at(fastnn_threads_t *s, int grain, long long now)
{
    long long limit;
    if (!s->backoff || s->exact || now >= FASTNN_LOAD(&s->until_ns))
        return grain;
    limit = FASTNN_LOAD(&s->backoff_team);
    return limit < grain ? (int) (limit < 1 ? 1 : limit) : grain;
}

/* Learn from one timed region: `team` threads ran it in `wall_ns`, the kernel estimated
 * `est_ns` on one thread; it ended at `now`. */
static inline void fastnn_team_observe(fastnn_threads_t *s, int team, double est_ns,
                                       long long wall_ns, long long now, int cold)
{
    long long slow, r, level;
    double expected;
    if (!(est_ns > 0.0) || wall_ns < 0)
        return;
    slow = (FASTNN_LOAD(&s->n_timed) + FASTNN_LOAD(&s->n_single)) % FASTNN_RECENT;
    FASTNN_STORE(&s->recent[slow][0], (long long) team);
    FASTNN_STORE(&s->recent[slow][1], (long long) est_ns + (est_ns > (double) (long long) est_ns));  /* ceil: a sub-ns estimate reads 1 */
    FASTNN_STORE(&s->recent[slow][2], wall_ns);
    slow = FASTNN_LOAD(&s->slow_x1024);
    if (team <= 1) {
        /* a backed-off region ran on one thread: calibrate `slow`, quick to fall (1/4 of
         * the way) and slow to rise (1/16, at most doubling): a busy machine also pre-
         * empts the calling thread now and then, and those walls say nothing about the
         * CPU's speed (this tracks a low quantile of wall / estimate) */
        double q = (double) wall_ns * (double) FASTNN_SLOW_ONE / est_ns;
        r = q < FASTNN_SLOW_ONE / 4 ? FASTNN_SLOW_ONE / 4
            : q > 16 * FASTNN_SLOW_ONE ? 16 * FASTNN_SLOW_ONE : (long long) q;
        if (slow < FASTNN_SLOW_ONE / 4)
            slow = FASTNN_SLOW_ONE / 4;
        if (r > slow)
            slow += ((r < 2 * slow ? r : 2 * slow) - slow) / 16;
        else
            slow += (r - slow) / 4;
        FASTNN_STORE(&s->slow_x1024, slow);
        FASTNN_ADD(&s->n_single, 1);
        return;
    }
    FASTNN_ADD(&s->n_timed, 1);
    FASTNN_STORE(&s->warm_until_ns, now + FASTNN_WARM_WINDOW_NS);  /* its workers spin (1b.) */
    expected = est_ns * (double) slow / (double) FASTNN_SLOW_ONE;  /* one thread's time */
    level = FASTNN_LOAD(&s->level_ns);
    if (cold && level > 0)    /* a probe after a back-off finds the workers asleep (1c.) */
        wall_ns = wall_ns > FASTNN_COLD_WAKE_NS ? wall_ns - FASTNN_COLD_WAKE_NS : 0;
    if ((double) wall_ns <= FASTNN_HURT_RATIO * expected + s->hurt_slack_ns) {
        /* the team beat one thread (or nearly tied): threads did not hurt, and the next
         * back-off will be half as long (none below the shortest) */
        if (level > 0)
            FASTNN_STORE(&s->level_ns, level / 2 >= s->backoff_min_ns ? level / 2 : 0);
        return;
    }
    /* threads hurt: back off, twice as long as last time unless teams did well since */
    FASTNN_ADD(&s->n_hurt, 1);
    level = level > 0 ? 2 * level : s->backoff_min_ns;
    if ((double) level < FASTNN_BACKOFF_PER_LOSS * ((double) wall_ns - expected))
        level = (long long) (FASTNN_BACKOFF_PER_LOSS * ((double) wall_ns - expected));
    if (level > s->backoff_max_ns)
        level = s->backoff_max_ns;
    FASTNN_STORE(&s->level_ns, level);
    FASTNN_STORE(&s->backoff_team, (long long) (team / 2 > 1 ? team / 2 : 1));
    FASTNN_STORE(&s->until_ns, now + level);
}

/* ---- what kernels call ---------------------------------------------------------- */

/* What fastnn_team() tells fastnn_team_end() (per calling thread). team 0: nothing. */
typedef struct {
    long long t0;
    double est_ns;
    int team;
    int cold;      /* no team's workers were spinning when it started (1c.) */
} fastnn_region_t;

static FASTNN_TLS fastnn_region_t fastnn_region_last;

/* Threads for a parallel region whose single-thread running time the kernel estimates
 * at `est_ns` (from its measured throughput: elements or multiply-adds per ns), given
 * the caller's resolved `n_threads`: the grain's answer, limited while backed off.
 * At least 1, at most n_threads. Results never depend on the answer, only the speed. */
static inline int fastnn_team(int n_threads, double est_ns)
{
    fastnn_threads_t *s = fastnn_threads_state;
    int grain = fastnn_team_grain(s, n_threads, est_ns), team;
    long long now = 0;
    fastnn_region_last.team = 0;
    if (grain <= 1 && fastnn_team_may_warm(s, n_threads, est_ns)) {
        now = fastnn_now_ns();
        grain = fastnn_team_warm(s, n_threads, est_ns, now);
    }
    if (grain <= 1 || s->exact || !s->backoff)
        return grain;
    fastnn_region_last.t0 = now ? now : fastnn_now_ns();
    team = fastnn_team_at(s, grain, fastnn_region_last.t0);
    fastnn_region_last.est_ns = est_ns;
    fastnn_region_last.team = team;
    fastnn_region_last.cold = fastnn_region_last.t0 >= FASTNN_LOAD(&s->warm_until_ns);
    return team;
}

/* After the region fastnn_team() sized (one line; no-op when nothing was timed). */
static inline void fastnn_team_end(void)
{
    long long now;
    int team = fastnn_region_last.team;
    if (team == 0)
        return;
    fastnn_region_last.team = 0;
    now = fastnn_now_ns();
    fastnn_team_observe(fastnn_threads_state, team, fastnn_region_last.est_ns,
                        now - fastnn_region_last.t0, now, fastnn_region_last.cold);
}

#endif
