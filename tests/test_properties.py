"""CI entry point of the property-based suite (tests/properties/prop_*.py, hypothesis).

Each property module runs in its own subprocess (``python -m pytest tests/properties/
prop_X.py -o python_files=prop_*.py``) with the "ci" hypothesis profile: a fixed set of
examples (derandomized), a bounded number of them. A segfault, abort or hang there cannot
take this run down: the subprocess's exit status is checked, and a crash is reported with
the test that was running, the fastnn call it was making (the trace written by
tests/properties/_check.py) and faulthandler's traceback; then the module is run again
without the crashed test, so that one crash does not hide the other results.

Long mode, for hunting bugs (thousands of examples per property, a random seed):
    FASTNN_HYPOTHESIS=long python -m pytest tests/properties -o python_files=prop_*.py
bounded in time (FASTNN_HYPOTHESIS_EXAMPLES overrides the examples per property; one module
at a time, statistics printed):
    FASTNN_HYPOTHESIS=long FASTNN_HYPOTHESIS_EXAMPLES=300 python -m pytest \
        tests/properties/prop_nets.py -o python_files=prop_*.py --hypothesis-show-statistics
(300 examples per property of every module: about 10 minutes on 2 busy cores.)
"""
import os
import signal
import subprocess
import sys
import re
import tempfile
import warnings

import pytest

import fastnn

HERE = os.path.dirname(os.path.abspath(__file__))
PROPS = os.path.join(HERE, "properties")
MODULES = sorted(f[:-3] for f in os.listdir(PROPS) if f.startswith("prop_") and f.endswith(".py"))
TIMEOUT_S = 240     # per module run; the whole "ci" run takes well under a minute
MAX_CRASHES = 4     # crashed tests skipped over (and reported) before giving up on a module


def _run_module(module, deselect):
    """One pytest run of tests/properties/<module>.py in a subprocess.
    Returns (returncode, output, trace lines)."""
    fd, trace = tempfile.mkstemp(prefix="fastnn_props_", suffix=".trace")
    os.close(fd)
    env = dict(os.environ)
    env.setdefault("FASTNN_HYPOTHESIS", "ci")
    env["FASTNN_PROPS_TRACE"] = trace
    # The child imports the fastnn this process imported (an install in CI, src/ when built
    # in place), never a src/ tree whose extensions were not built.
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    cmd = [sys.executable, "-u", "-X", "faulthandler", "-m", "pytest",
           os.path.join(PROPS, module + ".py"), "-o", "python_files=prop_*.py",
           "-p", "no:cacheprovider", "-q", "--tb=short", "-rfEx", "-W", "ignore::DeprecationWarning",
           "-o", "faulthandler_timeout=%d" % (TIMEOUT_S - 20)]
    for d in deselect:
        cmd += ["--deselect", d]
    try:
        p = subprocess.run(cmd, cwd=os.path.dirname(HERE), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT_S)
        rc, out = p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"").decode("utf-8", "replace")
    with open(trace, errors="replace") as f:
        lines = f.read().splitlines()
    os.unlink(trace)
    return rc, out, lines


def _crash_report(rc, out, lines):
    tests = [l[5:] for l in lines if l.startswith("TEST ")]
    last_test = tests[-1] if tests else "(before the first test)"
    last_calls = []
    for l in reversed(lines):
        if l.startswith("TEST "):
            break
        last_calls.append(l)
    how = ("killed by signal %s" % signal.Signals(-rc).name if isinstance(rc, int) and rc < 0
           else "timed out after %d s" % TIMEOUT_S if rc == "timeout" else "exit status %s" % rc)
    fh = out[out.find("Fatal Python error"):] if "Fatal Python error" in out else out[-3000:]
    return last_test, ("CRASH (%s) in %s\n  last fastnn call: %s\n  faulthandler:\n%s"
                       % (how, last_test, last_calls[0] if last_calls else "(none traced)",
                          fh[:4000]))


@pytest.mark.parametrize("module", MODULES)
def test_properties(module):
    """The property module passes in a subprocess: no failure, no crash, no hang."""
    crashes, deselect, failures = [], [], ""
    while True:
        rc, out, lines = _run_module(module, deselect)
        if rc in (0, 5):      # 5: nothing collected (e.g. everything deselected after crashes)
            xfails = re.findall(r"^XFAIL (\S+) - (.*)$", out, re.M)
            if xfails:  # reported, never silent: e.g. fastnn.losses before it is merged
                warnings.warn("%s: %d expected failure(s): %s" % (
                    module, len(xfails), "; ".join("%s (%s)" % x for x in xfails[:3])))
            break
        if rc == 1:           # test failures: hypothesis's falsifying examples are in `out`
            failures = out
            break
        test, report = _crash_report(rc, out, lines)
        crashes.append(report)
        if test.startswith("(") or test in deselect or len(crashes) > MAX_CRASHES:
            failures = out
            break
        deselect.append(test)
    if crashes or failures:
        msg = "\n\n".join(crashes)
        if failures:
            i = failures.find("= FAILURES =")
            msg += "\n\n" + (failures[i - 30:] if i >= 0 else failures)[-60000:]
        pytest.fail("%s: %d crash(es)%s\n%s" % (module, len(crashes),
                                                ", test failures" if failures else "", msg),
                    pytrace=False)
