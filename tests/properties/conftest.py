"""Hypothesis profiles for the property suite, and the crash trace.

The property files are named prop_*.py so that the ordinary ``pytest tests`` run does not
collect them: tests/test_properties.py runs them in a subprocess (a crash cannot take the
main run down with it) with ``-o python_files=prop_*.py``.

Profiles (``FASTNN_HYPOTHESIS=<name>``, default "ci"):
  ci    fixed examples (derandomize), 25 per property, not shrunk: the whole run well
        under a minute
  dev   200 random examples per property, failures shrunk to a minimal example
  long  thousands of examples per property, random seed, examples kept in .hypothesis/

FASTNN_HYPOTHESIS_EXAMPLES=<n> overrides the profile's number of examples per property
(e.g. a long-mode run bounded in time: FASTNN_HYPOTHESIS=long FASTNN_HYPOTHESIS_EXAMPLES=300).
"""
import os

from hypothesis import HealthCheck, Phase, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.large_base_example]
# ci: no shrinking (it can take longer than the run); the falsifying example is printed
# as found -- rerun one property with FASTNN_HYPOTHESIS=dev to get it shrunk
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None,
                          database=None, print_blob=False, suppress_health_check=_QUIET,
                          phases=(Phase.explicit, Phase.generate))
settings.register_profile("dev", max_examples=200, deadline=None, database=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.register_profile("long", max_examples=3000, deadline=None,
                          suppress_health_check=_QUIET, print_blob=True)
settings.load_profile(os.environ.get("FASTNN_HYPOTHESIS", "ci"))
if os.environ.get("FASTNN_HYPOTHESIS_EXAMPLES"):
    settings.register_profile("override", settings.default,
                              max_examples=int(os.environ["FASTNN_HYPOTHESIS_EXAMPLES"]))
    settings.load_profile("override")

_TRACE = os.environ.get("FASTNN_PROPS_TRACE")


def pytest_runtest_logstart(nodeid, location):
    # the crash trace: which test was running (the calls follow, from _check.call)
    if _TRACE:
        with open(_TRACE, "a") as f:
            f.write("TEST %s\n" % nodeid)
