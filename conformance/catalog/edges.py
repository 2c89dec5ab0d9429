"""Edge cases: `edge_<op>`, an elementwise or reduction catalog op fed special values.

Each entry derives from an ordinary op of the elementwise or reductions family: the
same calls, reference and tolerance, with inputs whose elements are partly replaced by
named special points (conformance.specials): NaN, +-inf, +-0, +-max, +-tiny of floatx
and the op's own points (`OWN_POINTS`: overflow thresholds, domain edges, halfway
cases). The references are NumPy's in float64 (scipy's logsumexp), which follow IEEE
754 and C99 Annex F at these points, as Keras 3 documents NumPy semantics for
keras.ops; compare matches their NaN and +-inf positions exactly (an overflow in floatx
is expected as inf). For binary ops, half the examples also put the same point at the
same positions of both inputs (inf - inf, 0 / 0, nan == nan), pairs that independent
draws seldom make. Every case has one example that holds every point (every pair of
points for binary ops and reductions, a reduction reducing each pair on its own).

The ordinary cases stay as they are, so their numerics are visible on their own.
Ops with no edge case say why in `WITHOUT_EDGES` (`conformance ops` shows both).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st
from scipy import special as scipy_special

from conformance import specials, structure
from conformance import strategies as S
from conformance.catalog import Op, elementwise, reductions
from conformance.tolerance import Rounded


def _limits(floatx):
    finfo = np.finfo(floatx)
    return float(finfo.max), float(finfo.tiny)


def _exp_thresholds(log):
    def points(floatx):
        big, tiny = _limits(floatx)
        return {**specials.around("overflow", log(big), floatx),
                **specials.around("underflow", log(tiny), floatx)}
    return points


def _domain_ends(floatx):
    """+-1 and the floatx numbers just past them (arcsin, arccos, arctanh)."""
    past = float(specials.step(np.asarray(1.0, dtype=floatx), +1))
    return {"+1": 1.0, "-1": -1.0, "+1+": past, "-1-": -past}


def _one_past_minus_one(floatx):
    return {"-1": -1.0, "-1-": float(specials.step(np.asarray(-1.0, dtype=floatx), -1))}


_HALVES = {"+0.5": 0.5, "-0.5": -0.5, "+1.5": 1.5, "+2.5": 2.5, "-2.5": -2.5}
_UNITS = {"+1": 1.0, "-1": -1.0}

# The op's own points beside specials.common, by op name: floatx -> {name: value}.
OWN_POINTS = {
    "exp": _exp_thresholds(np.log),
    "expm1": _exp_thresholds(np.log),
    "exp2": _exp_thresholds(np.log2),
    "sinh": lambda fx: specials.around("overflow", np.log(2 * _limits(fx)[0]), fx),
    "cosh": lambda fx: specials.around("overflow", np.log(2 * _limits(fx)[0]), fx),
    "square": lambda fx: specials.around("overflow", np.sqrt(_limits(fx)[0]), fx),
    "rad2deg": lambda fx: specials.around("overflow", _limits(fx)[0] * np.pi / 180, fx),
    "tan": lambda fx: specials.around("pi/2", np.pi / 2, fx),
    "log": lambda fx: _UNITS, "log2": lambda fx: _UNITS, "log10": lambda fx: _UNITS,
    "sqrt": lambda fx: _UNITS, "cbrt": lambda fx: _UNITS,
    "log1p": _one_past_minus_one,
    "arcsin": _domain_ends, "arccos": _domain_ends, "arctanh": _domain_ends,
    **{name: (lambda fx: _HALVES) for name in ("floor", "ceil", "round", "trunc")},
    "power": lambda fx: {**_UNITS, "+2": 2.0, "-2": -2.0, "+0.5": 0.5, "+3": 3.0},
}
BINARY_POINTS = _UNITS  # every binary op's, beside its own

# Where the ordinary case's tolerance rests on its input range, which points leave.
TOLERANCE = {
    # Exact only while quotients are small integers; at +-max / small divisors the
    # quotient is far past 2^p and floor(x1 / x2) is that quotient, rounded once.
    "floor_divide": Rounded(1),
}

# Elementwise ops without an edge case, and why.
WITHOUT_EDGES = {
    name: f"the broadcasting variant of {name[:-len('_broadcast')]}, whose edge case "
          "covers its special values"
    for name in ("add_broadcast", "multiply_broadcast", "maximum_broadcast", "equal_broadcast")
}


# The structural dimension that gives each case one example of every point (every pair
# of points for binary ops) beside its drawn examples, which mix points into ordinary
# inputs at random positions.
LAYOUT = "layout"


def points_for(name: str, floatx: str, binary: bool) -> dict[str, float]:
    own = OWN_POINTS.get(name, lambda fx: {})(floatx)
    return {**specials.common(floatx), **(BINARY_POINTS if binary else {}), **own}


PLACED_ONE_IN = 3  # an element of a drawn example is a point with this odds (1 in 3)


def _placed(example: dict, keys: tuple, values: np.ndarray, floatx: str):
    """A strategy of `example` with about one element in PLACED_ONE_IN of each input in
    `keys` replaced by one of `values` (the points), and, when a drawn flag says so, the
    first input's points copied to the same positions of the second."""
    def one_input(key):
        shape = example[key].shape
        return st.tuples(S.int_arrays(shape, 0, PLACED_ONE_IN - 1),
                         S.int_arrays(shape, 0, len(values) - 1))

    def place(drawn):
        placements, paired = drawn
        placed = dict(example)
        for key, (lots, picks) in zip(keys, placements):
            placed[key] = np.where(lots == 0, values[picks], example[key]).astype(floatx)
        if paired and len(keys) == 2 and example[keys[0]].shape == example[keys[1]].shape:
            lots, picks = placements[0]
            placed[keys[1]] = np.where(lots == 0, values[picks], placed[keys[1]]).astype(floatx)
        return placed

    return st.tuples(st.tuples(*map(one_input, keys)), st.booleans()).map(place)


