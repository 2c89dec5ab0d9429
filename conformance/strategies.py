"""Small composable hypothesis strategies for op inputs, drawn in floatx.

Inputs are drawn directly in floatx, so every target receives exactly the values
the reference sees. Subnormal inputs are excluded: flush-to-zero on input is a
platform setting, not a Keras conformance question.
"""
from __future__ import annotations

import functools

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance import structure

WIDTH = {"float16": 16, "float32": 32, "float64": 64}
# Side lengths for shapes built axis by axis (shrinks to 1).
SIDES = (1, 2, 3, 4, 5, 8)
# Shapes come from a short menu per rank instead of being built axis by axis: JAX
# compiles every primitive for every new shape and reuses the compiled code for a
# shape it has seen, so a few shapes reused across examples and ops cost a fraction
# of fresh ones. Each rank keeps size-1 axes (broadcasting, squeezing), unequal
# sides, and 8 for callers allowing it; the first entry, the smallest, is where
# hypothesis shrinks to. A shape the menu cannot give (min_side > 1 on some
# ranks) is built axis by axis, as it is everywhere with reuse off (the thorough
# profile: more shapes, more compiles).
SHAPE_MENU = {
    0: [()],
    1: [(1,), (3,), (5,), (8,)],
    2: [(1, 1), (2, 3), (4, 1), (1, 5), (3, 8)],
    3: [(1, 1, 1), (2, 3, 4), (2, 1, 3), (3, 4, 1), (1, 5, 2)],
    4: [(1, 1, 1, 1), (2, 3, 1, 4), (1, 2, 3, 2), (2, 2, 2, 3)],
    5: [(1, 1, 1, 1, 1), (2, 1, 3, 2, 2), (1, 2, 2, 3, 1)],
}
_reuse_shapes = True


def reuse_shapes(enabled: bool) -> None:
    """Draw shapes from SHAPE_MENU (True) or axis by axis from SIDES (False)."""
    global _reuse_shapes
    _reuse_shapes = enabled
SMALL_SCALE = 1e-3  # near-zero draws span this fraction of the range


def representable(value: float, floatx: str, toward_zero: bool = True) -> float:
    """`value` rounded into floatx, never outside the interval it bounds."""
    rounded = float(np.asarray(value, dtype=floatx))
    if toward_zero and abs(rounded) > abs(value):
        rounded = float(np.nextafter(np.asarray(rounded, dtype=floatx),
                                     np.asarray(0, dtype=floatx)))
    return rounded


def largest(floatx: str) -> float:
    return float(np.finfo(floatx).max)


MAX_BUILT = 4096  # strategies kept by _built_once (a shape strategy as key makes new ones)


def _built_once(build):
    """Strategies built once per distinct arguments. Composites ask for them again for
    every example (an array strategy per drawn shape), and a new hypothesis strategy
    validates itself on first use, a visible share of drawing time. The same arguments
    give the same strategy, so the examples drawn are identical."""
    built = {}

    @functools.wraps(build)
    def strategy(*args, **kwargs):
        try:
            key = (tuple(map(_exact, args)), tuple(sorted((k, _exact(v)) for k, v in kwargs.items())))
            hash(key)
        except TypeError:  # unhashable arguments (a shape given as a list): built afresh
            return build(*args, **kwargs)
        if key not in built:
            if len(built) >= MAX_BUILT:
                built.clear()
            built[key] = build(*args, **kwargs)
        return built[key]
    return strategy


def _exact(value):
    """A key that tells apart what == does not: 0.0 and -0.0 bound different ranges."""
    return (type(value), repr(value)) if isinstance(value, (float, np.floating)) else value


@_built_once
def floats(floatx: str, lo: float, hi: float, exclude_min=False, exclude_max=False):
    """Floats in [lo, hi]; when the range holds 0, small magnitudes are mixed in on
    purpose: cancellation bugs (exp(x) - 1 for expm1, log(1 + x) for log1p) only show
    for |x| << 1, which a uniform draw over [-10, 10] almost never produces."""
    lo = max(lo, -largest(floatx))
    hi = min(hi, largest(floatx))
    options = dict(width=WIDTH[floatx], allow_nan=False, allow_infinity=False,
                   allow_subnormal=False)
    wide = st.floats(representable(lo, floatx), representable(hi, floatx),
                     exclude_min=exclude_min, exclude_max=exclude_max, **options)
    if not lo <= 0 <= hi or hi - lo < 1:
        return wide
    small = SMALL_SCALE * max(abs(lo), abs(hi))
    near_zero = st.floats(representable(max(lo, -small), floatx),
                          representable(min(hi, small), floatx), **options)
    return st.one_of(wide, near_zero)


