"""pytest plugin: turns the op catalog into tests and runs them on the worker pool.

Registered through the ``pytest11`` entry point, so backend authors can write property
tests in their own repositories with these fixtures: ``conformance`` (the run: pool,
engine, results store), ``case`` (one (op, floatx) of the catalog, or of their own ops
given with ``@pytest.mark.conformance_ops(op, ...)``) and ``conformance_call`` (one
call fanned out to every target). See examples/custom_op/.

Each test file in suites/ marks its family (``pytestmark = pytest.mark.family(...)``)
and takes the ``case`` fixture: one test per (op, floatx). A test fails only for
*unexpected* divergences (anything in the known-divergence registry is `known`).
Tests are ordered by floatx: workers start once and switch floatx between groups.
The configuration checks (suites/test_config.py, parameter ``config_case``) start in
the background when the run opens, on niced workers that take only the cores the op
cases leave idle; their tests come last and collect the records.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import random
import sys
import time
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

import hypothesis
import pytest

from conformance import __version__, catalog, compare, configsuite, known, targets as targets_mod
from conformance.engine import PROFILES, Engine, RunSettings
from conformance.pool import Pool
from conformance.probe import pool_statuses, resolve_interpreters
from conformance import store

FLOATX_ORDER = ("float32", "float64", "float16")
CONFIG_PARAM = "config_case"  # suites/test_config.py's parameter: (target id, scenario)
# Configuration checks beside the op cases: targets checked at once, and the niceness
# of their workers. They start processes, dozens of them (a run's config checks cost
# ~170 CPU seconds); the op cases leave a quarter of two cores idle, and nice 10 keeps
# the checks there instead of slowing the op cases.
CONFIG_PARALLEL = 2
CONFIG_NICENESS = 10


@dataclass(frozen=True)
class Case:
    op: catalog.Op
    floatx: str

    @property
    def id(self) -> str:
        return f"{self.op.name}-{self.floatx}"


def pytest_addoption(parser):
    group = parser.getgroup("conformance", "Keras backend conformance")
    group.addoption("--conformance-targets", default=None,
                    help="comma-separated target ids (default: every built-in and configured target)")
    group.addoption("--conformance-floatx", default="float32,float64,float16",
                    help="comma-separated floatx values to run (default: all three)")
    group.addoption("--conformance-profile", default="default", choices=sorted(PROFILES),
                    help="examples per (op, floatx): smoke=4, default=25, thorough=200 "
                         "(thorough also builds shapes axis by axis)")
    group.addoption("--conformance-max-examples", type=int, default=None,
                    help="override the profile's examples per (op, floatx)")
    group.addoption("--conformance-seed", type=int, default=None,
                    help="run seed (printed at start; reuse it to reproduce a run)")
    group.addoption("--conformance-ops", default=None,
                    help="comma-separated globs on op names or family/name")
    group.addoption("--conformance-out", default=None,
                    help="results folder (default: reports/run-<timestamp>)")
    group.addoption("--conformance-known", default=None,
                    help="known-divergence registry (default: known_divergences.toml in the project)")
    group.addoption("--conformance-shard", default=None,
                    help="I/N: run a deterministic 1/N of the (op, floatx) cases (I from 1 to N)")
    group.addoption("--conformance-extra-targets", default=None,
                    help="JSON object {id: {flavor, backend, env, python, pythonpath, ...}} of "
                         "targets to add for this run (same keys as [tool.conformance.targets])")
    group.addoption("--conformance-example-db", default=None,
                    help="folder of saved counterexamples, replayed first by the next run "
                         "(default: .conformance-examples beside the results folder)")
    group.addoption("--conformance-no-report", action="store_true",
                    help="write results.jsonl and summary.json only, no HTML/JUnit report")
    group.addoption("--conformance-project", default=".",
                    help="folder holding pyproject.toml with [tool.conformance]")


def pytest_configure(config):
    config.addinivalue_line("markers", "family(name): op family a suite file covers")
    config.addinivalue_line("markers", "conformance_ops(*ops): run these catalog.Op objects "
                            "(e.g. your own custom ops) through the `case` fixture")


_SESSION = pytest.StashKey["ConformanceSession"]()


def session_of(config) -> "ConformanceSession":
    """The run's ConformanceSession, created on first use: the plugin is registered in
    every pytest run where the package is installed (entry point pytest11) and must cost
    nothing in test suites that never ask for it."""
    if _SESSION not in config.stash:
        config.stash[_SESSION] = ConformanceSession(config)
    return config.stash[_SESSION]


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


class ConformanceSession:
    """State shared by all tests of one run: targets, pool, writer, engine."""

    def __init__(self, config):
        self.config = config
        option = config.getoption
        project = Path(option("--conformance-project"))
        project_config = targets_mod.load_project_config(project)
        extra = option("--conformance-extra-targets")
        if extra:
            project_config.setdefault("targets", {}).update(json.loads(extra))
        self.specs = targets_mod.load_envs(project_config)
        all_targets = targets_mod.load_targets(project_config, project)
        self.targets = targets_mod.select(all_targets, _csv(option("--conformance-targets")))
        self.floatx = _csv(option("--conformance-floatx"))
        bad = [f for f in self.floatx if f not in targets_mod.FLOATX]
        if bad:
            raise pytest.UsageError(f"--conformance-floatx: unknown {bad}; use {targets_mod.FLOATX}")
        self.op_patterns = _csv(option("--conformance-ops"))
        try:
            self.shard = parse_shard(option("--conformance-shard"))
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
        profile = PROFILES[option("--conformance-profile")]
        self.profile = option("--conformance-profile")
        self.seed = option("--conformance-seed")
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(2**31)
        known_path = option("--conformance-known") or project / "known_divergences.toml"
        self.registry = known.load(Path(known_path))
        out = option("--conformance-out") or Path("reports") / time.strftime("run-%Y%m%d-%H%M%S")
        self.out_dir = Path(out)
        example_db = option("--conformance-example-db") or (
            self.out_dir.resolve().parent / ".conformance-examples")
        self.settings = RunSettings(
            seed=self.seed, registry=self.registry, out_dir=self.out_dir,
            max_examples=option("--conformance-max-examples") or profile["max_examples"],
            shrink_calls=profile["shrink_calls"], example_db=Path(example_db),
            reuse_shapes=profile["reuse_shapes"])
        self.writer: store.ResultsWriter | None = None
        self.pool: Pool | None = None
        self.engine: Engine | None = None
        self.started = time.time()
        self.done = 0
        self.total = 0
        # the cases of the tests after the running one, up to the first that is not
        # a case (set before each test: pytest_runtest_protocol)
        self.next_cases: list[Case] = []
        self.positions: dict[int, int] | None = None  # id(item) -> its index in the run
        self.config_suite: configsuite.ConfigSuite | None = None  # see start_config_checks
        # what broke inside the harness: {"case", "retried", "traceback"} (see harness_error)
        self.harness_errors: list[dict] = []

    # -- life cycle -----------------------------------------------------------
    def open(self) -> None:
        self.writer = store.ResultsWriter(self.out_dir)
        self.writer.write("run", {
            "seed": self.seed, "profile": self.profile, "harness_version": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "max_examples": self.settings.max_examples, "floatx": self.floatx,
            "argv": sys.argv, "targets": [t.id for t in self.targets], "ops": self.total,
            "shard": "/".join(map(str, self.shard)) if self.shard else None,
            "hypothesis": {"version": hypothesis.__version__,
                           "max_examples": self.settings.max_examples,
                           "shrink_calls": self.settings.shrink_calls,
                           "phases": ["explicit", "generate", "shrink (divergent targets)"],
                           "deadline": None, "derandomize": False,
                           "seed_per_case": "crc32('<seed>/<op>/<floatx>')",
                           "example_db": str(self.settings.example_db)}})
        pythons, missing = resolve_interpreters(self.targets, self.specs)
        for status in missing:
            for floatx in self.floatx:
                self.writer.write("target", {**status.as_dict(), "floatx": floatx})
            self.say(f"target {status.id}: {status.status}: {status.reason} (fix: {status.fix})")
        runnable = [t for t in self.targets if t.id in pythons]
        self.pool = Pool(runnable, pythons, self.out_dir / "workers")
        self.engine = Engine(self.pool, self.settings, self.writer)
        self.say(f"conformance run: seed {self.seed}, profile {self.profile} "
                 f"({self.settings.max_examples} examples per op), {self.total} (op, floatx) cases, "
                 f"targets {', '.join(t.id for t in self.targets)}; results in {self.out_dir}")

    def start_config_checks(self, cases: list[tuple[str, str]]) -> None:
        """Start these (target id, scenario) configuration checks in the background;
        their records are written as each scenario finishes (once: a no-op when
        started already, or when no config test was collected)."""
        if self.config_suite is not None or not cases:
            return
        pythons, _ = resolve_interpreters(self.targets, self.specs)
        self.config_suite = configsuite.ConfigSuite(
            self.targets, pythons, self.out_dir / "config-workers", registry=self.registry,
            floatx=self.floatx, writer=self.writer, parallel=CONFIG_PARALLEL,
            niceness=CONFIG_NICENESS)
        self.config_suite.prefetch(cases)
        self.say(f"configuration checks: {len(cases)} (target, scenario) started in the "
                 f"background (niced workers); their tests run last")

    def close(self) -> None:
        if self.config_suite is not None:  # before the writer closes: it writes records
            self.config_suite.close()
        if self.pool is not None:
            self.pool.close()
        if self.writer is not None:
            finished = time.time()
            self.writer.write("run", {
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(finished)),
                "duration_s": round(finished - self.started, 1), "cases_done": self.done,
                "harness_errors": self.harness_errors})
            self.writer.close()
            self._write_outputs()

    def _write_outputs(self) -> None:
        """summary.json, index.html and junit.xml beside results.jsonl, as `conformance run`
        gives them, also when the suites run under plain pytest."""
        summary = store.load(self.out_dir / "results.jsonl")
        # first, so that a failing report never loses the run's summary
        store.write_summary(self.out_dir, summary)
        if self.config.getoption("--conformance-no-report"):
            return
        try:
            from conformance import report
        except ImportError as exc:  # the report's libraries are optional for bare runs
            self.say(f"report skipped: {exc}")
            return
        try:  # render rewrites summary.json beside index.html and junit.xml
            path = report.render([summary], self.out_dir / "index.html", [self.out_dir])
        except Exception:
            lines = traceback.format_exc().rstrip().splitlines()[-8:]
            self.say("REPORT ERROR (results.jsonl and summary.json are complete; "
                     f"`conformance report {self.out_dir}` renders it again):\n  "
                     + "\n  ".join(lines))
            return
        self.say(f"report: {path}")

    def harness_error(self, where: str, trace: str, retried: bool) -> None:
        lines = trace.rstrip().splitlines()[-12:]
        self.harness_errors.append({"case": where, "retried": retried,
                                    "traceback": "\n".join(lines)})
        then = "; trying the case once more" if retried else ""
        self.say(f"HARNESS ERROR in {where}{then}:\n  " + "\n  ".join(lines))

    def say(self, text: str) -> None:
        """Progress goes to the terminal even while pytest captures test output."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(text)
            else:
                print(text, flush=True)

    # -- one case ---------------------------------------------------------------
    def switch_floatx(self, floatx: str) -> None:
        if self.pool.floatx == floatx:
            return
        first = self.pool.floatx is None
        self.say(f"{'starting workers' if first else 'switching workers to'} floatx={floatx} ...")
        started = time.time()
        infos = self.pool.use_floatx(floatx)
        for status in pool_statuses(self.pool, infos):
            if status.status != "ready":
                first_line = (status.reason.splitlines() or [""])[0]
                self.say(f"target {status.id} cannot run: {first_line}")
            self.writer.write("target", {**status.as_dict(), "floatx": floatx})
        self.say(f"  {len(infos)} targets ready in {time.time() - started:.1f}s")

    def fan_out(self, fn: str, *args, floatx: str = "float32", keras2_fn: str | None = None,
                **kwargs) -> dict[str, dict]:
        """Call one function on every ready target with byte-identical inputs.

        `fn` is the Keras 3 path (``keras.ops.exp``; ops-module plugins get its last
        name), `keras2_fn` the Keras 2 one (targets of that flavor are skipped without
        it). Returns {target id: reply} with ``status`` and, when ok, ``outputs``.
        """
        if self.writer is None:
            self.open()
        self.switch_floatx(floatx)
        requests = {}
        for target_id in self.pool.ready:
            name = keras2_fn if self.pool.targets[target_id].flavor == "keras2" else fn
            if name is not None:
                requests[target_id] = {"cmd": "call", "fn": name, "args": list(args),
                                       "kwargs": kwargs}
        return self.pool.call(requests)

    def check(self, case: Case) -> list[dict]:
        self.switch_floatx(case.floatx)
        started = time.time()
        # the next tests' cases at this floatx: their examples are queued on the
        # targets while this one is compared and shrunk (RunSettings.lookahead)
        upcoming = [c.op for c in itertools.takewhile(
            lambda c: c.floatx == case.floatx, self.next_cases)]
        try:
            records = self.engine.check(case.op, case.floatx, upcoming)
        except Exception:
            # A bug of the harness itself: said at once with its traceback and kept in
            # the run record; the case is tried once more so that a passing fault
            # (a worker restart racing a reply, say) does not lose it. A second
            # failure fails the test and is reported the same way.
            self.harness_error(case.id, traceback.format_exc(), retried=True)
            records = self.engine.check(case.op, case.floatx, upcoming)
        self.done += 1
        self._progress(case, records, time.time() - started)
        return records

    def _progress(self, case: Case, records: list[dict], seconds: float) -> None:
        by_status: dict[str, list[str]] = {}
        for record in records:
            by_status.setdefault(record["status"], []).append(record["target"])
        parts = []
        for status in sorted(by_status, key=lambda s: (s == "pass", s)):
            names = by_status[status]
            detail = "" if status in ("pass", "unsupported") else f" ({', '.join(names)})"
            parts.append(f"{status} {len(names)}{detail}")
        elapsed = int(time.time() - self.started)
        self.say(f"[{self.done:>4}/{self.total}] {case.op.family}/{case.id:<34} "
                 f"{seconds:6.1f}s  {' · '.join(parts)}  [{elapsed // 60}:{elapsed % 60:02d}]")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'I/N' -> (I, N), or None for no sharding; ValueError says what is wrong."""
    if not text:
        return None
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index, count = 0, 0
    if not 1 <= index <= count:
        raise ValueError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return index, count


def in_shard(case: Case, shard: tuple[int, int] | None) -> bool:
    """A stable hash of (op, floatx) picks the shard: same split on every machine."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(case.id.encode()) % count == index - 1


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    session = session_of(metafunc.config)
    custom = metafunc.definition.get_closest_marker("conformance_ops")
    if custom is not None:  # the user's own ops, declared in their test module
        ops = catalog.select(list(custom.args), session.op_patterns)
    else:
        marker = metafunc.definition.get_closest_marker("family")
        family = marker.args[0] if marker else None
        ops = catalog.select(catalog.all_ops(), session.op_patterns, family)
    cases = [Case(op, fx) for fx in session.floatx for op in ops
             if fx in op.floatx and in_shard(Case(op, fx), session.shard)]
    metafunc.parametrize("case", cases, ids=[c.id for c in cases])


