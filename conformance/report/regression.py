"""The regression view: a baseline comparison (`conformance compare`) on top of the report.

    render(summary, comparison, out_html, results_dirs=None) -> out_html

`summary` is today's replay (a `conformance.store.load` structure: the usual report
below the view); `comparison` is the structure `conformance.baseline.compare_baseline`
writes to comparison.json. `view(comparison)` is the template context of the section
(`templates/regression.html.j2`), which the page shows only when it is given.
"""
from __future__ import annotations

import math
from pathlib import Path

from conformance.report.fmt import clean_text, short

# change class -> (label, css class); most alarming first (same order as the baseline's)
CHANGES = {
    "newly_failing": ("newly failing", "rg-bad"),
    "beyond": ("changed beyond tolerance", "rg-bad"),
    "newly_unsupported": ("newly unsupported", "rg-warn"),
    "within": ("changed within tolerance", "rg-drift"),
    "newly_passing": ("newly passing", "rg-good"),
    "newly_supported": ("newly supported", "rg-good"),
    "not_run": ("not run", "rg-none"),
    "unchanged": ("unchanged", "rg-same"),
}
MAX_ROWS = 500  # changed entries listed; the rest are counted


def _figure(value) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if math.isinf(number):
        return "∞"
    if math.isnan(number):
        return "NaN"
    return short(number)


def _status(side: dict | None, key: str = "status") -> str:
    return str((side or {}).get(key) or "–")


def _version_rows(versions: dict) -> list[dict]:
    rows = []
    for tid, change in versions.items():
        items = [(c["key"], clean_text(c.get("old")), clean_text(c.get("new")))
                 for c in change.get("info") or []]
        packages = change.get("packages") or {}
        for p in packages.get("changed") or []:
            items.append((p["name"], clean_text(p.get("old")), clean_text(p.get("new"))))
        for p in packages.get("added") or []:
            items.append((p["name"], "–", clean_text(p.get("new"))))
        for p in packages.get("removed") or []:
            items.append((p["name"], clean_text(p.get("old")), "–"))
        rows.append({"target": tid, "changes": items, "notes": change.get("notes") or [],
                     "changed": bool(change.get("changed"))})
    return rows


def view(comparison: dict) -> dict:
    """Template context of the regression section."""
    entries = comparison.get("entries") or []
    counts = comparison.get("counts") or {}
    base = comparison.get("baseline") or {}
    now = comparison.get("compared") or {}
    targets = sorted({e["target"] for e in entries})
    matrix = []
    for tid in targets:
        mine = [e for e in entries if e["target"] == tid]
        matrix.append({"target": tid, "cells": [sum(1 for e in mine if e["change"] == c)
                                                for c in CHANGES]})
    changed = [e for e in entries if e["change"] != "unchanged"]
    rows = []
    for entry in changed[:MAX_ROWS]:
        old = entry.get("old") or {}
        label, css = CHANGES.get(entry["change"], (entry["change"], "rg-none"))
        rows.append({
            "op": entry["op"], "family": entry.get("family") or "", "target": entry["target"],
            "floatx": entry["floatx"], "change": label, "cls": css,
            "old": old.get("status_today") or old.get("status") or "–",
            "new": _status(entry.get("new")),
            "ulp": _figure(entry.get("drift_ulp")), "ratio": _figure(entry.get("drift_ratio")),
            "examples": f"{entry.get('changed_examples', 0)}/{old.get('examples') or 0}",
            "notes": [clean_text(n) for n in entry.get("notes") or []],
            "message": clean_text((entry.get("new") or {}).get("message") or ""),
        })
    harness = [(k, clean_text(v.get("old")), clean_text(v.get("new")))
               for k, v in (comparison.get("harness_change") or {}).items()]
    return {
        "name": base.get("name"), "created": base.get("created"),
        "baseline_harness": (base.get("harness") or {}).get("harness"),
        "compared": now.get("created"), "corpus": base.get("corpus") or {},
        "regressions": comparison.get("regressions", 0),
        "status": comparison.get("status"),
        "counts": [(label, css, counts.get(key, 0)) for key, (label, css) in CHANGES.items()],
        "columns": [label for label, _ in CHANGES.values()],
        "matrix": matrix, "rows": rows, "hidden": max(0, len(changed) - MAX_ROWS),
        "unchanged": counts.get("unchanged", 0), "total": len(entries),
        "versions": _version_rows(comparison.get("versions") or {}), "harness": harness,
        "not_run": [(t, clean_text(r)) for t, r in (now.get("not_run") or {}).items()],
    }


def render(summary: dict, comparison: dict, out_html: Path,
           results_dirs: list[Path] | None = None, *, title: str | None = None) -> Path:
    """The report of `summary` with the regression view of `comparison` on top; writes
    junit.xml and summary.json beside it, like `conformance.report.render`."""
    from conformance import report

    name = (comparison.get("baseline") or {}).get("name")
    return report.render([summary], out_html, results_dirs,
                         title=title or f"Regression check against baseline {name}",
                         regression=view(comparison))