def side(max_side: int = 8, min_side: int = 1):
    return st.sampled_from([s for s in SIDES if min_side <= s <= max_side])


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 5):
    """Shapes of rank min_dims..max_dims (a covering row may pin the rank)."""
    rank = structure.pinned("rank", st.integers(min_dims, max_dims),
                            structure.resolve_within(min_dims, max_dims))
    return rank.flatmap(lambda n: _shapes_of_rank(n, min_side, max_side))


def _shapes_of_rank(ndim: int, min_side: int, max_side: int):
    fitting = [s for s in SHAPE_MENU.get(ndim, ())
               if all(min_side <= d <= max_side for d in s)]
    if _reuse_shapes and fitting:
        return st.sampled_from(fitting)
    return st.tuples(*[side(max_side, min_side)] * ndim)


@_built_once
def arrays(floatx: str, shape, lo: float = -10.0, hi: float = 10.0, **float_options):
    """Arrays of `shape` (a tuple or a strategy) with elements in [lo, hi]."""
    return hnp.arrays(floatx, shape, elements=floats(floatx, lo, hi, **float_options))


@_built_once
def int_arrays(shape, lo: int, hi: int, dtype: str = "int32"):
    return hnp.arrays(dtype, shape, elements=st.integers(lo, hi))


@_built_once
def bool_arrays(shape):
    return hnp.arrays("bool", shape, elements=st.booleans())


def axis_for(ndim: int, allow_none: bool = True, negative: bool = True):
    """A valid axis for an array of rank `ndim` (None means all axes); a covering row
    may pin it (conformance.structure)."""
    choices = list(range(ndim)) + (list(range(-ndim, 0)) if negative else [])
    options = ([st.none()] if allow_none else []) + ([st.sampled_from(choices)] if choices else [])
    drawn = st.one_of(*options) if options else st.none()
    return structure.pinned("axis", drawn, lambda symbol: structure.resolve_axis(
        symbol, ndim, allow_none, negative))


def broadcast_shapes(num: int = 2, min_dims: int = 0, max_dims: int = 3, max_side: int = 4):
    """`num` mutually broadcastable shapes (input shapes only)."""
    if not _reuse_shapes:
        return hnp.mutually_broadcastable_shapes(
            num_shapes=num, min_dims=min_dims, max_dims=max_dims, max_side=max_side).map(
            lambda result: result.input_shapes)
    return shapes(min_dims, max_dims, max_side=max_side).flatmap(
        lambda full: st.tuples(*[st.sampled_from(_broadcast_variants(full))] * num))


def _broadcast_variants(full: tuple) -> list[tuple]:
    """Shapes that broadcast to `full`: itself first (where shrinking goes), then with
    the leading axis dropped, with the leading axis 1, the last axis alone, a scalar."""
    variants = [full, full[1:], (1,) + full[1:], full[-1:], ()]
    return list(dict.fromkeys(v for v in variants if len(v) <= len(full)))


@st.composite
def unary(draw, floatx: str, lo: float = -10.0, hi: float = 10.0, min_dims: int = 0,
          max_dims: int = 3, **float_options):
    """{"x": array}: the input of elementwise unary ops."""
    shape = draw(shapes(min_dims, max_dims))
    return {"x": draw(arrays(floatx, shape, lo, hi, **float_options))}


@st.composite
def binary(draw, floatx: str, lo: float = -10.0, hi: float = 10.0, lo2=None, hi2=None,
           broadcast: bool = True, **float_options):
    """{"x1", "x2"}: two arrays with broadcastable shapes."""
    if broadcast:
        shape1, shape2 = draw(broadcast_shapes(2))
    else:
        shape1 = shape2 = draw(shapes())
    x1 = draw(arrays(floatx, shape1, lo, hi, **float_options))
    x2 = draw(arrays(floatx, shape2, lo if lo2 is None else lo2, hi if hi2 is None else hi2,
                     **float_options))
    return {"x1": x1, "x2": x2}