def _inputs_of(forward: Op) -> tuple[str, ...]:
    return ("x1", "x2") if forward.keras3.args == ("x1", "x2") else ("x",)


def _grid(keys: tuple, values: np.ndarray) -> dict:
    """Every point once (unary) or every pair of points (binary), as 1-D inputs."""
    if len(keys) == 1:
        return {keys[0]: values.copy()}
    return {keys[0]: np.repeat(values, len(values)), keys[1]: np.tile(values, len(values))}


def _derived(forward: Op, keys: tuple, grid, specials_of, **fields) -> Op:
    """The edge entry of `forward`: its examples with points placed in `keys`, plus the
    covering row's `grid(values)` example; its reference (or REFERENCE's) with IEEE
    warnings silenced; `specials_of(example, points)` labels the special elements."""
    binary = len(keys) == 2

    def points(floatx):
        return points_for(forward.name, floatx, binary)

    def inputs(floatx):
        values = np.array(list(points(floatx).values()), dtype=floatx)
        mixed = forward.inputs(floatx).flatmap(lambda ex: _placed(ex, keys, values, floatx))
        layout = structure.pinned(LAYOUT, st.just("mixed"))
        return layout.flatmap(lambda l: st.just(grid(values)) if l == "grid" else mixed)

    forward_reference = REFERENCE.get(forward.name, forward.reference)

    def reference(example, ctx):
        with np.errstate(all="ignore"):
            return forward_reference(example, ctx)

    return dataclasses.replace(
        forward, name=f"edge_{forward.name}", family="edges", inputs=inputs,
        reference=reference, structure={LAYOUT: ("grid",)},
        specials=lambda example: specials_of(example, points(str(example[keys[0]].dtype))),
        **fields)


def _edge(forward: Op) -> Op:
    keys = _inputs_of(forward)
    own = OWN_POINTS[forward.name]("float32") if forward.name in OWN_POINTS else {}
    return _derived(
        forward, keys, lambda values: _grid(keys, values),
        lambda example, points: specials.elementwise(example, keys, points),
        tolerance=TOLERANCE.get(forward.name, forward.tolerance),
        notes=f"{forward.name} at special values: NaN, +-inf, +-0, +-max, +-tiny"
              + "".join(f", {name}" for name in own))


