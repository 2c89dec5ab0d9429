"""Number and text formatting shared by the report's pieces."""
from __future__ import annotations

import math
import re

import numpy as np

from conformance import compare

# Verdicts, worst first; `known` and `convention` (a gradient at a non-differentiable
# point, conformance.kinks) sit between the divergent ones and coverage gaps.
VERDICTS = ["crash", "timeout", "error", "shape", "dtype", "nan", "fail", "known",
            "convention", "unsupported", "pass"]
DIVERGENT = compare.DIVERGENT
ERRORING = {"crash", "timeout", "error"}
LABELS = {"pass": "pass", "fail": "fail", "nan": "NaN/inf", "dtype": "dtype", "shape": "shape",
          "unsupported": "unsupported", "error": "error", "crash": "crash",
          "timeout": "timeout", "known": "known", "convention": "convention"}
FLOATX_ORDER = ["float16", "bfloat16", "float32", "float64"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def clean_text(value) -> str:
    """Text from a backend, minus characters XML/HTML cannot carry."""
    return _CONTROL.sub("\ufffd", "" if value is None else str(value))


def rank(verdict: str | None) -> int:
    try:
        return VERDICTS.index(verdict)
    except ValueError:
        return len(VERDICTS)


def worst(verdicts) -> str | None:
    """The most severe verdict; a coverage gap (unsupported) only when nothing ran."""
    verdicts = [v for v in verdicts if v]
    ran = [v for v in verdicts if v != "unsupported"]
    return min(ran or verdicts, key=rank) if verdicts else None


def number(value) -> float | None:
    """A float from a JSON number or its string stand-ins ("nan", "inf", "-inf")."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def short(value, digits: int = 2) -> str:
    """Compact: 0, 0.87, 12, 3.4e+05, inf."""
    x = number(value)
    if x is None:
        return "–"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    magnitude = abs(x)
    if 100 <= magnitude < 1e4:
        return f"{x:.0f}"
    if 1e-3 <= magnitude < 100:
        return f"{x:.{digits}g}"
    mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def sci(value, digits: int = 3) -> str:
    x = number(value)
    if x is None:
        return "–"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}g}"


def floatx_key(floatx: str | None):
    name = floatx or ""
    return (FLOATX_ORDER.index(name) if name in FLOATX_ORDER else len(FLOATX_ORDER), name)


def unit_roundoff(floatx: str) -> float | None:
    try:
        return float(np.finfo(floatx).eps) / 2
    except (TypeError, ValueError):
        return None


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"
