"""Baselines: record what every backend computes today, compare after an upgrade.

## Regression checks before upgrades

```text
conformance baseline save NAME [--targets ...] [--ops PATTERN] [--floatx ...] [--examples N]
                               [--seed N] [--dir DIR] [--force]
conformance baseline list [--dir DIR]
conformance compare BASELINE [--targets ...] [--ops PATTERN] [--out DIR] [--dir DIR]
```

`baseline save NAME` draws a fixed corpus (N examples per (op, floatx), default 10, from
a fixed hypothesis seed), *stores the examples* and runs them on every selected ready
target. It writes `baselines/NAME/` (or `DIR/NAME`), plain files that can be committed
or kept as a CI artifact:

    manifest.json          format version, harness version, the corpus index, per target
                           the worker info (python, keras, backend library, numpy) and the
                           environment's `pip freeze`, per (op, target, floatx) the verdict
                           and error figures against the float64 reference
    corpus/<op>-<fx>.*     the examples (.npz arrays + .json static arguments and digest)
    outputs/<target>/...   per example: status, verdict, and each output: whole in .npz
                           when it has at most 1024 elements, else its sha256 plus
                           shape, dtype, min, max, mean and NaN/inf counts

`compare BASELINE` (a name under `baselines/` or a folder) replays the stored corpus on
today's environments: the same inputs, byte for byte, whatever hypothesis or the
strategies do today. Per (op, target, floatx) it reports one of

    unchanged                 every output bit-identical
    changed within tolerance  outputs moved, by at most the op's tolerance taken around the
                              baseline output (the drift is given in ULPs, max over elements)
    changed beyond tolerance  moved further than that, or the verdict got worse
    newly failing             conforming before, now error / crash / timeout / broken /
                              shape / dtype (a numeric fail with a drift beyond tolerance is
                              "changed beyond tolerance", its verdict shows pass -> fail)
    newly passing / newly unsupported / newly supported
    not run                   target not available today, or op no longer in the catalog

plus what changed in between: harness version, per target the worker's versions and the
packages `pip freeze` lists (added, removed, upgraded). It writes OUT/comparison.json,
today's results (results.jsonl, summary.json) and OUT/index.html, the usual report with a
regression view on top. Exit status 1 when something changed beyond tolerance or newly
fails (a target that no longer starts counts), 2 when the baseline cannot be used (e.g.
written in another baseline format: the message says which and what to do).

```bash
conformance baseline save before-tf-upgrade --targets keras3-tensorflow --floatx float32
# ... upgrade tensorflow-cpu in the keras3 environment ...
conformance compare before-tf-upgrade --out reports/tf-upgrade
```

Both verdicts come from today's catalog: the stored baseline outputs are judged again with
today's references and tolerances, so a harness upgrade that retunes a tolerance is
never mistaken for a backend change. Outputs stored only as digests cannot give a drift;
they are judged by their verdict against the reference and marked "digest only".
Random ops are judged statistically: their drift is reported, the classification follows
the verdict.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from conformance import __version__, catalog, compare, corpus, envs, known, overrides, store
from conformance import targets as targets_mod
from conformance.probe import pool_statuses
from conformance.tolerance import Tolerance, floor, ulp

FORMAT = "keras-conformance-baseline"
FORMAT_VERSION = 1
STORE_LIMIT = 1024  # outputs with more elements are kept as digest + summary statistics
DEFAULT_EXAMPLES = 10
FLOATX_ORDER = ("float32", "float64", "float16")

# Change classes, most alarming first; REGRESSIONS set the exit status.
CHANGES = ("newly_failing", "beyond", "newly_unsupported", "within", "newly_passing",
           "newly_supported", "not_run", "unchanged")
LABELS = {"newly_failing": "newly failing", "beyond": "changed beyond tolerance",
          "newly_unsupported": "newly unsupported", "within": "changed within tolerance",
          "newly_passing": "newly passing", "newly_supported": "newly supported",
          "not_run": "not run", "unchanged": "unchanged"}
REGRESSIONS = {"newly_failing", "beyond"}
# worker info keys that describe the run, not the versions
_VOLATILE_INFO = {"keras_home", "floatx", "status"}


class BaselineError(Exception):
    """A baseline cannot be written or read; the message says why and what to do."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _json(value):
    return store._clean(value)  # NaN/inf as strings: the files stay standard JSON


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- outputs: stored whole, or digest + statistics ------------------------------------
def output_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def describe_output(array: np.ndarray) -> dict:
    """dtype, shape, sha256 and summary statistics of one output."""
    array = np.asarray(array)
    record = {"dtype": str(array.dtype), "shape": list(array.shape),
              "sha256": output_digest(array)}
    if array.dtype.kind in "biuf" and array.size:
        values = array.astype("float64").ravel()
        finite = values[np.isfinite(values)]
        record.update(nan=int(np.isnan(values).sum()), inf=int(np.isinf(values).sum()))
        if finite.size:
            record.update(min=float(finite.min()), max=float(finite.max()),
                          mean=float(finite.mean()))
    return record


