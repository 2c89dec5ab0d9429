"""Activations: piecewise-linear (exact or correctly rounded), transcendental, softmax.

Keras 3 calls go through ``keras.ops`` (``keras.activations`` where only that takes
the options, e.g. relu's negative_slope / max_value / threshold); Keras 2 calls go
through ``keras.backend`` or ``keras.activations``. Where the two versions define an
activation differently (hard_sigmoid) there are two ops, each in one flavor.

Tolerances follow docs/tolerance.md: E = N ulp(y) + N u |x f'(x)|, N = 4 for exp/log/tanh-
based functions, 8 for erf, and for piecewise-linear ops the number of roundings in
the documented formula. The reference is the mathematical function (elu through
expm1, gelu through erfc), so a backend that evaluates a cancelling formula
literally (exp(x) - 1 near 0, x - tanh(x) near 0, 1 + erf(x) in the tail) is judged
by the accuracy it delivers.
"""
from __future__ import annotations

from fractions import Fraction
from math import factorial

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

from conformance import strategies as S, structure
from conformance.catalog import Call, Op, keras2, keras3
from conformance.tolerance import Absolute, Elementwise, Exact, InnerFloor, Reduction, Rounded

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
GELU_C = np.sqrt(2 / np.pi)  # the tanh approximation's constants, as Keras documents them
GELU_K = 0.044715
# Largest |x| for softmax-like inputs: exp(x) overflows floatx well below it, so an
# implementation that skips the max-subtraction returns inf / nan there.
SOFTMAX_RANGE = {"float16": 12.0, "float32": 100.0, "float64": 800.0}
# Structural combinations softmax-like ops cover, pairwise (conformance.structure).
AXIS_STRUCTURE = {"rank": (1, 2, 3), "axis": ("first", "last", "neg_first", "neg_last")}


def _x(example):
    return example["x"].astype("float64")


# -- input strategies ----------------------------------------------------------------
def _elements(floatx, lo, hi, edges=()):
    """Floats in [lo, hi] mixed with edge values (kinks, saturation points, 0)."""
    values = sorted({S.representable(v, floatx) for v in (0.0, lo, hi, *edges) if lo <= v <= hi})
    assert all(v == 0 or abs(v) >= np.finfo(floatx).tiny for v in values)  # no subnormals
    return st.one_of(S.floats(floatx, lo, hi), st.sampled_from(values))


@st.composite
def _x_inputs(draw, floatx, lo, hi, edges=(), min_dims=0, static=None):
    """{"x": array of rank min_dims..3, **static}; `static` maps names to strategies."""
    shape = draw(S.shapes(min_dims, 3))
    example = {"x": draw(hnp.arrays(floatx, shape, elements=_elements(floatx, lo, hi, edges)))}
    for name, strategy in (static or {}).items():
        example[name] = draw(strategy)
    return example


@st.composite
def _axis_inputs(draw, floatx, even_axis=False):
    """{"x", "axis"} for softmax-like ops; about half the examples at overflow scale."""
    shape = list(draw(S.shapes(1, 3)))
    n = len(shape)
    axis = draw(structure.pinned("axis", st.sampled_from(list(range(n)) + list(range(-n, 0))),
                                 lambda symbol: structure.resolve_axis(symbol, n, allow_none=False)))
    if even_axis:  # glu splits the axis in halves
        shape[axis] = draw(st.sampled_from([2, 4, 8]))
    hi = draw(st.sampled_from([5.0, SOFTMAX_RANGE[floatx]]))
    elements = _elements(floatx, -hi, hi, (1.0, -1.0))
    x = draw(hnp.arrays(floatx, tuple(shape), elements=elements))
    if hi > 5.0:
        # At overflow scale one logit is always past exp's overflow point: left to the
        # element draws, a small array often has none, and a softmax without the
        # max-subtraction went unnoticed in 10 examples.
        overflow = float(np.log(np.finfo(floatx).max)) * 1.01
        index = draw(st.integers(0, x.size - 1))
        x.flat[index] = draw(S.floats(floatx, overflow, hi))
    return {"x": x, "axis": axis}


