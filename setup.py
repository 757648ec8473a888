"""Build fastnn's Cython kernels, with OpenMP when the compiler really has it.

Environment switches (all optional):

FASTNN_NATIVE=1           add -march=native (local builds only; never for wheels), with
                          -ffp-contract=off (as every non-x86 build has)
FASTNN_DISABLE_OPENMP=1   build serially even when OpenMP works (to test that path)
FASTNN_REQUIRE_OPENMP=1   fail the build instead of falling back to a serial build
FASTNN_SANITIZE=address,undefined
                          build with -fsanitize=... (AddressSanitizer, UBSan) at -O1 -g for
                          the sanitizer run (docs/reliability.md); never for wheels
"""
import hashlib
import os
import re
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
KERNELS = Path("src", "fastnn", "_kernels")

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return (n >= 1 && omp_get_max_threads() >= 1) ? 0 : 1;
}
"""


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _x86_target():
    """True when the extension is built for x86 (sysconfig follows a cross-compiling
    _PYTHON_HOST_PLATFORM; macOS universal2 counts as not only x86)."""
    plat = sysconfig.get_platform().lower()
    return any(a in plat for a in ("x86_64", "amd64", "win32", "i686", "i386")) and "universal" not in plat


def _openmp_flags(compiler):
    """Return (compile_args, link_args) that make OpenMP work, or None.

    The probe compiles *and links* a program with the compiler setuptools will use,
    so a compiler that accepts -fopenmp but lacks libgomp/libomp counts as "no".
    """
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    tmp = tempfile.mkdtemp(prefix="fastnn-omp-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        for cflags, lflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=lflags)
                return cflags, lflags
            except Exception:  # noqa: BLE001 - any failure means "no OpenMP"
                continue
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    def build_extensions(self):
        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            cflags, lflags = ["/O2"], []
        else:
            # -O3 and nothing that changes IEEE semantics (stable softmax and the gradient
            # checks need inf/NaN); no host-specific ISA either (a wheel would SIGILL on an
            # older CPU): SIMD comes from run-time dispatch in csrc/.
            cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-unreachable-code"]
            lflags = []
            native = _flag("FASTNN_NATIVE")
            if native:
                cflags.append("-march=native")  # opt-in, FASTNN_NATIVE=1, local builds only
            if native or not _x86_target():
                # Where the baseline code may use FMA (off x86 it is the only level, and GCC
                # contracts `c + a * b` where it sees fit, on aarch64 by default; and any
                # -march=native), two GEMM tiles could round one output element
                # differently (tools/bench_gemm.c check, built with -march=haswell: 742
                # split mismatches; none with this flag): keep each multiply-add two
                # roundings, as the kernels are written. The default x86-64 build needs
                # nothing: SSE2 has no FMA, the AVX2/AVX-512 GEMM and sparse kernels fuse
                # explicitly (csrc/fastnn_simd.h), and the AVX2/AVX-512 exp/log loops
                # (csrc/fastnn_math.h) are meant to be contracted.
                cflags.append("-ffp-contract=off")
            sanitize = os.environ.get("FASTNN_SANITIZE", "").strip()
            if sanitize and sanitize != "0":
                # -O1 -g: readable reports; recover=none: the first error fails the run
                san = ["-fsanitize=" + sanitize, "-fno-sanitize-recover=all",
                       "-fno-omit-frame-pointer", "-g"]
                cflags = ["-O1"] + cflags[1:] + san
                lflags += ["-fsanitize=" + sanitize]
                print("fastnn: building with -fsanitize=%s" % sanitize)

        omp = None if _flag("FASTNN_DISABLE_OPENMP") else _openmp_flags(self.compiler)
        if omp is None:
            msg = "fastnn: OpenMP not available with this compiler; building serial kernels"
            if _flag("FASTNN_REQUIRE_OPENMP"):
                raise RuntimeError(msg + " (FASTNN_REQUIRE_OPENMP is set)")
            print("*" * 78 + "\n" + msg + "\n" + "*" * 78, file=sys.stderr)
        else:
            cflags += omp[0]
            lflags += omp[1]
            print("fastnn: building with OpenMP (%s)" % " ".join(omp[0]))

        # setuptools keeps an up-to-date-looking .so when only flags change: force a
        # rebuild whenever the flag set differs from the last build's.
        stamp = Path(self.build_temp, "fastnn-flags.txt")
        signature = hashlib.sha256(repr((cflags, lflags)).encode()).hexdigest()
        if not stamp.exists() or stamp.read_text() != signature:
            self.force = True
        for ext in self.extensions:
            ext.extra_compile_args = list(ext.extra_compile_args) + cflags
            ext.extra_link_args = list(ext.extra_link_args) + lflags
        super().build_extensions()
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(signature)


_EXTERN = re.compile(r'cdef\s+extern\s+from\s+"([^"]+)"')
_INCLUDE_PXI = re.compile(r'^\s*include\s+"([^"]+)"', re.M)
_CIMPORT = re.compile(r'from\s+fastnn\._kernels\.(\w+)\s+cimport')
_C_INCLUDE = re.compile(r'#\s*include\s+"([^"]+)"')


def _depends(pyx):
    """The files a kernel module is built from besides its .pyx: its .pxi includes, the
    .pxd files it cimports, and the csrc headers any of them names (and those headers'
    own #includes). Editing one header then rebuilds only the modules that use it."""
    kernels, csrc = HERE / KERNELS, HERE / "csrc"
    seen, todo, headers = set(), [pyx], set()
    while todo:
        path = todo.pop()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        text = path.read_text()
        if path.suffix == ".h":
            todo += [csrc / h for h in _C_INCLUDE.findall(text)]
            headers.add(path)
            continue
        todo += [csrc / h for h in _EXTERN.findall(text)]
        todo += [path.parent / i for i in _INCLUDE_PXI.findall(text)]
        todo += [kernels / (m + ".pxd") for m in _CIMPORT.findall(text)]
        if path.suffix == ".pyx":
            todo.append(path.with_suffix(".pxd"))
    return sorted(str(p.relative_to(HERE)) for p in (seen | headers) if p != pyx)


def extensions():
    exts = []
    for pyx in sorted((HERE / KERNELS).glob("*.pyx")):
        name = "fastnn._kernels." + pyx.stem
        exts.append(
            Extension(
                name,
                [str(KERNELS / pyx.name)],
                include_dirs=[np.get_include(), "csrc", str(KERNELS)],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
                depends=_depends(pyx),
            )
        )
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
            "freethreading_compatible": True,
        },
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