# -- replay: the stored corpus on a pool ----------------------------------------------
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


def replay(pool, cases: list[Case], targets: dict, log=_log, writer=None,
           registry: list | None = None) -> Replay:
    """Run every case's stored examples on the pool's ready targets, judged by the engine.

    Verdicts stay raw (what a baseline stores and compares); `registry` (known
    divergences) only marks the records written for the report, as `run` does."""
    from conformance.catalog import Context
    from conformance.engine import Engine, RunSettings

    engine = Engine(pool, RunSettings(seed=0, max_examples=0, shrink_calls=0))
    result = Replay()
    started = time.perf_counter()
    by_floatx = sorted({c.floatx for c in cases}, key=_floatx_key)
    done, total = 0, len(cases)
    for floatx in by_floatx:
        log(f"workers to floatx={floatx} ...")
        infos = pool.use_floatx(floatx)
        for tid in pool.targets:
            if tid in infos:
                result.infos.setdefault(tid, {})[floatx] = infos[tid]
            else:
                result.broken.setdefault(tid, {})[floatx] = pool.broken.get(tid, "not started")
        if writer is not None:
            for status in pool_statuses(pool, infos):
                writer.write("target", {**status.as_dict(), "floatx": floatx})
        for case in [c for c in cases if c.floatx == floatx]:
            case_started = time.perf_counter()
            records = _replay_case(engine, pool, case, targets, result, Context)
            done += 1
            if writer is not None:
                for record in records:
                    writer.write("result", known.mark(record, registry, compare.DIVERGENT))
            statuses = {}
            for record in records:
                statuses.setdefault(record["status"], []).append(record["target"])
            parts = [f"{s} {len(t)}" + ("" if s in ("pass", "unsupported") else f" ({', '.join(t)})")
                     for s, t in sorted(statuses.items())]
            log(f"[{done:>4}/{total}] {case.op.family}/{case.op.name}-{floatx:<8} "
                f"{time.perf_counter() - case_started:6.1f}s  {' · '.join(parts)}")
    result.seconds = time.perf_counter() - started
    return result


def _replay_case(engine, pool, case: Case, targets: dict, result: Replay, Context) -> list[dict]:
    op, floatx = case.op, case.floatx
    records = []
    active = []
    for tid in pool.targets:
        key = (op.name, tid, floatx)
        target = targets[tid]
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
    contexts = {t.id: Context(floatx, engine._epsilon(t.id)) for t in active}
    batches, refs_by_example = (engine._fan_out_many(op, case.examples, active, contexts)
                                if active else ({}, []))
    for index, example in enumerate(case.examples if active else ()):
        refs = refs_by_example[index]
        for target in active:
            reply = batches[target.id][index]
            verdict = engine._judge(op, target, floatx, example, reply, refs[target.id])
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


