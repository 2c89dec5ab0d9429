"""The results store: JSON lines streamed as results are produced, summary at the end.

    <out>/results.jsonl   one record per line, flushed as it is written, so an
                          interrupted run keeps everything it had
    <out>/summary.json    {"run": ..., "targets": [...], "results": [...],
                           "pairwise": [...], "config": [...]} written at the end (or rebuilt from
                          results.jsonl by `load`), plus "known_stale": [...] (registry
                          entries that went stale) when the run recorded its registry
"""
from __future__ import annotations

import errno
import json
import math
import os
import tempfile
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


class OutputError(Exception):
    """A results file cannot be written (disk full, read-only, permission): the message
    names the file, the error and what was kept."""


def output_error(path: Path, exc: OSError, kept: str = "") -> OutputError:
    """The OutputError of `exc` (an OSError writing `path`), with what to do."""
    advice = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space on that disk",
              errno.EFBIG: "free space on that disk or raise the file size limit",
              errno.EISDIR: "move that folder away"}.get(exc.errno, "make it writable")
    kept = f"; {kept}" if kept else ""
    return OutputError(f"cannot write {path}: {exc.strerror or exc}{kept}; {advice}, or give "
                       "another folder with --out, and run again")


def check_writable(folder: Path) -> None:
    """OutputError unless files can be created in `folder`, or in the nearest folder
    above it that exists when it does not yet (the run creates it): a file in the way,
    a read-only disk, no permission, a full disk. Nothing is left behind."""
    folder = Path(folder).absolute()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot create {folder}: {existing} is a file, not a folder; give "
                          "a folder path with --out")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".conformance-probe-") as probe:
            probe.write(b"{}\n")
            probe.flush()
            os.fsync(probe.fileno())  # a full disk may only say so here
    except OSError as exc:
        raise OutputError(f"cannot write {folder}: creating a file in {existing} fails "
                          f"({exc.strerror or exc}); give a folder you can write with "
                          "--out") from None


class ResultsWriter:
    """Appends records to results.jsonl, one whole line each, from any thread (the
    configuration checks write from their own thread beside the op cases).

    A write that fails (disk full) raises OutputError, and so does every write after
    it: the file keeps only whole lines (a line cut short is cut off again), so what
    was written before stays readable."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "results.jsonl"
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # unbuffered: each record is one write to the OS, nothing waits in a buffer;
            # readable too, to see how the last run left the file
            self._file = open(self.path, "a+b", buffering=0)
        except OSError as exc:
            raise output_error(self.path, exc) from None
        self._lock = threading.Lock()
        self._synced = time.monotonic()
        self._whole = self._file.seek(0, os.SEEK_END)  # bytes up to the last whole line
        self.lines = 0  # records written by this writer
        self.failure: OutputError | None = None
        if self._whole and os.pread(self._file.fileno(), 1, self._whole - 1) != b"\n":
            # a run killed mid-line: end that line, or the first record would join it
            self._write_or_fail(b"\n")

    def write(self, kind: str, record: dict) -> None:
        line = (dumps({"kind": kind, **record}) + "\n").encode("utf-8")
        with self._lock:
            self._write_or_fail(line)
            self.lines += 1

    def _write_or_fail(self, line: bytes) -> None:
        if self.failure is not None:
            raise OutputError(str(self.failure))
        try:
            self._write_all(line)
            if time.monotonic() - self._synced >= SYNC_EVERY_S:
                os.fsync(self._file.fileno())
                self._synced = time.monotonic()
        except OSError as exc:
            self._cut_partial_line()
            self.failure = output_error(self.path, exc, f"the {self.lines} records this run "
                                        "wrote before stay readable")
            raise OutputError(str(self.failure)) from None
        self._whole += len(line)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]

    def _cut_partial_line(self) -> None:
        """Remove what a failed write left of its line (readers skip a partial last line,
        but the next writer's first line would be glued to it)."""
        try:
            os.ftruncate(self._file.fileno(), self._whole)
        except OSError:  # not a regular file (a pipe, /dev/full): nothing to cut
            pass

    def close(self) -> None:
        with self._lock:
            if self._file.closed:
                return
            try:
                if self.failure is None:
                    os.fsync(self._file.fileno())
            except OSError as exc:  # the disk did not take the last records after all
                raise output_error(self.path, exc, "its last records may be lost") from None
            finally:
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


# what results.jsonl holds; "case" marks a case finished (conformance.resume), and the
# summary has nothing of it
KINDS = ("run", "target", "result", "pairwise", "config", "case")


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
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a half-written copy only takes space
        raise output_error(path, exc, "results.jsonl beside it holds every record") from None
    return path