# -- references ------------------------------------------------------------------------
def _relu_options(example):
    """keras.activations.relu with negative_slope, max_value, threshold (float64).

    Both versions document: max_value for x >= max_value, x for threshold <= x <
    max_value, negative_slope * (x - threshold) otherwise; at x == threshold both the
    implementations and the Keras 3 docstring example (relu([5.], threshold=5.) == 0)
    give 0, so the reference keeps x only for x > threshold.
    """
    x, slope = _x(example), example["negative_slope"]
    threshold, max_value = example["threshold"], example["max_value"]
    y = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        y = np.minimum(y, max_value)
    return y + slope * np.minimum(x - threshold, 0.0)


def _elu(x, alpha):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _gelu_tanh_arg(x):
    return GELU_C * (x + GELU_K * x ** 3)


def _gelu_approximate(x):
    # 0.5 x (1 + tanh(z)) == x * sigmoid(2 z): the same function without cancellation.
    return x * special.expit(2 * _gelu_tanh_arg(x))


def _softmax_parts(example):
    """softmax y, the shifted inputs d = |x - max| and sum_j y_j d_j along the axis."""
    x, axis = _x(example), example["axis"]
    d = np.abs(x - x.max(axis=axis, keepdims=True))
    y = special.softmax(x, axis=axis)
    return y, d, (y * d).sum(axis=axis, keepdims=True)


def _glu_halves(example):
    a, b = np.split(_x(example), 2, axis=example["axis"])
    return a, b


# -- conditions |x f'(x)|: what rounding inputs and intermediates can move y by ----------
def _cond_softplus(x):
    return np.abs(x * special.expit(x))


def _cond_sigmoid(x):
    return np.abs(x * special.expit(x) * special.expit(-x))


def _cond_elu(alpha):
    return lambda x: np.where(x > 0, np.abs(x), np.abs(alpha * x * np.exp(np.minimum(x, 0))))


def _cond_celu(example):
    x, alpha = _x(example), example["alpha"]
    return np.where(x > 0, np.abs(x), np.abs(x * np.exp(np.minimum(x, 0) / alpha)))


def _cond_silu(x):
    s = special.expit(x)
    return np.abs(x * s * (1 + x * (1 - s)))


def _cond_gelu(x):
    phi = np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    return np.abs(x * special.ndtr(x) + x * x * phi)


def _cond_gelu_approximate(x):
    z = _gelu_tanh_arg(x)
    sech2 = 1 - np.tanh(z) ** 2
    return np.abs(x * (0.5 * (1 + np.tanh(z))
                       + 0.5 * x * sech2 * GELU_C * (1 + 3 * GELU_K * x * x)))


def _cond_tanh_shrink(x):
    return np.abs(x * np.tanh(x) ** 2)


def _cond_softmax(example):
    # exp(x_i - m) / S: the rounding of x_i - m shifts y_i by u |x_i - m| relative,
    # the denominator by the y-weighted shifts; exp's own errors add 1 each.
    y, d, weighted = _softmax_parts(example)
    return y * (d + weighted + 2)


def _cond_log_softmax(example):
    # x_i - m - log S: absolute errors u |x_i - m|, u sum_j y_j |x_j - m|, u log S,
    # and the relative error of S (exp roundings) as an absolute error in log S.
    axis = example["axis"]
    _, d, weighted = _softmax_parts(example)
    log_s = np.log(np.exp(-d).sum(axis=axis, keepdims=True))
    return d + weighted + log_s + 1


def _softmax_terms(example, index):
    """Reduction over the axis: the sum of exp(x - m) carries 4 sqrt(n) u relatively."""
    y, _, _ = _softmax_parts(example)
    return example["x"].shape[example["axis"]], y


def _log_softmax_terms(example, index):
    return example["x"].shape[example["axis"]], 1.0


def _cond_glu(example):
    a, b = _glu_halves(example)
    return np.abs(a * b * special.expit(b) * special.expit(-b))


# -- op builders -------------------------------------------------------------------------
def _act(name, reference, tolerance, lo, hi, edges=(), k2=None, k3=None, static=None,
         notes=""):
    """An elementwise activation on {"x"} (plus drawn static arguments)."""
    return Op(
        name=name, family="activations",
        inputs=lambda fx: _x_inputs(fx, lo, hi, edges, static=static),
        reference=lambda ex, ctx: reference(ex),
        tolerance=tolerance,
        keras3=k3 if isinstance(k3, Call) else keras3(k3 or name, "x"),
        keras2=k2,
        notes=notes,
    )


