"""Reductions: sums and means (Reduction), extrema, indices and logical reductions
(Exact), products (Rounded in the number of multiplications), variance, logsumexp,
median and the cumulative scans.

Static arguments follow the documented signatures: Keras 3 ``keras.ops.sum(x, axis=None,
keepdims=False)``, Keras 2 ``K.sum(x, axis=None, keepdims=False)`` with the same
keywords; axis is None, an int or a negative int (several axes: see MULTI_AXIS). Where the flavors
differ (``cumsum``/``argmax``: Keras 3 flattens on ``axis=None``, Keras 2 has an int
axis only) the examples stay inside what both flavors define.

Error bounds below use u = eps(floatx)/2, and n = the number of elements reduced
into one output element.
"""
from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import strategies as S, structure
from conformance.catalog import Call, Op, keras2, keras3
from conformance.tolerance import Absolute, Exact, Reduction, Rounded, ulp, unit_roundoff

FLOATX_MAX_LOG = {"float16": math.log(65504.0), "float32": math.log(3.4028235e38),
                  "float64": math.log(1.7976931348623157e308)}
# Small value sets: ties for argmax/argmin, zeros (and cancelling +-1) for any/all.
TIES = (-2.0, -1.0, 0.0, 1.0, 2.0)
TRUTHY = (0.0, 1.0, -1.0, 0.5)
# Several axes at once: Keras 3 documents a tuple, Keras 2 a list of ints. JSON turns
# tuples into lists, which several Keras 3 backends refuse, so the adapters turn static
# lists back into tuples (conformance.adapters.as_tuples) before calling.
MULTI_AXIS = True
# Structural combinations every case covers (conformance.structure): ranks, axes
# (None, first, last, both negative spellings, several), keepdims.
AXIS_STRUCTURE = {"rank": (1, 2, 3),
                  "axis": ("none", "first", "last", "neg_first", "neg_last", "multi")}
REDUCE_STRUCTURE = {**AXIS_STRUCTURE, "keepdims": (False, True)}
SCAN_STRUCTURE = {"rank": (1, 2, 3), "axis": ("none", "first", "last", "neg_first", "neg_last")}


# -- example access ---------------------------------------------------------------
def _x(ex):
    return ex["x"].astype("float64")


def _u(ex):
    return unit_roundoff(str(ex["x"].dtype))


def _axes(ex):
    axis = ex.get("axis")
    return tuple(axis) if isinstance(axis, list) else axis


def apply(fn, ex, x=None, keepdims=None):
    """fn(x, axis=..., keepdims=...) with the example's static arguments (x: the
    example's, in float64, unless given)."""
    keep = ex.get("keepdims", False) if keepdims is None else keepdims
    return fn(_x(ex) if x is None else x, axis=_axes(ex), keepdims=keep)


def _count(ex) -> int:
    """n: how many input elements fold into one output element."""
    shape, axis = ex["x"].shape, _axes(ex)
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


def _out_shape(ex):
    return apply(np.sum, ex).shape


# -- strategies -------------------------------------------------------------------
def _axis(ndim: int, multi: bool = True):
    """None, an int, a negative int, or (rank >= 2, MULTI_AXIS) a list of distinct axes."""
    options = [S.axis_for(ndim)]
    several = multi and MULTI_AXIS and ndim >= 2
    if several:
        options.append(st.lists(st.integers(0, ndim - 1), min_size=2, max_size=ndim,
                                unique=True))
    return structure.pinned("axis", st.one_of(*options), lambda symbol: structure.resolve_axis(
        symbol, ndim, multi=several))


@st.composite
def _reduce_inputs(draw, floatx, elements=None, max_dims=3, max_side=5, multi=True,
                   keepdims=True):
    """{"x", "axis"[, "keepdims"]} for reductions that take axis/keepdims."""
    shape = draw(S.shapes(1, max_dims, max_side=max_side))
    elements = S.floats(floatx, -10.0, 10.0) if elements is None else elements
    example = {"x": draw(hnp.arrays(floatx, shape, elements=elements)),
               "axis": draw(_axis(len(shape), multi))}
    if keepdims:
        example["keepdims"] = draw(structure.pinned("keepdims", st.booleans()))
    return example


