# The one CPU probe and ISA state behind every kernel's run-time dispatch.
#
# csrc/fastnn_cpu.h compiles each kernel family per ISA level and dispatches on one int;
# this module owns that int: set once at import from the CPU probe, lowered by the
# environment variable FASTNN_ISA=baseline|avx2|avx512, and switchable at run time for
# the tests (set_isa), which run the kernel suites on every level the CPU has.
import os
import warnings

cdef extern from "fastnn_cpu.h":
    int fastnn_cpu_probe() noexcept nogil
    int FASTNN_ISA_BASELINE, FASTNN_ISA_AVX2, FASTNN_ISA_AVX512

ISA_NAMES = ("baseline", "avx2", "avx512")

cdef int cpu_level = fastnn_cpu_probe()
cdef int level = cpu_level


cdef const int *isa_state() noexcept nogil:
    return &level


def _level_of(name, what):
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    aliases = {"baseline": 0, "base": 0, "sse2": 0, "avx2": 1, "avx2fma": 1, "avx2+fma": 1,
               "avx512": 2, "avx512f": 2}
    if key not in aliases:
        raise ValueError("%s must be one of %s, got %r" % (what, ", ".join(ISA_NAMES), name))
    return aliases[key]


def cpu_isa():
    """The best ISA level this CPU runs: 'baseline', 'avx2' or 'avx512'."""
    return ISA_NAMES[cpu_level]


def supported_isas():
    """Every level this CPU runs, lowest first (the tests run the kernels on each)."""
    return ISA_NAMES[:cpu_level + 1]


def get_isa():
    """The level the kernels dispatch to now."""
    return ISA_NAMES[level]


def set_isa(name):
    """Dispatch every kernel to `name` ('baseline', 'avx2', 'avx512'; None: the CPU's
    best) from now on; returns the previous level's name. A level above the CPU's raises
    ValueError (its instructions would crash the process). Not for use while kernels
    run in other threads."""
    global level
    old = ISA_NAMES[level]
    new = cpu_level if name is None else _level_of(name, "isa")
    if new > cpu_level:
        raise ValueError("this CPU runs ISA levels up to %r; %r would crash"
                         % (ISA_NAMES[cpu_level], ISA_NAMES[new]))
    level = new
    return old


def _forced_level(forced, int cpu):
    """The level FASTNN_ISA=`forced` gives on a CPU whose best level is `cpu`: a level
    above the CPU's is lowered to it with a RuntimeWarning; unknown names raise."""
    forced = (forced or "").strip()
    if not forced:
        return cpu
    new = _level_of(forced, "FASTNN_ISA")
    if new > cpu:
        warnings.warn("FASTNN_ISA=%s: this CPU runs up to %s; using %s"
                      % (forced, ISA_NAMES[cpu], ISA_NAMES[cpu]), RuntimeWarning)
        new = cpu
    return new


level = _forced_level(os.environ.get("FASTNN_ISA"), cpu_level)
