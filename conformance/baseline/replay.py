"""Baselines run: the stored corpus replayed on today's targets through the run loop,
saved as a baseline folder or compared with one."""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from conformance import catalog, compare, corpus, known, overrides, store
from conformance.baseline.drift import CHANGES, REGRESSIONS, classify, rejudge
from conformance.baseline.outputs import (DEFAULT_EXAMPLES, FORMAT, FORMAT_VERSION, STORE_LIMIT,
                                          BaselineError, load_outputs, read_manifest,
                                          write_outputs)
from conformance.baseline.versions import collect_versions, harness_versions, version_changes
from conformance.engine import RunSettings
from conformance.runloop import Run, floatx_order, now_text, say_on_stderr

# Replays draw nothing and shrink nothing: the stored examples are the cases.
_REPLAY_SETTINGS = RunSettings(seed=0, max_examples=0, shrink_calls=0)


@dataclass
class Case:
    """One (op, floatx) of the corpus: its examples and index entry."""

    op: catalog.Op
    floatx: str
    examples: list
    entry: dict


@dataclass
class Entry:
    """One (op, target, floatx) of a replay: the aggregate and every example."""

    aggregate: compare.Aggregate
    examples: list = field(default_factory=list)  # {"status", "message", "verdict", "outputs"}

    def record(self) -> dict:
        agg = self.aggregate
        return {"status": agg.status, "message": agg.message, "examples": agg.examples,
                "counts": agg.counts, "max_abs_err": agg.max_abs_err, "max_ulp": agg.max_ulp,
                "worst_ratio": agg.worst_ratio}


@dataclass
class Replay:
    entries: dict = field(default_factory=dict)  # (op, target, floatx) -> Entry
    infos: dict = field(default_factory=dict)  # target -> floatx -> worker info
    broken: dict = field(default_factory=dict)  # target -> floatx -> reason
    seconds: float = 0.0


def _verdict_from(reply: dict, verdict: compare.Verdict) -> dict:
    example = {"status": reply.get("status"), "verdict": verdict.status,
               "message": verdict.message, "ratio": verdict.worst_ratio,
               "ulp": verdict.max_ulp}
    if reply.get("status") == "ok":
        example["outputs"] = [np.asarray(o) for o in reply["outputs"]]
    return example


def replay(run: Run, cases: list[Case], registry: list | None = None) -> Replay:
    """Run every case's stored examples on the run's ready targets, judged as a run
    judges them (compare.judge), floatx by floatx.

    Verdicts stay raw (what a baseline stores and compares); `registry` (known
    divergences) only marks the records written for the report, as `run` does."""
    result = Replay()
    started = time.perf_counter()
    run.total = len(cases)
    for floatx in sorted({c.floatx for c in cases}, key=floatx_order):
        infos = run.switch_floatx(floatx)
        for tid in run.pool.targets:
            if tid in infos:
                result.infos.setdefault(tid, {})[floatx] = infos[tid]
            else:
                result.broken.setdefault(tid, {})[floatx] = run.pool.broken.get(tid, "not started")
        for case in [c for c in cases if c.floatx == floatx]:
            case_started = time.perf_counter()
            records = [known.mark(record, registry, compare.DIVERGENT)
                       for record in _replay_case(run, case, result)]
            for record in records:
                run.write("result", record)
            run.case_done(f"{case.op.family}/{case.op.name}-{floatx:<8}", records,
                          time.perf_counter() - case_started)
    result.seconds = time.perf_counter() - started
    return result


def _replay_case(run: Run, case: Case, result: Replay) -> list[dict]:
    op, floatx = case.op, case.floatx
    pool = run.pool
    records = []
    active = []
    for tid in pool.targets:
        key = (op.name, tid, floatx)
        target = pool.targets[tid]
        if tid not in pool.ready:
            agg = compare.Aggregate(status="broken",
                                    message=str(result.broken.get(tid, {}).get(floatx, ""))[:500])
            result.entries[key] = Entry(agg)
        elif op.call_for(target.flavor) is None:
            agg = compare.Aggregate(status="unsupported",
                                    message=f"not available in the {target.flavor} flavor")
            result.entries[key] = Entry(agg)
        else:
            active.append(target)
            result.entries[key] = Entry(compare.Aggregate())
    contexts = run.engine.contexts(active, floatx)
    batches, refs_by_example = (run.engine.fan_out(op, case.examples, active, contexts)
                                if active else ({}, []))
    for index, example in enumerate(case.examples if active else ()):
        refs = refs_by_example[index]
        for target in active:
            reply = batches[target.id][index]
            verdict = compare.judge(op, target.id, floatx, example, reply, refs[target.id])
            entry = result.entries[(op.name, target.id, floatx)]
            entry.aggregate.add(verdict, reply.get("backend_s", 0.0))
            entry.examples.append(_verdict_from(reply, verdict))
    for tid in pool.targets:
        entry = result.entries[(op.name, tid, floatx)]
        records.append({"op": op.name, "family": op.family, "target": tid, "floatx": floatx,
                        "verdict": entry.aggregate.status, "tolerance": op.tolerance.formula,
                        "ratios": entry.aggregate.ratios,
                        "backend_s": round(entry.aggregate.backend_s, 4),
                        "counterexample": None, **entry.record()})
    return records