def case_of(item) -> Case | None:
    case = item.callspec.params.get("case") if hasattr(item, "callspec") else None
    return case if isinstance(case, Case) else None  # empty families have no Case


def config_case_of(item) -> tuple[str, str] | None:
    """The (target id, scenario) of a configuration test, else None (also for the
    placeholder test pytest makes of an empty parameter set)."""
    value = getattr(getattr(item, "callspec", None), "params", {}).get(CONFIG_PARAM)
    return value if isinstance(value, tuple) else None


def _order(item) -> int:
    """Other tests first, then the cases grouped by floatx, the config tests last."""
    case = case_of(item)
    if case is not None:
        return FLOATX_ORDER.index(case.floatx)
    return len(FLOATX_ORDER) if config_case_of(item) is not None else -1


def pytest_collection_modifyitems(session, config, items):
    """Group by floatx so each target's workers switch floatx at most twice; the config
    tests go last, their checks having run in the background meanwhile."""
    items.sort(key=_order)
    if _SESSION in config.stash:
        config.stash[_SESSION].total = sum(1 for item in items if case_of(item))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Tell the session which cases run next, for the engine's lookahead."""
    if _SESSION not in item.config.stash:
        return
    state = item.config.stash[_SESSION]
    if state.positions is None:  # the collected items do not change once tests run
        state.positions = {id(i): n for n, i in enumerate(item.session.items)}
    position = state.positions.get(id(item))
    following = item.session.items[position + 1:] if position is not None else [nextitem]
    upcoming = itertools.islice(map(case_of, filter(None, following)), state.settings.lookahead)
    state.next_cases = list(itertools.takewhile(lambda c: c is not None, upcoming))


