"""One record per configuration check (results.jsonl kind ``config``)::

    {"target", "check", "op": "config/<check>", "scenario", "floatx",
     "status": pass|fail|error|unsupported|known, "verdict" (status before the
     registry), "expected", "observed", "detail"}
"""
from __future__ import annotations

from conformance import known, store

FAILING = known.CONFIG_FAILING  # the statuses the known-divergence registry may excuse


def make_record(target_id: str, scenario: str, check: str, status: str, expected=None,
                observed=None, detail: str = "", floatx: str = "float32") -> dict:
    return {"target": target_id, "scenario": scenario, "check": check, "op": f"config/{check}",
            "floatx": floatx, "status": status, "verdict": status,
            "expected": store.jsonable(expected), "observed": store.jsonable(observed), "detail": detail}


def first_lines(text, lines: int = 3) -> str:
    """The head of an error message, for a record's detail."""
    return "\n".join(str(text).splitlines()[:lines])


def divergent(records: list[dict]) -> list[dict]:
    """Records that fail a test: fail or error not matched by the registry."""
    return [r for r in records if r["status"] in FAILING]
