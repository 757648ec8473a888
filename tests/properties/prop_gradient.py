"""fastnn.gradient (numerical_gradient, numerical_gradient_2d, numerical_diff) against
tests/reference.py, with simple f's, on generated arrays of every dtype and layout.

The book's semantics are checked, not just the numbers: f is called with x itself
(perturbed in place), and x is restored bit for bit afterwards -- also when f raises.
"""
import numpy as np
from hypothesis import given, strategies as st

import reference as R
from fastnn import gradient as FG

import _gen as G
from _check import agree, assert_clear_error, call, cases

GRAD_KINDS = ("float64", "float64", "float32", "float16", "int64", "bool", "complex128",
              "list", "object")


def f_sum_squares(w):
    return np.sum(np.asarray(w, dtype=np.float64) ** 2)


def f_sin(w):
    return float(np.sum(np.sin(w)))


def f_const(w):
    return 1.0


def f_float32(w):
    return np.float32(np.sum(w))


def f_array1(w):
    return np.array([np.sum(w)])       # a 1-element array, not a scalar


def f_array2(w):
    return np.array([np.sum(w), 1.0])  # not a scalar at all


def f_none(w):
    return None


def f_complex(w):
    return np.complex128(np.sum(w) + 1j)


F_OK = {"sum_squares": f_sum_squares, "sin": f_sin, "const": f_const, "float32": f_float32}
F_BAD = {"array1": f_array1, "array2": f_array2, "none": f_none, "complex": f_complex}


def _mode_for_x(x):
    """README rules for numerical_gradient's x."""
    if x.kind in ("int64", "bool"):
        return "raise"  # README: integer x raises TypeError (the book silently returns garbage)
    if x.kind in ("list", "object", "complex128"):
        # the book needs a float ndarray to perturb in place; fastnn says so (TypeError);
        # complex x: the book computes a complex gradient (README, Reliability.)
        return "either"
    if not G.build(x).flags.writeable:
        return "raise"  # README: read-only x raises ValueError
    return "ref"


def _empty_gradient(f, x):
    # the book's np.nditer refuses zero-size arrays ("Iteration of zero-sized operands is
    # not enabled"); fastnn returns the empty gradient, which is what the loop means
    # (README, Reliability.)
    return np.zeros_like(x)


def check_numerical_gradient(x, fname, isa="baseline"):
    f = {**F_OK, **F_BAD}[fname]
    mode = _mode_for_x(x)
    ref = R.numerical_gradient
    if mode == "ref" and x.vals.size == 0:
        ref, mode = _empty_gradient, "either"
    seen = []

    def f_fast(w):  # f sees x itself, as in the book
        seen.append(w)
        return f(w)

    with G.on_isa(isa):
        fo, r, fa = agree(FG.numerical_gradient, ref, (f_fast, x),
                          ref_args=(f, x), names=("x", "f"), mode=mode,
                          label="numerical_gradient(%s)" % fname,
                          rtol=1e-9 if x.kind == "float64" else 1e-2,
                          atol=1e-6 if x.kind == "float64" else 0.5)
    if fo.exc is None and seen:
        assert all(w is fa[1] for w in seen), "f was not called with x itself"


@given(x=G.arrays(G.shapes(max_dims=3, max_size=40), kinds=GRAD_KINDS),
       fname=st.sampled_from(sorted(F_OK) + sorted(F_BAD)), isa=G.isas())
def test_numerical_gradient(x, fname, isa):
    check_numerical_gradient(x, fname, isa)


@cases(
    int_x=dict(x=G.recipe([1.0, 2.0], "int64"), fname="sum_squares"),
    readonly_x=dict(x=G.recipe([1.0, 2.0], layout="readonly"), fname="sum_squares"),
    # issue #11: f returning an array says "only 0-dimensional arrays can be converted"
    f_returns_array=dict(x=G.recipe([1.0, 2.0]), fname="array2"),
    # issue #11: complex gradients are silently made real
    f_returns_complex=dict(x=G.recipe([1.0, 2.0]), fname="complex"),
    big_endian_x=dict(x=G.recipe([[1.0, 2.0], [3.0, -1.0]], layout="bigendian"), fname="sum_squares"),
    unaligned_x=dict(x=G.recipe([1.0, 2.0, 3.0], layout="unaligned"), fname="sin"),
)
def test_numerical_gradient_cases(case):
    check_numerical_gradient(**case)


@given(x=G.arrays(G.shapes(min_dims=1, max_dims=3, max_size=30),
                  kinds=("float64", "float32"), layouts=("C", "F", "strided", "negstride")),
       fail_at=st.integers(0, 30), isa=G.isas())
def test_numerical_gradient_restores_x_when_f_raises(x, fail_at, isa):
    """README: x is restored exactly, even if f raises (the book would leave it perturbed)."""
    calls = []

    def f(w):
        calls.append(1)
        if len(calls) > fail_at:
            raise KeyError("stop")
        return float(np.sum(w))

    xf = G.build(x)
    before = xf.tobytes(order="A")
    with G.on_isa(isa):
        out = call(FG.numerical_gradient, (f, xf), label="numerical_gradient", fast=True)
    if out.exc is not None:
        assert isinstance(out.exc, KeyError), out  # f's own exception, unchanged
    assert xf.tobytes(order="A") == before, "x was not restored after f raised"


def check_numerical_gradient_2d(X, fname, isa="baseline"):
    f = F_OK[fname]
    mode = _mode_for_x(X)
    if mode == "ref" and X.vals.ndim not in (1, 2):
        # 0-d or 3-d X: the book's row loop does something shape-dependent; fastnn may
        # raise, naming X's shape. (README, Reliability.)
        mode = "either"
    with G.on_isa(isa):
        agree(FG.numerical_gradient_2d, R.numerical_gradient_2d, (f, X), names=("X", "x", "f"),
              mode=mode, label="numerical_gradient_2d(%s)" % fname,
              rtol=1e-9 if X.kind == "float64" else 1e-2,
              atol=1e-6 if X.kind == "float64" else 0.5)


@given(X=G.arrays(G.shapes(max_dims=3, max_size=40), kinds=GRAD_KINDS),
       fname=st.sampled_from(sorted(F_OK)), isa=G.isas())
def test_numerical_gradient_2d(X, fname, isa):
    check_numerical_gradient_2d(X, fname, isa)


@given(x=st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   G.arrays(G.shapes(max_dims=2, max_size=20))),
       fname=st.sampled_from(sorted(F_OK)))
def test_numerical_diff(x, fname):
    f = F_OK[fname]
    agree(FG.numerical_diff, R.numerical_diff, (f, x), names=("x", "f"),
          label="numerical_diff(%s)" % fname)