def _floatx_key(floatx: str):
    return FLOATX_ORDER.index(floatx) if floatx in FLOATX_ORDER else len(FLOATX_ORDER)


# -- versions ------------------------------------------------------------------------
_FREEZE_CACHE: dict = {}


def pip_freeze(python: str) -> dict:
    """`python -m pip freeze --all` of an interpreter: {"packages": [...]} or {"error": ...}."""
    if python in _FREEZE_CACHE:
        return _FREEZE_CACHE[python]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    try:
        done = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True,
                              text=True, timeout=300, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        if done.returncode == 0:
            result = {"packages": sorted(line.strip() for line in done.stdout.splitlines()
                                         if line.strip() and not line.startswith("#"))}
        else:
            result = {"error": (done.stderr.strip().splitlines() or ["pip freeze failed"])[-1]}
    _FREEZE_CACHE[python] = result
    return result


def collect_versions(targets: dict, pythons: dict, replay_: Replay, specs: dict,
                     missing: list | None = None) -> dict:
    """Per target: interpreter, worker info per floatx, environment spec, pip freeze."""
    versions = {}
    for tid, target in targets.items():
        entry = {"flavor": target.flavor, "backend": target.backend, "env": target.env,
                 "interpreter": pythons.get(tid)}
        if tid in replay_.infos:
            entry["info"] = replay_.infos[tid]
        if tid in replay_.broken:
            entry["broken"] = replay_.broken[tid]
        spec = specs.get(target.env or "")
        if spec is not None and not target.python:
            marker = envs.env_dir(spec) / "conformance-env.json"
            entry["environment"] = {"name": spec.name, "digest": spec.digest,
                                    "python": spec.python, "requirements": list(spec.requirements),
                                    "path": str(envs.env_dir(spec)),
                                    "marker": json.loads(marker.read_text()) if marker.is_file() else None}
        if pythons.get(tid):
            entry["pip_freeze"] = pip_freeze(pythons[tid])
        versions[tid] = entry
    for status in missing or []:
        versions.setdefault(status.id, {"flavor": status.flavor, "backend": status.backend,
                                        "status": status.status, "reason": status.reason,
                                        "fix": status.fix})
    return versions


def harness_versions() -> dict:
    import hypothesis

    return {"harness": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "hypothesis": hypothesis.__version__}


# -- save ----------------------------------------------------------------------------
def _write_outputs(folder: Path, replay_: Replay, store_limit: int) -> list[dict]:
    """outputs/<target>/<op>-<floatx>.{json,npz}; returns the manifest's entries."""
    entries = []
    for (op_name, tid, floatx), entry in sorted(replay_.entries.items()):
        stem = corpus.file_stem(op_name, floatx)
        relative = f"outputs/{_safe(tid)}/{stem}"
        examples, arrays = [], {}
        for index, example in enumerate(entry.examples):
            record = {k: example[k] for k in ("status", "verdict", "message", "ratio", "ulp")}
            if "outputs" in example:
                record["outputs"] = []
                for j, out in enumerate(example["outputs"]):
                    described = describe_output(out)
                    if out.size <= store_limit and not out.dtype.hasobject:
                        name = f"e{index}_o{j}"
                        arrays[name] = out
                        described["stored"] = name
                    record["outputs"].append(described)
            examples.append(record)
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        if arrays:
            np.savez_compressed(folder / f"{relative}.npz", **arrays)
        (folder / f"{relative}.json").write_text(json.dumps(_json(
            {"op": op_name, "target": tid, "floatx": floatx, "examples": examples}), indent=1))
        entries.append({"op": op_name, "target": tid, "floatx": floatx, "file": relative,
                        **entry.record()})
    return entries


def default_dir(project: Path) -> Path:
    return Path(project) / "baselines"


