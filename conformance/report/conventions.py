"""The conventions table: what each target's gradient is at the points where an op is
not differentiable (conformance.kinks), next to the reference's choice.

One row per (op, point); a cell lists the values the target returned there over every
floatx, as multiples of the cotangent, and is marked when it is not only the
reference's value. Built from the results' ``conventions``, so a merged or replayed
summary shows it too.
"""
from __future__ import annotations

from collections import defaultdict

from conformance.report.fmt import clean_text, slug


def build(summary: dict, order: list[str]) -> list[dict]:
    seen: dict = defaultdict(lambda: {"reference": None, "targets": defaultdict(set)})
    for result in summary["results"]:
        for label, entry in (result.get("conventions") or {}).items():
            if not isinstance(entry, dict):
                continue
            row = seen[(str(result.get("op")), clean_text(label))]
            row["reference"] = entry.get("reference")
            row["targets"][str(result.get("target"))].update(
                v for v in entry.get("values") or [] if isinstance(v, (int, float)))
    rows = []
    for (op, label), row in sorted(seen.items()):
        reference = row["reference"]
        cells = []
        for tid in order:
            values = sorted(row["targets"].get(tid, ()))
            cells.append({"target": tid, "text": " / ".join(_text(v) for v in values) or "–",
                          "other": bool(values) and values != [reference]})
        rows.append({"op": op, "anchor": "op-" + slug(op), "label": label, "reference": _text(reference), "cells": cells})
    return rows


def _text(value) -> str:
    return "–" if value is None else f"{value:g}"
