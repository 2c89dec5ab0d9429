"""Merging several result summaries into one.

The rule: records are keyed the way `conformance.store.summarize` keys them,

    targets   (id, floatx)
    results   (op, target, floatx)
    pairwise  (op, floatx)         (their ``pairs`` dicts are merged, later pair wins)
    config    (target, check)      (configuration checks)

and summaries are applied in the order given, so a later record with the same key
replaces an earlier one (shards of one run do not overlap; for a re-run of some ops,
pass the re-run last). The run header is merged field by field: identical values stay
single, differing ones (seeds of different runs, shard names) are kept as a list;
``started`` is the earliest, ``finished`` the latest but only when every shard has
one (a shard without it was interrupted); ``duration_s``, ``ops`` (the (op, floatx)
cases planned) and ``cases_done`` are the sums over the shards.
Every input run header is kept under ``run["shards"]`` when there is more than one.
"""
from __future__ import annotations

import copy
from pathlib import Path

SOURCE = "_source"  # transient key: index of the summary a result came from


def _merge_run(runs: list[dict]) -> dict:
    runs = [r or {} for r in runs]
    if len(runs) == 1:
        return dict(runs[0])
    merged: dict = {}
    keys = []
    for run in runs:
        keys += [k for k in run if k not in keys]
    for key in keys:
        values = [run[key] for run in runs if key in run]
        if key == "started":
            merged[key] = min(str(v) for v in values)
        elif key == "finished":
            if len(values) == len(runs):
                merged[key] = max(str(v) for v in values)
        elif key in ("duration_s", "ops", "cases_done"):
            try:
                total = sum(float(v) for v in values)
            except (TypeError, ValueError):
                merged[key] = values[-1]
            else:
                merged[key] = round(total, 3) if key == "duration_s" else int(total)
        elif key == "floatx":
            union = []
            for value in values:
                for fx in (value if isinstance(value, list) else [value]):
                    if fx not in union:
                        union.append(fx)
            merged[key] = union
        else:
            distinct = []
            for value in values:
                if value not in distinct:
                    distinct.append(value)
            merged[key] = distinct[0] if len(distinct) == 1 else distinct
    merged["shards"] = runs
    return merged


def merge(summaries: list[dict]) -> dict:
    """One summary from several (see the module docstring for the rule).

    Each result gets a transient ``_source`` index (which summary it came from) so the
    report can find its counterexample arrays; `strip_sources` removes it.
    """
    targets: dict = {}
    results: dict = {}
    pairwise: dict = {}
    config: dict = {}
    for index, summary in enumerate(summaries):
        summary = summary or {}
        for check in summary.get("config") or []:
            config[(check.get("target"), check.get("check"))] = check
        for target in summary.get("targets") or []:
            targets[(target.get("id"), target.get("floatx"))] = target
        for result in summary.get("results") or []:
            record = dict(result)
            record[SOURCE] = index
            results[(record.get("op"), record.get("target"), record.get("floatx"))] = record
        for entry in summary.get("pairwise") or []:
            key = (entry.get("op"), entry.get("floatx"))
            if key in pairwise:
                combined = copy.copy(pairwise[key])
                combined["pairs"] = {**(pairwise[key].get("pairs") or {}),
                                     **(entry.get("pairs") or {})}
                pairwise[key] = combined
            else:
                pairwise[key] = entry
    run = _merge_run([s.get("run") or {} for s in summaries if s is not None]) if summaries else {}
    merged = {"run": run, "targets": list(targets.values()), "results": list(results.values()),
              "pairwise": list(pairwise.values())}
    if config:
        merged["config"] = list(config.values())
    return merged


def strip_sources(summary: dict) -> dict:
    return {**summary, "results": [{k: v for k, v in r.items() if k != SOURCE}
                                   for r in summary["results"]]}


def source_dirs(results_dirs: list[Path] | None, count: int) -> list[Path | None]:
    if results_dirs is None:
        return [None] * count
    if len(results_dirs) != count:
        raise ValueError(f"results_dirs has {len(results_dirs)} entries for {count} summaries")
    return [Path(d) if d is not None else None for d in results_dirs]
