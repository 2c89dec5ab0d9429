"""Elementwise math: arithmetic (correctly rounded), transcendental, exact ops."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy import special

from conformance import strategies as S
from conformance.catalog import Op, keras2, keras3
from conformance.tolerance import Elementwise, Exact, Rounded


def _x(example):
    return example["x"].astype("float64")


def _unary(name, ref, lo, hi, ulps=4, cond=None, k2=None, k3=None, exact=False,
           floatx=("float16", "float32", "float64"), tolerance=None, result="floatx",
           zeros=False, **float_options):
    """An elementwise unary op; `cond(x)` is |x f'(x)| for the input-rounding term.
    `zeros=True` mixes exact +0.0 and -0.0 into x (ops whose result depends on them)."""
    if tolerance is None:
        tolerance = Exact() if exact else Elementwise(
            ulps, (lambda ex: cond(_x(ex))) if cond else None)

    def inputs(fx):
        drawn = S.unary(fx, lo, hi, **float_options)
        return drawn.flatmap(lambda ex: _zeros_mixed_in(ex, "x")) if zeros else drawn

    return Op(
        name=name, family="elementwise",
        inputs=inputs,
        reference=lambda ex, ctx: ref(_x(ex)),
        tolerance=tolerance,
        keras3=keras3(k3 or name, "x"),
        keras2=keras2(k2, "x") if k2 else None,
        floatx=floatx,
        result=result,
    )


def _binary(name, ref, tolerance, lo=-10.0, hi=10.0, k2=None, k3=None, lo2=None, hi2=None,
            result="floatx", broadcast=False, inputs=None):
    """Same-shape inputs test the numerics; `broadcast=True` variants (named
    `<op>_broadcast`) test NumPy broadcasting on its own, so a backend that does not
    broadcast is reported there without hiding its numerics."""
    return Op(
        name=f"{name}_broadcast" if broadcast else name, family="elementwise",
        inputs=inputs or (lambda fx: S.binary(fx, lo, hi, lo2, hi2, broadcast=broadcast)),
        reference=lambda ex, ctx: ref(ex["x1"].astype("float64"), ex["x2"].astype("float64")),
        tolerance=tolerance,
        keras3=keras3(k3 or name, "x1", "x2"),
        keras2=keras2(k2, "x1", "x2") if k2 else None,
        result=result,
    )


def _binary_cond(dfdx1, dfdx2):
    """|x1 df/dx1| + |x2 df/dx2| for the input-rounding term of binary functions."""
    def cond(example):
        x1, x2 = example["x1"].astype("float64"), example["x2"].astype("float64")
        return np.abs(x1 * dfdx1(x1, x2)) + np.abs(x2 * dfdx2(x1, x2))
    return cond


def _zeros_mixed_in(example, key):
    """A strategy of `example` with some elements of example[key] set to +0.0 or -0.0:
    a float draw rarely lands on zero, where heaviside, signbit and divide_no_nan branch."""
    x = example[key]
    return st.tuples(S.bool_arrays(x.shape), S.bool_arrays(x.shape)).map(lambda masks: {
        **example, key: np.where(masks[0], np.where(masks[1], -0.0, 0.0), x).astype(x.dtype)})


@st.composite
def _divisions(draw, floatx, zeros=False):
    """{"x1", "x2"}: x1 in [-10, 10], |x2| in [0.5, 10] of either sign (floor and
    truncation conventions differ only for negative operands). Quotients stay within
    [-20, 20], whose integers every floatx holds exactly, so a floor or a remainder
    computed from the exact quotient is exact. Half the examples take x1 = k * x2
    (integer |k| <= 20) rounded to floatx instead: quotients at an integer or a rounding
    away from one, where floor_divide and mod jump (random draws almost never land
    there). `zeros` mixes exact zero divisors in."""
    example = draw(S.binary(floatx, -10.0, 10.0, 0.5, 10.0, broadcast=False))
    x2 = example["x2"]
    x2 = np.where(draw(S.bool_arrays(x2.shape)), -x2, x2).astype(floatx)
    example = {**example, "x2": x2}
    if draw(st.booleans()):
        multiples = draw(S.int_arrays(x2.shape, -20, 20)) * x2.astype("float64")
        example["x1"] = multiples.astype(floatx)
    return draw(_zeros_mixed_in(example, "x2")) if zeros else example


def _heaviside_inputs(floatx):
    return S.binary(floatx, broadcast=False).flatmap(lambda ex: _zeros_mixed_in(ex, "x1"))


def _divide_no_nan(x1, x2):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x2 == 0, 0.0, x1 / np.where(x2 == 0, 1.0, x2))


def _sinc_cond(x):
    """x sinc'(x) = cos(pi x) - sinc(x) (0 at x = 0)."""
    return np.abs(np.cos(np.pi * x) - np.sinc(x))


