"""Running the scenarios: target by target, serially or prefetched in the background.

Each scenario's records go through the known-divergence registry (a fail or error
matching an op glob such as ``config/floatx/*`` becomes ``known``) and, when a
writer is given, to results.jsonl as soon as the scenario is done.
"""
from __future__ import annotations

import fnmatch
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from conformance import known
from conformance.configsuite.computed import scenario_epsilon, scenario_image_data_format
from conformance.configsuite.precedence import scenario_precedence
from conformance.configsuite.processes import SetupFailed, TargetRun
from conformance.configsuite.records import FAILING
from conformance.configsuite.settings import scenario_floatx, scenario_runtime
from conformance.targets import FLOATX, Target

SCENARIO_FUNCTIONS = {
    "precedence": scenario_precedence,
    "floatx": scenario_floatx,
    "runtime": scenario_runtime,
    "epsilon": scenario_epsilon,
    "image_data_format": scenario_image_data_format,
}
SCENARIOS = tuple(SCENARIO_FUNCTIONS)


def selected(scenario: str, patterns: list[str] | None) -> bool:
    """Whether --ops patterns select a scenario: "config" selects them all, and a glob
    selects those whose "config/<scenario>" it matches (no patterns: all)."""
    name = f"config/{scenario}"
    return not patterns or any(p == "config" or fnmatch.fnmatchcase(name, p) for p in patterns)


class TargetBroken(Exception):
    """The target cannot start at all (its default setup fails): nothing to check."""


class ConfigSuite:
    """Runs scenarios target by target; keeps only the current target's workers alive.

    `writer` (a store.ResultsWriter) receives each record as kind ``config`` as soon as
    its scenario is done, so an interrupted run keeps every finished check.
    `prefetch` runs the scenarios of up to `parallel` targets at once in the
    background (each in its own TargetRun, closed when done); `run` then hands out
    their records in the order asked. With `niceness` > 0 the background workers run
    under `nice`: the pytest plugin starts these checks at the beginning of a run, beside
    the op cases, and they take only the cores the op cases leave idle.
    """

    def __init__(self, targets: list[Target], pythons: dict[str, str], workdir: Path, *,
                 registry=(), floatx=FLOATX, writer=None, parallel: int = 1,
                 niceness: int = 0):
        self.targets = {t.id: t for t in targets}
        self.pythons = pythons
        self.workdir = Path(workdir)
        self.registry = list(registry or [])
        self.floatx = [f for f in FLOATX if f in floatx]
        self.writer = writer
        self.niceness = niceness
        self.current: TargetRun | None = None
        self._threads = ThreadPoolExecutor(max_workers=max(1, parallel))
        self._prefetched: dict[tuple[str, str], Future] = {}
        self._closing = False

    def prefetch(self, cases: list[tuple[str, str]]) -> None:
        """Start computing these (target id, scenario) cases in the background."""
        by_target: dict[str, list[str]] = {}
        for target_id, scenario in cases:
            by_target.setdefault(target_id, []).append(scenario)
        for target_id, scenarios in by_target.items():
            futures = {s: Future() for s in scenarios}
            self._prefetched.update({(target_id, s): f for s, f in futures.items()})
            self._threads.submit(self._compute_target, target_id, futures)

    def _compute_target(self, target_id: str, futures: dict[str, Future]) -> None:
        try:
            target_run = self._new_run(target_id)
        except TargetBroken as exc:
            for future in futures.values():
                future.set_exception(exc)
            return
        try:
            for scenario, future in futures.items():
                if self._closing:  # the run ends: don't start what nobody will read
                    future.cancel()
                    continue
                try:
                    future.set_result(self._compute(target_run, scenario))
                except Exception as exc:  # TargetBroken, or a harness error: run() raises it
                    future.set_exception(exc)
        finally:
            target_run.close()

    def _new_run(self, target_id: str) -> TargetRun:
        python = self.pythons.get(target_id)
        if python is None:
            raise TargetBroken("no interpreter (environment not provisioned)")
        return TargetRun(self.targets[target_id], python, self.workdir, self.niceness)

    def target_run(self, target_id: str) -> TargetRun:
        if self.current is not None and self.current.target.id != target_id:
            self.current.close()
            self.current = None
        if self.current is None:
            self.current = self._new_run(target_id)
        return self.current

    def _compute(self, target_run: TargetRun, scenario: str) -> list[dict]:
        try:
            target_run.worker("default")
        except SetupFailed as exc:
            raise TargetBroken(str(exc)) from None
        function = SCENARIO_FUNCTIONS[scenario]
        if scenario == "floatx":
            records = function(target_run, self.floatx)
        else:
            records = function(target_run)
        target_run.release()
        records = [known.mark(r, self.registry, FAILING) for r in records]
        if self.writer is not None:
            for record in records:
                self.writer.write("config", record)
        return records

    def run(self, target_id: str, scenario: str) -> list[dict]:
        """The records of one scenario (computed now unless prefetched; written once)."""
        future = self._prefetched.pop((target_id, scenario), None)
        if future is not None:
            return future.result()
        return self._compute(self.target_run(target_id), scenario)

    def close(self) -> None:
        self._closing = True  # cases never asked for (deselected, interrupted run)
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self.current is not None:
            self.current.close()
            self.current = None


def run_target(target: Target, python: str, workdir: Path, scenarios=SCENARIOS, *,
               registry=(), floatx=FLOATX) -> list[dict]:
    """Every requested scenario on one target (convenience for tests and scripts)."""
    suite = ConfigSuite([target], {target.id: python}, workdir, registry=registry, floatx=floatx)
    try:
        return [r for s in scenarios for r in suite.run(target.id, s)]
    finally:
        suite.close()