def _ew(ulps, cond):
    """Elementwise(ulps, |x f'(x)|) with the condition written as a function of x."""
    return Elementwise(ulps, lambda ex: cond(_x(ex)))


def _inner(ulps, inner, formula):
    """The rounding of an inner function that survives the documented formula:
    Keras defines tanh_shrink as x - tanh(x) and gelu as 0.5 x (1 + erf(x / sqrt 2)),
    so any floatx evaluation of that formula carries N u |inner(x)| of absolute error,
    however accurate the inner function is (cancellation near 0, saturation in tails)."""
    return Absolute(lambda ex, index: inner(_x(ex)), factor=ulps, formula=formula)


def _hard_sigmoid(x):
    return np.clip((x + 3) / 6, 0.0, 1.0)  # x / 6 + 1/2 without cancellation near -3


def _hard_sigmoid_keras2(x):
    return np.clip((x + 2.5) / 5, 0.0, 1.0)  # 0.2 x + 0.5


def _bernoulli(count):
    """Exact Bernoulli numbers B_0..B_count (Akiyama-Tanigawa; B_1 = +1/2)."""
    numbers, row = [], []
    for m in range(count + 1):
        row.append(Fraction(1, m + 1))
        for j in range(m, 0, -1):
            row[j - 1] = j * (row[j - 1] - row[j])
        numbers.append(row[0])
    return numbers


_B = _bernoulli(50)
# x - tanh x = sum_{n>=2} c_n x^(2n-1), c_n = -4^n (4^n - 1) B_2n / (2n)!
_TANH_SHRINK_SERIES = np.array([float(-(4 ** n) * (4 ** n - 1) * _B[2 * n] / factorial(2 * n))
                                for n in range(2, 26)])


def _tanh_shrink(x):
    """x - tanh(x), accurate in float64: its Taylor series where the difference cancels.

    For |x| < 1/2 the series terms shrink by (2x/pi)^2 < 0.11, so 24 terms are far
    below float64 rounding; elsewhere the subtraction loses at most a factor 13,
    taken in long double.
    """
    powers = 2 * np.arange(2, 26) - 1
    small = np.abs(x) < 0.5
    xs = np.where(small, x, 0.0)
    series = (_TANH_SHRINK_SERIES * xs[..., None] ** powers).sum(axis=-1)
    wide = np.asarray(x, dtype=np.longdouble)
    return np.where(small, series, (wide - np.tanh(wide)).astype("float64"))


def _inside(x, lo, hi, value):
    return np.where((x > lo) & (x < hi), value, 0.0)


_SLOPES = st.sampled_from([0.2, 0.01, 0.1, 0.3, 0.5])


@st.composite
def _relu_options_static(draw):
    """negative_slope, threshold and max_value with 0 <= threshold < max_value.

    A threshold at or above max_value, or below 0 together with max_value, is where
    the docstring and every implementation disagree (the implementations clip to
    [0, max_value]); those corners are left out rather than judged.
    """
    threshold = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    max_value = draw(st.sampled_from([None, 6.0, 1.0, 4.5, 20.0]).filter(
        lambda m: m is None or m > threshold))
    return {"negative_slope": draw(st.sampled_from([0.0, 0.2, 0.01, 0.5])),
            "threshold": threshold, "max_value": max_value}


@st.composite
def _relu_options_inputs(draw, floatx):
    options = draw(_relu_options_static())
    edges = (options["threshold"], options["max_value"] or 0.0, -1.0)
    example = draw(_x_inputs(floatx, -30.0, 30.0, edges))
    example.update(options)
    return example