def save(destination: Path, ops: list, floatx: list[str], targets: list, pythons: dict,
         specs: dict, *, examples: int = DEFAULT_EXAMPLES, corpus_seed: int = corpus.SEED,
         missing: list | None = None, store_limit: int = STORE_LIMIT, force: bool = False,
         log=_log, argv: list | None = None) -> dict:
    """Draw and store the corpus, run it on the runnable targets, write the baseline."""
    from conformance.pool import Pool

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
        for fx in sorted(floatx, key=_floatx_key):
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
    by_id = {t.id: t for t in runnable}
    with Pool(runnable, pythons, work / "workers") as pool:
        result = replay(pool, cases, by_id, log=log)
    shutil.rmtree(work / "workers", ignore_errors=True)
    entries = _write_outputs(work, result, store_limit)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": destination.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1), "argv": argv or sys.argv,
        "harness": harness_versions(), "store_limit": store_limit,
        "corpus": {"seed": corpus_seed, "examples": examples, "cases": index},
        "targets": collect_versions({t.id: t for t in targets}, pythons, result, specs, missing),
        "entries": entries,
    }
    (work / "manifest.json").write_text(json.dumps(_json(manifest), indent=1))
    if destination.exists():
        shutil.rmtree(destination)
    work.rename(destination)
    return manifest


