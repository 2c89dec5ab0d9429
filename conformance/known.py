"""The known-divergence registry: expected divergences, one entry per root cause.

A TOML file users edit (default: ``known_divergences.toml`` in the project)::

    [[divergence]]
    cause = "tf1-bce-epsilon-twice"        # short stable id of the root cause
    op = "binary_crossentropy"             # glob on op names (or a list of globs)
    target = ["keras2-tensorflow", "keras2-tf-keras"]   # glob(s) on target ids
    floatx = "*"                           # optional glob(s)
    verdict = "fail"                       # the verdict(s) expected (or "*")
    reason = "tf.keras adds epsilon after clipping: -log(2e-7) = 15.42 at p = 0"
    repro = '''                            # what a Keras user runs to see it
    from keras import backend as K
    print(K.eval(K.binary_crossentropy(K.constant([[1.]]), K.constant([[0.]]))))
    '''
    upstream = "bug"                       # optional: an upstream bug (then seen_on too)
    seen_on = "keras 2.3.1, tensorflow 1.15.5"
    link = "https://..."

An entry is one root cause: its op, target, floatx and verdict may each be a list, and
a result is explained by the entry when every one of them matches. Rules:

- ``op``, ``target``, ``verdict`` and ``reason`` are required; an entry is for a
  divergence understood, so the reason may not be empty.
- ``cause`` is unique in the file (one entry per cause). Left out (entries written
  before it existed), it is derived from the first op and target:
  ``op = "*_broadcast"``, ``target = "keras2-cntk"`` gives ``broadcast-keras2-cntk``
  (with ``-<entry number>`` when that is taken); the report marks derived ids.
- ``repro`` is optional, but the report flags every cause without one; an
  ``upstream = "bug"`` entry must have both ``repro`` and ``seen_on``.
- Any other key is refused (a misspelt ``seen-on`` would otherwise vanish).

A matching result becomes ``known`` (its ``known`` says the reason, link and cause);
the run's exit status ignores it. An entry that explained no result although the run
covered what it names (`account`) is *stale*: reported, so the registry shrinks when
backends are fixed.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance import compare

REQUIRED = ("op", "target", "verdict", "reason")
# A configuration check's statuses that fail a run unless an entry excuses them (op
# results fail on compare.DIVERGENT).
CONFIG_FAILING = {"fail", "error"}
OPTIONAL = ("floatx", "link", "cause", "repro", "upstream", "seen_on")
VERDICTS = (*[v for v in compare.SEVERITY if v in compare.DIVERGENT], "*")  # an entry may expect
UPSTREAM = ("bug",)  # the values `upstream` takes (left out: not known to be an upstream bug)
CAUSE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class KnownDivergence:
    op: tuple  # globs (a single glob is given as text, kept as a 1-tuple)
    target: tuple
    verdict: tuple  # verdicts, or ("*",)
    reason: str
    floatx: tuple = ("*",)
    link: str = ""
    cause: str = ""
    repro: str = ""
    upstream: str = ""
    seen_on: str = ""
    cause_given: bool = True  # False: `cause` was derived from the first op and target

    def __post_init__(self):  # globs are kept as tuples, however they were written
        for key in ("op", "target", "verdict", "floatx"):
            object.__setattr__(self, key, _as_tuple(getattr(self, key)))

    def matches(self, op: str, target: str, floatx: str, verdict: str) -> bool:
        return (self.covers(op, target, floatx)
                and ("*" in self.verdict or verdict in self.verdict))

    def covers(self, op: str, target: str, floatx: str) -> bool:
        """Whether a result of (op, target, floatx), whatever its verdict, is one this
        entry speaks about."""
        return (_any_glob(op, self.op) and _any_glob(target, self.target)
                and _any_glob(floatx, self.floatx))


def _as_tuple(value: str | tuple) -> tuple:
    return (value,) if isinstance(value, str) else tuple(value)


def _any_glob(name, patterns: str | tuple) -> bool:
    return any(fnmatch.fnmatchcase(str(name), p) for p in _as_tuple(patterns))


def slug(text: str) -> str:
    """`*_broadcast` -> `broadcast`, `conv[123]d` -> `conv-123-d` (lower case)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def derived_cause(op: str | tuple, target: str | tuple) -> str:
    """The cause id of an entry that gives none: its first op and first target."""
    parts = [slug(_as_tuple(op)[0]) or "any", slug(_as_tuple(target)[0])]
    return "-".join(p for p in parts if p)


