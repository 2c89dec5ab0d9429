"""Judging a computed check: an output against a reference under a bound given per
element, by the harness's own comparison (`compare.compare`), so the NaN / inf rules
and the floor (2 x the smallest normal of floatx, for flush-to-zero) are the op
cases'. The checks' bounds are therefore written without the floor."""
from __future__ import annotations

import math

import numpy as np

from conformance import compare, kerasfacts
from conformance.tolerance import Tolerance


class Given(Tolerance):
    """A bound computed beforehand, element by element, by the check's own formula."""

    formula = "E given per element by the check"

    def __init__(self, bound: np.ndarray):
        self.bound = bound

    def allowed(self, example, ref, floatx, index):
        return self.bound


def within(observed: np.ndarray, reference: np.ndarray, bound: np.ndarray,
           floatx: str = kerasfacts.DEFAULT_FLOATX) -> tuple[bool, float, float]:
    """(ok, max |error|, worst error / allowed). A check holds a configuration, not a
    value range: any non-finite output fails it, even one the reference shares."""
    if observed.shape != reference.shape:
        return False, math.inf, math.inf
    verdict = compare.compare([observed], [reference], Given(bound), {}, floatx, [])
    if not np.all(np.isfinite(observed)):
        return False, math.inf, math.inf
    return verdict.status == "pass", verdict.max_abs_err, verdict.worst_ratio