@st.composite
def _scan_inputs(draw, floatx, elements=None, max_side=5, ties=False):
    """{"x", "axis"}: an int axis (negative too); None only for rank 1, where Keras 3's
    flatten-on-None and Keras 2's int axis agree (None == 0)."""
    shape = draw(S.shapes(1, 3, max_side=max_side))
    if ties and draw(st.booleans()):
        elements = st.sampled_from(TIES)
    elements = S.floats(floatx, -10.0, 10.0) if elements is None else elements
    return {"x": draw(hnp.arrays(floatx, shape, elements=elements)),
            "axis": draw(S.axis_for(len(shape), allow_none=len(shape) == 1))}


def _product_elements(floatx):
    # Magnitudes in [0.6, 1.9] and at most 16 factors: every partial product stays a
    # normal float16 number (0.6**16 > 2.8e-4, 1.9**16 < 3e4), so the bound below is
    # about rounding, not overflow or gradual underflow.
    return st.one_of(S.floats(floatx, 0.6, 1.9), S.floats(floatx, -1.9, -0.6))


@st.composite
def _prod_inputs(draw, floatx):
    example = draw(_reduce_inputs(floatx, _product_elements(floatx), max_dims=2, max_side=4))
    if example["x"].size and draw(st.booleans()):  # an exact zero factor
        x = example["x"].copy()
        x.flat[draw(st.integers(0, x.size - 1))] = 0
        example["x"] = x
    return example


@st.composite
def _variance_inputs(draw, floatx):
    # "offset" data (mean 102, spread 4) is where a one-pass E[x^2] - E[x]^2 cancels.
    lo = draw(st.sampled_from([-10.0, 100.0]))
    hi = 10.0 if lo < 0 else 104.0
    return draw(_reduce_inputs(floatx, S.floats(floatx, lo, hi)))


@st.composite
def _logsumexp_inputs(draw, floatx):
    # exp overflows beyond T = log(max floatx) (11.1, 88.7, 709.8) and underflows to 0
    # below about -T - 7 .. -T - 37: "high"/"low" data make log(sum(exp(x))) computed
    # without subtracting the max give inf / -inf although the result is finite.
    big = math.ceil(FLOATX_MAX_LOG[floatx]) + 10
    lo, hi = draw(st.sampled_from([(-10.0, 10.0), (big - 10.0, big + 10.0),
                                   (-big - 10.0, -big + 10.0), (-big - 10.0, big + 10.0)]))
    return draw(_reduce_inputs(floatx, S.floats(floatx, lo, hi)))


# -- tolerances -------------------------------------------------------------------
def _sum_terms(ex, index):
    return _count(ex), apply(np.sum, ex, np.abs(_x(ex)))


def _mean_terms(ex, index):
    return _count(ex), apply(np.mean, ex, np.abs(_x(ex)))


def _mean_bound(ex):
    """The mean's own bound, used by var/std: the sum's error, at most (n - 1) u sum|x|
    in any order of summation (Higham 4.2) and taken as 4 sqrt(n) u sum|x| where that
    is smaller (the Reduction class's statistical bound, large n), divided by n; plus
    the division's 2 u |mean|. The rigorous term keeps small n honest: with 4 sqrt(n)
    at n = 3 the bound on dm^2 exceeded the variance of [100.5, 100, 100] in float16,
    so all zeros passed."""
    n, u = _count(ex), _u(ex)
    terms = min(n - 1, 4 * math.sqrt(n))
    return (terms * u * apply(np.mean, ex, np.abs(_x(ex)))
            + 2 * u * np.abs(apply(np.mean, ex)))


def _var_bound(ex):
    """Two-pass variance mean((x - m)^2) with the computed mean m = mean + dm.

    sum (x_i - m)^2 = sum (x_i - mean)^2 + n dm^2 exactly (the deviations sum to 0),
    so the mean's error enters only as dm^2. Each term d_i^2 carries 3u (the
    subtraction twice through the square, plus the square), the sum of n positive
    terms 4 sqrt(n) u of itself, the division by n one u:
        E = dm^2 + (4 sqrt(n) + 4) u (var + dm^2).
    """
    n, u = _count(ex), _u(ex)
    dm2 = _mean_bound(ex) ** 2
    return dm2 + (4 * math.sqrt(n) + 4) * u * (apply(np.var, ex) + dm2)


