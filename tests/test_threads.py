"""Threads: the thread-count contract (capped at the CPUs), the policy that sizes every
parallel region (grain, busy-machine back-off, calibration) and its promise: results
never depend on the thread count or on the policy."""
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import functions as F
from fastnn._kernels import _linear, _openmp
from fastnn._threads import (_CPUS, _cgroup_cpus, exact_threads, resolve_n_threads,
                             thread_policy)

OPENMP = fastnn.openmp_enabled()
needs_two_cpus = pytest.mark.skipif(not OPENMP or _CPUS < 2,
                                    reason="needs OpenMP and 2 CPUs")


def _env(**extra):
    env = dict(os.environ)
    src = str(Path(fastnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for k in ("OMP_NUM_THREADS", "FASTNN_BACKOFF", "FASTNN_PARALLEL_MIN_NS"):
        env.pop(k, None)
    env.update(extra)
    return env


def _python(code, timeout=120, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=_env(**env))


# ---- issue #11 item 1: counts above the CPUs used to reach libgomp (SIGSEGV) -----------

def test_huge_n_threads_argument_is_capped_not_a_crash():
    p = _python(
        "import numpy as np, fastnn\n"
        "x = np.random.default_rng(0).random((3000, 30))\n"
        "a = fastnn.softmax(x, n_threads=70000)\n"
        "b = fastnn.softmax(x, n_threads=1)\n"
        "assert (a == b).all()\n"
        "print('ok')\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def test_huge_set_num_threads_is_capped_for_every_kernel():
    p = _python(
        "import numpy as np, fastnn\n"
        "from fastnn.nets import TwoLayerNet\n"
        "from fastnn.optimizer import Adam\n"
        "fastnn.set_num_threads(100000)\n"
        "print(fastnn.get_num_threads())\n"
        "r = np.random.default_rng(0)\n"
        "x = r.random((300, 784)); t = r.integers(0, 10, 300)\n"
        "fastnn.sigmoid(x); fastnn.softmax(x); fastnn.affine(x, r.random((784, 50)))\n"
        "fastnn.cross_entropy_error(fastnn.softmax(x[:, :10]), t)\n"
        "net = TwoLayerNet(784, 50, 10)\n"
        "Adam().update(net.params, net.gradient(x, t))\n"
        "net = TwoLayerNet(20, 8, 4); net.numerical_gradient(x[:5, :20], t[:5] % 4)\n"
        "print('ok')\n")
    assert p.returncode == 0, p.stderr
    n, ok = p.stdout.split()
    assert int(n) == (_CPUS if OPENMP else 1) and ok == "ok"


def test_cli_threads_100000_is_a_usage_error_not_a_crash():
    # the library caps a count (above); the command line checks its options before any
    # work instead: one line naming --threads and the range, exit status 2
    p = subprocess.run([sys.executable, "-m", "fastnn", "train", "--threads", "100000",
                        "--gradient", "backprop", "--steps", "2", "--no-reference"],
                       capture_output=True, text=True, timeout=300, env=_env())
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--threads" in p.stderr and "100000" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_cli_threads_beyond_any_count_is_a_usage_error():
    p = subprocess.run([sys.executable, "-m", "fastnn", "train", "--threads", str(2**40),
                        "--steps", "1", "--no-reference"],
                       capture_output=True, text=True, timeout=120, env=_env())
    assert p.returncode == 2
    assert "--threads" in p.stderr and "Traceback" not in p.stderr


def test_n_threads_beyond_any_count_names_the_argument():
    x = np.ones((3, 4))
    for bad in (2**40, -2**40, 2**31, -2**31):
        with pytest.raises(ValueError, match=r"n_threads=%d is not a thread count" % bad):
            F.softmax(x, n_threads=bad)
    with pytest.raises(ValueError, match=r"n=1099511627776 is not a thread count"):
        fastnn.set_num_threads(2**40)
    assert fastnn.get_num_threads() == resolve_n_threads(None)  # unchanged


# ---- the contract -----------------------------------------------------------------------

def test_contract_none_negative_positive():
    top = resolve_n_threads(None)
    assert 1 <= top <= _CPUS
    assert resolve_n_threads(-1) == top
    assert resolve_n_threads(-2) == max(1, top - 1)
    assert resolve_n_threads(-top - 5) == 1
    assert resolve_n_threads(-(2**31 - 1)) == 1
    cap = _CPUS if OPENMP else 1
    assert resolve_n_threads(1) == 1
    assert resolve_n_threads(cap) == cap
    assert resolve_n_threads(cap + 1) == cap
    assert resolve_n_threads(2**31 - 1) == cap
    assert resolve_n_threads(np.int64(70000)) == cap
    assert resolve_n_threads(np.uint8(1)) == 1


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), 1.0, 2.5, float("nan"),
                                 float("inf"), "2", np.float64(2.0), [2], 1j])