# -- reductions: the points folded with each other and with ordinary values -----------

SCANS = {"cumsum", "cumprod"}  # output k folds the slice up to k


def _logsumexp_reference(example, ctx):
    """scipy's logsumexp, which gives inf for a slice holding +inf and -inf for one of
    -inf only, where the catalog's max-shifted form gives inf - inf = NaN."""
    return reductions.apply(scipy_special.logsumexp, example)


def _wide(fn):
    """fn over the example's axis in long double (x86's 80-bit format): float64's own
    mean, median and std of +-max overflow in their intermediates, where the result is
    max. Rounded to float64 after."""
    def reference(example, ctx):
        x = example["x"].astype(np.longdouble)
        return np.asarray(reductions.apply(fn, example, x=x)).astype("float64")
    return reference


REFERENCE = {"logsumexp": _logsumexp_reference, "mean": _wide(np.mean),
             "median": _wide(np.median), "std": _wide(np.std), "var": _wide(np.var)}

# NumPy's reductions computed in floatx, for the ones whose intermediates can overflow
# where the result does not (compare excuses a target that overflows as NumPy does).
IN_FLOATX = {"sum": np.sum, "mean": np.mean, "prod": np.prod, "var": np.var, "std": np.std,
             "median": np.median, "logsumexp": scipy_special.logsumexp,
             "cumsum": np.cumsum, "cumprod": np.cumprod}


def _in_floatx(name: str):
    fn = IN_FLOATX[name]

    def outputs(example):
        x = example["x"]
        with np.errstate(all="ignore"):
            if name in SCANS:
                return [fn(x, axis=reductions.scan_axis(example))]
            return [np.asarray(reductions.apply(fn, example, x=x))]
    return outputs


def _reduction_grid(forward: Op, values: np.ndarray) -> dict:
    """Every pair of points as one row, reduced along the last axis: row (i, j) holds
    points i and j and nothing else."""
    grid = {"x": np.stack([np.repeat(values, len(values)), np.tile(values, len(values))], axis=1),
            "axis": -1}
    if "keepdims" in forward.keras3.kwargs:
        grid["keepdims"] = False
    return grid


def _reduction_edge(forward: Op) -> Op:
    return _derived(
        forward, ("x",), lambda values: _reduction_grid(forward, values),
        lambda example, points: specials.reduced(example, points,
                                                 prefix=forward.name in SCANS),
        floatx_reference=_in_floatx(forward.name) if forward.name in IN_FLOATX else None,
        notes=f"{forward.name} of slices holding NaN, +-inf, +-0, +-max, +-tiny")


OPS = ([_edge(op) for op in elementwise.OPS if op.name not in WITHOUT_EDGES]
       + [_reduction_edge(op) for op in reductions.OPS])
_EDGE_OF = {op.name[len("edge_"):]: op for op in OPS}
_BINARY = {op.name for op in elementwise.OPS if len(_inputs_of(op)) == 2}

_CLASSES = {"nan": "nan", "+inf": "inf", "-inf": "inf", "+0": "zero", "-0": "zero",
            "+max": "extremes", "-max": "extremes", "+tiny": "extremes", "-tiny": "extremes"}


def classes(name: str) -> list[str]:
    """The edge classes an op's points cover: nan, inf, zero, extremes (+-max, +-tiny),
    overflow (thresholds), op points (domain edges, halfway cases, small integers)."""
    found = []
    for point in points_for(name, "float32", binary=name in _BINARY):
        kind = _CLASSES.get(point) or ("overflow" if point.startswith(("overflow", "underflow"))
                                       else "op points")
        if kind not in found:
            found.append(kind)
    return found


def coverage(op: Op) -> str:
    """What `conformance ops` says of an op's edges: its edge case and classes, or why
    it has none."""
    if op.family == "edges":
        return ", ".join(classes(op.name[len("edge_"):]))
    if op.name in _EDGE_OF:
        return _EDGE_OF[op.name].name
    if op.name in WITHOUT_EDGES:
        return WITHOUT_EDGES[op.name]
    return "none yet: issue 17 covers the elementwise and reductions families first"
