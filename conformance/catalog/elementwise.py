"""Elementwise math: arithmetic (correctly rounded), transcendental, exact ops."""
from __future__ import annotations

import numpy as np
from scipy import special

from conformance import strategies as S
from conformance.catalog import Op, keras2, keras3
from conformance.tolerance import Elementwise, Exact, Rounded


def _x(example):
    return example["x"].astype("float64")


def _unary(name, ref, lo, hi, ulps=4, cond=None, k2=None, k3=None, exact=False,
           floatx=("float16", "float32", "float64"), **float_options):
    """An elementwise unary op; `cond(x)` is |x f'(x)| for the input-rounding term."""
    tolerance = Exact() if exact else Elementwise(
        ulps, (lambda ex: cond(_x(ex))) if cond else None)
    return Op(
        name=name, family="elementwise",
        inputs=lambda fx: S.unary(fx, lo, hi, **float_options),
        reference=lambda ex, ctx: ref(_x(ex)),
        tolerance=tolerance,
        keras3=keras3(k3 or name, "x"),
        keras2=keras2(k2, "x") if k2 else None,
        floatx=floatx,
    )


def _binary(name, ref, tolerance, lo=-10.0, hi=10.0, k2=None, k3=None, lo2=None, hi2=None,
            result="floatx", broadcast=False):
    """Same-shape inputs test the numerics; `broadcast=True` variants (named
    `<op>_broadcast`) test NumPy broadcasting on its own, so a backend that does not
    broadcast is reported there without hiding its numerics."""
    return Op(
        name=f"{name}_broadcast" if broadcast else name, family="elementwise",
        inputs=lambda fx: S.binary(fx, lo, hi, lo2, hi2, broadcast=broadcast),
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