def _std_bound(ex):
    """sqrt of a variance v known within E, which lies in [max(v - E, 0), v + E]: the
    image under sqrt is about E / (2 std) wide, but up to sqrt(E) when v ~ 0 (constant
    data); plus sqrt's own rounding u std."""
    var, err = apply(np.var, ex), _var_bound(ex)
    std = np.sqrt(var)
    spread = np.maximum(np.sqrt(var + err) - std, std - np.sqrt(np.maximum(var - err, 0.0)))
    return spread + _u(ex) * std


def _logsumexp_bound(ex):
    """log(sum(exp(x - m))) + m, m = max x, s = sum exp(x - m) in [1, n], p = exp(x - m)/s.

    x_i - m rounds by u|x_i - m|, which exp turns into a relative error of the term; exp
    itself is good to 4 ulp <= 8u relative; the sum of n positive terms 4 sqrt(n) u
    relative. Relative errors of s are absolute errors of log s:
        E = u (4 sqrt(n) + 8 + sum_i p_i |x_i - m|) + 4 ulp(log s)   (+ u |y| for "+ m").
    """
    x, u = _x(ex), _u(ex)
    m = apply(np.max, ex, x, keepdims=True)
    e = np.exp(x - m)
    s = apply(np.sum, ex, e, keepdims=True)
    weighted = apply(np.sum, ex, (e / s) * np.abs(x - m), keepdims=True)
    bound = (u * (4 * math.sqrt(_count(ex)) + 8 + weighted)
             + 4 * ulp(np.log(s), str(ex["x"].dtype)))
    return bound.reshape(_out_shape(ex))


def _prod_scale(ex, index):
    return (_count(ex) - 1) * np.abs(apply(np.prod, ex))


def scan_axis(ex):
    """The int axis a scan runs along (None, drawn for rank 1 only, is 0)."""
    return 0 if ex["axis"] is None else ex["axis"]


def _cumsum_terms(ex, index):
    axis = scan_axis(ex)
    return ex["x"].shape[axis], np.cumsum(np.abs(_x(ex)), axis=axis)


def _cumprod_scale(ex, index):
    """Element k along the axis is a product of k+1 factors: k roundings."""
    x, axis = _x(ex), scan_axis(ex)
    k = np.arange(x.shape[axis]).reshape([-1] + [1] * (x.ndim - 1 - axis % x.ndim))
    return k * np.abs(np.cumprod(x, axis=axis))


