"""The results store: JSON lines streamed as results are produced, summary at the end.

    <out>/results.jsonl   one record per line, flushed as it is written, so an
                          interrupted run keeps everything it had
    <out>/summary.json    {"run": ..., "targets": [...], "results": [...],
                           "pairwise": [...], "config": [...]} written at the end (or rebuilt from
                          results.jsonl by `load`), plus "known_stale": [...] (registry
                          entries that went stale) when the run recorded its registry
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from pathlib import Path

import numpy as np


def jsonable(value):
    """The one encoding of the harness's records as standard JSON: NaN and inf become
    the strings 'nan', 'inf', '-inf' (JSON has no such numbers), numpy scalars become
    Python numbers and arrays nested lists, tuples become lists, paths become text."""
    if isinstance(value, (np.generic, np.ndarray)):
        value = value.tolist() if isinstance(value, np.ndarray) else value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value, **kwargs) -> str:
    """`json.dumps` of `jsonable(value)`: what every results file of the harness holds."""
    return json.dumps(jsonable(value), **kwargs)


# Each record is flushed to the OS as it is written: a run that is interrupted or
# killed keeps every line. The disk itself is synced at most this often (and at the
# end): a sync per record cost ~1.5 ms of the engine's thread, ~5,600 times a run, to
# guard only against the machine itself going down, which then loses one second.
SYNC_EVERY_S = 1.0


class ResultsWriter:
    """Appends records to results.jsonl, one whole line each, from any thread (the
    configuration checks write from their own thread beside the op cases)."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "results.jsonl"
        self._file = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()
        self._synced = time.monotonic()

    def write(self, kind: str, record: dict) -> None:
        line = dumps({"kind": kind, **record}) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if time.monotonic() - self._synced >= SYNC_EVERY_S:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()


class StoreError(Exception):
    """A path that holds no results the harness wrote; the message says which."""


def read_records(path: Path) -> list[dict]:
    """Records of a results.jsonl; a line cut short by a crash is skipped."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


KINDS = ("run", "target", "result", "pairwise", "config")  # what results.jsonl holds


def summarize(records: list[dict]) -> dict:
    """The summary.json structure from streamed records (last record of a key wins)."""
    run, targets, results, pairwise, config = {}, {}, {}, {}, {}
    for record in records:
        kind = record.get("kind")
        if kind == "run":
            run.update({k: v for k, v in record.items() if k != "kind"})
        elif kind == "target":
            targets[(record["id"], record.get("floatx"))] = record
        elif kind == "result":
            results[(record["op"], record["target"], record["floatx"])] = record
        elif kind == "pairwise":
            pairwise[(record["op"], record["floatx"])] = record
        elif kind == "config":  # configuration checks (conformance.configsuite)
            config[(record["target"], record["check"])] = record
    strip = lambda r: {k: v for k, v in r.items() if k != "kind"}
    summary = {"run": run, "targets": [strip(t) for t in targets.values()],
               "results": [strip(r) for r in results.values()],
               "pairwise": [strip(p) for p in pairwise.values()],
               "config": [strip(c) for c in config.values()]}
    # registry entries the run could have matched but that explained nothing (only when
    # the run recorded its registry: see conformance.known)
    from conformance import known

    stale = known.summary_stale(summary)
    if stale is not None:
        summary["known_stale"] = stale
    return summary


def load(path: Path) -> dict:
    """A results folder, results.jsonl or summary.json -> summary structure (StoreError
    when the path holds none)."""
    path = Path(path)
    if path.is_dir():
        jsonl = path / "results.jsonl"
        path = jsonl if jsonl.exists() else path / "summary.json"
        if not path.exists():
            raise StoreError(f"{path.parent} holds neither results.jsonl nor summary.json: "
                             "give the --out folder of a run")
    if path.suffix == ".jsonl":
        records = read_records(path)
        if not any(r.get("kind") in KINDS for r in records):
            raise StoreError(f"{path} holds no records of a conformance run")
        try:
            return summarize(records)
        except (KeyError, TypeError) as exc:
            raise StoreError(f"{path}: a record lacks {exc}: the file is damaged") from None
    try:
        summary = json.loads(path.read_text(errors="replace"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is not a summary.json the harness wrote ({exc})") from None
    if not isinstance(summary, dict) or "results" not in summary:
        raise StoreError(f"{path} is not a summary.json the harness wrote (no 'results')")
    return summary


def write_summary(out_dir: Path, summary: dict) -> Path:
    """summary.json, replaced whole (never half written). Compact JSON through the C
    encoder, which is fast for big runs; a summary holding NaN/inf numbers goes through
    `jsonable` first."""
    try:
        text = json.dumps(summary, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):
        text = dumps(summary, separators=(",", ":"))
    path = Path(out_dir) / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