def save(destination: Path, ops: list, floatx: list[str], targets: list, pythons: dict,
         specs: dict, *, examples: int = DEFAULT_EXAMPLES, corpus_seed: int = corpus.SEED,
         missing: list | None = None, store_limit: int = STORE_LIMIT, force: bool = False,
         log=say_on_stderr, argv: list | None = None) -> dict:
    """Draw and store the corpus, run it on the runnable targets, write the baseline."""
    destination = Path(destination)
    if destination.exists() and not force:
        raise BaselineError(f"{destination} exists: choose another name or pass --force")
    runnable = [t for t in targets if t.id in pythons]
    if not runnable:
        raise BaselineError("no selected target can run here; see `conformance targets`")
    work = destination.with_name(destination.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.time()
    cases, index = [], []
    for op in ops:
        for fx in sorted(floatx, key=floatx_order):
            if fx not in op.floatx:
                continue
            drawn = corpus.draw(op, fx, examples, corpus_seed)
            stored = corpus.save(work / "corpus", op.name, fx, drawn)
            entry = {"op": op.name, "family": op.family, "floatx": fx, **stored}
            index.append(entry)
            cases.append(Case(op, fx, drawn, entry))
    if not cases:
        raise BaselineError("no (op, floatx) case selected: check --ops and --floatx")
    log(f"corpus: {len(cases)} (op, floatx) cases, {sum(e['examples'] for e in index)} "
        f"examples (seed {corpus_seed}); running on {', '.join(t.id for t in runnable)}")
    run = Run(runnable, pythons, settings=_REPLAY_SETTINGS, floatx=sorted(floatx, key=floatx_order),
              out_dir=None, workdir=work / "workers", say=log)
    run.open()
    try:
        result = replay(run, cases)
    finally:
        run.close()
    shutil.rmtree(work / "workers", ignore_errors=True)
    entries = write_outputs(work, result, store_limit)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": destination.name,
        "created": now_text(started),
        "duration_s": round(time.time() - started, 1), "argv": argv or sys.argv,
        "harness": harness_versions(), "store_limit": store_limit,
        "corpus": {"seed": corpus_seed, "examples": examples, "cases": index},
        "targets": collect_versions({t.id: t for t in targets}, pythons, result, specs, missing),
        "entries": entries,
    }
    (work / "manifest.json").write_text(store.dumps(manifest, indent=1))
    if destination.exists():
        shutil.rmtree(destination)
    work.rename(destination)
    return manifest


