"""The special-values table: what each target returns where an edge case's inputs are
special values (conformance.specials), next to the reference's (NumPy's) result.

One row per (op, floatx, special input) where some target returns a class of value the
reference does not (NaN for a number, a finite number for inf, ...; the reference's
values include NumPy's computed in floatx, where an op has them): a reader sees at a glance which backend drops a NaN in maximum or saturates
instead of overflowing. Points where every target agrees with the reference are only
counted. Built from the results' ``specials``, so a merged or replayed summary shows it too.
"""
from __future__ import annotations

from collections import defaultdict

from conformance.report.fmt import clean_text, slug
from conformance.specials import kind


def build(summary: dict, order: list[str]) -> dict:
    """{"rows": the rows where some target differs and is not a known divergence there,
    "known_rows": those where every differing target is, "agreeing": how many points had
    every target return the reference's classes}."""
    seen: dict = defaultdict(lambda: {"reference": set(), "targets": defaultdict(set)})
    known = set()  # (op, floatx, target) of results the registry explains
    for result in summary["results"]:
        case = (str(result.get("op")), str(result.get("floatx")))
        if result.get("status") == "known":
            known.add((*case, str(result.get("target"))))
        for label, entry in (result.get("specials") or {}).items():
            if not isinstance(entry, dict):
                continue
            row = seen[(*case, clean_text(label))]
            row["reference"].update(map(str, entry.get("reference") or []))
            row["targets"][str(result.get("target"))].update(map(str, entry.get("values") or []))
    rows, known_rows, agreeing = [], [], 0
    for (op, floatx, label), row in sorted(seen.items()):
        reference = row["reference"]
        cells = [_cell(tid, row["targets"].get(tid), reference, (op, floatx, tid) in known)
                 for tid in order]
        differing = [cell for cell in cells if cell["other"]]
        if not differing:
            agreeing += 1
            continue
        entry = {"op": op, "anchor": "op-" + slug(op), "floatx": floatx, "label": label,
                 "reference": _text(reference), "cells": cells}
        (known_rows if all(cell["known"] for cell in differing) else rows).append(entry)
    return {"rows": rows, "known_rows": known_rows, "agreeing": agreeing}


def _cell(target: str, values: set | None, reference: set, known: bool) -> dict:
    """A target's values; `other` when they hold a class (nan, +-inf, 0, finite...) that
    the reference's do not: a finite value off by rounding is the comparison's business."""
    return {"target": target, "text": _text(values) if values else "–", "known": known,
            "other": bool(values) and not set(map(kind, values)) <= set(map(kind, reference))}


def _text(values: set) -> str:
    return " / ".join(sorted(clean_text(v) for v in values))
