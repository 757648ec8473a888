# How this build was really compiled, how many threads OpenMP would give, and the one
# thread-policy state every kernel module binds to (csrc/fastnn_openmp.h: the grain,
# the busy-machine back-off and its calibration; the policy itself is described there).
# (sklearn utils/_openmp_helpers.pyx: never call omp_set_num_threads for the user.)

cdef extern from "fastnn_openmp.h":
    # this module's own copy of the header's state is THE state every module binds to
    fastnn_threads_t fastnn_threads_private
    long long FASTNN_SLOW_ONE
    long long fastnn_now_ns() noexcept nogil
    int fastnn_team_grain(const fastnn_threads_t *s, int n_threads, double est_ns) noexcept nogil
    int fastnn_team_warm(const fastnn_threads_t *s, int n_threads, double est_ns,
                         long long now) noexcept nogil
    int fastnn_team_at(fastnn_threads_t *s, int grain, long long now) noexcept nogil
    void fastnn_team_observe(fastnn_threads_t *s, int team, double est_ns, long long wall_ns,
                             long long now, int cold) noexcept nogil

from libc.string cimport memset

cdef int cpu_limit = 1 << 30
cdef fastnn_threads_t *policy = &fastnn_threads_private


cdef fastnn_threads_t *threads_state() noexcept nogil:
    return policy


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(fastnn_openmp_enabled())


def set_cpu_limit(int n):
    """Cap default_threads() by the CPUs this process may run on (set once at import)."""
    global cpu_limit
    cpu_limit = max(1, n)


def default_threads():
    """min(omp_get_max_threads(), CPUs): follows OMP_NUM_THREADS and threadpoolctl's limits
    (read on every call: threadpoolctl changes them at run time). 1 without OpenMP."""
    return max(1, min(fastnn_omp_max_threads(), cpu_limit))


# ---- the policy's settings and state (fastnn._threads and the tests) -----------------

def policy_state():
    """The policy's settings, back-off state and counters, as a dict (times in ns;
    `slow` is one thread's measured wall time / the kernels' estimates)."""
    return dict(min_ns=policy.min_ns, backoff=bool(policy.backoff), exact=bool(policy.exact),
                backoff_min_ns=policy.backoff_min_ns, backoff_max_ns=policy.backoff_max_ns,
                warm_min_ns=policy.warm_min_ns, warm_until_ns=policy.warm_until_ns,
                hurt_slack_ns=policy.hurt_slack_ns,
                until_ns=policy.until_ns, level_ns=policy.level_ns,
                backoff_team=policy.backoff_team,
                slow=policy.slow_x1024 / <double> FASTNN_SLOW_ONE,
                n_timed=policy.n_timed, n_hurt=policy.n_hurt, n_single=policy.n_single,
                now_ns=fastnn_now_ns(), recent=_recent())


def _recent():
    # the last timed regions, oldest first: (team, estimated ns, wall ns)
    cdef long long k, n = policy.n_timed + policy.n_single
    cdef int size = sizeof(policy.recent) // sizeof(policy.recent[0])
    return [(policy.recent[k % size][0], policy.recent[k % size][1], policy.recent[k % size][2])
            for k in range(max(0, n - size), n)]


def set_policy(min_ns=None, backoff=None, exact=None, backoff_min_ns=None,
               backoff_max_ns=None, warm_min_ns=None, hurt_slack_ns=None):
    """Change the policy's settings (None: keep). Returns the previous settings as a dict
    of the same keywords. Not for use while kernels run in other threads.
    warm_min_ns: the grain while a team's workers still spin (csrc/fastnn_openmp.h, 1b.);
    at least min_ns turns the warm grain off. hurt_slack_ns: a team's region is judged hurt
    only beyond 1.25x one thread's time plus this (1c.)."""
    old = dict(min_ns=policy.min_ns, backoff=bool(policy.backoff), exact=bool(policy.exact),
               backoff_min_ns=policy.backoff_min_ns, backoff_max_ns=policy.backoff_max_ns,
               warm_min_ns=policy.warm_min_ns, hurt_slack_ns=policy.hurt_slack_ns)
    if hurt_slack_ns is not None:
        if not hurt_slack_ns >= 0:
            raise ValueError("hurt_slack_ns must be >= 0, got %r" % (hurt_slack_ns,))
        policy.hurt_slack_ns = hurt_slack_ns
    if min_ns is not None:
        if not min_ns > 0:
            raise ValueError("min_ns must be > 0, got %r" % (min_ns,))
        policy.min_ns = min_ns
    if warm_min_ns is not None:
        if not warm_min_ns > 0:
            raise ValueError("warm_min_ns must be > 0, got %r" % (warm_min_ns,))
        policy.warm_min_ns = warm_min_ns
    if backoff is not None:
        policy.backoff = bool(backoff)
    if exact is not None:
        policy.exact = bool(exact)
    if backoff_min_ns is not None:
        policy.backoff_min_ns = max(1, int(backoff_min_ns))
    if backoff_max_ns is not None:
        policy.backoff_max_ns = max(policy.backoff_min_ns, int(backoff_max_ns))
    return old


def reset_policy_state(slow=1.0):
    """Forget the back-off and the counters (and set `slow`)."""
    policy.until_ns = 0
    policy.warm_until_ns = 0
    policy.level_ns = 0
    policy.backoff_team = 1
    policy.slow_x1024 = <long long> (slow * FASTNN_SLOW_ONE)
    policy.n_timed = policy.n_hurt = policy.n_single = 0
    memset(policy.recent, 0, sizeof(policy.recent))


def back_off_for(double seconds, int team=1):
    """Start a back-off now that lasts `seconds` (regions get at most `team` threads)."""
    cdef long long now = fastnn_now_ns()
    policy.backoff_team = max(1, team)
    policy.level_ns = max(1, <long long> (seconds * 1e9))
    policy.until_ns = now + policy.level_ns


# test hooks: the policy's pure functions on the shared state with an explicit clock

def _team(int n_threads, double est_ns, long long now_ns):
    """The team fastnn_team() would answer at time `now_ns`."""
    cdef int grain = fastnn_team_grain(policy, n_threads, est_ns)
    if grain <= 1:
        grain = fastnn_team_warm(policy, n_threads, est_ns, now_ns)
    if grain <= 1:
        return grain
    return fastnn_team_at(policy, grain, now_ns)


def _observe(int team, double est_ns, long long wall_ns, long long now_ns, bint cold=False):
    """What fastnn_team_end() does after a region of `team` threads that took `wall_ns`
    and ended at `now_ns`; `cold`: no team's workers were spinning when it started."""
    fastnn_team_observe(policy, team, est_ns, wall_ns, now_ns, cold)


def _now_ns():
    return fastnn_now_ns()
