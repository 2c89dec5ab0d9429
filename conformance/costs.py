"""What each case costs, and shards balanced by that cost.

A case is one (op, floatx), named '<op>-<floatx>' (configuration checks are not
cases here: they run in the background and keep their hashed split). Its cost is the
wall time the engine spent on it, the same for every target of the case: the slowest
target sets it. Costs come from the results of a run (`from_results`) or from the
table kept in the repository (`conformance/case_costs.json`, rewritten from a run's
results by `conformance costs RESULTS`).

`assign` splits cases into N shards by longest-processing-time-first: the costliest
case goes to the shard with the least estimated work, and so on. It depends only on
the set of case ids and the table, so every shard of a CI matrix, run on its own
machine, computes the same split.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from conformance import store

TABLE = Path(__file__).resolve().parent / "case_costs.json"


class CostError(store.StoreError):
    """A cost source that cannot be read; the message names it and says what to give."""


class Costs:
    """Seconds per case id, with an estimate for cases the source never saw."""

    def __init__(self, seconds: dict[str, float], overhead_s: float = 0.0, source: str = ""):
        self.seconds = dict(seconds)
        self.overhead_s = overhead_s  # a shard's fixed cost: worker start-up, floatx switches
        self.source = source
        known = sorted(self.seconds.values())
        # an unseen case (a new op) is taken as typical, not as free
        self.default_s = statistics.median(known) if known else 1.0

    def estimate(self, case_id: str) -> float:
        return self.seconds.get(case_id, self.default_s)

    def as_table(self) -> dict:
        return {"source": self.source, "overhead_s": round(self.overhead_s, 1),
                "cases": {k: round(v, 3) for k, v in sorted(self.seconds.items())}}


def case_seconds(results: list[dict]) -> dict[str, float]:
    """{case id: wall seconds} of a run's result records (the slowest target's record;
    targets that did not start carry no timing)."""
    seconds: dict[str, float] = {}
    for result in results:
        if "wall_s" in result:
            case_id = f"{result['op']}-{result['floatx']}"
            seconds[case_id] = max(seconds.get(case_id, 0.0), float(result["wall_s"]))
    return seconds


def from_results(summary: dict, source: str = "") -> Costs:
    """Costs measured by a run: each case's wall time (`case_seconds`), and as overhead
    what the run spent outside its cases."""
    seconds = case_seconds(summary.get("results", []))
    if not seconds:
        raise CostError(f"{source or 'the results'} hold no timed cases; give the results "
                        "folder of a finished `conformance run`")
    duration = float(summary.get("run", {}).get("duration_s") or 0.0)
    return Costs(seconds, overhead_s=max(0.0, duration - sum(seconds.values())), source=source)


def merged(measured: list[Costs]) -> Costs:
    """Costs of several result sets (the shards of one run, several runs): a case
    measured more than once costs the mean of its times, since one run's time of a case
    is noisy (the first case after a floatx switch pays compiles, cases queued ahead
    overlap); the overhead is the largest one."""
    times: dict[str, list[float]] = {}
    for costs in measured:
        for case_id, value in costs.seconds.items():
            times.setdefault(case_id, []).append(value)
    return Costs({case_id: statistics.fmean(values) for case_id, values in times.items()},
                 overhead_s=max((c.overhead_s for c in measured), default=0.0),
                 source="; ".join(c.source for c in measured))


def describe_run(summary: dict) -> str:
    """Where a table's numbers come from, in words: the run's seed, profile, targets."""
    run = summary.get("run", {})
    targets = sorted({t.get("id") for t in summary.get("targets", []) if t.get("status") == "ready"})
    return (f"conformance run --seed {run.get('seed')} --profile {run.get('profile')} "
            f"(floatx {','.join(run.get('floatx') or [])}; {len(targets)} targets: "
            f"{', '.join(targets)}), started {run.get('started')}")


def load(path: Path | None = None) -> Costs:
    """The cost table (default: the repository's), or the costs a run's results
    folder / results.jsonl / summary.json recorded."""
    path = Path(path) if path is not None else TABLE
    if path.is_dir() or path.name in ("results.jsonl", "summary.json"):
        return from_results(store.load(path), source=str(path))
    try:
        table = json.loads(path.read_text())
        return Costs({str(k): float(v) for k, v in table["cases"].items()},
                     overhead_s=float(table.get("overhead_s", 0.0)),
                     source=f"{path} (measured by {table.get('source') or 'an unnamed run'})")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CostError(f"{path} is not a cost table ({type(exc).__name__}: {exc}); give a "
                        "results folder of a run or a table written by `conformance "
                        "costs`") from None


def assign(case_ids, costs: Costs, count: int) -> dict[str, int]:
    """{case id: shard index 1..count}, longest processing time first (ties by id, so
    the split is the same everywhere)."""
    loads = [0.0] * count
    shard_of = {}
    for case_id in sorted(set(case_ids), key=lambda c: (-costs.estimate(c), c)):
        lightest = min(range(count), key=lambda i: (loads[i], i))
        loads[lightest] += costs.estimate(case_id)
        shard_of[case_id] = lightest + 1
    return shard_of


def plan(case_ids, costs: Costs, shard: tuple[int, int] | None) -> list[dict]:
    """The cases of `shard` (all when None) in run order, each with its estimate."""
    chosen = list(case_ids)
    if shard is not None:
        shard_of = assign(chosen, costs, shard[1])
        chosen = [c for c in chosen if shard_of[c] == shard[0]]
    return [{"case": c, "estimated_s": round(costs.estimate(c), 3)} for c in chosen]
