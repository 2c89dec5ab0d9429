"""How far a replay moved from its baseline: drift figures and the change class of each
(op, target, floatx). Pure functions of stored and new outputs."""
from __future__ import annotations

import math

import numpy as np

from conformance import compare
from conformance.baseline.outputs import output_digest
from conformance.catalog import Context
from conformance.tolerance import Tolerance, floor, ulp

# Change classes, most alarming first; REGRESSIONS set the exit status.
CHANGES = ("newly_failing", "beyond", "newly_unsupported", "within", "newly_passing",
           "newly_supported", "not_run", "unchanged")
LABELS = {"newly_failing": "newly failing", "beyond": "changed beyond tolerance",
          "newly_unsupported": "newly unsupported", "within": "changed within tolerance",
          "newly_passing": "newly passing", "newly_supported": "newly supported",
          "not_run": "not run", "unchanged": "unchanged"}
REGRESSIONS = {"newly_failing", "beyond"}


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _value_tolerance(tolerance: Tolerance) -> bool:
    """Does the tolerance bound |y - y_ref| element by element (vs backward errors,
    sample statistics), so that it can be taken around the baseline output?"""
    return type(tolerance).errors is Tolerance.errors


def drift(op, example: dict, floatx: str, index: int, old: np.ndarray, new: np.ndarray,
          scale: float = 1.0) -> dict:
    """How far one output moved from the baseline: max ULPs, max absolute difference,
    and the worst ratio to the op's tolerance taken around the baseline output (None
    when the tolerance does not bound values). Units are those of the baseline output's
    float dtype (floatx for integer and bool outputs). NaN/inf moving is infinitely far."""
    if old.shape != new.shape:
        return {"ulp": math.inf, "abs": math.inf, "ratio": math.inf,
                "note": f"shape {tuple(old.shape)} -> {tuple(new.shape)}"}
    a, b = old.astype("float64"), new.astype("float64")
    with np.errstate(invalid="ignore", over="ignore"):
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        special = ~same & ~(np.isfinite(a) & np.isfinite(b))
        diff = np.where(same, 0.0, np.abs(b - a))
    diff = np.where(special, np.inf, diff)
    result = {"abs": float(diff.max()) if diff.size else 0.0, "ulp": None, "ratio": None}
    # The precision the backend actually computed in: a float32 result under floatx
    # float64 (already a `dtype` verdict) drifts in float32 units, not float64 ones.
    unit = old.dtype.name if old.dtype.name in ("float16", "float32", "float64") else floatx
    if old.dtype.kind == "f":
        result["ulp"] = float((diff / ulp(a, unit)).max()) if diff.size else 0.0
    if _value_tolerance(op.tolerance) and diff.size:
        allowed = np.broadcast_to(op.tolerance.allowed(example, a, unit, index), a.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = diff / (np.nan_to_num(allowed, nan=0.0) * scale + floor(unit))
        result["ratio"] = float(np.where(np.isnan(ratio), math.inf, ratio).max())
    if old.dtype != new.dtype:
        result["note"] = f"dtype {old.dtype} -> {new.dtype}"
    return result


def rejudge(op, target_id, floatx, examples, stored, epsilon) -> compare.Aggregate:
    """The baseline's verdict under today's catalog: stored outputs judged again; examples
    whose outputs are digests only keep their stored verdict."""
    aggregate = compare.Aggregate()
    for example, old in zip(examples, stored):
        outputs = old.get("outputs")
        if old.get("status") == "ok" and outputs and all("array" in o for o in outputs):
            reply = {"status": "ok", "outputs": [o["array"] for o in outputs]}
            verdict = compare.judge(op, target_id, floatx, example, reply,
                                    op.references(example, Context(floatx, epsilon)))
        elif old.get("status") == "ok" and outputs == []:
            verdict = compare.judge(op, target_id, floatx, example, {"status": "ok", "outputs": []},
                                    op.references(example, Context(floatx, epsilon)))
        else:
            verdict = compare.Verdict(old.get("verdict") or "error", old.get("message") or "",
                                      worst_ratio=number(old.get("ratio")) or 0.0,
                                      max_ulp=number(old.get("ulp")) or 0.0)
        aggregate.add(verdict)
    return aggregate


def _worse(new: str, old: str) -> bool:
    order = compare.SEVERITY
    return new in order and old in order and order.index(new) < order.index(old)


def classify(op, floatx: str, examples: list, old_status: str, old_examples: list,
             new_status: str, new_examples: list, scale: float = 1.0) -> dict:
    """One (op, target, floatx): the change class and the drift figures.

    In order: a switch to or from `unsupported`; divergent -> conforming is newly
    passing; conforming -> divergent is *changed beyond tolerance* when it is the
    numbers (fail / nan) and the outputs moved beyond the op's tolerance around the
    baseline output, else *newly failing* (error, crash, timeout, broken, shape, dtype,
    or a fail without a drift beyond tolerance); otherwise bit-identical outputs are
    unchanged, a worse verdict or a drift beyond tolerance is beyond, the rest within.
    """
    result = {"change": None, "drift_ulp": None, "drift_abs": None, "drift_ratio": None,
              "changed_examples": 0, "unmeasured_outputs": 0, "notes": []}
    worst_ulp = worst_abs = worst_ratio = 0.0
    any_ulp = any_ratio = False
    identical = True
    transitions: dict = {}
    for index, (example, old, new) in enumerate(zip(examples, old_examples, new_examples)):
        changed = False
        if old.get("status") != new.get("status"):
            changed = True
            key = f"{old.get('status')} -> {new.get('status')}"
            transitions[key] = transitions.get(key, 0) + 1
        elif old.get("status") == "ok":
            olds, news = old.get("outputs") or [], new.get("outputs") or []
            if len(olds) != len(news):
                changed = True
                worst_ratio, any_ratio = math.inf, True
                result["notes"].append(f"example {index}: {len(olds)} outputs -> {len(news)}")
            for j, (o, n) in enumerate(zip(olds, news)):
                if o.get("sha256") == output_digest(n):
                    continue
                changed = True
                if "array" not in o:
                    result["unmeasured_outputs"] += 1
                    continue
                figures = drift(op, example, floatx, j, o["array"], n, scale)
                worst_abs = max(worst_abs, figures["abs"])
                if figures["ulp"] is not None:
                    worst_ulp, any_ulp = max(worst_ulp, figures["ulp"]), True
                if figures["ratio"] is not None:
                    worst_ratio, any_ratio = max(worst_ratio, figures["ratio"]), True
                if figures.get("note") and figures["note"] not in result["notes"]:
                    result["notes"].append(figures["note"])
        if changed:
            identical = False
            result["changed_examples"] += 1
    for key, count in transitions.items():
        result["notes"].append(f"{count} example{'s' if count > 1 else ''} {key}")
    if len(old_examples) != len(new_examples):
        identical = False
        result["notes"].append(f"{len(old_examples)} examples in the baseline, "
                               f"{len(new_examples)} replayed")
    result["drift_abs"] = worst_abs if not identical else 0.0
    result["drift_ulp"] = worst_ulp if any_ulp else (0.0 if identical else None)
    result["drift_ratio"] = worst_ratio if any_ratio else (0.0 if identical else None)
    if result["unmeasured_outputs"]:
        result["notes"].append(f"{result['unmeasured_outputs']} changed output(s) stored as "
                               "digest only: no drift figure, judged by the verdict")
    if not _value_tolerance(op.tolerance) and not identical:
        result["notes"].append("tolerance does not bound values (backward error / statistics): "
                               "judged by the verdict")
    divergent = compare.DIVERGENT | {"broken"}
    beyond = _value_tolerance(op.tolerance) and any_ratio and worst_ratio > 1.0
    if old_status == "unsupported" and new_status != "unsupported":
        change = "newly_supported"
    elif new_status == "unsupported" and old_status != "unsupported":
        change = "newly_unsupported"
    elif old_status in divergent and new_status not in divergent:
        change = "newly_passing"
    elif new_status in divergent and old_status not in divergent:
        change = "beyond" if new_status in ("fail", "nan") and beyond else "newly_failing"
    elif identical and old_status == new_status:
        change = "unchanged"
    elif _worse(new_status, old_status) or beyond:
        change = "beyond"
    else:
        change = "within"
    if change in ("beyond", "newly_failing", "newly_passing") and old_status != new_status:
        result["notes"].insert(0, f"verdict {old_status} -> {new_status}")
    result["change"] = change
    return result
