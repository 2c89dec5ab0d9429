"""The report's first section: divergences by cause.

    build(summary) -> {"unexpected": [...], "agree": [...], "causes": [...],
                       "stale": [...], "idle": [...], ...}

- unexpected: divergent results (and failed configuration checks) the registry does not
  explain, grouped by (op, verdict): one row says which targets and floatx.
- agree: (op, floatx) cases where every target that ran it has the same divergent
  verdict and the pairwise comparison shows no disagreement between any two of them:
  the targets agree with each other, not with the reference, so it is a question about
  the reference (or Keras itself), not a backend divergence.
- causes: the registry's entries (one per root cause) with the results each explains,
  its reason, repro, upstream flag and the versions it was seen on; known results of a
  cause the recorded registry lacks (or of a run that recorded none) are grouped by
  the cause id (or reason) their records carry.
- stale: entries the run could have matched (it has a result of some verdict for an
  op, target and floatx the entry names) that explained nothing; idle: entries about
  what the run did not cover.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from conformance import known
from conformance.report.fmt import DIVERGENT, clean_text, floatx_key, number, rank, slug

LISTED = 12  # ops named in a cause's row before "+ n more"


def _op_anchor(op: str) -> str:
    return "op-" + slug(op)


def _floatx_text(values) -> str:
    return ", ".join(sorted({str(v) for v in values}, key=floatx_key))


def _names(values, limit: int = LISTED) -> dict:
    names = sorted({str(v) for v in values})
    return {"shown": names[:limit], "more": max(len(names) - limit, 0)}


def _globs(values) -> str:
    return ", ".join(map(str, values)) if isinstance(values, (list, tuple)) else str(values)


# -- unexpected -----------------------------------------------------------------------------
def _unexpected(summary: dict, agree: set) -> list[dict]:
    """known.unexpected, grouped by (op or check, verdict)."""
    groups: dict = defaultdict(list)
    for record in known.unexpected(summary):
        config = "check" in record
        op = record.get("check") if config and not record.get("op") else record.get("op")
        groups[(str(op), record["status"], config)].append(record)
    rows = []
    for (op, verdict, config), records in groups.items():
        by_target: dict = defaultdict(list)
        for record in records:
            by_target[str(record.get("target"))].append(record.get("floatx"))
        messages = Counter(clean_text(r.get("message") or r.get("detail") or "").strip()[:240]
                           for r in records)
        messages.pop("", None)
        message, _ = messages.most_common(1)[0] if messages else ("", 0)
        rows.append({
            "op": op, "verdict": verdict, "count": len(records), "config": config,
            "anchor": "configuration" if config else _op_anchor(op),
            "where": [(t, _floatx_text(fx)) for t, fx in sorted(by_target.items())],
            "message": message, "other_messages": max(len(messages) - 1, 0),
            "agree": sorted({str(r.get("floatx")) for r in records
                             if (op, str(r.get("floatx"))) in agree}, key=floatx_key),
        })
    rows.sort(key=lambda r: (rank(r["verdict"]), -r["count"], r["op"]))
    return rows


# -- all targets agree, the reference differs ---------------------------------------------------
def _agreement(summary: dict) -> list[dict]:
    targets = summary.get("targets") or []
    ready = {(str(t.get("id")), str(t.get("floatx"))) for t in targets
             if t.get("status") == "ready"}
    by_case: dict = defaultdict(list)
    for result in summary.get("results") or []:
        by_case[(str(result.get("op")), str(result.get("floatx")))].append(result)
    pairs: dict = defaultdict(dict)
    for entry in summary.get("pairwise") or []:
        pairs[(str(entry.get("op")), str(entry.get("floatx")))].update(entry.get("pairs") or {})
    rows = []
    for (op, floatx), results in by_case.items():
        ran = [r for r in results if r.get("status") != "unsupported"
               and (not targets or (str(r.get("target")), floatx) in ready)]
        verdicts = {r.get("verdict") or r.get("status") for r in ran}
        if len(ran) < 2 or len(verdicts) != 1 or not verdicts <= DIVERGENT:
            continue
        ids = {str(r.get("target")) for r in ran}
        among = {key: stats for key, stats in pairs[(op, floatx)].items()
                 if set(key.split("|")) <= ids and isinstance(stats, dict)}
        compared = {key: s for key, s in among.items() if (number(s.get("examples")) or 0) > 0}
        seen = {t for key in compared for t in key.split("|")}
        if (not compared or seen != ids
                or any((number(s.get("disagreements")) or 0) > 0 for s in among.values())):
            continue
        rows.append({"op": op, "floatx": floatx, "verdict": verdicts.pop(),
                     "anchor": _op_anchor(op), "targets": sorted(ids),
                     "known": sum(r.get("status") == "known" for r in ran),
                     "pairs": len(compared),
                     "examples": int(sum(number(s.get("examples")) or 0
                                         for s in compared.values()))})
    rows.sort(key=lambda r: (r["op"], floatx_key(r["floatx"])))
    return rows


# -- causes ---------------------------------------------------------------------------------
def _explained(records: list[dict]) -> dict:
    verdicts = Counter(str(r.get("verdict") or "known") for r in records)
    return {"explains": len(records), "ops": _names(r.get("op") for r in records),
            "op_anchors": {str(r.get("op")): _op_anchor(str(r.get("op"))) for r in records
                           if not str(r.get("op")).startswith("config/")},
            "targets": sorted({str(r.get("target")) for r in records}),
            "floatx": _floatx_text(r.get("floatx") for r in records),
            "verdicts": sorted(verdicts.items(), key=lambda kv: rank(kv[0]))}


def _cause_view(entry: known.KnownDivergence | None, records: list[dict], fallback: dict) -> dict:
    if entry is not None:
        view = {"cause": entry.cause, "derived": not entry.cause_given, "in_registry": True,
                "reason": clean_text(entry.reason), "link": clean_text(entry.link),
                "repro": clean_text(entry.repro), "upstream": entry.upstream,
                "seen_on": clean_text(entry.seen_on),
                "globs": {k: _globs(getattr(entry, k)) for k in ("op", "target", "floatx",
                                                                 "verdict")}}
    else:  # known in the records only: a registry the run did not record, or since edited
        view = {"cause": clean_text(fallback.get("cause") or ""), "derived": False,
                "in_registry": False, "reason": clean_text(fallback.get("reason") or ""),
                "link": clean_text(fallback.get("link") or ""), "repro": "", "upstream": "",
                "seen_on": "", "globs": None}
    flags = []
    if view["in_registry"] and not view["repro"]:
        flags.append("no repro")
    if view["derived"]:
        flags.append("cause id derived from op and target")
    view["flags"] = flags
    view["anchor"] = "cause-" + slug(view["cause"] or view["reason"][:40])
    return {**view, **_explained(records)}


def _causes(registry: list | None, records: list[dict]):
    known_records = [r for r in records if r.get("status") == "known"]
    causes, stale, idle = [], [], []
    orphans: dict = defaultdict(list)
    if registry is not None:
        by_cause: dict = defaultdict(list)
        for record in known_records:
            entry = known.explained_by(record, registry)
            if entry is None:
                orphans[_record_cause(record)].append(record)
            else:
                by_cause[entry.cause].append(record)
        for row in known.account(registry, records):
            entry = row["entry"]
            if row["explains"]:
                causes.append(_cause_view(entry, by_cause[entry.cause], {}))
                continue
            view = {"cause": entry.cause, "reason": clean_text(entry.reason),
                    "covered": row["covered"],
                    "globs": {k: _globs(getattr(entry, k)) for k in ("op", "target", "floatx",
                                                                     "verdict")}}
            (stale if row["stale"] else idle).append(view)
    else:
        for record in known_records:
            orphans[_record_cause(record)].append(record)
    for key, group in orphans.items():
        causes.append(_cause_view(None, group, group[0].get("known") or {}))
    causes.sort(key=lambda c: -c["explains"])  # stable: registry order among equals
    return causes, stale, idle


def _record_cause(record: dict) -> tuple:
    info = record.get("known") or {}
    cause = str(info.get("cause") or "")
    return (cause, "" if cause else str(info.get("reason") or ""))


def build(summary: dict) -> dict:
    registry = known.recorded(summary.get("run") or {})
    records = list(summary.get("results") or []) + list(summary.get("config") or [])
    agree = _agreement(summary)
    unexpected = _unexpected(summary, {(a["op"], a["floatx"]) for a in agree})
    causes, stale, idle = _causes(registry, records)
    return {"recorded": registry is not None, "unexpected": unexpected,
            "unexpected_count": sum(g["count"] for g in unexpected),
            "agree": agree, "causes": causes, "stale": stale, "idle": idle,
            "explained": sum(c["explains"] for c in causes),
            "no_repro": sum(1 for c in causes if "no repro" in c["flags"])}
