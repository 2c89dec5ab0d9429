"""Array records (``{"dtype", "shape", "values" | "head"...}``) as report tables.

Small arrays are shown whole, as a grid; large ones are summarised (shape, head,
min / max / mean). Differences are taken against the float64 reference element by
element; the worst element (the verdict's ``worst_index``) and elements whose NaN/inf
pattern differs from the reference are marked.
"""
from __future__ import annotations

import math

import numpy as np

from conformance.report.fmt import number

MAX_CELLS = 256  # elements shown per array in the report (records hold up to 64 anyway)


def is_array(record) -> bool:
    return isinstance(record, dict) and "dtype" in record and "shape" in record


def _flat(values) -> list:
    if isinstance(values, list):
        out = []
        for item in values:
            out.extend(_flat(item))
        return out
    return [values]


def to_numpy(record) -> np.ndarray | None:
    """The exact array of a record holding all its values (None when summarised)."""
    if not is_array(record) or "values" not in record:
        return None
    dtype = str(record["dtype"])
    flat = _flat(record["values"])
    shape = tuple(int(s) for s in record["shape"])
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return None
    try:
        if kind in "fc":
            data = np.array([number(v) if number(v) is not None else math.nan for v in flat],
                            dtype="float64")
            data = data.astype(dtype)
        else:
            data = np.array(flat, dtype=dtype)
        return data.reshape(shape)
    except (TypeError, ValueError, OverflowError):
        return None


def element_text(value, dtype: str) -> str:
    if isinstance(value, str):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(value, value)
    if isinstance(value, bool) or value is None:
        return str(value)
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = "O"
    if kind == "f" and isinstance(value, (int, float)):
        try:
            return str(np.dtype(dtype).type(value))
        except (OverflowError, ValueError):
            return repr(value)
    return str(value)


def _grid(texts: list[str], shape: list[int], marks: dict[int, str],
          titles: dict[int, str] | None = None) -> dict:
    """Rows of cells: 0-d -> one cell, 1-d -> one row, n-d -> rows of the last axis."""
    if not shape:
        return {"rows": [{"label": "", "cells": [(texts[0] if texts else "", marks.get(0, ""),
                                              (titles or {}).get(0, ""))]}],
                "truncated": False}
    width = max(int(shape[-1]), 1)
    rows = []
    lead = [int(s) for s in shape[:-1]]
    limit = min(len(texts), MAX_CELLS)
    for start in range(0, limit, width):
        index = start // width
        label = ""
        if lead:
            prefix = np.unravel_index(index, lead) if all(lead) else ()
            label = "[" + ", ".join(str(int(i)) for i in prefix) + ", :]"
        rows.append({"label": label,
                     "cells": [(texts[i], marks.get(i, ""), (titles or {}).get(i, "")) for i in
                               range(start, min(start + width, limit))]})
    return {"rows": rows, "truncated": len(texts) > limit}


def view(record, marks: dict[int, str] | None = None) -> dict:
    """A record as {"dtype", "shape", "grid" | "summary"} for the template."""
    if not is_array(record):
        return {"static": True, "text": repr(record), "grid": None, "summary": None}
    dtype = str(record.get("dtype"))
    shape = list(record.get("shape") or [])
    out = {"static": False, "dtype": dtype, "shape": "(" + ", ".join(map(str, shape)) +
           ("," if len(shape) == 1 else "") + ")", "grid": None, "summary": None}
    if "values" in record:
        texts = [element_text(v, dtype) for v in _flat(record["values"])]
        out["grid"] = _grid(texts, shape, marks or {})
    else:
        head = [element_text(v, dtype) for v in record.get("head") or []]
        out["summary"] = {"head": head, "min": record.get("min"), "max": record.get("max"),
                          "mean": record.get("mean")}
    return out


def difference(output, reference, floatx: str, worst_flat: int | None) -> dict | None:
    """Output minus reference, element by element, with offending elements marked.

    Returns {"view": grid view of the differences, "marks": {flat: class}} or None when
    the two cannot be compared element by element (summarised or shapes differ).
    """
    out, ref = to_numpy(output), to_numpy(reference)
    if out is None or ref is None or out.shape != ref.shape or out.dtype.kind not in "biuf":
        return None
    from conformance.tolerance import ulp

    out64 = out.astype("float64").ravel()
    ref64 = ref.astype("float64").ravel()
    with np.errstate(all="ignore"):
        diff = out64 - ref64
        ulps = np.abs(diff) / ulp(ref64, floatx) if ref64.size else diff
    special = (np.isnan(out64) != np.isnan(ref64)) | (
        np.isinf(out64) != np.isinf(ref64)) | (
        np.isinf(out64) & np.isinf(ref64) & (np.sign(out64) != np.sign(ref64)))
    marks = {int(i): "x" for i in np.flatnonzero(special)}
    if worst_flat is not None and 0 <= worst_flat < out64.size:
        marks[int(worst_flat)] = "w"
    texts = []
    for d, u, both_nan in zip(diff, ulps, np.isnan(out64) & np.isnan(ref64)):
        if both_nan:
            texts.append("·")
        elif not math.isfinite(d):
            texts.append("≠")
        elif d == 0:
            texts.append("0")
        else:
            texts.append(f"{d:+.2g}")
    titles = {}
    for i in range(min(out64.size, MAX_CELLS)):
        if math.isfinite(diff[i]) and diff[i] != 0:
            titles[i] = f"{ulps[i]:.3g} ULP"
    return {"grid": _grid(texts, list(out.shape), marks, titles), "marks": marks,
            "max_ulp": float(np.nanmax(np.where(np.isfinite(ulps), ulps, np.nan)))
            if np.isfinite(ulps).any() else None}
