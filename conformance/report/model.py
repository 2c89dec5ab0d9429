"""From a merged summary to what the template shows (plain dicts and lists).

Everything here is data; escaping is the template's job (jinja2 autoescape), except
SVG charts, which are generated here from numbers and labels matplotlib escapes.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from conformance.report import arrays, causes, charts, conventions, repro, specials
from conformance.report.fmt import (DIVERGENT, ERRORING, LABELS, VERDICTS, clean_text, floatx_key,
                                    number, rank, sci, short, slug, unit_roundoff, worst)
from conformance.report.merging import SOURCE

try:  # the catalog's family order; the report works without it
    from conformance.catalog import FAMILIES
except Exception:  # pragma: no cover - catalog import problems must not stop a report
    FAMILIES = ()

MAX_HISTOGRAMS = 40


def _family_key(name: str):
    return (FAMILIES.index(name) if name in FAMILIES else len(FAMILIES), name)


def _op_anchor(op: str) -> str:
    return "op-" + slug(op)


# -- header ---------------------------------------------------------------------
def _duration(seconds) -> str | None:
    value = number(seconds)
    if value is None or not math.isfinite(value):
        return None
    if value < 90:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _run_facts(run: dict) -> list[tuple[str, str]]:
    def text(value):
        if isinstance(value, list):
            return ", ".join(clean_text(v) if not isinstance(v, list) else " ".join(map(str, v))
                             for v in value)
        return clean_text(value)

    facts = []
    shards = run.get("shards") or []
    for key, label in [("seed", "seed"), ("profile", "profile"), ("started", "started"),
                       ("finished", "finished")]:
        if run.get(key) not in (None, ""):
            facts.append((label, text(run[key])))
    duration = _duration(run.get("duration_s"))
    if duration:
        facts.append(("duration", duration + (f" (sum of {len(shards)} shards)" if shards else "")))
    if run.get("harness_version") not in (None, ""):
        facts.append(("harness", text(run["harness_version"])))
    if run.get("floatx"):
        facts.append(("floatx", text(run["floatx"])))
    if run.get("ops") not in (None, ""):
        done = run.get("cases_done")
        facts.append(("(op, floatx) cases", f"{text(done)} of {text(run['ops'])} done"
                      if done not in (None, "") and done != run["ops"] else text(run["ops"])))
    if run.get("max_examples") not in (None, ""):
        facts.append(("examples per case", text(run["max_examples"])))
    if run.get("shard") not in (None, ""):
        facts.append(("shard", text(run["shard"])))
    if shards:
        facts.append(("merged", f"{len(shards)} result sets"))
    if run.get("argv"):
        argv = run["argv"]
        facts.append(("command", " ".join(map(str, argv)) if isinstance(argv, list)
                      and all(not isinstance(a, list) for a in argv) else text(argv)))
    return facts


def _targets(summary: dict) -> tuple[list[dict], list[dict], list[str]]:
    """Target rows (one per id), targets that could not run, and the column order."""
    order: list[str] = []
    by_id: dict[str, dict] = {}
    broken = []
    for record in summary["targets"]:
        tid = str(record.get("id"))
        if tid not in by_id:
            order.append(tid)
            by_id[tid] = {"id": tid, "records": []}
        by_id[tid]["records"].append(record)
    for result in summary["results"]:
        tid = str(result.get("target"))
        if tid not in by_id:
            by_id[tid] = {"id": tid, "records": []}
    order += sorted(t for t in by_id if t not in order)
    rows = []
    for index, tid in enumerate(order):
        records = sorted(by_id[tid]["records"], key=lambda r: floatx_key(r.get("floatx")))
        ready = [r for r in records if r.get("status") == "ready"]
        best = (ready or records or [{}])[0]
        info = best.get("info") or {}
        statuses = [(r.get("floatx") or "–", r.get("status") or "unknown") for r in records]
        rows.append({
            "id": tid, "color": charts.PALETTE[index % len(charts.PALETTE)],
            "flavor": best.get("flavor") or "", "backend": best.get("backend") or info.get("backend") or "",
            "python": info.get("python") or "", "interpreter": best.get("python") or info.get("executable") or "",
            "keras": info.get("keras") or "",
            "library": " ".join(str(v) for v in (info.get("backend_library"), info.get("backend_version")) if v),
            "floatx": ", ".join(dict.fromkeys(str((r.get("info") or {}).get("floatx"))
                                              for r in ready if (r.get("info") or {}).get("floatx"))),
            "epsilon": info.get("epsilon"), "image_data_format": info.get("image_data_format") or "",
            "using_line": info.get("using_line") or "",
            "statuses": statuses, "record": best,
            "ready": bool(ready) or not records,
        })
        for record in records:
            if record.get("status") != "ready":
                broken.append({"id": tid, "floatx": record.get("floatx") or "",
                               "status": record.get("status") or "unknown",
                               "reason": clean_text(record.get("reason") or ""),
                               "fix": clean_text(record.get("fix") or ""),
                               "python": record.get("python") or ""})
    return rows, broken, order


# -- matrix ---------------------------------------------------------------------
def _cell(result: dict) -> dict:
    status = result.get("status") or "error"
    ratio, ulp_ = number(result.get("worst_ratio")), number(result.get("max_ulp"))
    numeric = status in ("pass", "fail", "known", "convention") and ratio is not None
    if status == "known":
        text, utext = "known", "known"
        if ratio is not None:
            text, utext = f"k {short(ratio)}", f"k {short(ulp_)}"
    elif numeric:
        text, utext = short(ratio), short(ulp_)
    elif status == "unsupported":
        text = utext = "–"
    else:
        text = utext = LABELS.get(status, status)
    parts = [] if status == "pass" else [LABELS.get(status, status)]
    if result.get("examples") is not None:
        parts.append(f"{result['examples']} ex")
    if ratio is not None and status != "unsupported":
        parts.append(f"{sci(ratio, 2)}× tol, {sci(ulp_, 2)} ULP, abs {sci(result.get('max_abs_err'), 2)}")
    message = clean_text(result.get("message") or "")
    if status == "known" and result.get("known"):
        message = "known: " + clean_text(result["known"].get("reason") or "") + (
            f" (raw verdict {result.get('verdict')})" if result.get("verdict") else "")
    if message:
        parts.append(message[:240])
    return {"v": status, "text": text, "utext": utext if utext != text else None,
            "r": f"{ratio:.3g}" if ratio is not None and math.isfinite(ratio) else (
                "1e999" if ratio is not None and ratio > 0 else None),
            "title": " · ".join(parts)}


def _matrix(summary: dict, order: list[str]) -> tuple[list[dict], list[str]]:
    by_row: dict = defaultdict(dict)
    families: dict = {}
    for result in summary["results"]:
        key = (str(result.get("op")), str(result.get("floatx")))
        by_row[key][str(result.get("target"))] = result
        families.setdefault(key[0], str(result.get("family") or "other"))
    floatxs = sorted({k[1] for k in by_row}, key=floatx_key)
    groups: dict = defaultdict(list)
    for (op, floatx), cells in sorted(by_row.items(), key=lambda kv: (kv[0][0], floatx_key(kv[0][1]))):
        statuses = [c.get("status") for c in cells.values()]
        groups[families[op]].append({
            "op": op, "floatx": floatx, "anchor": _op_anchor(op), "worst": worst(statuses),
            "cells": [(tid, _cell(cells[tid])) if tid in cells else (tid, None) for tid in order],
        })
    return ([{"name": name, "rows": groups[name], "ops": len({r["op"] for r in groups[name]})}
             for name in sorted(groups, key=_family_key)], floatxs)


# -- coverage, pairwise, known ------------------------------------------------------
def _coverage(summary: dict, order: list[str]) -> list[dict]:
    counts = {tid: Counter() for tid in order}
    for result in summary["results"]:
        counts.setdefault(str(result.get("target")), Counter())[result.get("status")] += 1
    rows = []
    for tid in order:
        c = counts[tid]
        total = sum(c.values())
        erroring = sum(c[s] for s in ERRORING)
        divergent = sum(c[s] for s in DIVERGENT - ERRORING)
        segments = [(name, n, 100.0 * n / total if total else 0) for name, n in [
            ("pass", c["pass"]), ("known", c["known"]), ("fail", divergent),
            ("error", erroring), ("unsupported", c["unsupported"])] if n]
        rows.append({"target": tid, "total": total, "supported": total - c["unsupported"],
                     "unsupported": c["unsupported"], "erroring": erroring, "pass": c["pass"],
                     "divergent": divergent, "known": c["known"], "segments": segments})
    return rows


def _pair_totals(summary: dict, order: list[str]):
    index = {t: i for i, t in enumerate(order)}
    n = len(order)
    examples = np.zeros((n, n))
    disagreements = np.zeros((n, n))
    for entry in summary["pairwise"]:
        for key, stats in (entry.get("pairs") or {}).items():
            a, _, b = key.partition("|")
            if a not in index or b not in index:
                continue
            i, j = index[a], index[b]
            for x, y in ((i, j), (j, i)):
                examples[x, y] += number(stats.get("examples")) or 0
                disagreements[x, y] += number(stats.get("disagreements")) or 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(examples > 0, disagreements / np.maximum(examples, 1), np.nan)
    return rate, disagreements, examples


def _heatmap(summary: dict, order: list[str]) -> dict | None:
    rate, disagreements, examples = _pair_totals(summary, order)
    compared = [i for i in range(len(order)) if (examples[i] > 0).any()]
    if len(compared) < 2:
        return None
    labels = [order[i] for i in compared]
    sub = np.ix_(compared, compared)
    svg = charts.heatmap(labels, rate[sub], disagreements[sub], "hm-")
    table = []
    for a in range(len(compared)):
        for b in range(a + 1, len(compared)):
            i, j = compared[a], compared[b]
            if examples[i, j]:
                table.append({"a": order[i], "b": order[j], "examples": int(examples[i, j]),
                              "disagreements": int(disagreements[i, j]),
                              "rate": f"{100 * rate[i, j]:.1f}%"})
    table.sort(key=lambda r: (-r["disagreements"] / max(r["examples"], 1), r["a"], r["b"]))
    return {"svg": svg, "pairs": table}


def _known(summary: dict) -> list[dict]:
    rows = []
    for result in summary["results"]:
        if result.get("status") != "known":
            continue
        known = result.get("known") or {}
        rows.append({"op": result.get("op"), "target": result.get("target"),
                     "floatx": result.get("floatx"), "verdict": result.get("verdict") or "",
                     "cause": clean_text(known.get("cause") or ""),
                     "cause_anchor": "cause-" + slug(known.get("cause") or ""),
                     "reason": clean_text(known.get("reason") or ""),
                     "link": clean_text(known.get("link") or ""),
                     "anchor": _op_anchor(str(result.get("op"))),
                     "worst": short(result.get("worst_ratio"))})
    rows.sort(key=lambda r: (str(r["op"]), str(r["target"]), floatx_key(r["floatx"])))
    return rows


# -- configuration checks (conformance.configsuite) ---------------------------------------
CONFIG_SCENARIOS = ("precedence", "floatx", "runtime", "epsilon", "image_data_format")


def _config_text(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return clean_text(value)
    return clean_text(json.dumps(value, sort_keys=False, default=str))


def _config_value(value, other=None) -> list[tuple[str | None, str, bool]]:
    """(key, text, differs from the other side) lines of an expected/observed value."""
    if isinstance(value, dict):
        return [(clean_text(k), _config_text(v),
                 isinstance(other, dict) and k in other and other[k] != v)
                for k, v in value.items()]
    return [(None, _config_text(value), other is not None and value != other)]


def _config(summary: dict, order: list[str]) -> dict | None:
    """Per target: each configuration check with expected / observed / status; and a
    checks x targets overview."""
    records = summary.get("config") or []
    if not records:
        return None
    by_target: dict = defaultdict(list)
    for record in records:
        by_target[str(record.get("target"))].append(record)
    targets = [t for t in order if t in by_target] + sorted(t for t in by_target if t not in order)

    def key(record):
        scenario = str(record.get("scenario") or str(record.get("check")).split("/")[0])
        return (CONFIG_SCENARIOS.index(scenario) if scenario in CONFIG_SCENARIOS
                else len(CONFIG_SCENARIOS), str(record.get("check")))

    sections, checks = [], {}
    for tid in targets:
        rows = []
        for record in sorted(by_target[tid], key=key):
            expected, observed = record.get("expected"), record.get("observed")
            status = str(record.get("status") or "error")
            check = str(record.get("check"))
            checks.setdefault(check, key(record))
            rows.append({
                "check": check, "floatx": record.get("floatx") or "", "status": status,
                "verdict": record.get("verdict") or "",
                "expected": _config_value(expected),
                "observed": _config_value(observed, expected if status != "pass" else None),
                "detail": clean_text(record.get("detail") or ""), "known": record.get("known"),
            })
        statuses = Counter(r["status"] for r in rows)
        sections.append({"target": tid, "anchor": "cfg-" + slug(tid), "rows": rows,
                         "statuses": sorted(statuses.items(), key=lambda kv: rank(kv[0])),
                         "worst": worst(statuses), "bad": any(s in DIVERGENT for s in statuses)})
    cells = {(str(r.get("target")), str(r.get("check"))): str(r.get("status") or "error")
             for r in records}
    overview = [{"check": check, "cells": [(tid, cells.get((tid, check))) for tid in targets]}
                for check in sorted(checks, key=lambda c: checks[c])]
    unexpected = sum(1 for status in cells.values() if status in DIVERGENT)
    columns = [{"id": tid, "anchor": "cfg-" + slug(tid)} for tid in targets]
    return {"targets": sections, "columns": columns, "overview": overview,
            "total": len(cells), "unexpected": unexpected}


def _worst_list(summary: dict, limit: int = 8) -> list[dict]:
    divergent = [r for r in summary["results"] if r.get("status") in DIVERGENT]
    divergent.sort(key=lambda r: (rank(r.get("status")), -(number(r.get("worst_ratio")) or 0)))
    return [{"op": r.get("op"), "target": r.get("target"), "floatx": r.get("floatx"),
             "status": r.get("status"),
             "ratio": "–" if r.get("status") in ERRORING else short(r.get("worst_ratio")),
             "message": clean_text(r.get("message") or "")[:160],
             "anchor": _op_anchor(str(r.get("op")))} for r in divergent[:limit]], len(divergent)


# -- per op ---------------------------------------------------------------------------
def _stats_row(result: dict) -> dict:
    counts = result.get("counts") or {}
    status = result.get("status") or "error"
    measured = status not in ERRORING and status != "unsupported" or bool(
        number(result.get("worst_ratio")))
    dash = (lambda value, digits=3: sci(value, digits)) if measured else (lambda *_: "–")
    return {
        "target": result.get("target"), "floatx": result.get("floatx"),
        "status": result.get("status") or "error", "examples": result.get("examples"),
        "counts": ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: rank(kv[0])))
        if len(counts) > 1 else "",
        "max_abs": dash(result.get("max_abs_err")), "max_ulp": dash(result.get("max_ulp")),
        "ratio": dash(result.get("worst_ratio")),
        "time": sci(result.get("backend_s"), 2) if result.get("backend_s") is not None else "–",
        "message": clean_text(result.get("message") or "")[:600],
        "known": result.get("known"), "raw": result.get("verdict"),
        "override": result.get("override"),
    }


def _pairwise_view(entries: list[dict], order: list[str]) -> list[dict]:
    """Per floatx: a target x target table of max ULP distance when some pair disagrees,
    else one line (every pair within tolerance, and the largest distance)."""
    views = []
    for entry in sorted(entries, key=lambda e: floatx_key(e.get("floatx"))):
        pairs = entry.get("pairs") or {}
        present = [t for t in order if any(t in k.split("|") for k in pairs)]
        if len(present) < 2:
            continue
        bad = sum(1 for stats in pairs.values() if (number(stats.get("disagreements")) or 0) > 0)
        view = {"floatx": entry.get("floatx"), "bad": bad, "rows": [], "columns": present[1:],
                "pairs": len(pairs), "targets": len(present), "max_ulp": "–", "max_pair": ""}
        if not bad:
            key, stats = max(pairs.items(), key=lambda kv: number(kv[1].get("max_ulp")) or 0.0)
            view.update(max_ulp=short(stats.get("max_ulp")), max_pair=key.replace("|", " · "))
            views.append(view)
            continue
        for i, a in enumerate(present[:-1]):
            cells = []
            for j, b in enumerate(present[1:], start=1):
                if j <= i:
                    cells.append(None)
                    continue
                stats = pairs.get(f"{a}|{b}") or pairs.get(f"{b}|{a}")
                if stats is None:
                    cells.append({"text": "", "cls": "", "title": ""})
                    continue
                disagree = int(number(stats.get("disagreements")) or 0)
                cells.append({"text": short(stats.get("max_ulp")),
                              "cls": "pb" if disagree else "pg",
                              "title": f"{disagree} of {stats.get('examples')} examples disagree; "
                                       f"max {sci(stats.get('max_ratio'))}× tolerance"
                              if disagree else ""})
            view["rows"].append({"target": a, "cells": cells})
        views.append(view)
    return views


def _marks_for(shape_a, shape_b, marks):
    return marks if list(shape_a or []) == list(shape_b or []) else {}


def _counterexample(result: dict, targets: dict, order: list[str], dirs: list, out_dir: Path,
                    copied: dict) -> dict:
    cx = result["counterexample"]
    floatx = str(result.get("floatx"))
    tid = str(cx.get("target") or result.get("target"))
    worst_index = cx.get("worst_index")
    w_out, w_flat = (worst_index if isinstance(worst_index, list) and len(worst_index) == 2
                     else (None, None))
    references = cx.get("reference") or []
    outputs = cx.get("outputs") or {}

    inputs = []
    ref_shape = (references[w_out].get("shape") if w_out is not None and w_out < len(references)
                 and arrays.is_array(references[w_out]) else None)
    for name, value in (cx.get("inputs") or {}).items():
        marks = {}
        if w_flat is not None and arrays.is_array(value):
            marks = _marks_for(value.get("shape"), ref_shape, {w_flat: "c"})
        inputs.append({"name": name, "view": arrays.view(value, marks)})

    blocks = []
    for index, reference in enumerate(references):
        mark = {w_flat: "w"} if index == w_out and w_flat is not None else {}
        rows = [{"label": ["reference (float64)"], "cls": "ref", "view": arrays.view(reference, mark),
                 "diff": None, "status": None}]
        # targets whose output is identical share one row (the failing target keeps its own)
        groups: dict = {}
        for target in [t for t in order if t in outputs] + [t for t in outputs if t not in order]:
            reply = outputs[target] or {}
            if reply.get("status") != "ok":
                key = ("status", reply.get("status"), str(reply.get("message")))
            elif index < len(reply.get("outputs") or []):
                key = ("ok", json.dumps(reply["outputs"][index], sort_keys=True, default=str))
            else:
                key = ("missing",)
            if target == tid:
                key = ("current",) + key
            groups.setdefault(key, []).append(target)
        for key, members in groups.items():
            target = members[0]
            current = tid in members
            reply = outputs[target] or {}
            row = {"label": members, "cls": "cur" if current else "", "status": None,
                   "diff": None, "view": None}
            if reply.get("status") != "ok":
                row["status"] = (reply.get("status") or "error",
                                 clean_text(reply.get("message") or "")[:500])
            elif index < len(reply.get("outputs") or []):
                record = reply["outputs"][index]
                worst_here = index == w_out and w_flat is not None
                diff = arrays.difference(record, reference, floatx,
                                         w_flat if (current and worst_here) else None)
                marks = dict(diff["marks"]) if diff else {}
                if diff is None and worst_here and current:
                    marks = {w_flat: "w"}
                if not current and worst_here:
                    marks.setdefault(w_flat, "c")
                row["view"] = arrays.view(record, marks)
                row["diff"] = diff
            else:
                row["status"] = ("shape", f"no output {index}")
            rows.append(row)
        blocks.append({"index": index, "rows": rows})

    # arrays for the repro: the .npz next to the results, copied next to the report
    npz, shown = None, None
    relative = cx.get("arrays")
    source = result.get(SOURCE)
    if relative and source is not None and source < len(dirs) and dirs[source] is not None:
        candidate = Path(dirs[source]) / relative
        if candidate.is_file():
            npz = candidate
            destination = out_dir / relative
            if destination.resolve() != candidate.resolve():
                copied[destination] = candidate
            shown = str(relative)
    target_record = targets.get(tid) or {"id": tid}
    call = cx.get("call") or {}
    names, kwargs = repro.call_arguments(cx)
    call_text = f"{call.get('fn', result.get('op'))}(" + ", ".join(
        [repro.positional_text(n, {}) for n in names]
        + [f"{k}={v!r}" for k, v in kwargs.items()]) + ")"
    return {
        "id": f"cx-{slug(result.get('op'))}-{slug(tid)}-{slug(floatx)}",
        "target": tid, "floatx": floatx, "status": result.get("status"),
        "verdict": cx.get("verdict") or result.get("verdict"),
        "message": clean_text(cx.get("message") or result.get("message") or "")[:600],
        "shrunk": cx.get("shrunk"), "shrink_calls": cx.get("shrink_calls"),
        "call": call_text, "inputs": inputs, "blocks": blocks,
        "tolerance": cx.get("tolerance") or result.get("tolerance") or "",
        "repro": repro.script(result, target_record, npz, shown),
        "arrays": shown or relative, "open": result.get("status") != "known",
    }


def _op_details(summary: dict, order: list[str], colors: dict, targets: dict, dirs: list,
                out_dir: Path, max_histograms: int, copied: dict) -> list[dict]:
    results_by_op: dict = defaultdict(list)
    for result in summary["results"]:
        results_by_op[str(result.get("op"))].append(result)
    pairwise_by_op: dict = defaultdict(list)
    for entry in summary["pairwise"]:
        pairwise_by_op[str(entry.get("op"))].append(entry)
    position = {t: i for i, t in enumerate(order)}

    def score(op):
        results = results_by_op[op]
        bad = any(r.get("status") in DIVERGENT or r.get("status") == "known" for r in results)
        ratios = [number(r.get("worst_ratio")) or 0.0 for r in results]
        finite = [x for x in ratios if math.isfinite(x)]
        return (not bad, -(max(finite) if finite else 0.0), op)

    with_ratios = [op for op, rs in results_by_op.items() if any(r.get("ratios") for r in rs)]
    charted = set(sorted(with_ratios, key=score)[:max_histograms])

    details = []
    ops = sorted(results_by_op, key=lambda op: (_family_key(str(results_by_op[op][0].get("family")
                                                                 or "other")), op))
    for op in ops:
        results = sorted(results_by_op[op], key=lambda r: (position.get(str(r.get("target")), 1e9),
                                                            floatx_key(r.get("floatx"))))
        statuses = Counter(r.get("status") for r in results)
        formulas = []
        for r in results:
            if r.get("tolerance") and r["tolerance"] not in formulas:
                formulas.append(r["tolerance"])
        floatxs = sorted({str(r.get("floatx")) for r in results}, key=floatx_key)
        units = [(fx, sci(unit_roundoff(fx))) for fx in floatxs if unit_roundoff(fx)]
        histogram, legend, note = None, [], ""
        if op in charted:
            series = defaultdict(list)
            for r in results:
                if r.get("status") != "unsupported":
                    series[str(r.get("target"))].extend(r.get("ratios") or [])
            chart_series = [(t, series[t], colors.get(t, "#333")) for t in order if series.get(t)]
            chart_series += [(t, v, "#333") for t, v in series.items() if t not in colors]
            histogram = charts.histogram(chart_series, f"h{len(details)}-")
            legend = []
            for t, v, c in chart_series:
                values = [number(x) for x in v]
                finite = [x for x in values if x is not None and math.isfinite(x)]
                legend.append((t, c, len(finite), sum(1 for x in finite if x > 1),
                               len(values) - len(finite)))
        elif with_ratios and op in with_ratios:
            note = (f"histogram left out: only the {max_histograms} ops with the worst results "
                    "get one")
        worst_r = [number(r.get("worst_ratio")) for r in results
                   if number(r.get("worst_ratio")) is not None and r.get("status") != "unsupported"]
        worst_case = max(worst_r) if worst_r else None
        worst_result = next((r for r in results if number(r.get("worst_ratio")) == worst_case), None)
        counterexamples = [
            _counterexample(r, targets, order, dirs, out_dir, copied) for r in results
            if isinstance(r.get("counterexample"), dict)
            and (r.get("status") in DIVERGENT or r.get("status") == "known")]
        details.append({
            "name": op, "anchor": _op_anchor(op), "family": results[0].get("family") or "other",
            "worst": worst(statuses), "statuses": sorted(statuses.items(), key=lambda kv: rank(kv[0])),
            "formulas": formulas, "units": units,
            "worst_case": None if worst_result is None else {
                "ratio": sci(worst_case), "target": worst_result.get("target"),
                "floatx": worst_result.get("floatx"), "abs": sci(worst_result.get("max_abs_err")),
                "ulp": sci(worst_result.get("max_ulp"))},
            "rows": [_stats_row(r) for r in results],
            "histogram": histogram, "legend": legend, "note": note,
            "pairwise": _pairwise_view(pairwise_by_op.get(op, []), order),
            "counterexamples": counterexamples,
        })
    return details


def build(summary: dict, dirs: list, out_dir: Path, max_histograms: int = MAX_HISTOGRAMS) -> dict:
    """The template context for a merged summary; also returns files to copy."""
    run = summary.get("run") or {}
    target_rows, broken, order = _targets(summary)
    colors = {row["id"]: row["color"] for row in target_rows}
    targets = {row["id"]: {**row["record"], "id": row["id"]} for row in target_rows}
    families, floatxs = _matrix(summary, order)
    totals = Counter(r.get("status") for r in summary["results"])
    worst_list, divergent_count = _worst_list(summary)
    copied: dict = {}
    details = _op_details(summary, order, colors, targets, dirs, out_dir, max_histograms, copied)
    interrupted = bool(summary["results"] or run) and not run.get("finished")
    return {
        "run_facts": _run_facts(run), "interrupted": interrupted,
        "empty": not summary["results"],
        "totals": [(v, totals[v]) for v in VERDICTS if totals.get(v)],
        "total_results": sum(totals.values()),
        "divergent_count": divergent_count, "worst_list": worst_list,
        "targets": target_rows, "broken": broken, "order": order, "colors": colors,
        "tindex": {t: i % len(charts.PALETTE) for i, t in enumerate(order)},
        "families": families, "floatxs": floatxs,
        "coverage": _coverage(summary, order), "heatmap": _heatmap(summary, order),
        "known": _known(summary), "causes": causes.build(summary),
        "conventions": conventions.build(summary, order),
        "specials": specials.build(summary, order),
        "ops": details, "config": _config(summary, order),
        "charts": charts.available(),
        "copied": copied,
    }