# -- load ----------------------------------------------------------------------------
def read_manifest(path: Path) -> dict:
    """The manifest of a baseline folder, refusing other formats with what to do."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise BaselineError(f"no baseline at {path}: record one with "
                            f"`conformance baseline save {path.name}`")
    if not manifest_path.is_file():
        raise BaselineError(f"{path} is not a baseline: it has no manifest.json")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{manifest_path} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BaselineError(f"{manifest_path} is not a keras-conformance baseline manifest "
                            f"(format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        writer = (manifest.get("harness") or {}).get("harness", "unknown")
        newer = isinstance(version, int) and version > FORMAT_VERSION
        advice = (f"upgrade the harness to one that reads format {version} "
                  f"(it was written by keras-conformance {writer})" if newer else
                  f"compare it with the harness that wrote it (keras-conformance {writer}), "
                  f"or record it again with this harness: `conformance baseline save "
                  f"{manifest.get('name', path.name)} --force` on the environments it "
                  "describes (listed in its manifest.json)")
        raise BaselineError(
            f"baseline {path} is in baseline format version {version} (written by "
            f"keras-conformance {writer}); this harness (keras-conformance {__version__}) "
            f"reads format version {FORMAT_VERSION} only: {advice}")
    return manifest


def load_outputs(path: Path, relative: str) -> list[dict]:
    """The examples of one stored (op, target, floatx), outputs loaded where stored."""
    meta = json.loads((Path(path) / f"{relative}.json").read_text())
    npz = Path(path) / f"{relative}.npz"
    arrays = {}
    if npz.is_file():
        with np.load(npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    for example in meta["examples"]:
        for output in example.get("outputs") or []:
            if output.get("stored"):
                output["array"] = arrays[output["stored"]]
    return meta["examples"]


def resolve(name_or_path: str, directory: Path) -> Path:
    """A folder given as a path, else a name under the baselines folder."""
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    return Path(directory) / name_or_path


# -- compare -------------------------------------------------------------------------
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


def _rejudge(engine, op, target, floatx, examples, stored, epsilon) -> compare.Aggregate:
    """The baseline's verdict under today's catalog: stored outputs judged again; examples
    whose outputs are digests only keep their stored verdict."""
    from conformance.catalog import Context

    aggregate = compare.Aggregate()
    for example, old in zip(examples, stored):
        outputs = old.get("outputs")
        if old.get("status") == "ok" and outputs and all("array" in o for o in outputs):
            reply = {"status": "ok", "outputs": [o["array"] for o in outputs]}
            verdict = engine._judge(op, target, floatx, example, reply,
                                    op.references(example, Context(floatx, epsilon)))
        elif old.get("status") == "ok" and outputs == []:
            verdict = engine._judge(op, target, floatx, example, {"status": "ok", "outputs": []},
                                    op.references(example, Context(floatx, epsilon)))
        else:
            verdict = compare.Verdict(old.get("verdict") or "error", old.get("message") or "",
                                      worst_ratio=_number(old.get("ratio")) or 0.0,
                                      max_ulp=_number(old.get("ulp")) or 0.0)
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


def _package_map(freeze: dict | None) -> dict:
    packages = {}
    for line in (freeze or {}).get("packages") or []:
        for separator in ("===", "==", " @ "):
            if separator in line:
                name, version = line.split(separator, 1)
                packages[name.strip().lower().replace("_", "-")] = version.strip()
                break
        else:
            packages[line.strip().lower()] = ""
    return packages


def version_changes(old: dict, new: dict) -> dict:
    """Per target: changed worker-info fields, interpreter/environment, package diffs."""
    changes = {}
    for tid in sorted(set(old) | set(new)):
        before, after = old.get(tid) or {}, new.get(tid) or {}
        change = {"info": [], "packages": {"added": [], "removed": [], "changed": []}}
        first = lambda entry: next(iter((entry.get("info") or {}).values()), {}) or {}
        info_old, info_new = first(before), first(after)
        for key in sorted(set(info_old) | set(info_new)):
            if key in _VOLATILE_INFO:
                continue
            if info_old.get(key) != info_new.get(key):
                change["info"].append({"key": key, "old": info_old.get(key),
                                       "new": info_new.get(key)})
        for key in ("interpreter", "backend", "flavor"):
            if before.get(key) != after.get(key) and not any(
                    c["key"] == key for c in change["info"]):
                change["info"].append({"key": key, "old": before.get(key), "new": after.get(key)})
        env_old = (before.get("environment") or {}).get("digest")
        env_new = (after.get("environment") or {}).get("digest")
        if env_old != env_new:
            change["info"].append({"key": "environment", "old": env_old, "new": env_new})
        p_old = _package_map(before.get("pip_freeze"))
        p_new = _package_map(after.get("pip_freeze"))
        packages = change["packages"]
        packages["added"] = [{"name": n, "new": p_new[n]} for n in sorted(set(p_new) - set(p_old))]
        packages["removed"] = [{"name": n, "old": p_old[n]} for n in sorted(set(p_old) - set(p_new))]
        packages["changed"] = [{"name": n, "old": p_old[n], "new": p_new[n]}
                               for n in sorted(set(p_old) & set(p_new)) if p_old[n] != p_new[n]]
        for side, entry in (("baseline", before), ("today", after)):
            error = (entry.get("pip_freeze") or {}).get("error")
            if error:
                change.setdefault("notes", []).append(f"pip freeze failed ({side}): {error}")
        if not before:
            change.setdefault("notes", []).append("not in the baseline")
        if not after:
            change.setdefault("notes", []).append("not run today")
        change["changed"] = bool(change["info"] or any(packages.values()))
        changes[tid] = change
    return changes


def compare_baseline(path: Path, targets: dict, pythons: dict, specs: dict, out: Path, *,
                     wanted: list[str] | None = None, op_patterns: list[str] | None = None,
                     missing: list | None = None, log=_log, argv: list | None = None,
                     render_report: bool = True, registry: list | None = None) -> dict:
    """Replay a baseline's corpus today; write OUT/comparison.json, results and report."""
    from conformance.engine import Engine, RunSettings
    from conformance.pool import Pool

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
    out.mkdir(parents=True, exist_ok=True)
    writer = store.ResultsWriter(out)
    writer.write("run", {"harness_version": __version__, "profile": "baseline replay",
                         "seed": manifest["corpus"]["seed"], "argv": argv or sys.argv,
                         "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                         "floatx": sorted({c.floatx for c in cases}, key=_floatx_key),
                         "ops": len(cases), "baseline": manifest["name"],
                         "targets": [t.id for t in runnable]})
    result = Replay()
    if runnable and cases:
        with Pool(runnable, pythons, out / "workers") as pool:
            result = replay(pool, cases, {t.id: t for t in runnable}, log=log, writer=writer,
                            registry=registry)
    writer.write("run", {"finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         "duration_s": round(time.time() - started, 1), "cases_done": len(cases)})
    writer.close()  # OUT/workers keeps the worker logs, as `conformance run` does

    engine = Engine(None, RunSettings(seed=0, max_examples=0, shrink_calls=0))
    stored_entries = {(e["op"], e["target"], e["floatx"]): e for e in manifest["entries"]}
    entries = []
    for case in cases:
        for tid in chosen:
            key = (case.op.name, tid, case.floatx)
            stored = stored_entries.get(key)
            if stored is None:
                continue  # target was not runnable when the baseline was saved
            entries.append(_compare_entry(engine, case, tid, stored, path, manifest, result,
                                          absent, targets))
    for entry in gone:
        for tid in chosen:
            stored = stored_entries.get((entry["op"], tid, entry["floatx"]))
            if stored is not None:
                entries.append(_entry_base(entry["op"], entry.get("family"), tid, entry["floatx"],
                                           stored) | {"change": "not_run", "notes": [
                                               "op no longer in the catalog"]})
    entries.sort(key=lambda e: (CHANGES.index(e["change"]), e["family"] or "", e["op"],
                                _floatx_key(e["floatx"]), e["target"]))
    today = collect_versions({t.id: t for t in runnable}, pythons, result, specs)
    counts = {change: sum(1 for e in entries if e["change"] == change) for change in CHANGES}
    regressions = sum(counts[c] for c in REGRESSIONS)
    comparison = {
        "format_version": FORMAT_VERSION,
        "baseline": {"name": manifest["name"], "path": str(path), "created": manifest["created"],
                     "harness": manifest["harness"], "corpus": {k: manifest["corpus"][k]
                                                                for k in ("seed", "examples")}},
        "compared": {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
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
    (out / "comparison.json").write_text(json.dumps(_json(comparison), indent=1))
    summary = store.load(out / "results.jsonl")
    store.write_summary(out, summary)
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


def _compare_entry(engine, case: Case, tid: str, stored: dict, path: Path, manifest: dict,
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
        rejudged = _rejudge(engine, op, targets[tid], floatx, case.examples, old_examples, epsilon)
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


# -- command line --------------------------------------------------------------------
def _split(values) -> list[str] | None:
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def add_command(commands) -> None:
    """Add `baseline save|list` and `compare` to the `conformance` subcommands."""
    baseline = commands.add_parser(
        "baseline", help="record a reproducible baseline of every target's outputs",
        description="Record what every backend computes today on a stored corpus, to "
                    "compare after an upgrade with `conformance compare`.")
    actions = baseline.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    save_ = actions.add_parser(
        "save", help="draw and store a corpus, run it, store outputs, verdicts and versions",
        description="Draw a fixed corpus (stored, so a replay uses the same inputs even after "
                    "a hypothesis upgrade), run it on the selected ready targets and write "
                    "DIR/NAME: manifest.json, corpus/ and outputs/.")
    save_.add_argument("name", help="baseline name (a folder under --dir)")
    save_.add_argument("--targets", action="append", help="comma-separated target ids "
                       "(default: all)")
    save_.add_argument("--ops", action="append", help="comma-separated globs on op names or "
                       "family/name (default: the whole catalog)")
    save_.add_argument("--floatx", default="float32,float64,float16",
                       help="comma-separated floatx values (default: %(default)s)")
    save_.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                       help="examples per (op, floatx) (default: %(default)s)")
    save_.add_argument("--seed", type=int, default=corpus.SEED,
                       help="corpus seed (default: %(default)s)")
    save_.add_argument("--dir", help="baselines folder (default: baselines/ in the project)")
    save_.add_argument("--force", action="store_true", help="replace an existing baseline")
    save_.set_defaults(handler=cmd_save)
    listing = actions.add_parser("list", help="list the baselines in the baselines folder")
    listing.add_argument("--dir", help="baselines folder (default: baselines/ in the project)")
    listing.set_defaults(handler=cmd_list)

    comparing = commands.add_parser(
        "compare", help="replay a baseline on today's environments and report what changed",
        description="Replay a baseline's stored corpus on today's environments; classify each "
                    "(op, target, floatx) as unchanged, changed within / beyond tolerance, newly "
                    "failing / passing / unsupported / supported; list version changes. Exit "
                    "status 1 when something changed beyond tolerance or newly fails.")
    comparing.add_argument("baseline", help="baseline name (under --dir) or folder")
    comparing.add_argument("--targets", action="append",
                           help="comma-separated target ids (default: the baseline's)")
    comparing.add_argument("--ops", action="append", help="only these ops (globs)")
    comparing.add_argument("--out", help="results folder (default: reports/compare-NAME-<time>)")
    comparing.add_argument("--dir", help="baselines folder (default: baselines/ in the project)")
    comparing.add_argument("--no-report", action="store_true", help="skip the HTML report")
    comparing.set_defaults(handler=cmd_compare)


def _project(args) -> Path:
    return Path(getattr(args, "project", ".") or ".")


def _load_targets(args):
    from conformance import probe

    project = _project(args)
    config = targets_mod.load_project_config(project)
    all_targets = targets_mod.load_targets(config, project)
    specs = targets_mod.load_envs(config)
    return all_targets, specs, probe


def cmd_save(args) -> int:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name):  # ../x would leave --dir
        print(f"error: baseline name {args.name!r}: use letters, digits, '.', '_' and '-' "
              "(it names a folder under --dir; give --dir to keep baselines elsewhere)",
              file=sys.stderr)
        return 2
    all_targets, specs, probe = _load_targets(args)
    selected = targets_mod.select(all_targets, _split(args.targets))
    floatx = _split(args.floatx) or []
    bad = [f for f in floatx if f not in targets_mod.FLOATX]
    if bad or not floatx:
        print(f"error: --floatx: unknown {bad}; use {targets_mod.FLOATX}", file=sys.stderr)
        return 2
    if args.examples < 1:
        print("error: --examples must be at least 1", file=sys.stderr)
        return 2
    ops = catalog.select(catalog.all_ops(), _split(args.ops))
    if not ops:
        print(f"error: no op matches {_split(args.ops)}", file=sys.stderr)
        return 2
    pythons, missing = probe.resolve_interpreters(selected, specs)
    for status in missing:
        _log(f"target {status.id}: {status.status}: {status.reason} (fix: {status.fix})")
    destination = Path(args.dir or default_dir(_project(args))) / args.name
    started = time.perf_counter()
    try:
        manifest = save(destination, ops, floatx, selected, pythons, specs,
                        examples=args.examples, corpus_seed=args.seed, missing=missing,
                        force=args.force)
    except (BaselineError, corpus.CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts: dict = {}
    for entry in manifest["entries"]:
        counts.setdefault(entry["target"], {}).setdefault(entry["status"], 0)
        counts[entry["target"]][entry["status"]] += 1
    for tid, by_status in counts.items():
        print(f"  {tid:<20} " + ", ".join(f"{s} {n}" for s, n in sorted(by_status.items())))
    print(f"baseline {destination} saved: {len(manifest['corpus']['cases'])} (op, floatx) cases x "
          f"{len(counts)} targets in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_list(args) -> int:
    folder = Path(args.dir or default_dir(_project(args)))
    found = sorted(p for p in folder.glob("*/manifest.json")) if folder.is_dir() else []
    if not found:
        print(f"no baselines in {folder}")
        return 0
    for manifest_path in found:
        try:
            manifest = read_manifest(manifest_path.parent)
        except BaselineError as exc:
            print(f"{manifest_path.parent.name:<24} unreadable: {exc}")
            continue
        print(f"{manifest['name']:<24} {manifest['created']}  "
              f"{len(manifest['corpus']['cases'])} cases  targets {', '.join(manifest['targets'])}")
    return 0


def cmd_compare(args) -> int:
    all_targets, specs, probe = _load_targets(args)
    path = resolve(args.baseline, Path(args.dir or default_dir(_project(args))))
    wanted = _split(args.targets)
    try:
        manifest = read_manifest(path)
    except BaselineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ran = {e["target"] for e in manifest["entries"]}
    chosen = wanted or [t for t in manifest["targets"] if t in ran]
    configured = [all_targets[t] for t in chosen if t in all_targets]
    pythons, missing = probe.resolve_interpreters(configured, specs)
    out = Path(args.out or Path("reports") / time.strftime(
        f"compare-{_safe(manifest['name'])}-%Y%m%d-%H%M%S"))
    try:
        comparison = compare_baseline(path, all_targets, pythons, specs, out, wanted=wanted,
                                      op_patterns=_split(args.ops), missing=missing,
                                      render_report=not args.no_report,
                                      registry=known.load(_project(args) / "known_divergences.toml"))
    except (BaselineError, corpus.CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_comparison(comparison, out)
    return 1 if comparison["regressions"] else 0


def _fmt(value, digits=3) -> str:
    number = _number(value)
    if number is None:
        return "–"
    if math.isinf(number):
        return "inf"
    return f"{number:.{digits}g}"


def print_comparison(comparison: dict, out: Path | None = None) -> None:
    counts = comparison["counts"]
    print()
    print("  ".join(f"{LABELS[c]} {counts[c]}" for c in CHANGES if counts.get(c)))
    for entry in comparison["entries"]:
        if entry["change"] == "unchanged":
            continue
        old = (entry.get("old") or {}).get("status_today") or (entry.get("old") or {}).get("status")
        new = (entry.get("new") or {}).get("status", "–")
        drift_text = ""
        if entry["change"] in ("within", "beyond"):
            drift_text = (f" drift {_fmt(entry.get('drift_ulp'))} ulp, "
                          f"{_fmt(entry.get('drift_ratio'))}x tolerance")
        notes = "; ".join(n for n in entry.get("notes") or [] if not n.startswith("verdict "))
        print(f"  {LABELS[entry['change']]:<25} {entry['op']:<24} {entry['target']:<18} "
              f"{entry['floatx']:<8} {old} -> {new}{drift_text}"
              + (f"  ({notes[:120]})" if notes else ""))
    for key, change in comparison.get("harness_change", {}).items():
        print(f"  harness {key}: {change['old']} -> {change['new']}")
    for tid, change in comparison["versions"].items():
        if not change.get("changed") and not change.get("notes"):
            continue
        packages = change["packages"]
        parts = [f"{c['key']} {c['old']} -> {c['new']}" for c in change["info"]]
        parts += [f"{p['name']} {p['old']} -> {p['new']}" for p in packages["changed"]]
        parts += [f"+{p['name']} {p['new']}" for p in packages["added"]]
        parts += [f"-{p['name']} {p['old']}" for p in packages["removed"]]
        parts += change.get("notes", [])
        print(f"  versions {tid}: " + "; ".join(parts[:12])
              + (f" (+{len(parts) - 12} more)" if len(parts) > 12 else ""))
    status = (f"{comparison['regressions']} regression(s)" if comparison["regressions"]
              else "no regression")
    where = f"; results in {out}" if out else ""
    print(f"\n{status} against baseline {comparison['baseline']['name']}{where}")
    if comparison.get("report"):
        print(f"report: {comparison['report']}")


def main(argv: list[str] | None = None) -> int:
    """`python -m conformance.baseline save|list|compare ...`: the same as `conformance ...`."""
    from conformance import cli

    return cli.main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
