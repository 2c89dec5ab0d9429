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
from dataclasses import dataclass

import pytest

from conformance import catalog, compare, costs, options as options_mod, resume, store
from conformance.runloop import FLOATX_ORDER, Run
from conformance.textsafe import printable

CONFIG_PARAM = "config_case"  # suites/test_config.py's parameter: (target id, scenario)


@dataclass(frozen=True)
class Case:
    op: catalog.Op
    floatx: str

    @property
    def id(self) -> str:
        return f"{self.op.name}-{self.floatx}"


def pytest_addoption(parser):
    options_mod.add_pytest_options(parser)


def pytest_configure(config):
    config.addinivalue_line("markers", "family(name): op family a suite file covers")
    config.addinivalue_line("markers", "conformance_ops(*ops): run these catalog.Op objects "
                            "(e.g. your own custom ops) through the `case` fixture")


_SESSION = pytest.StashKey["ConformanceSession"]()
_OPTIONS = pytest.StashKey[options_mod.RunOptions]()


class Preset:
    """A pytest plugin object that hands checked RunOptions to this plugin, so that
    `conformance run` parses and checks its options once: ``pytest.main(args,
    plugins=[Preset(options)])``."""

    def __init__(self, options: options_mod.RunOptions):
        self.options = options

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        config.stash[_OPTIONS] = self.options


class Planner:
    """A pytest plugin object that collects the cases a run would check (after --shard
    and --resume left theirs out) and runs none of them: `conformance run --plan`."""

    def __init__(self):
        self.case_ids: list[str] = []

    @pytest.hookimpl(trylast=True)  # after this plugin's own collection hook
    def pytest_collection_modifyitems(self, session, config, items):
        self.case_ids = [case.id for case in map(case_of, items) if case is not None]
        config.hook.pytest_deselected(items=list(items))
        items[:] = []


def session_of(config) -> "ConformanceSession":
    """The run's ConformanceSession, created on first use: the plugin is registered in
    every pytest run where the package is installed (entry point pytest11) and must cost
    nothing in test suites that never ask for it."""
    if _SESSION not in config.stash:
        config.stash[_SESSION] = ConformanceSession(config)
    return config.stash[_SESSION]


class ConformanceSession:
    """The pytest side of one run: the options, the Run (runloop.Run) it drives one
    case per test, and progress lines on the terminal while pytest captures output."""

    def __init__(self, config):
        self.config = config
        try:
            options = config.stash[_OPTIONS] if _OPTIONS in config.stash else \
                options_mod.from_pytest(config)
            options = resume.resumed(options)  # --resume DIR: the interrupted run's options
        except options_mod.OptionError as exc:
            raise pytest.UsageError(str(exc)) from None
        self.options = options
        self.run = Run.from_options(options, say=self.say)
        # the cases of the tests after the running one, up to the first that is not
        # a case (set before each test: pytest_runtest_protocol)
        self.next_cases: list[Case] = []
        self.positions: dict[int, int] | None = None  # id(item) -> its index in the run
        self.opened = False
        self._costs: costs.Costs | None = None

    # what the suites read
    @property
    def targets(self):
        return self.run.targets

    @property
    def floatx(self) -> list[str]:
        return self.options.floatx

    @property
    def op_patterns(self):
        return self.options.ops

    @property
    def shard(self):
        return self.options.shard

    @property
    def costs(self) -> costs.Costs:
        """What each case costs, for --shard: the table or results --costs names."""
        if self._costs is None:
            self._costs = costs.load(self.options.costs)
        return self._costs

    @property
    def settings(self):
        return self.run.settings

    @property
    def config_suite(self):
        return self.run.config_suite

    def open(self) -> None:
        if not self.opened:
            self.opened = True
            self.run.open()
            self.run.announce()

    def close(self) -> None:
        if self.opened:
            self.opened = False  # once, even when it fails
            self.run.close()

    def stop(self, error: store.OutputError) -> None:
        """End the session for an output that cannot be written (a full disk): no
        later case could be kept. Exit status 2; the workers stop as the run closes."""
        self.say(f"error: {error}")
        pytest.exit(str(error), returncode=2)

    def say(self, text: str) -> None:
        """Progress goes to the terminal even while pytest captures test output."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(text)
            else:
                print(text, flush=True)

    def check(self, case: Case) -> list[dict]:
        """One case on every target; the next tests' cases at this floatx are queued on
        the targets while this one is compared and shrunk (RunSettings.lookahead)."""
        upcoming = [c.op for c in itertools.takewhile(
            lambda c: c.floatx == case.floatx, self.next_cases)]
        return self.run.check(case.op, case.floatx, upcoming)

    def fan_out(self, fn: str, *args, **kwargs) -> dict[str, dict]:
        self.open()
        return self.run.fan_out(fn, *args, **kwargs)


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
    # every case: --shard picks its share once all are collected (_keep_shard)
    cases = [Case(op, fx) for fx in session.floatx for op in ops if fx in op.floatx]
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
    tests go last, their checks having run in the background meanwhile. A resumed run
    leaves out the cases the interrupted one finished."""
    items.sort(key=_order)
    if _SESSION in config.stash:
        state = config.stash[_SESSION]
        if state.shard is not None:
            _keep_shard(state, config, items)
        if state.run.previous is not None:
            _leave_out_finished(state, config, items)
        state.run.total = sum(1 for item in items if case_of(item))