# -- loading -------------------------------------------------------------------------------
def load(path: Path | None) -> list[KnownDivergence]:
    if path is None or not Path(path).exists():
        return []
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    tables = data.get("divergence", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RegistryError(f"{path}: entries are [[divergence]] tables")
    fields = [_fields(table, f"{path}: divergence #{number}")
              for number, table in enumerate(tables, start=1)]
    return _with_causes(fields, path)


def _where(where: str, table: dict) -> str:
    """`divergence #3 (cause 'x')` or `divergence #3 (op 'sign')`: findable in the file."""
    for key in ("cause", "op"):
        if isinstance(table.get(key), (str, list)) and table[key]:
            value = table[key] if isinstance(table[key], str) else table[key][0]
            return f"{where} ({key} {value!r})"
    return where


def _fields(table: dict, where: str) -> dict:
    """One table's checked fields (as KnownDivergence takes them), or RegistryError."""
    where = _where(where, table)
    missing = [k for k in REQUIRED if k not in table]
    if missing:
        raise RegistryError(f"{where} lacks {', '.join(missing)}")
    unknown = [k for k in table if k not in REQUIRED + OPTIONAL]
    if unknown:
        raise RegistryError(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}; an entry takes "
                            f"{', '.join(REQUIRED + OPTIONAL)}")
    fields = {}
    for key in ("op", "target", "floatx", "verdict"):
        if key in table:
            fields[key] = _globs(table[key], key, where)
    for key in ("reason", "link", "cause", "repro", "upstream", "seen_on"):
        if key in table:
            if not isinstance(table[key], str):
                raise RegistryError(f"{where}: {key} is text, not {table[key]!r}")
            fields[key] = table[key]
    if not fields["reason"].strip():
        raise RegistryError(f"{where} has an empty reason: say what differs and why (an entry "
                            "is for a divergence understood)")
    bad = [v for v in _as_tuple(fields["verdict"]) if v not in VERDICTS]
    if bad:
        raise RegistryError(f"{where}: verdict {bad[0]!r} is none of {', '.join(VERDICTS)}")
    cause = fields.get("cause")
    if cause is not None and not CAUSE_PATTERN.match(cause):
        raise RegistryError(f"{where}: cause {cause!r} is not a short id: lower-case letters, "
                            "digits, '-', '.', '_' (e.g. \"cntk-dynamic-batch-axis\")")
    upstream = fields.get("upstream")
    if upstream is not None:
        if upstream not in UPSTREAM:
            raise RegistryError(f'{where}: upstream is "bug" (an upstream bug) or left out, '
                                f"not {upstream!r}")
        lacking = [k for k in ("repro", "seen_on") if not fields.get(k, "").strip()]
        if lacking:
            raise RegistryError(f"{where}: an upstream bug needs {' and '.join(lacking)} (the "
                                "reproduction and the versions it was seen on)")
    if "repro" in fields:
        fields["repro"] = fields["repro"].strip("\n")
    return fields


def _globs(value, key: str, where: str) -> str | tuple:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise RegistryError(f"{where}: {key} is a glob or a non-empty list of globs, not {value!r}")


def _with_causes(fields: list[dict], path) -> list[KnownDivergence]:
    """Entries with their cause ids: given ones unique, the others derived."""
    given: dict[str, int] = {}
    for number, entry in enumerate(fields, start=1):
        cause = entry.get("cause")
        if cause is None:
            continue
        if cause in given:
            raise RegistryError(
                f"{path}: divergence #{given[cause]} and #{number} both have cause {cause!r}: "
                "one entry per root cause (its op, target, floatx and verdict take lists; "
                'verdict = "*" takes any)')
        given[cause] = number
    taken = set(given)
    entries = []
    for number, entry in enumerate(fields, start=1):
        cause_given = "cause" in entry
        if not cause_given:
            cause = derived_cause(entry["op"], entry["target"])
            entry["cause"] = cause if cause not in taken else f"{cause}-{number}"
        taken.add(entry["cause"])
        entries.append(KnownDivergence(**entry, cause_given=cause_given))
    return entries


# -- use in a run ----------------------------------------------------------------------------
def lookup(registry: list[KnownDivergence], op: str, target: str, floatx: str,
           verdict: str) -> KnownDivergence | None:
    return next((k for k in registry if k.matches(op, target, floatx, verdict)), None)


def mark(record: dict, registry, divergent) -> dict:
    """`record` as the run reports it: a copy with status "known" and the entry's reason,
    link and cause when its status is in `divergent` and the registry lists it; else
    `record` itself."""
    if record["status"] not in divergent:
        return record
    entry = lookup(registry or [], record["op"], record["target"], record["floatx"],
                   record["status"])
    if entry is None:
        return record
    return {**record, "status": "known",
            "known": {"reason": entry.reason, "link": entry.link, "cause": entry.cause}}