def compare_baseline(path: Path, targets: dict, pythons: dict, specs: dict, out: Path, *,
                     wanted: list[str] | None = None, op_patterns: list[str] | None = None,
                     missing: list | None = None, log=say_on_stderr, argv: list | None = None,
                     render_report: bool = True, registry: list | None = None) -> dict:
    """Replay a baseline's corpus today; write OUT/comparison.json, results and report."""
    path = Path(path)
    manifest = read_manifest(path)
    out = Path(out)
    started = time.time()
    ran = {e["target"] for e in manifest["entries"]}
    base_targets = [t for t in manifest["targets"] if t in ran]
    chosen = wanted or base_targets
    not_in_baseline = [t for t in chosen if t not in base_targets]
    if not_in_baseline:
        raise BaselineError(f"target(s) {', '.join(not_in_baseline)} are not in baseline "
                            f"{path} (it has {', '.join(base_targets)})")
    runnable = [targets[t] for t in chosen if t in targets and t in pythons]
    absent = {t: ("no longer configured" if t not in targets else
                  next((f"{s.status}: {s.reason} (fix: {s.fix})" for s in missing or []
                        if s.id == t), "no interpreter")) for t in chosen
              if t not in targets or t not in pythons}
    catalog_ops = {op.name: op for op in catalog.all_ops()}
    if op_patterns:
        wanted_ops = {op.name for op in catalog.select(list(catalog_ops.values()), op_patterns)}
    cases, gone = [], []
    for entry in manifest["corpus"]["cases"]:
        if op_patterns and entry["op"] not in wanted_ops:
            continue
        op = catalog_ops.get(entry["op"])
        if op is None:
            gone.append(entry)
            continue
        examples = corpus.load(path / "corpus", entry["file"], entry["sha256"])
        cases.append(Case(op, entry["floatx"], examples, entry))
    log(f"baseline {manifest['name']} ({manifest['created']}, keras-conformance "
        f"{manifest['harness']['harness']}): replaying {len(cases)} (op, floatx) cases on "
        f"{', '.join(t.id for t in runnable) or 'no target'}")
    for tid, reason in absent.items():
        log(f"target {tid} cannot run today: {reason}")
    run = Run(runnable, pythons, settings=replace(_REPLAY_SETTINGS, seed=manifest["corpus"]["seed"]),
              floatx=sorted({c.floatx for c in cases}, key=floatx_order), out_dir=out,
              workdir=out / "workers", say=log, report=False,
              header={"profile": "baseline replay", "baseline": manifest["name"],
                      "argv": argv or sys.argv, "hypothesis": None})
    run.total = len(cases)
    run.open()  # OUT/workers keeps the worker logs, as `conformance run` does
    try:
        result = replay(run, cases, registry) if runnable and cases else Replay()
    finally:
        run.close()  # results.jsonl and summary.json; the report is the regression view
    stored_entries = {(e["op"], e["target"], e["floatx"]): e for e in manifest["entries"]}
    entries = []
    for case in cases:
        for tid in chosen:
            key = (case.op.name, tid, case.floatx)
            stored = stored_entries.get(key)
            if stored is None:
                continue  # target was not runnable when the baseline was saved
            entries.append(_compare_entry(case, tid, stored, path, manifest, result, absent,
                                          targets))
    for entry in gone:
        for tid in chosen:
            stored = stored_entries.get((entry["op"], tid, entry["floatx"]))
            if stored is not None:
                entries.append(_entry_base(entry["op"], entry.get("family"), tid, entry["floatx"],
                                           stored) | {"change": "not_run", "notes": [
                                               "op no longer in the catalog"]})
    entries.sort(key=lambda e: (CHANGES.index(e["change"]), e["family"] or "", e["op"],
                                floatx_order(e["floatx"]), e["target"]))
    today = collect_versions({t.id: t for t in runnable}, pythons, result, specs)
    counts = {change: sum(1 for e in entries if e["change"] == change) for change in CHANGES}
    regressions = sum(counts[c] for c in REGRESSIONS)
    comparison = {
        "format_version": FORMAT_VERSION,
        "baseline": {"name": manifest["name"], "path": str(path), "created": manifest["created"],
                     "harness": manifest["harness"], "corpus": {k: manifest["corpus"][k]
                                                                for k in ("seed", "examples")}},
        "compared": {"created": now_text(started),
                     "duration_s": round(time.time() - started, 1), "harness": harness_versions(),
                     "targets": [t.id for t in runnable], "not_run": absent},
        "counts": counts, "regressions": regressions,
        "status": "regressed" if regressions else "ok",
        "harness_change": {k: {"old": manifest["harness"].get(k), "new": v}
                           for k, v in harness_versions().items()
                           if manifest["harness"].get(k) != v},
        "versions": version_changes({t: manifest["targets"][t] for t in chosen
                                     if t in manifest["targets"]}, today),
        "entries": entries,
    }
    (out / "comparison.json").write_text(store.dumps(comparison, indent=1))
    summary = store.load(out / "summary.json")
    if render_report:
        try:
            from conformance.report import regression
        except ImportError as exc:  # the report package is optional
            log(f"report skipped: {exc}")
        else:
            html = regression.render(summary, comparison, out / "index.html", [out])
            comparison["report"] = str(html)
    return comparison


def _entry_base(op_name, family, tid, floatx, stored) -> dict:
    return {"op": op_name, "family": family, "target": tid, "floatx": floatx,
            "old": {k: stored.get(k) for k in ("status", "message", "max_ulp", "worst_ratio",
                                                 "examples")},
            "new": None, "drift_ulp": None, "drift_abs": None, "drift_ratio": None,
            "changed_examples": 0}


def _compare_entry(case: Case, tid: str, stored: dict, path: Path, manifest: dict,
                   result: Replay, absent: dict, targets: dict) -> dict:
    op, floatx = case.op, case.floatx
    entry = _entry_base(op.name, op.family, tid, floatx, stored)
    if tid in absent:
        return entry | {"change": "not_run", "notes": [f"target cannot run today: {absent[tid]}"]}
    now = result.entries.get((op.name, tid, floatx))
    if now is None:
        return entry | {"change": "not_run", "notes": ["not replayed"]}
    old_examples = load_outputs(path, stored["file"])
    info = (manifest["targets"].get(tid, {}).get("info") or {}).get(floatx) or {}
    epsilon = float(info.get("epsilon", targets[tid].epsilon))
    old_status = stored["status"]
    notes = []
    if old_status not in ("unsupported", "broken"):
        rejudged = rejudge(op, tid, floatx, case.examples, old_examples, epsilon)
        if rejudged.status != old_status:
            notes.append(f"baseline verdict {old_status} when saved, {rejudged.status} "
                         "under today's catalog (tolerance or reference changed)")
            old_status = rejudged.status
    entry["old"]["status_today"] = old_status
    new = now.record()
    entry["new"] = {k: new[k] for k in ("status", "message", "max_ulp", "worst_ratio", "examples")}
    scale, _ = overrides.factor(op.name, tid, floatx)
    figures = classify(op, floatx, case.examples, old_status, old_examples, new["status"],
                       now.examples, scale)
    figures["notes"] = notes + figures["notes"]
    return entry | figures