def test_contract_non_integers_are_type_errors(bad):
    with pytest.raises(TypeError, match="n_threads must be an integer or None"):
        resolve_n_threads(bad)
    with pytest.raises(TypeError, match="n must be an integer or None"):
        fastnn.set_num_threads(bad)
    with pytest.raises(TypeError, match="n_threads"):
        F.sigmoid(np.ones(3), n_threads=bad)


def test_contract_zero_is_an_error():
    with pytest.raises(ValueError, match="n_threads must not be 0"):
        resolve_n_threads(0)
    with pytest.raises(ValueError, match="n must not be 0"):
        fastnn.set_num_threads(0)


def test_set_num_threads_is_resolved_at_each_call():
    default = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(10**6)
        assert fastnn.get_num_threads() == (_CPUS if OPENMP else 1)
        fastnn.set_num_threads(-1)
        assert fastnn.get_num_threads() == default
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
    finally:
        fastnn.set_num_threads(None)
    assert fastnn.get_num_threads() == default


def test_exact_threads_lifts_the_cap_for_tests_only():
    with exact_threads():
        assert resolve_n_threads(3) == (3 if OPENMP else 1)
        assert resolve_n_threads(100) == (max(_CPUS, 8) if OPENMP else 1)
        assert _openmp.policy_state()["exact"]
    assert resolve_n_threads(3) == min(3, _CPUS if OPENMP else 1)
    assert not _openmp.policy_state()["exact"]


@pytest.mark.skipif(not OPENMP, reason="serial build")
def test_omp_num_threads_is_honoured_and_capped():
    code = "import fastnn; print(fastnn.get_num_threads())"
    assert _python(code, OMP_NUM_THREADS="1").stdout.strip() == "1"
    assert _python(code, OMP_NUM_THREADS="100000").stdout.strip() == str(_CPUS)


@pytest.mark.skipif(not OPENMP, reason="serial build")
def test_threadpoolctl_limits_the_default_only():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastnn.get_num_threads() == 1
        assert resolve_n_threads(-1) == 1
        assert resolve_n_threads(2) == min(2, _CPUS)  # an explicit count is the user's
    assert fastnn.get_num_threads() == resolve_n_threads(None)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no affinity API")
