"""Step 3 of `conformance validate`, as a pure function of the run's summary: the
plugin's verdict counts, its worst ops, and which divergences it shares with the
--against targets."""
from __future__ import annotations

from collections import Counter

from conformance import compare

SHARED_FACTOR = 10.0  # a `fail` this much worse than an --against target's is the plugin's own


def _ratio(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def summarize_suites(summary: dict, plugin_id: str) -> dict:
    """Verdict counts, worst ops and agreement with the other targets, for the plugin.

    A divergence is *shared* when an --against target has the same verdict on the same
    (op, floatx), and for `fail` an error of the same order (often inherited from the
    backend a plugin builds on); *own* otherwise."""
    results = summary.get("results", [])
    mine = [r for r in results if r.get("target") == plugin_id]
    others: dict[tuple, dict[str, str]] = {}
    ratios: dict[tuple, dict[str, float]] = {}
    for r in results:
        if r.get("target") != plugin_id:
            others.setdefault((r["op"], r["floatx"]), {})[r["target"]] = r["status"]
            ratios.setdefault((r["op"], r["floatx"]), {})[r["target"]] = _ratio(
                r.get("worst_ratio"))
    counts = Counter(r["status"] for r in mine)
    worst = [_divergence(r, others, ratios) for r in mine
             if r["status"] in compare.DIVERGENT]
    worst.sort(key=lambda w: (w["shared"], compare.SEVERITY.index(w["status"]),
                              -w["worst_ratio"], w["op"], w["floatx"]))
    broken = [t for t in summary.get("targets", [])
              if t.get("id") == plugin_id and t.get("status") != "ready"]
    return {"counts": dict(counts), "cases": len(mine), "unexpected": worst,
            "flagged": sorted({w["op"] for w in worst}),
            "own": _by_op([w for w in worst if not w["shared"]]),
            "shared": _by_op([w for w in worst if w["shared"]]),
            "broken": [{"floatx": t.get("floatx"), "reason": t.get("reason")} for t in broken]}


def _divergence(result: dict, others: dict, ratios: dict) -> dict:
    """One of the plugin's divergent results, with the other targets' verdicts."""
    key = (result["op"], result["floatx"])
    around, ratio = others.get(key, {}), _ratio(result.get("worst_ratio"))
    shared = any(status == result["status"] and (status != "fail" or ratio <= SHARED_FACTOR *
                                                  ratios[key][target])
                 for target, status in around.items())
    return {"op": result["op"], "floatx": result["floatx"], "status": result["status"],
            "worst_ratio": ratio, "max_ulp": _ratio(result.get("max_ulp")),
            "message": str(result.get("message") or ""), "others": around, "shared": shared}


def _by_op(entries: list[dict]) -> dict[str, list[str]]:
    """{op: [floatx, ...]} in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for entry in entries:
        grouped.setdefault(entry["op"], []).append(entry["floatx"])
    return {op: sorted(fx) for op, fx in grouped.items()}
