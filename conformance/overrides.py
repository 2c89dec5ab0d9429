"""The one override table: every widening of the tolerance model, with its reason.

Each entry multiplies the allowed error of matching (op, target, floatx) results.
Add an entry only with a measured reason; a real divergence belongs in the
known-divergence registry instead, never here.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True)
class Override:
    op: str
    factor: float
    reason: str
    target: str = "*"
    floatx: str = "*"


OVERRIDES: list[Override] = []


def factor(op: str, target: str, floatx: str) -> tuple[float, list[str]]:
    scale, reasons = 1.0, []
    for entry in OVERRIDES:
        if (fnmatch.fnmatchcase(op, entry.op) and fnmatch.fnmatchcase(target, entry.target)
                and fnmatch.fnmatchcase(floatx, entry.floatx)):
            scale *= entry.factor
            reasons.append(entry.reason)
    return scale, reasons