def _median_middles(ex):
    """The one (odd n) or two (even n) middle elements of each reduced group, last axis."""
    x, axis = _x(ex), _axes(ex)
    if axis is None:
        groups = x.reshape(-1)
    else:
        axes = [a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis)]
        kept = [a for a in range(x.ndim) if a not in axes]
        groups = np.transpose(x, kept + axes).reshape([x.shape[a] for a in kept] + [-1])
    ordered = np.sort(groups, axis=-1)
    n = ordered.shape[-1]
    return ordered[..., sorted({(n - 1) // 2, n // 2})]


def _median_terms(ex, index):
    # The median is the mean of its one or two middle elements.
    middles = _median_middles(ex)
    return middles.shape[-1], np.mean(np.abs(middles), axis=-1).reshape(
        apply(np.median, ex).shape)


def _tolerance_in_u(bound, formula):
    """A derived absolute bound E(example) expressed as an `Absolute` tolerance."""
    return Absolute(lambda ex, index: bound(ex) / _u(ex), factor=1.0, formula=formula)


# -- references -------------------------------------------------------------------
def _reference(fn):
    return lambda ex, ctx: apply(fn, ex)


def _scan_reference(fn):
    return lambda ex, ctx: fn(_x(ex), axis=scan_axis(ex))


def _logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _count_nonzero(ex, ctx):
    return np.count_nonzero(ex["x"], axis=_axes(ex))


def _axis_none_is_zero(name):
    """Keras 2 scans/arg-reductions take an int axis; None (drawn for rank 1 only) is 0."""
    return Call(f"keras.backend.{name}",
                build=lambda ex: ([ex["x"]], {"axis": scan_axis(ex)}))


def _reduction(name, fn, tolerance, inputs=None, result="floatx", k2=True, keepdims=True):
    """An op with the (x, axis, keepdims) signature in both flavors."""
    kwargs = {"axis": "axis", "keepdims": "keepdims"} if keepdims else {"axis": "axis"}
    return Op(
        name=name, family="reductions",
        structure=REDUCE_STRUCTURE if keepdims else AXIS_STRUCTURE,
        inputs=inputs or (lambda fx: _reduce_inputs(fx)),
        reference=_reference(fn),
        tolerance=tolerance,
        keras3=keras3(name, "x", **kwargs),
        keras2=keras2(name, "x", **kwargs) if k2 else None,
        result=result,
    )


def _scan(name, fn, tolerance, inputs, result="floatx"):
    return Op(
        name=name, family="reductions", structure=SCAN_STRUCTURE,
        inputs=inputs,
        reference=_scan_reference(fn),
        tolerance=tolerance,
        keras3=keras3(name, "x", axis="axis"),
        keras2=_axis_none_is_zero(name),
        result=result,
    )


def _truthy_inputs(floatx, keepdims=True):
    return _reduce_inputs(floatx, st.sampled_from(TRUTHY), keepdims=keepdims)


OPS = [
    # -- sums and means: 4 sqrt(n) u sum|x_i| + u |y| --------------------------------
    _reduction("sum", np.sum, Reduction(_sum_terms)),
    # mean = sum / n: the sum's bound divided by n, plus the division's u |y|.
    _reduction("mean", np.mean, Reduction(_mean_terms) + Rounded(1)),
    _scan("cumsum", np.cumsum, Reduction(_cumsum_terms), lambda fx: _scan_inputs(fx)),
    # -- extrema: a copy of one input element --------------------------------------
    _reduction("max", np.max, Exact()),
    _reduction("min", np.min, Exact()),
    # -- products: n factors, n - 1 correctly rounded multiplications ----------------
    _reduction("prod", np.prod, Absolute(_prod_scale, factor=1.0, formula="E = (n-1) u |y|"),
               inputs=_prod_inputs),
    _scan("cumprod", np.cumprod,
          Absolute(_cumprod_scale, factor=1.0, formula="E = k u |y_k| (k factors before y_k)"),
          lambda fx: _scan_inputs(fx, _product_elements(fx), max_side=8)),
    # -- second moments: population variance (ddof 0) in both flavors ---------------
    _reduction("var", np.var, _tolerance_in_u(
        _var_bound, "E = dm^2 + (4 sqrt(n) + 4) u (var + dm^2), "
                    "dm = min(n-1, 4 sqrt(n)) u mean|x| + 2 u |mean|"), inputs=_variance_inputs),
    _reduction("std", np.std, _tolerance_in_u(
        _std_bound, "E = max(sqrt(var + E_var) - std, std - sqrt(max(var - E_var, 0))) "
                    "+ u std"), inputs=_variance_inputs),
    # -- logsumexp: must not overflow where the result is finite --------------------
    _reduction("logsumexp", _logsumexp, _tolerance_in_u(
        _logsumexp_bound, "E = u (4 sqrt(n) + 8 + sum p_i |x_i - max|) + 4 ulp(log s)")
        + Rounded(1), inputs=_logsumexp_inputs),
    # -- logical reductions on float data (nonzero is true) --------------------------
    _reduction("any", np.any, Exact(), inputs=_truthy_inputs, result="bool"),
    _reduction("all", np.all, Exact(), inputs=_truthy_inputs, result="bool"),
    # -- indices: first occurrence on ties ------------------------------------------
    _scan("argmax", np.argmax, Exact(), lambda fx: _scan_inputs(fx, ties=True), result="int"),
    _scan("argmin", np.argmin, Exact(), lambda fx: _scan_inputs(fx, ties=True), result="int"),
    # -- Keras 3 only --------------------------------------------------------------
    Op(name="count_nonzero", family="reductions", structure=AXIS_STRUCTURE,
       inputs=lambda fx: _truthy_inputs(fx, keepdims=False),
       reference=_count_nonzero, tolerance=Exact(),
       keras3=keras3("count_nonzero", "x", axis="axis"), keras2=None, result="int"),
    _reduction("median", np.median, Reduction(_median_terms) + Rounded(1), k2=False),
]

# Keras 2 has no count_nonzero or median in keras.backend.