OPS = [
    # -- piecewise linear: exact or a few correctly rounded operations ---------------------
    _act("relu", lambda ex: np.maximum(_x(ex), 0.0), Exact(), -100.0, 100.0,
         k2=keras2("relu", "x")),
    Op(
        name="relu_options", family="activations",
        inputs=_relu_options_inputs,
        reference=lambda ex, ctx: _relu_options(ex),
        # slope rounded to floatx, x - threshold, the product: 3 roundings of y
        tolerance=Rounded(3),
        keras3=Call("keras.activations.relu", args=("x",),
                    kwargs={"negative_slope": "negative_slope", "max_value": "max_value",
                            "threshold": "threshold"}),
        keras2=Call("keras.backend.relu", args=("x",),
                    kwargs={"alpha": "negative_slope", "max_value": "max_value",
                            "threshold": "threshold"}),
        notes="Keras 3 keras.activations.relu(negative_slope=) vs Keras 2 K.relu(alpha=); "
              "x == threshold gives 0 (docstring example); 0 <= threshold < max_value.",
    ),
    _act("relu6", lambda ex: np.clip(_x(ex), 0.0, 6.0), Exact(), -20.0, 20.0, edges=(6.0,),
         k2=Call("keras.backend.relu", args=("x",), static={"max_value": 6.0}),
         notes="Keras 2 has no relu6: K.relu(x, max_value=6.0)."),
    _act("leaky_relu", lambda ex: np.where(_x(ex) >= 0, _x(ex), ex["negative_slope"] * _x(ex)),
         Rounded(2), -100.0, 100.0, static={"negative_slope": _SLOPES},  # slope and product
         k3=keras3("leaky_relu", "x", negative_slope="negative_slope"),
         k2=keras2("relu", "x", alpha="negative_slope"),
         notes="Keras 2: K.relu(x, alpha=negative_slope)."),
    _act("hard_tanh", lambda ex: np.clip(_x(ex), -1.0, 1.0), Exact(), -5.0, 5.0,
         edges=(1.0, -1.0)),
    _act("softsign", lambda ex: _x(ex) / (1 + np.abs(_x(ex))), Rounded(2), -100.0, 100.0,
         k2=keras2("softsign", "x")),  # 1 + |x| and the division
    # Keras 3 (keras.activations docs, every backend): relu6(x + 3) / 6; the
    # keras.ops.hard_sigmoid docstring still quotes Keras 2's 0.2 x + 0.5.
    _act("hard_sigmoid", lambda ex: _hard_sigmoid(_x(ex)),
         _ew(2, lambda x: _inside(x, -3, 3, np.abs(x) / 6)), -6.0, 6.0, edges=(3.0, -3.0),
         notes="Keras 3 definition x/6 + 1/2 clipped to [0, 1]; Keras 2 differs, see "
               "hard_sigmoid_keras2."),
    Op(name="hard_sigmoid_keras2", family="activations",
       inputs=lambda fx: _x_inputs(fx, -6.0, 6.0, (2.5, -2.5)),
       reference=lambda ex, ctx: _hard_sigmoid_keras2(_x(ex)),
       # 0.2 rounded to floatx, the product, the sum
       tolerance=_ew(3, lambda x: _inside(x, -2.5, 2.5, 0.2 * np.abs(x))),
       keras3=None, keras2=keras2("hard_sigmoid", "x"),
       notes="Keras 2 definition 0.2 x + 0.5 clipped to [0, 1]; Keras 3 redefined "
             "hard_sigmoid (see hard_sigmoid), so this op is Keras 2 only."),
    _act("hard_silu", lambda ex: _x(ex) * _hard_sigmoid(_x(ex)),
         _ew(3, lambda x: _inside(x, -3, 3, np.abs(x * (2 * x + 3) / 6))
             + np.where(x >= 3, np.abs(x), 0.0)),
         -8.0, 8.0, edges=(3.0, -3.0)),
    # -- exp / log based (N_f = 4) ----------------------------------------------------------
    _act("sigmoid", lambda ex: special.expit(_x(ex)), _ew(4, _cond_sigmoid), -40.0, 40.0,
         k2=keras2("sigmoid", "x")),
    _act("log_sigmoid", lambda ex: -np.logaddexp(0.0, -_x(ex)),
         _ew(4, lambda x: np.abs(x * special.expit(-x))), -100.0, 100.0,
         edges=(-20.0, 20.0)),
    # softplus(-100) in float32 is 0 on TensorFlow and 3.8e-44 elsewhere: both within
    # the flush-to-zero floor (docs/tolerance.md).
    _act("softplus", lambda ex: np.logaddexp(0.0, _x(ex)), _ew(4, _cond_softplus),
         -100.0, 100.0, edges=(-20.0, 20.0), k2=keras2("softplus", "x")),
    _act("exponential", lambda ex: np.exp(_x(ex)), _ew(4, np.abs), -10.0, 10.0,
         k3=Call("keras.activations.exponential", args=("x",)),
         k2=keras2("exponential", "x", module="keras.activations")),
    _act("elu", lambda ex: _elu(_x(ex), ex["alpha"]),
         Elementwise(4, lambda ex: _cond_elu(ex["alpha"])(_x(ex))), -20.0, 20.0,
         static={"alpha": st.sampled_from([1.0, 0.5, 2.0])},
         k3=keras3("elu", "x", alpha="alpha"), k2=keras2("elu", "x", alpha="alpha")),
    _act("selu", lambda ex: SELU_SCALE * _elu(_x(ex), SELU_ALPHA),
         _ew(4, lambda x: SELU_SCALE * _cond_elu(SELU_ALPHA)(x)), -20.0, 20.0,
         k2=keras2("selu", "x", module="keras.activations")),
    _act("celu", lambda ex: np.where(_x(ex) > 0, _x(ex),
                                     ex["alpha"] * np.expm1(np.minimum(_x(ex), 0) / ex["alpha"])),
         Elementwise(4, _cond_celu), -20.0, 20.0,
         static={"alpha": st.sampled_from([1.0, 0.5, 2.0])},
         k3=keras3("celu", "x", alpha="alpha")),
    _act("silu", lambda ex: _x(ex) * special.expit(_x(ex)), _ew(4, _cond_silu), -20.0, 20.0),
    _act("tanh_shrink", lambda ex: _tanh_shrink(_x(ex)),
         _ew(4, _cond_tanh_shrink) + _inner(4, lambda x: np.abs(np.tanh(x)), "4 u |tanh x|"),
         -10.0, 10.0),
    # -- erf / tanh composites (N_f = 8) ------------------------------------------------------
    _act("gelu", lambda ex: 0.5 * _x(ex) * special.erfc(-_x(ex) / np.sqrt(2)),
         _ew(8, _cond_gelu) + _inner(
             8, lambda x: 0.5 * np.abs(x * special.erf(x / np.sqrt(2))), "8 u |0.5 x erf(x/√2)|"),
         -10.0, 10.0,
         k3=Call("keras.ops.gelu", args=("x",), static={"approximate": False})),
    _act("gelu_approximate", lambda ex: _gelu_approximate(_x(ex)),
         _ew(8, _cond_gelu_approximate) + _inner(
             8, lambda x: 0.5 * np.abs(x * np.tanh(_gelu_tanh_arg(x))), "8 u |0.5 x tanh(z)|"),
         -10.0, 10.0,
         k3=Call("keras.ops.gelu", args=("x",), static={"approximate": True})),
    # -- along an axis ----------------------------------------------------------------------
    Op(name="softmax", family="activations",
       inputs=_axis_inputs,
       reference=lambda ex, ctx: special.softmax(_x(ex), axis=ex["axis"]),
       tolerance=Elementwise(4, _cond_softmax) + Reduction(_softmax_terms),
       keras3=keras3("softmax", "x", axis="axis"),
       keras2=keras2("softmax", "x", axis="axis"), structure=AXIS_STRUCTURE,
       notes="Inputs up to +-12 / 100 / 800 (float16 / 32 / 64): exp overflows without "
             "the max-subtraction."),
    Op(name="log_softmax", family="activations",
       inputs=_axis_inputs,
       reference=lambda ex, ctx: special.log_softmax(_x(ex), axis=ex["axis"]),
       tolerance=Elementwise(4, _cond_log_softmax) + Reduction(_log_softmax_terms),
       keras3=keras3("log_softmax", "x", axis="axis"), structure=AXIS_STRUCTURE),
    Op(name="glu", family="activations",
       inputs=lambda fx: _axis_inputs(fx, even_axis=True),
       reference=lambda ex, ctx: (lambda a, b: a * special.expit(b))(*_glu_halves(ex)),
       # a * sigmoid(b): sigmoid(b) may flush to zero below tiny before the product
       tolerance=Elementwise(4, _cond_glu) + InnerFloor(lambda ex: _glu_halves(ex)[0],
                                                        "2 tiny |a|"),
       keras3=keras3("glu", "x", axis="axis"), structure=AXIS_STRUCTURE),
]

# Keras 2.3.1 has no log_softmax, gelu, silu/swish, celu, hard_silu, hard_tanh,
# log_sigmoid, tanh_shrink or glu (neither in keras.backend nor keras.activations).