# -- the registry in the results ---------------------------------------------------------------
def describe(registry: list[KnownDivergence]) -> list[dict]:
    """The registry as JSON (globs as lists): what a run records so that its results
    can say which entries went stale (`from_description` reads it back)."""
    return [{"cause": k.cause, "cause_given": k.cause_given,
             "op": list(_as_tuple(k.op)), "target": list(_as_tuple(k.target)),
             "floatx": list(_as_tuple(k.floatx)), "verdict": list(_as_tuple(k.verdict)),
             "reason": k.reason, "link": k.link, "repro": k.repro, "upstream": k.upstream,
             "seen_on": k.seen_on} for k in registry or []]


def from_description(entries) -> list[KnownDivergence]:
    """`describe`'s output back to entries; what is not such an entry is skipped (these
    come from results files, which may be older or damaged)."""
    registry = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not all(entry.get(k) for k in REQUIRED + ("cause",)):
            continue
        globs = {k: tuple(map(str, entry[k])) if isinstance(entry[k], list) else str(entry[k])
                 for k in ("op", "target", "verdict") if k in entry}
        globs["floatx"] = (tuple(map(str, entry["floatx"])) if isinstance(entry.get("floatx"), list)
                           else str(entry.get("floatx") or "*"))
        text = {k: str(entry.get(k) or "") for k in ("reason", "link", "repro", "upstream",
                                                    "seen_on")}
        registry.append(KnownDivergence(**globs, **text, cause=str(entry["cause"]),
                                        cause_given=bool(entry.get("cause_given", True))))
    return registry


def recorded(run: dict) -> list[KnownDivergence] | None:
    """The registry a run recorded in its run record (``registry``), None when it
    recorded none (then nothing can be said about stale entries). Merged shards whose
    registries differ hold a list of them: the last is used."""
    value = (run or {}).get("registry")
    if not isinstance(value, list):
        return None
    if value and all(isinstance(v, list) for v in value):
        value = value[-1]
    return from_description(value)


def explained_by(record: dict, registry: list[KnownDivergence]) -> KnownDivergence | None:
    """The entry that made `record` known: the one its ``known.cause`` names, else (results
    of older harness versions) the first that matches its raw verdict."""
    if record.get("status") != "known":
        return None
    cause = (record.get("known") or {}).get("cause")
    if cause:
        return next((k for k in registry if k.cause == cause), None)
    verdict = record.get("verdict") or "*"
    return lookup(registry, str(record.get("op")), str(record.get("target")),
                  str(record.get("floatx")), verdict)


def account(registry: list[KnownDivergence], records: list[dict]) -> list[dict]:
    """Per entry: ``explains`` (records it made known), ``covered`` (records of any verdict
    whose op, target and floatx it names: the run could have matched it) and ``stale``
    (covered but explaining none). `records`: op results and configuration checks."""
    rows = {k.cause: {"entry": k, "explains": 0, "covered": 0} for k in registry}
    for record in records:
        entry = explained_by(record, registry)
        if entry is not None:
            rows[entry.cause]["explains"] += 1
        op, target, floatx = (str(record.get(k)) for k in ("op", "target", "floatx"))
        for k in registry:
            if k.covers(op, target, floatx):
                rows[k.cause]["covered"] += 1
    out = []
    for row in rows.values():
        out.append({**row, "stale": row["covered"] > 0 and row["explains"] == 0})
    return out


def stale(registry: list[KnownDivergence], records: list[dict]) -> list[dict]:
    """Entries the run could have matched that explained nothing, as summary.json keeps
    them (``known_stale``)."""
    return [{"cause": row["entry"].cause, "op": list(_as_tuple(row["entry"].op)),
             "target": list(_as_tuple(row["entry"].target)),
             "floatx": list(_as_tuple(row["entry"].floatx)),
             "verdict": list(_as_tuple(row["entry"].verdict)),
             "reason": row["entry"].reason, "covered": row["covered"]}
            for row in account(registry, records) if row["stale"]]


def summary_stale(summary: dict) -> list[dict] | None:
    """`stale` for a summary whose run recorded its registry; None when it did not."""
    registry = recorded(summary.get("run") or {})
    if registry is None:
        return None
    return stale(registry, list(summary.get("results") or []) + list(summary.get("config") or []))


def unexpected(summary: dict) -> list[dict]:
    """What fails the run: divergent op results and failed configuration checks that no
    entry marked known (their status is then "known")."""
    ops = [r for r in summary.get("results") or [] if r.get("status") in compare.DIVERGENT]
    config = [c for c in summary.get("config") or [] if c.get("status") in CONFIG_FAILING]
    return ops + config