def _keep_shard(state, config, items) -> None:
    """Leave out the op cases of other shards: the cases are split by their estimated
    cost (conformance.costs), so that every shard gets the same work. Configuration
    tests were split by their hashed id already (suites/test_config.py)."""
    index, count = state.shard
    ids = [case.id for case in map(case_of, items) if case is not None]
    shard_of = costs.assign(ids, state.costs, count)
    elsewhere = [i for i in items if case_of(i) is not None and shard_of[case_of(i).id] != index]
    config.hook.pytest_deselected(items=elsewhere)
    dropped = set(map(id, elsewhere))
    items[:] = [i for i in items if id(i) not in dropped]


def _leave_out_finished(state, config, items) -> None:
    finished = state.run.previous.finished
    config.hook.pytest_deselected(items=[i for i in items if case_id(i) in finished])
    items[:] = [i for i in items if case_id(i) not in finished]
    if not any(map(case_id, items)):  # none left: the run still ends
        state.open()  # (its end record, summary.json)


def case_id(item) -> str | None:
    """The id of the case a test runs (its record of kind "case"), None for other tests."""
    case, config_case = case_of(item), config_case_of(item)
    if case is not None:
        return case.id
    return resume.config_case_id(*config_case) if config_case is not None else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """Tell the session which cases run next, for the engine's lookahead; after a
    configuration test, mark its case finished (an op case's is marked by Run.check)."""
    if _SESSION not in item.config.stash:
        return (yield)
    state = item.config.stash[_SESSION]
    _set_next_cases(state, item, nextitem)
    result = yield  # raises when the test was interrupted: then it did not finish
    config_case = config_case_of(item)
    if config_case is not None and state.opened:
        try:
            state.run.write("case", {"case": resume.config_case_id(*config_case)})
        except store.OutputError as exc:
            state.stop(exc)
    return result


def _set_next_cases(state, item, nextitem) -> None:
    """The cases of the tests after `item`, up to the first test that is not a case."""
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
    state.open()
    state.run.start_config_checks([c for c in map(config_case_of, request.session.items) if c])
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
    if call.excinfo is not None and call.excinfo.errisinstance(store.OutputError) \
            and _SESSION in item.config.stash:
        item.config.stash[_SESSION].stop(call.excinfo.value)
    if (report.when != "call" or not report.failed or _SESSION not in item.config.stash
            or call.excinfo.errisinstance(pytest.fail.Exception)):
        return  # passed, or an unexpected divergence already in the progress line
    item.config.stash[_SESSION].run.harness_error(item.nodeid, str(report.longrepr),
                                                  retried=False)


def pytest_sessionfinish(session):
    """Close the run here, not later, so that an output that cannot be written (summary,
    report) still sets the exit status."""
    if _SESSION in session.config.stash:
        state = session.config.stash[_SESSION]
        try:
            state.close()
        except store.OutputError as exc:
            state.say(f"error: {exc}")
            session.exitstatus = 2


def pytest_unconfigure(config):
    if _SESSION in config.stash:
        config.stash[_SESSION].close()


def assert_conformant(records: list[dict]) -> None:
    """Fail the test for unexpected divergences, with one line per target."""
    bad = [r for r in records if r["status"] in compare.DIVERGENT]
    if bad:
        lines = [printable(f"{r['target']}: {r['status']}: {r.get('message', '')}")
                 for r in bad]
        pytest.fail("\n".join(lines), pytrace=False)