def test_the_affinity_mask_caps_the_threads():
    p = _python("import os\n"
                "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
                "import fastnn\n"
                "print(fastnn.get_num_threads(), fastnn._threads.resolve_n_threads(64))\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "1"]


def test_cgroup_quota_parsing(tmp_path):
    f = tmp_path / "cpu.max"
    for text, want in [("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000", 1),
                       ("200000 100000", 2), ("garbage", None), ("", None)]:
        f.write_text(text)
        assert _cgroup_cpus(str(f)) == want, text
    assert _cgroup_cpus(str(tmp_path / "missing")) is None


def test_environment_switches():
    code = ("from fastnn._kernels import _openmp; s = _openmp.policy_state();"
            "print(s['backoff'], s['min_ns'])")
    assert _python(code).stdout.split() == ["True", "30000.0"]
    assert _python(code, FASTNN_BACKOFF="0").stdout.split() == ["False", "30000.0"]
    assert _python(code, FASTNN_PARALLEL_MIN_NS="5000").stdout.split() == ["True", "5000.0"]
    bad = _python("import fastnn", FASTNN_BACKOFF="maybe")
    assert bad.returncode != 0 and "FASTNN_BACKOFF must be 0 or 1" in bad.stderr
    for value in ("-1", "nan"):
        bad = _python("import fastnn", FASTNN_PARALLEL_MIN_NS=value)
        assert bad.returncode != 0 and "FASTNN_PARALLEL_MIN_NS must be a positive" in bad.stderr


# ---- the policy's state machine, fed timings with an explicit clock --------------------
# Times in ns. Grain 1000 ns per thread; back-off 1 ms .. 8 ms. A region estimated at
# EST ns on one thread is "hurt" when a team takes more than 1.25 x EST (HURT loses 1.25 us
# against one thread: a back-off of 20 x that stays below the first 1 ms).

EST, GOOD, TIE, HURT = 5000, 2600, 6250, 6251
MS = 10**6


@pytest.fixture
def policy():
    # (no absolute slack in the verdict: these tests use small round numbers)
    old = _openmp.set_policy(min_ns=1000, backoff=True, exact=False, backoff_min_ns=MS,
                             backoff_max_ns=8 * MS, hurt_slack_ns=0)
    _openmp.reset_policy_state()
    yield _openmp
    _openmp.set_policy(**old)
    _openmp.reset_policy_state()


def _state():
    return _openmp.policy_state()


def test_grain(policy):
    team = policy._team
    assert team(1, 1e12, 0) == 1
    assert team(4, 1999, 0) == 1       # a second thread needs 2 x min_ns of work
    assert team(4, 2000, 0) == 2
    assert team(4, 3999, 0) == 3       # T threads need T x min_ns
    assert team(4, 1e12, 0) == 4       # never more than asked
    assert team(4, math.inf, 0) == 4
    for est in (math.nan, -5.0, 0.0):
        assert team(4, est, 0) == 1
    policy.set_policy(exact=True)
    assert team(3, 1.0, 0) == 3        # tests: no grain
    assert team(1, 1e12, 0) == 1


def test_warm_grain_right_after_a_team(policy):
    # csrc/fastnn_openmp.h 1b.: for 1 ms after a region with a team ended, its workers
    # still spin and a region needs only warm_min_ns per thread (not min_ns)
    policy.set_policy(min_ns=30000, warm_min_ns=10000)
    team, t = policy._team, 10 * MS
    assert team(2, 25000, t) == 1                 # cold: below 2 x min_ns
    policy._observe(2, 70000, 40000, t)           # a team did well, ending at t
    assert _state()["warm_until_ns"] == t + MS
    assert team(2, 25000, t + 1) == 2             # warm: 2 x warm_min_ns is enough
    assert team(2, 19999, t + 1) == 1
    assert team(4, 35000, t + 1) == 3             # T threads need T x warm_min_ns
    assert team(1, 1e5, t + 1) == 1
    assert team(2, 25000, t + MS) == 1            # the window is over
    assert team(2, 70000, t + MS) == 2            # (the grain's own answer)
    policy.set_policy(warm_min_ns=30000)          # >= min_ns: no warm grain
    assert team(2, 25000, t + 1) == 1
    policy.set_policy(warm_min_ns=10000, backoff=False)
    assert team(2, 25000, t + 1) == 1             # no timing, no warm grain
    policy.set_policy(backoff=True)
    policy._observe(2, 25000, 90000, t + 2)       # a warm team hurt: back off
    assert team(2, 25000, t + 3) == 1
    assert team(2, 1e9, t + 3) == 1
    with pytest.raises(ValueError, match="warm_min_ns"):
        policy.set_policy(warm_min_ns=0)


def test_a_probe_is_not_blamed_for_waking_sleeping_workers(policy):
    # csrc/fastnn_openmp.h 1c.: after a back-off the probe's team finds its workers asleep
    # (30-370 us to wake on a quiet KVM guest); that wake-up must not count as threads
    # hurting, or a quiet machine stays on one thread for good. A busy machine's hurt
    # (milliseconds) still counts, and warm regions and a first region are judged in full.
    policy.set_policy(min_ns=30000, hurt_slack_ns=50000)
    EST, t = 100000, 10 * MS
    policy._observe(2, EST, 400000, t, cold=True)       # first region ever: judged in full
    s = _state()
    assert s["n_hurt"] == 1 and s["level_ns"] > 0
    t = s["until_ns"]                                    # the back-off is over: a probe
    policy._observe(2, EST, EST + 300000, t, cold=True)  # slow only by the wake-up
    s = _state()
    assert s["n_hurt"] == 1 and s["until_ns"] <= t       # not blamed, no new back-off
    policy._observe(2, EST, 400000, t + 1)               # warm and slow: hurt
    s = _state()
    assert s["n_hurt"] == 2
    t = s["until_ns"]
    policy._observe(2, EST, 5 * MS, t, cold=True)        # a busy machine's probe: hurt
    assert _state()["n_hurt"] == 3


def test_a_team_that_beats_or_ties_one_thread_keeps_its_threads(policy):
    policy._observe(2, EST, GOOD, 1000)
    policy._observe(2, EST, TIE, 1010)       # 1.25 x one thread: not a late worker
    s = _state()
    assert (s["n_timed"], s["n_hurt"], s["until_ns"]) == (2, 0, 0)
    assert policy._team(2, EST, 1011) == 2


def test_threads_that_hurt_start_a_back_off_then_a_probe(policy):
    t = 10 * MS
    policy._observe(2, EST, HURT, t)
    s = _state()
    assert (s["n_hurt"], s["until_ns"], s["level_ns"], s["backoff_team"]) == (1, t + MS, MS, 1)
    assert policy._team(2, EST, t) == 1
    assert policy._team(2, EST, t + MS - 1) == 1
    assert policy._team(2, 1e12, t + MS - 1) == 1
    assert policy._team(2, EST, t + MS) == 2      # the probe
    assert policy._team(2, 1000, t + 1) == 1      # (below the grain anyway)


def test_back_off_doubles_while_probes_fail_and_is_capped(policy):
    t = 10 * MS
    levels = []
    for _ in range(6):
        policy._observe(2, EST, HURT, t)          # hurt: the probe failed
        s = _state()
        levels.append(s["level_ns"] // MS)
        assert s["until_ns"] == t + s["level_ns"]
        t = s["until_ns"]                         # the next probe, right at the end
    assert levels == [1, 2, 4, 8, 8, 8]


def test_good_teams_shorten_the_next_back_off(policy):
    t = 10 * MS
    for k in range(3):
        policy._observe(2, EST, HURT, t + k)
    assert _state()["level_ns"] == 4 * MS
    policy._observe(2, EST, GOOD, t + 5 * MS)        # one lucky probe: half
    assert _state()["level_ns"] == 2 * MS
    policy._observe(2, EST, HURT, t + 5 * MS + 1)    # hurt again: back to 4 ms
    assert _state()["level_ns"] == 4 * MS
    for k in range(3):                               # a good stretch: 2, 1, then none
        policy._observe(2, EST, TIE, t + 10 * MS + k)
    assert _state()["level_ns"] == 0
    policy._observe(2, EST, HURT, t + 20 * MS)       # starts over at the shortest
    s = _state()
    assert (s["level_ns"], s["until_ns"]) == (MS, t + 21 * MS)


def test_time_alone_does_not_undo_the_escalation(policy):
    t = 10 * MS
    policy._observe(2, EST, HURT, t)
    policy._observe(2, EST, HURT, t + 100 * MS)      # no team ran in between (1 thread)
    assert _state()["level_ns"] == 2 * MS


def test_back_off_lasts_20_times_the_time_lost(policy):
    policy.set_policy(backoff_max_ns=100 * MS)
    t = 10 * MS
    policy._observe(2, 10**6, 10**6 + 3 * MS, t)   # lost 3 ms: 60 ms > the first 1 ms
    assert _state()["level_ns"] == 60 * MS
    policy._observe(2, EST, HURT, t + 61 * MS)     # a failed probe: doubles, capped
    assert _state()["level_ns"] == 100 * MS
    policy.reset_policy_state()
    policy._observe(2, 10**6, 10**6 + 10 * MS, t)  # lost 10 ms: 200 ms, capped
    assert _state()["level_ns"] == 100 * MS


def test_a_big_team_backs_off_to_half(policy):
    t = 10 * MS
    policy._observe(8, 1e6, 1.26e6, t)             # lost 0.26 ms: back off 5.2 ms
    s = _state()
    assert (s["backoff_team"], s["level_ns"]) == (4, 5.2 * MS)
    assert policy._team(8, 1e9, t + 1) == 4
    assert policy._team(3, 1e9, t + 1) == 3
    assert policy._team(8, 1e9, s["until_ns"]) == 8
    policy._observe(4, EST, HURT, t + 2)           # hurt again while backed off: half again
    assert _state()["backoff_team"] == 2
    policy._observe(3, EST, HURT, t + 3)
    assert _state()["backoff_team"] == 1


def test_back_off_off_ignores_the_state(policy):
    t = 10 * MS
    policy._observe(2, EST, HURT, t)
    assert policy._team(2, EST, t + 1) == 1
    policy.set_policy(backoff=False)
    assert policy._team(2, EST, t + 1) == 2
    policy.set_policy(backoff=True, exact=True)
    assert policy._team(2, EST, t + 1) == 2


def test_calibration_falls_fast_rises_slowly_and_is_clamped(policy):
    policy.reset_policy_state(slow=1.0)
    policy._observe(1, 1000, 500, 0)            # one thread at half the estimate
    assert _state()["slow"] == 0.875            # 1/4 of the way down
    policy._observe(1, 1000, 10**9, 0)          # a preempted caller: at most doubling, 1/16
    assert _state()["slow"] == (896 + (1792 - 896) // 16) / 1024
    for _ in range(200):
        policy._observe(1, 1000, 1, 0)
    assert 0.25 <= _state()["slow"] < 0.26      # clamped at 1/4
    for _ in range(2000):
        policy._observe(1, 1000, 10**9, 0)
    assert 15.9 < _state()["slow"] <= 16.0      # clamped at 16
    s = _state()
    assert (s["n_single"], s["n_timed"], s["n_hurt"], s["until_ns"]) == (2202, 0, 0, 0)


def test_calibration_scales_the_verdict(policy):
    policy.reset_policy_state(slow=3.0)          # this CPU runs 3x slower than estimated
    policy._observe(2, 1000, 3700, 10)          # 2 threads in 1.23 x one thread's time
    assert _state()["n_hurt"] == 0
    policy.reset_policy_state(slow=0.5)          # ... 2x faster than estimated
    policy._observe(2, 1000, 700, 10)           # 1.4 x one thread's time
    assert _state()["n_hurt"] == 1


def test_nonsense_timings_are_ignored(policy):
    for est, wall in ((0.0, 10), (-1.0, 10), (math.nan, 10), (1000.0, -1)):
        policy._observe(2, est, wall, 5)
        policy._observe(1, est, wall, 5)
    s = _state()
    assert (s["n_timed"], s["n_single"], s["n_hurt"], s["slow"]) == (0, 0, 0, 1.0)


def test_recent_regions_are_kept_for_diagnostics(policy):
    for k in range(40):
        policy._observe(2, 1000 + k, 10, 0)
    recent = _state()["recent"]
    assert len(recent) == 32
    assert recent[0] == (2, 1008, 10) and recent[-1] == (2, 1039, 10)


# ---- the real call sites: every region is sized and timed, and the verdict acts --------

def _mnist_like(rng, m, k=784):
    x = rng.random((m, k))
    x[rng.random((m, k)) < 0.8] = 0.0
    return x


def _kernels(dtype, big):
    """name -> (callable(n_threads) -> list of arrays). `big`: sizes whose regions get a
    team under the default grain (and pass _dense's own pre-filter)."""
    from fastnn.nets import TwoLayerNet
    from fastnn import optimizer, layers
    from fastnn import nnfs
    rng = np.random.default_rng(7)
    m = 600 if big else 37
    x = rng.standard_normal((m, 257 if big else 31)).astype(dtype)
    xs = _mnist_like(rng, m).astype(dtype)
    t = rng.integers(0, 10, m)
    onehot = np.eye(10, dtype=dtype)[t]
    W = rng.standard_normal((784, 50)).astype(dtype)
    b = rng.standard_normal(50).astype(dtype)
    W1 = (rng.standard_normal((784, 100)) * 0.05).astype(dtype)
    W2 = (rng.standard_normal((100, 100)) * 0.1).astype(dtype)
    W3 = (rng.standard_normal((100, 10)) * 0.1).astype(dtype)
    bs3 = [np.zeros(100, dtype), np.zeros(100, dtype), np.zeros(10, dtype)]
    masks = [rng.random((m, 100)) > 0.2, rng.random((m, 100)) > 0.2]
    bn = [(np.ones(100, dtype), np.zeros(100, dtype)), (np.ones(100, dtype), np.zeros(100, dtype))]

    def with_global(n, f):
        fastnn.set_num_threads(n)
        try:
            return f()
        finally:
            fastnn.set_num_threads(None)

    def affine_backward(n):
        layer = layers.Affine(W.copy(), b.copy())
        layer.forward(xs)
        dx = with_global(n, lambda: layer.backward(rng_d.copy()))
        return [dx, layer.dW, layer.db]
    rng_d = np.random.default_rng(1).standard_normal((m, 50)).astype(dtype)

    def linear_small_shapes(n):
        # the nnfs spiral net's GEMMs: 1-3 output columns (lanes over rows), 2 rows of
        # x.T @ dz (one pass over dz), K = 2 or 3, column sums
        r = np.random.default_rng(4)
        rows = 12000 if big else 40
        a = r.standard_normal((rows, 64)).astype(dtype)
        x2 = r.standard_normal((rows, 2)).astype(dtype)
        W3 = r.standard_normal((64, 3)).astype(dtype)
        W64 = r.standard_normal((2, 64)).astype(dtype)
        d3 = r.standard_normal((rows, 3)).astype(dtype)
        out = [F.affine(a, W3, np.ones(3, dtype), n_threads=n), F.affine(x2, W64, n_threads=n)]
        for xin, Win, din in ((a, W3, d3), (x2, W64, a)):
            grads = [np.empty(xin.shape, dtype), np.empty(Win.shape, dtype), np.empty(Win.shape[1], dtype)]
            _linear.affine_backward(xin, Win, din, *grads, resolve_n_threads(n))
            out += grads
        return out

    def optimizers(n):
        out = []
        for cls in (optimizer.SGD, optimizer.Momentum, optimizer.Nesterov, optimizer.AdaGrad,
                    optimizer.RMSprop, optimizer.Adam):
            r = np.random.default_rng(3)
            sizes = [(784, 100), (100,), (100, 10), (3,)] if big else [(3, 5), (4097,), (7,)]
            params = {"p%d" % i: r.standard_normal(s).astype(dtype) for i, s in enumerate(sizes)}
            grads = {k: r.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
            opt = cls()
            for _ in range(2):
                with_global(n, lambda: opt.update(params, grads))
            out += list(params.values())
        return out

    def numgrad(n):
        np.random.seed(5)
        net = TwoLayerNet(784 if big else 20, 50 if big else 7, 10)
        xb = xs[:100] if big else xs[:5, :20]
        g = net.numerical_gradient(xb, t[:len(xb)], n_threads=n)
        return [g[k] for k in sorted(g)]

    def nnfs_layers(n):
        r = np.random.default_rng(9)
        np.random.seed(9)                       # Layer_Dense draws its weights from it
        # big: past nnfs's own thresholds (2**20 multiply-adds, 2**19 elements)
        xin = r.standard_normal((512, 64) if big else (13, 5)).astype(dtype)
        dense = nnfs.Layer_Dense(xin.shape[1], 64 if big else 4)
        dense.weights = dense.weights.astype(dtype)
        dense.biases = dense.biases.astype(dtype)
        relu, relu2, soft = nnfs.Activation_ReLU(), nnfs.Activation_ReLU(), nnfs.Activation_Softmax()
        wide = r.standard_normal((2048, 256) if big else (9, 4)).astype(dtype)
        rows3 = r.standard_normal((174763, 3) if big else (9, 3)).astype(dtype)

        def run():
            dense.forward(xin)
            relu.forward(dense.output)
            relu.backward(relu.output * 0.5 + 1)
            dense.backward(relu.dinputs)
            relu2.forward(wide)
            relu2.backward(wide * 0.5)
            soft.forward(rows3)
            soft.backward(rows3 * 0.25)
            return [dense.output, relu.output, relu.dinputs, dense.dweights, dense.dbiases,
                    dense.dinputs, relu2.output, relu2.dinputs, soft.output, soft.dinputs]
        return with_global(n, run)

    def convnet(n, numerical):
        # the conv/pool kinds of the executor and the FD engine's pattern blocks (issue #10)
        from fastnn.nets import SimpleConvNet
        np.random.seed(6)
        kw = {} if big and not numerical else dict(
            input_dim=(1, 10, 10), hidden_size=10,
            conv_param={"filter_num": 10, "filter_size": 3, "pad": 0, "stride": 1})
        net = SimpleConvNet(**kw)
        for k in net.params:
            net.params[k] = net.params[k].astype(dtype)
        C, H, W = kw.get("input_dim", (1, 28, 28))
        rows = (100 if not numerical else 6) if big else 2
        xc = _mnist_like(np.random.default_rng(8), rows, C * H * W).reshape(
            rows, C, H, W).astype(dtype)
        tc = t[:rows]
        if numerical:
            g = net.numerical_gradient(xc, tc, n_threads=n)
        else:
            g = with_global(n, lambda: net.gradient(xc, tc))
            g["scores"] = with_global(n, lambda: net.predict(xc))
        return [g[k] for k in sorted(g)]

    return {
        "convnet_gradient": lambda n: convnet(n, False),
        "convnet_numerical_gradient": lambda n: convnet(n, True),
        "sigmoid": lambda n: [F.sigmoid(x, n_threads=n), F.sigmoid(x[:1, :1], n_threads=n)],
        "softmax": lambda n: [F.softmax(x, n_threads=n), F.softmax(x[:3, :7], n_threads=n)],
        "affine": lambda n: [F.affine(xs, W, b, n_threads=n)],
        "affine_one_row": lambda n: [F.affine(xs[:1], W, b, n_threads=n)],
        "affine_backward": affine_backward,
        "linear_small_shapes": linear_small_shapes,
        "cross_entropy": lambda n: [np.array([F.cross_entropy_error(F.softmax(x[:, :10]), t, n_threads=n),
                                              F.cross_entropy_error(F.softmax(x[:, :10]), onehot, n_threads=n),
                                              F.softmax_loss(x[:, :10], t, n_threads=n),
                                              F.softmax_loss(x[:, :10], onehot, n_threads=n)])],
        "optimizers": optimizers,
        "mlp_gradient_relu_sparse": lambda n: sum(_mlp(xs, t, [W1, W2, W3], bs3, "relu", n), []),
        "mlp_gradient_relu_dense": lambda n: sum(_mlp(x @ np.ones((x.shape[1], 784), dtype) * 0.01,
                                                      t, [W1, W2, W3], bs3, "relu", n), []),
        "mlp_gradient_sigmoid_dropout_batchnorm": lambda n: sum(
            _mlp(xs, t, [W1, W2, W3], bs3, "sigmoid", n, masks, bn), []),
        "numerical_gradient": numgrad,
        "nnfs_layers": nnfs_layers,
    }


def _mlp(x, t, Ws, bs, act, n, masks=None, bn=None):
    from fastnn._engine import mlp_gradient
    out = mlp_gradient(Ws, bs, act, x, t, 0.01, n_threads=n, dropout_masks=masks, batchnorm=bn)
    res = [list(out[0]), list(out[1])]
    if bn is not None:
        res.append([v for d in out[2] if d for v in d.values()])
    return res


KERNEL_NAMES = list(_kernels(np.float64, False))


def _bits(fn, n):
    return [np.array(a, copy=True) for a in fn(n)]


def _assert_same_bits(want, got, what):
    assert len(want) == len(got), what
    for k, (a, b) in enumerate(zip(want, got)):
        assert a.dtype == b.dtype and a.shape == b.shape, (what, k)
        np.testing.assert_array_equal(a, b, err_msg="%s, array %d" % (what, k))


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_same_bits_on_any_team_and_any_policy(name, dtype, big):
    fn = _kernels(dtype, big)[name]
    with exact_threads():
        want = _bits(fn, 1)
        for n in (2, 3):
            _assert_same_bits(want, _bits(fn, n), "exactly %d threads" % n)
    with thread_policy(min_ns=1e-3, backoff=True):
        _openmp.back_off_for(3600)                         # every region backed off
        try:
            _assert_same_bits(want, _bits(fn, None), "backed off")
        finally:
            _openmp.reset_policy_state()
    _assert_same_bits(want, _bits(fn, None), "the default policy")


@needs_two_cpus
@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_every_region_is_sized_and_timed(name):
    """With a zero grain every call opens a team; each must report to fastnn_team_end()."""
    fn = _kernels(np.float64, True)[name]
    with thread_policy(min_ns=1e-3, backoff=True, backoff_min_ns=10**12):
        _openmp.reset_policy_state(slow=16.0)   # (a verdict of "hurt" is unlikely)
        try:
            fn(2)
            s = _openmp.policy_state()
            assert s["n_timed"] + s["n_single"] >= 1
            assert all(team >= 1 and est > 0 and wall > 0 for team, est, wall in s["recent"])
        finally:
            _openmp.reset_policy_state()


@needs_two_cpus
def test_a_region_judged_hurt_backs_off_the_next_ones():
    x = np.random.default_rng(0).standard_normal(200000)
    with thread_policy(min_ns=1e3, backoff=True, backoff_min_ns=10**12, backoff_max_ns=10**12):
        _openmp.reset_policy_state(slow=0.0)    # any wall time is worse than one thread
        try:
            a = F.sigmoid(x, n_threads=2)
            s = _openmp.policy_state()
            assert (s["n_timed"], s["n_hurt"], s["backoff_team"]) == (1, 1, 1)
            assert s["until_ns"] > s["now_ns"] + 10**11
            b = F.sigmoid(x, n_threads=2)       # now on one thread, and timed for `slow`
            s = _openmp.policy_state()
            assert (s["n_timed"], s["n_single"]) == (1, 1) and s["recent"][-1][0] == 1
            np.testing.assert_array_equal(a, b)
        finally:
            _openmp.reset_policy_state()


def test_policy_settings_are_checked_and_restored():
    with pytest.raises(ValueError, match="min_ns must be > 0"):
        _openmp.set_policy(min_ns=0)
    before = _openmp.policy_state()
    with thread_policy(min_ns=5, backoff=False, backoff_min_ns=7, backoff_max_ns=3):
        s = _openmp.policy_state()
        assert (s["min_ns"], s["backoff"], s["backoff_min_ns"], s["backoff_max_ns"]) == \
            (5, False, 7, 7)
    after = _openmp.policy_state()
    for k in ("min_ns", "backoff", "exact", "backoff_min_ns", "backoff_max_ns"):
        assert after[k] == before[k]


@needs_two_cpus
def test_kernels_from_several_python_threads_while_the_policy_changes():
    """Concurrent calls share the policy's state (racy by design: only speed depends on
    it); their results stay the one-thread bits."""
    import threading
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 300))
    W = rng.standard_normal((300, 64))
    with exact_threads():
        want_s, want_a = F.sigmoid(x, n_threads=1), F.affine(x, W, n_threads=1)
    errors = []

    def work(k):
        try:
            for i in range(12):
                if k == 0 and i % 4 == 0:
                    _openmp.back_off_for(0.002)
                np.testing.assert_array_equal(F.sigmoid(x), want_s)
                np.testing.assert_array_equal(F.affine(x, W), want_a)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    with thread_policy(min_ns=1e3, backoff=True, backoff_min_ns=10**5, backoff_max_ns=10**6):
        try:
            ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        finally:
            _openmp.reset_policy_state()
    assert not errors, errors[0]
