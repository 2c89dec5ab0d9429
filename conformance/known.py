"""The known-divergence registry: expected divergences, with their reasons.

A TOML file users edit (default: ``known_divergences.toml`` in the project)::

    [[divergence]]
    op = "binary_crossentropy"     # glob on op names (or a list of globs)
    target = "keras2-tensorflow"   # glob on target ids (or a list of globs)
    floatx = "*"                   # optional glob
    verdict = "fail"               # the verdict expected (or "*")
    reason = "tf.keras adds epsilon after clipping: -log(2e-7) = 15.42 at p = 0"
    link = "https://..."

A matching result becomes ``known``; the run's exit status ignores it.
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path

from conformance import compare

REQUIRED = ("op", "target", "verdict", "reason")
VERDICTS = (*[v for v in compare.SEVERITY if v in compare.DIVERGENT], "*")  # an entry may expect


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class KnownDivergence:
    op: str | tuple
    target: str | tuple
    verdict: str
    reason: str
    floatx: str = "*"
    link: str = ""

    def matches(self, op: str, target: str, floatx: str, verdict: str) -> bool:
        return (_any_glob(op, self.op) and _any_glob(target, self.target)
                and fnmatch.fnmatchcase(floatx, self.floatx)
                and (self.verdict == "*" or self.verdict == verdict))


def _any_glob(name: str, patterns: str | tuple) -> bool:
    patterns = (patterns,) if isinstance(patterns, str) else patterns
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def load(path: Path | None) -> list[KnownDivergence]:
    if path is None or not Path(path).exists():
        return []
    try:
        data = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    entries = []
    tables = data.get("divergence", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RegistryError(f"{path}: entries are [[divergence]] tables")
    for number, table in enumerate(tables, start=1):
        missing = [k for k in REQUIRED if k not in table]
        if missing:
            raise RegistryError(f"{path}: divergence #{number} lacks {', '.join(missing)}")
        if not str(table["reason"]).strip():
            raise RegistryError(f"{path}: divergence #{number} has an empty reason: say what "
                                "differs and why (an entry is for a divergence understood)")
        if table["verdict"] not in VERDICTS:
            raise RegistryError(f"{path}: divergence #{number}: verdict {table['verdict']!r} "
                                f"is none of {', '.join(VERDICTS)}")
        fields = {k: tuple(map(str, v)) if isinstance(v, list) and k in ("op", "target")
                  else str(v) for k, v in table.items() if k in KnownDivergence.__dataclass_fields__}
        entries.append(KnownDivergence(**fields))
    return entries


def lookup(registry: list[KnownDivergence], op: str, target: str, floatx: str,
           verdict: str) -> KnownDivergence | None:
    return next((k for k in registry if k.matches(op, target, floatx, verdict)), None)


def mark(record: dict, registry, divergent) -> dict:
    """`record` as the run reports it: a copy with status "known" and the entry's reason
    when its status is in `divergent` and the registry lists it; else `record` itself."""
    if record["status"] not in divergent:
        return record
    entry = lookup(registry or [], record["op"], record["target"], record["floatx"],
                   record["status"])
    if entry is None:
        return record
    return {**record, "status": "known", "known": {"reason": entry.reason, "link": entry.link}}
