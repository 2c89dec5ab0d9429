"""Resuming an interrupted run: `conformance run --resume DIR`.

What a run writes makes it resumable. Its first record (kind ``run``) holds the
options it runs with, resolved (`recorded`: the seed drawn, absolute paths, the
targets selected), and a record of kind ``case`` follows the records of every case
that finished (``{"case": "exp-float32"}``; a configuration check's is
``config/<scenario>-<target>``). Resuming rebuilds those options (`resumed`), keeps
the records of the finished cases and drops those of the cases in progress, which
run again (`Previous.keep_finished`), and appends the cases left to the same
results.jsonl. A case's examples depend on the seed and the case alone
(`engine.op_seed`), so the summary is the one an uninterrupted run gives, but for
timings and one thing: a counterexample that a case in progress saved to the example
database is replayed when the case runs again (the result's ``replayed``, never its
verdict).

A resumed run that is interrupted in its turn leaves the folder as consistent as the
first did: the file is replaced whole (a new file renamed over the old) before anything
is appended, so it holds the old records or the kept ones followed by the new.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from conformance import store
from conformance.options import OPTIONS, OptionError, RunOptions

RESULTS = "results.jsonl"


def config_case_id(target_id: str, scenario: str) -> str:
    """A configuration check's case id, as --shard hashes it."""
    return f"config/{scenario}-{target_id}"


def case_of(record: dict) -> str | None:
    """The case a record belongs to ('exp-float32', 'config/floatx-keras3-jax'), or
    None for the records of the run as a whole (run, target)."""
    kind = record.get("kind")
    if kind in ("result", "pairwise"):
        return f"{record.get('op')}-{record.get('floatx')}"
    if kind == "config":
        return config_case_id(record.get("target"), record.get("scenario"))
    if kind == "case":
        return record.get("case")
    return None


# -- the options a run records, and the ones rebuilt from them -------------------------------
def _as_given(name: str, value):
    """An option's value as RunOptions.parse takes it again (JSON has no tuples, no
    Paths and no null keys)."""
    if name == "shard" and value:
        return "/".join(map(str, value))
    if name == "memory_cap" and value:  # {target id or None: bytes} -> 'id=bytes,bytes'
        return ",".join(f"{key}={size}" if key is not None else str(size)
                        for key, size in value.items())
    return str(value) if isinstance(value, Path) else value


def recorded(options: RunOptions, **resolved) -> dict:
    """The options of a run as its run record keeps them: every option, `resolved`
    ones (the seed drawn, absolute paths) replacing what was given."""
    values = {o.name: getattr(options, o.name) for o in OPTIONS
              if o.name != "resume" and hasattr(options, o.name)}
    values.update(resolved)
    return {name: _as_given(name, value) for name, value in values.items()}


def resumed(options: RunOptions) -> RunOptions:
    """The options of the run `options.resume` names, when `options` are a bare
    --resume DIR; else `options` as they are (a fresh run's, or rebuilt already)."""
    if options.resume is None or options.out is not None:
        return options
    folder = Path(options.resume)
    start = _start_record(folder)
    raw = start.get("options")
    if not isinstance(raw, dict):
        raise OptionError(f"--resume {folder}: its run record holds no options (not written "
                          "by `conformance run`, or by an older harness): start a new run")
    try:
        rebuilt = RunOptions.parse(raw)
    except OptionError as exc:
        raise OptionError(f"--resume {folder}: the run's own options no longer hold: {exc}") \
            from None
    return rebuilt.with_(resume=folder.resolve(), out=folder.resolve())


def _start_record(folder: Path) -> dict:
    """The first record of `folder`'s results.jsonl: the run's start."""
    path = folder / RESULTS
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline()
    except OSError:
        raise OptionError(f"--resume {folder}: no {RESULTS} there; give the --out folder of "
                          "an interrupted run") from None
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or record.get("kind") != "run" or "seed" not in record:
        raise OptionError(f"--resume {path}: does not start with a run record; give the "
                          "--out folder of an interrupted run")
    return record


# -- what an interrupted run finished ---------------------------------------------------------
@dataclass
class Previous:
    """What the interrupted run left in `folder`: its start record, the cases it
    finished, and the harness errors of those (a case lost to one runs again)."""

    folder: Path
    start: dict
    finished: set = field(default_factory=set)
    harness_errors: list = field(default_factory=list)

    @classmethod
    def read(cls, folder: Path) -> "Previous":
        records = store.read_records(Path(folder) / RESULTS)
        start = _start_record(Path(folder))
        finished = {r.get("case") for r in records if r.get("kind") == "case"}
        errors = [e for r in records if r.get("kind") == "run"
                  for e in r.get("harness_errors") or []
                  if isinstance(e, dict) and e.get("case") in finished]
        return cls(Path(folder), start, finished, errors)

    @property
    def cases_done(self) -> int:
        """Op cases finished (the run records count those, not configuration checks)."""
        return sum(1 for case in self.finished if not case.startswith("config/"))

    def keep_finished(self, resumption: dict) -> None:
        """Rewrite results.jsonl with the records of the finished cases only: the start
        record (its ``resumed`` list gets `resumption`), the targets' records, and each
        finished case's; the end records, and the records of the cases that did not
        finish, go. summary.json goes too: it described the file before."""
        path = self.folder / RESULTS
        kept = [{**self.start, "resumed": [*self.start.get("resumed", []), resumption]}]
        for record in store.read_records(path)[1:]:
            kind, case = record.get("kind"), case_of(record)
            if kind == "run" or (case is not None and case not in self.finished):
                continue
            kept.append(record)
        fresh = path.with_name(RESULTS + ".resuming")
        with open(fresh, "w", encoding="utf-8") as handle:
            handle.writelines(store.dumps(record) + "\n" for record in kept)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(fresh, path)
        (self.folder / "summary.json").unlink(missing_ok=True)
