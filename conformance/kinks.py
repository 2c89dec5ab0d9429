"""Non-differentiable points: where a gradient has no single right value.

At a kink (relu and abs at 0, a tie of maximum or minimum, clip at a bound, floor and
round at a jump) the catalog says which gradient values are right: the subgradients,
the interval between the one-sided derivatives, [lo, hi] times the cotangent. For a
tie shared by two inputs the pair must also add up to the cotangent (maximum's
subgradients at x1 = x2 are (a, 1 - a) for a in [0, 1]; taking all of it for both
inputs counts the step twice). Within that set backends choose a convention; the
reference takes the one the op names, and a target choosing another gets the verdict
``convention``, which does not fail the run: the report's conventions table shows
what each target returns. A NaN or inf there fails (``nan``), as does a value outside
the set (``fail``): the forward value is finite and ordinary.

Values at a kink are products of the cotangent and a small constant, so the slack is a
few roundings of the cotangent: ``ALLOWED_ULPS`` u |ct| plus floatx's floor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from conformance.tolerance import floor

ALLOWED_ULPS = 4
MAX_VALUES = 8  # distinct convention values kept per (label, target, floatx)


@dataclass(frozen=True)
class Kink:
    """The elements of gradient output `output` where the op is not differentiable."""

    label: str  # what the point is, e.g. "d/dx1 at x1 = x2"
    output: int
    mask: np.ndarray  # bool, the output's shape
    scale: np.ndarray  # the cotangent there: a gradient is (a value in [lo, hi]) * scale
    lo: float
    hi: float
    convention: float  # the value (times scale) the reference takes
    pair: int | None = None  # the output whose values here must add up with these to scale


def mask_out(values: list[np.ndarray], refs: list[np.ndarray], kinks: list[Kink]) -> None:
    """Set every kinked element of `values` (compare's float64 copies of the outputs) to
    the reference's, so that the ordinary comparison says nothing about kinks."""
    for kink in kinks:
        out = values[kink.output]
        if out.shape == kink.mask.shape and out.dtype.kind == "f":
            out[kink.mask] = refs[kink.output][kink.mask]


@dataclass
class Finding:
    status: str = "pass"  # pass | convention | fail | nan
    message: str = ""
    # label -> {"reference": the reference's convention, "values": the values returned},
    # both as multiples of the cotangent
    conventions: dict | None = None


def judge(outputs: list[np.ndarray], kinks: list[Kink], floatx: str) -> Finding:
    """What a target returned at the kinks: its conventions, and whether each value is a
    subgradient."""
    finding = Finding(conventions={})
    eps, floor_ = float(np.finfo(floatx).eps), floor(floatx)
    for kink in kinks:
        out = outputs[kink.output]
        if out.shape != kink.mask.shape or not kink.mask.any():
            continue
        got = out.astype("float64")[kink.mask]
        scale = kink.scale.astype("float64")[kink.mask]
        slack = ALLOWED_ULPS * eps * np.abs(scale) + floor_
        bad = _first(~np.isfinite(got))
        if bad is not None:
            _worsen(finding, "nan", f"{kink.label}: gradient {got[bad]!r} where the forward "
                                    "value is finite")
            continue
        low, high = np.sort([kink.lo * scale, kink.hi * scale], axis=0)  # ct may be negative
        bad = _first((got < low - slack) | (got > high + slack))
        if bad is not None:
            _worsen(finding, "fail", f"{kink.label}: gradient {got[bad]:.6g} for cotangent "
                                     f"{scale[bad]:.6g}, not in the subgradients "
                                     f"[{kink.lo:g}, {kink.hi:g}] x cotangent")
            continue
        if kink.pair is not None and outputs[kink.pair].shape == kink.mask.shape:
            total = got + outputs[kink.pair].astype("float64")[kink.mask]
            bad = _first(np.abs(total - scale) > 2 * slack)
            if bad is not None:
                _worsen(finding, "fail", f"{kink.label}: the tied inputs' gradients add up "
                                         f"to {total[bad]:.6g} for cotangent {scale[bad]:.6g}")
                continue
        seen = finding.conventions.setdefault(kink.label, {"reference": kink.convention,
                                                           "values": set()})
        seen["values"].update(_normalized(got, scale, eps, floor_))
        bad = _first(np.abs(got - kink.convention * scale) > slack)
        if bad is not None:
            _worsen(finding, "convention", f"{kink.label}: {got[bad] / scale[bad]:.6g} x "
                                           f"cotangent, the reference takes {kink.convention:g}")
    return finding


_RANK = ["nan", "fail", "convention", "pass"]


def _worsen(finding: Finding, status: str, message: str) -> None:
    if _RANK.index(status) < _RANK.index(finding.status):
        finding.status, finding.message = status, message


def _first(flags: np.ndarray):
    return int(np.argmax(flags)) if flags.any() else None


def _normalized(got: np.ndarray, scale: np.ndarray, eps: float, floor_: float) -> set:
    """The values as multiples of the cotangent, to 4 digits, where the cotangent is
    large enough for its multiples to say which (near the smallest normal, 0.5 ct may
    be flushed to 0)."""
    usable = np.abs(scale) * eps > floor_
    return {float(f"{v:.4g}") + 0.0 for v in got[usable] / scale[usable]}


def merge(into: dict, conventions: dict | None) -> None:
    """Add one example's conventions to a case's: label -> {"reference", "values"
    (sorted, at most MAX_VALUES)}."""
    for label, seen in (conventions or {}).items():
        entry = into.setdefault(label, {"reference": seen["reference"], "values": []})
        entry["values"] = sorted(set(entry["values"]) | set(seen["values"]))[:MAX_VALUES]
