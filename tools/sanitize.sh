#!/usr/bin/env bash
# The sanitizer run: build fastnn with AddressSanitizer + UndefinedBehaviorSanitizer
# (FASTNN_SANITIZE, setup.py) in a scratch copy of this checkout and run the test suite
# under it. Any out-of-bounds access, use-after-free or undefined behaviour in a kernel
# aborts the test that triggered it. Extra arguments go to pytest, e.g.
#     bash tools/sanitize.sh tests/test_functions.py -x
# Needs gcc's libasan (Debian: libasan8, part of gcc). Takes ~5 minutes on 2 quiet cores
# (37 minutes, build included, on 2 cores shared with other builds).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir "$scratch/fastnn"
tar -C "$here" --exclude=./build --exclude='*.so' --exclude='./.venv*' --exclude=./.git \
    --exclude='*.c' -cf - . | tar -C "$scratch/fastnn" -xf -
cp -a "$here"/csrc/. "$scratch/fastnn/csrc/"          # csrc/*.c if any (excluded above)
[ -d "$here/../shared" ] && ln -s "$(cd "$here/../shared" && pwd)" "$scratch/shared"
cd "$scratch/fastnn"
FASTNN_SANITIZE=address,undefined python setup.py -q build_ext --inplace -j 2 >/dev/null
# Python itself is not instrumented: preload the ASan runtime (and libstdc++, so C++
# exceptions thrown by other extensions, e.g. matplotlib's, still work); leaks of the
# interpreter are not ours to report; a huge malloc returns NULL (MemoryError, as tested)
# instead of aborting.
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Tests that cannot run under ASan, left out of the default run: children started with a
# clean environment (no LD_PRELOAD: "ASan runtime does not come first") or under an
# address-space limit (RLIMIT_AS: ASan's shadow memory needs terabytes of it, "Failed to
# mmap"). They run in the ordinary suite.
no_asan=(--deselect tests/test_conv_cli.py::test_a_short_cnn_run_trains_saves_plots_and_loads
         -k "not test_softmax_loss_of_a_huge_row_needs_no_huge_scratch and not test_one_column_w_needs_no_scratch and not test_sparse_scratch_memory_error and not prop_isolated")
if [ $# -eq 0 ]; then set -- tests "${no_asan[@]}"; fi
PYTHONPATH=src python -m pytest -q -p no:cacheprovider "$@"
