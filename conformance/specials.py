"""Special values: the inputs where backends part ways, and what each returns there.

The edge cases (conformance.catalog.edges) mix named special *points* into ordinary
inputs: NaN, +-inf, +-0, +-the largest finite value and +-the smallest normal of floatx
(`common`), plus points an op names for itself (its overflow threshold, the edges of its
domain). Judging needs nothing new: compare matches the NaN and +-inf positions of the
reference (NumPy's IEEE 754 results, rounded to floatx) exactly, and the ordinary
tolerance holds for the finite values.

What this module adds is what the report's special-values table shows: for each special
input, named by its points ("x = +inf", "x1 = +0, x2 = -0"), the values the reference
and each target returned there. A value is written as its class (nan, +inf, -inf, 0) or,
where every input of the element is a named point, its number to 4 digits; where an
ordinary input takes part, as "finite". Signed zero is ignored in outputs, and values
below the comparison's floor count as 0, as in the comparison; the table marks a
target returning a class of value (`kind`) that the reference does not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.tolerance import floor

MAX_VALUES = 8  # distinct values kept per (label, target, floatx)
ORDINARY = "finite"  # the name of an input element that is no named point


def common(floatx: str) -> dict[str, float]:
    """The points every edge case mixes in, by name."""
    finfo = np.finfo(floatx)
    big, tiny = float(finfo.max), float(finfo.tiny)
    return {"nan": float("nan"), "+inf": float("inf"), "-inf": float("-inf"),
            "+0": 0.0, "-0": -0.0, "+max": big, "-max": -big, "+tiny": tiny, "-tiny": -tiny}


def around(name: str, value: float, floatx: str) -> dict[str, float]:
    """The two floatx numbers either side of `value` (an overflow threshold, say), named
    f"{name}-" and f"{name}+"; when floatx holds `value` exactly, its neighbours."""
    below = np.asarray(value, dtype=floatx)
    if float(below) >= value:
        below = step(below, -1)
    above = step(below, +1)
    if float(above) == value:
        above = step(above, +1)
    return {f"{name}-": float(below), f"{name}+": float(above)}


def step(value, direction: int):
    """The next number of value's dtype up (+1) or down (-1)."""
    value = np.asarray(value)
    return np.nextafter(value, np.asarray(direction * np.inf, dtype=value.dtype))


def names_of(values: np.ndarray, points: dict[str, float]) -> np.ndarray:
    """The point name of each element of `values` (ORDINARY where none matches; the
    first match wins; +0 and -0 told apart by the sign bit)."""
    names = np.full(values.shape, ORDINARY, dtype=object)
    unnamed = np.ones(values.shape, dtype=bool)
    for name, point in points.items():
        if np.isnan(point):
            hit = np.isnan(values)
        else:
            hit = (values == point) & (np.signbit(values) == np.signbit(point))
        hit &= unnamed
        names[hit] = name
        unnamed &= ~hit
    return names


@dataclass(frozen=True)
class Special:
    """The elements of output `output` computed from one combination of points."""

    label: str  # e.g. "x1 = +inf, x2 = -inf"
    output: int
    mask: np.ndarray  # bool, the output's shape
    exact: bool  # every input of these elements is a named point: values are shown


def elementwise(example: dict, keys: tuple[str, ...], points: dict[str, float],
                output: int = 0) -> list[Special]:
    """The specials of an elementwise op whose inputs `keys` have the output's shape:
    one per combination of point names that holds at least one named point."""
    named = [names_of(np.asarray(example[key], dtype="float64"), points) for key in keys]
    shape = named[0].shape
    if any(n.shape != shape for n in named):
        return []
    combos = list(zip(*(n.ravel() for n in named)))
    labels = np.array([", ".join(f"{k} = {n}" for k, n in zip(keys, combo))
                       if any(n != ORDINARY for n in combo) else "" for combo in combos],
                      dtype=object).reshape(shape)
    exact = {", ".join(f"{k} = {n}" for k, n in zip(keys, combo)): ORDINARY not in combo
             for combo in combos}
    return [Special(label, output, labels == label, exact[label])
            for label in sorted(set(labels.ravel().tolist()) - {""})]


def reduced(example: dict, points: dict[str, float], prefix: bool = False) -> list[Special]:
    """The specials of a reduction of example["x"] over example["axis"] (None: every
    axis; keepdims as the example says): each output element is labelled by the points
    its slice holds ("x holds +inf, nan"); `prefix` for scans (cumsum), whose element k
    folds the slice up to k."""
    x = np.asarray(example["x"], dtype="float64")
    named = names_of(x, points)
    axis, keepdims = example.get("axis"), bool(example.get("keepdims", False))
    axis = tuple(axis) if isinstance(axis, list) else axis
    holds = {}
    for name in points:
        hit = named == name
        if prefix:
            flat = axis is None
            hit = np.logical_or.accumulate(hit.ravel() if flat else hit, axis=0 if flat else axis)
        else:
            hit = np.any(hit, axis=axis, keepdims=keepdims)
        holds[name] = np.asarray(hit)
    shape = next(iter(holds.values())).shape
    labels = np.full(shape, "", dtype=object)
    for name, hit in holds.items():
        labels[hit] = np.where(labels[hit] == "", f"x holds {name}", labels[hit] + f", {name}")
    return [Special(label, 0, labels == label, False)
            for label in sorted(set(labels.ravel().tolist()) - {""})]


def text(value, exact: bool, floatx: str) -> str:
    """One output value as the table shows it: below the comparison's floor (twice the
    smallest normal, where flushing to zero is no error) it is 0."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    value = float(value)
    if np.isnan(value):
        return "nan"
    if np.isinf(value):
        return "+inf" if value > 0 else "-inf"
    if abs(value) < floor(floatx):
        return "0"
    return f"{value:.4g}" if exact else ORDINARY


def kind(text_: str) -> str:
    """The class of a value's text: nan, +inf, -inf, 0, True, False, or finite."""
    return text_ if text_ in ("nan", "+inf", "-inf", "0", "True", "False") else ORDINARY


def observe(outputs: list[np.ndarray], refs: list[np.ndarray], specials: list[Special],
            floatx: str, in_floatx: list | None = None) -> dict:
    """label -> {"reference": texts, "values": texts} for one example: what the reference
    (rounded to floatx, where overflow is inf) and the target returned at each special.
    `in_floatx`, NumPy's outputs computed in floatx where an op has them, adds its values
    to the reference's: compare accepts those too."""
    seen = {}
    for special in specials:
        if special.output >= len(outputs):
            continue
        out, ref = outputs[special.output], refs[special.output]
        if out.shape != special.mask.shape or ref.shape != special.mask.shape:
            continue
        accepted = [ref] + ([np.asarray(in_floatx[special.output])] if in_floatx else [])
        reference = set()
        for values in accepted:
            if values.shape != special.mask.shape:
                continue
            if values.dtype.kind == "f":
                with np.errstate(over="ignore", invalid="ignore"):
                    values = values.astype(floatx)
            reference |= {text(v, special.exact, floatx) for v in values[special.mask].tolist()}
        seen[special.label] = {
            "reference": reference,
            "values": {text(v, special.exact, floatx) for v in out[special.mask].tolist()}}
    return seen


def merge(into: dict, seen: dict | None) -> None:
    """Add one example's observations to a case's: label -> {"reference", "values"}
    (sorted lists, at most MAX_VALUES each)."""
    for label, entry in (seen or {}).items():
        held = into.setdefault(label, {"reference": [], "values": []})
        for key in ("reference", "values"):
            held[key] = sorted(set(held[key]) | set(entry[key]))[:MAX_VALUES]