OPS = [
    # -- correctly rounded arithmetic --------------------------------------------
    _binary("add", np.add, Rounded(1), k2=None),
    _binary("subtract", np.subtract, Rounded(1)),
    _binary("multiply", np.multiply, Rounded(1)),
    _binary("divide", np.divide, Rounded(1), lo2=0.5, hi2=10.0),
    _binary("maximum", np.maximum, Exact(), k2="maximum"),
    _binary("minimum", np.minimum, Exact(), k2="minimum"),
    _unary("sqrt", np.sqrt, 0.0, 100.0, ulps=1, k2="sqrt", cond=lambda x: 0.5 * np.sqrt(x)),
    _unary("square", np.square, -100.0, 100.0, ulps=1, k2="square"),
    _unary("negative", np.negative, -100.0, 100.0, exact=True),
    _unary("abs", np.abs, -100.0, 100.0, exact=True, k2="abs"),
    _unary("sign", np.sign, -100.0, 100.0, exact=True, k2="sign"),
    _unary("floor", np.floor, -100.0, 100.0, exact=True),
    _unary("ceil", np.ceil, -100.0, 100.0, exact=True),
    _unary("round", np.round, -100.0, 100.0, exact=True, k2="round"),
    _unary("reciprocal", np.reciprocal, 0.5, 100.0, ulps=1),
    # -- transcendental (DESIGN: N_f = 4 for exp/log/sin/tanh..., 8 for pow/tan/erf/asin)
    _unary("exp", np.exp, -10.0, 10.0, k2="exp", cond=lambda x: np.abs(x * np.exp(x))),
    _unary("expm1", np.expm1, -10.0, 10.0, cond=lambda x: np.abs(x * np.exp(x))),
    _unary("log", np.log, 1e-3, 1e3, k2="log", cond=lambda x: np.ones_like(x)),
    _unary("log1p", np.log1p, -0.9, 100.0, cond=lambda x: np.abs(x / (1 + x))),
    _unary("log2", np.log2, 1e-3, 1e3, cond=lambda x: np.full_like(x, 1 / np.log(2))),
    _unary("log10", np.log10, 1e-3, 1e3, cond=lambda x: np.full_like(x, 1 / np.log(10))),
    _unary("sin", np.sin, -10.0, 10.0, k2="sin", cond=lambda x: np.abs(x * np.cos(x))),
    _unary("cos", np.cos, -10.0, 10.0, k2="cos", cond=lambda x: np.abs(x * np.sin(x))),
    _unary("tan", np.tan, -1.5, 1.5, ulps=8, cond=lambda x: np.abs(x / np.cos(x) ** 2)),
    _unary("arcsin", np.arcsin, -1.0, 1.0, ulps=8,
           cond=lambda x: np.abs(x / np.sqrt(np.maximum(1 - x * x, 1e-300)))),
    _unary("arccos", np.arccos, -1.0, 1.0, ulps=8,
           cond=lambda x: np.abs(x / np.sqrt(np.maximum(1 - x * x, 1e-300)))),
    _unary("arctan", np.arctan, -10.0, 10.0, cond=lambda x: np.abs(x / (1 + x * x))),
    _unary("sinh", np.sinh, -5.0, 5.0, cond=lambda x: np.abs(x * np.cosh(x))),
    _unary("cosh", np.cosh, -5.0, 5.0, cond=lambda x: np.abs(x * np.sinh(x))),
    _unary("tanh", np.tanh, -10.0, 10.0, k2="tanh", cond=lambda x: np.abs(x / np.cosh(x) ** 2)),
    _unary("arcsinh", np.arcsinh, -10.0, 10.0, cond=lambda x: np.abs(x / np.sqrt(1 + x * x))),
    _unary("arctanh", np.arctanh, -0.99, 0.99, ulps=8, cond=lambda x: np.abs(x / (1 - x * x))),
    _unary("erf", special.erf, -4.0, 4.0, ulps=8,
           cond=lambda x: np.abs(x * 2 / np.sqrt(np.pi) * np.exp(-x * x))),
    _binary("power", np.power, Elementwise(8, _binary_cond(
        lambda a, b: b * np.power(a, b - 1), lambda a, b: np.power(a, b) * np.log(a))),
        lo=0.1, hi=4.0, lo2=-3.0, hi2=3.0, k2=None),
    _binary("arctan2", np.arctan2, Elementwise(4, _binary_cond(
        lambda a, b: b / (a * a + b * b + 1e-300), lambda a, b: -a / (a * a + b * b + 1e-300))),
        lo=-10.0, hi=10.0),
    # -- NumPy elementwise math (issue 19) --------------------------------------------
    # Discontinuous in x1 / x2 (floor_divide, mod) but exact on floatx inputs: the float64
    # references are the exact values and a correct backend returns them (see _divisions).
    _binary("floor_divide", np.floor_divide, Exact(), inputs=_divisions),
    _binary("mod", np.mod, Rounded(1), inputs=_divisions),  # fmod exact, then + x2 rounds
    _binary("fmod", np.fmod, Exact(), inputs=_divisions),  # always representable
    _binary("divide_no_nan", _divide_no_nan, Rounded(1),
            inputs=lambda fx: _divisions(fx, zeros=True)),
    _binary("heaviside", np.heaviside, Exact(), inputs=_heaviside_inputs),
    _unary("trunc", np.trunc, -100.0, 100.0, exact=True),
    _unary("signbit", np.signbit, -100.0, 100.0, exact=True, result="bool", zeros=True),
    # x * (pi / 180): the constant rounded to floatx, then one product
    _unary("deg2rad", np.deg2rad, -360.0, 360.0, tolerance=Rounded(2)),
    _unary("rad2deg", np.rad2deg, -10.0, 10.0, tolerance=Rounded(2)),
    _unary("exp2", np.exp2, -15.0, 15.0, cond=lambda x: np.abs(x * np.log(2) * np.exp2(x))),
    _unary("cbrt", np.cbrt, -100.0, 100.0, cond=lambda x: np.abs(np.cbrt(x)) / 3),
    _unary("sinc", np.sinc, -10.0, 10.0, cond=_sinc_cond),
    _binary("hypot", np.hypot, Elementwise(4, _binary_cond(
        lambda a, b: a / np.hypot(a, b), lambda a, b: b / np.hypot(a, b)))),
    # |x| up to 100 overflows exp in float16 and float32: only the stable form passes
    _binary("logaddexp", np.logaddexp, Elementwise(4, _binary_cond(
        lambda a, b: special.expit(a - b), lambda a, b: special.expit(b - a))),
        lo=-100.0, hi=100.0),
    _binary("logaddexp2", np.logaddexp2, Elementwise(4, _binary_cond(
        lambda a, b: special.expit((a - b) * np.log(2)),
        lambda a, b: special.expit((b - a) * np.log(2)))), lo=-100.0, hi=100.0),
    # -- broadcasting semantics (Keras follows NumPy broadcasting rules) -------------
    _binary("add", np.add, Rounded(1), k3="add", broadcast=True),
    _binary("multiply", np.multiply, Rounded(1), k3="multiply", broadcast=True),
    _binary("maximum", np.maximum, Exact(), k2="maximum", k3="maximum", broadcast=True),
    _binary("equal", np.equal, Exact(), lo=-3.0, hi=3.0, k2="equal", k3="equal",
            result="bool", broadcast=True),
    # -- exact comparisons ----------------------------------------------------------
    _binary("equal", np.equal, Exact(), lo=-3.0, hi=3.0, k2="equal", result="bool"),
    _binary("not_equal", np.not_equal, Exact(), lo=-3.0, hi=3.0, k2="not_equal", result="bool"),
    _binary("greater", np.greater, Exact(), lo=-3.0, hi=3.0, k2="greater", result="bool"),
    _binary("greater_equal", np.greater_equal, Exact(), lo=-3.0, hi=3.0, k2="greater_equal",
            result="bool"),
    _binary("less", np.less, Exact(), lo=-3.0, hi=3.0, k2="less", result="bool"),
    _binary("less_equal", np.less_equal, Exact(), lo=-3.0, hi=3.0, k2="less_equal",
            result="bool"),
]

# Keras 2 has K.pow(x, a) with a scalar exponent only, and no elementwise add/subtract
# functions in keras.backend (they are operators); those stay Keras 3 only.