@pytest.fixture(scope="session")
def conformance(request):
    """The run's ConformanceSession: pool, engine, writer (started on first use)."""
    state = session_of(request.config)
    if state.writer is None:
        state.open()
    state.start_config_checks([c for c in map(config_case_of, request.session.items) if c])
    yield state


@pytest.fixture
def conformance_call(conformance):
    """Fan one call out to the selected targets: ``conformance_call("keras.ops.exp", x,
    keras2_fn="keras.backend.exp")`` -> {target id: reply}."""
    return conformance.fan_out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that failed by an exception of the harness itself (not a divergence) is
    shown at once with the end of its traceback: with the terminal reporter off
    (`conformance run`) it would otherwise vanish without a trace."""
    outcome = yield
    report = outcome.get_result()
    if (report.when != "call" or not report.failed or _SESSION not in item.config.stash
            or call.excinfo.errisinstance(pytest.fail.Exception)):
        return  # passed, or an unexpected divergence already in the progress line
    item.config.stash[_SESSION].harness_error(item.nodeid, str(report.longrepr), retried=False)


def pytest_unconfigure(config):
    if _SESSION in config.stash:
        config.stash[_SESSION].close()


def assert_conformant(records: list[dict]) -> None:
    """Fail the test for unexpected divergences, with one line per target."""
    bad = [r for r in records if r["status"] in compare.DIVERGENT]
    if bad:
        lines = [f"{r['target']}: {r['status']}: {r.get('message', '')}" for r in bad]
        pytest.fail("\n".join(lines), pytrace=False)
