"""The run loop: one run's workers, engine, results file, floatx switching and progress.

Every command that runs ops on targets goes through a `Run`: `conformance run` (the
pytest plugin drives it, one case per test), `conformance validate` (a run with the
plugin as an extra target) and `conformance baseline save` / `compare` (stored
examples replayed). It needs no pytest: `say` is where progress lines go.

    run = Run.from_options(options, say=print)
    run.open()
    for floatx ...: run.check(op, floatx, upcoming_ops)
    run.close()        # run record, summary.json, report
"""
from __future__ import annotations

import random
import sys
import time
import traceback
from pathlib import Path

import hypothesis

from conformance import __version__, configsuite, interrupts, known, memory, resume, store
from conformance.engine import PROFILES, Engine, RunSettings
from conformance.options import RunOptions
from conformance.pool import Pool
from conformance.probe import pool_statuses, resolve_interpreters
from conformance import targets as targets_mod
from conformance.textsafe import printable

FLOATX_ORDER = ("float32", "float64", "float16")  # workers start at the first, switch twice
# Configuration checks beside the op cases: targets checked at once, and the niceness
# of their workers. They start dozens of processes; nice 10 keeps them on the cores the
# op cases leave idle instead of slowing the op cases.
CONFIG_PARALLEL = 2
CONFIG_NICENESS = 10
# Workers the configuration checks hold at once (two shared setups and a scenario's
# own per target checked): with one per target, what the default memory cap splits by.
CONFIG_WORKERS = CONFIG_PARALLEL * 3


def floatx_order(floatx: str) -> int:
    return FLOATX_ORDER.index(floatx) if floatx in FLOATX_ORDER else len(FLOATX_ORDER)


def now_text(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(seconds))


def say_on_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Run:
    """One run over a set of targets. Built from checked RunOptions (`from_options`) or
    from targets and interpreters already resolved (baselines)."""

    def __init__(self, targets: list, pythons: dict, *, settings: RunSettings,
                 floatx: list[str], out_dir: Path | None, workdir: Path, say=say_on_stderr,
                 missing=(), report: bool = True, header: dict | None = None,
                 memory_caps: dict | None = None):
        # selected, runnable or not; each carries its workers' memory cap (the pool's and
        # the configuration checks'): `memory_caps` (--memory-cap), its own, or the default
        self.targets = memory.with_caps(targets, memory_caps or {},
                                        workers=len(targets) + CONFIG_WORKERS)
        self.pythons = pythons  # target id -> interpreter, for the runnable ones
        self.missing = list(missing)  # TargetStatus of the targets that cannot start
        self.settings = settings
        self.floatx = floatx
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.workdir = Path(workdir)
        self.say = say
        self.report = report
        self.header = header or {}
        self.started = time.time()
        self.done = 0
        self.previous: resume.Previous | None = None  # what the run this one resumes finished
        self.total = 0  # cases this run is expected to check (for the progress line)
        self.writer: store.ResultsWriter | None = None
        self.pool: Pool | None = None
        self.engine: Engine | None = None
        self.config_suite = None  # configsuite.ConfigSuite, see start_config_checks
        # what broke inside the harness: {"case", "retried", "traceback"} (see harness_error)
        self.harness_errors: list[dict] = []

    @classmethod
    def from_options(cls, options: RunOptions, say=say_on_stderr) -> "Run":
        config = options.project_config()
        specs = targets_mod.load_envs(config)
        selected = targets_mod.select(targets_mod.load_targets(config, options.project),
                                      options.targets)
        pythons, missing = resolve_interpreters(selected, specs)
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        out = options.results_dir()
        profile = PROFILES[options.profile]
        settings = RunSettings(
            seed=seed, registry=options.registry(), out_dir=Path(out),
            max_examples=options.examples, shrink_calls=profile["shrink_calls"],
            example_db=Path(options.example_db or Path(out).resolve().parent / ".conformance-examples"),
            reuse_shapes=profile["reuse_shapes"])
        header = {"profile": options.profile,
                  "shard": "/".join(map(str, options.shard)) if options.shard else None,
                  # what `conformance run --resume` runs with again
                  "options": resume.recorded(
                      options, seed=seed, out=Path(out).resolve(),
                      example_db=settings.example_db.resolve(),
                      known=options.registry_path.resolve(), targets=[t.id for t in selected])}
        run = cls(selected, pythons, settings=settings, floatx=options.floatx, out_dir=out,
                  workdir=Path(out) / "workers", say=say, missing=missing,
                  report=not options.no_report, header=header,
                  memory_caps=options.memory_cap)
        if options.resume is not None:
            run.previous = resume.Previous.read(options.resume)
        return run

    @property
    def seed(self) -> int:
        return self.settings.seed

    @property
    def registry(self) -> list:
        return self.settings.registry

    # -- life cycle ------------------------------------------------------------------
    def open(self) -> None:
        """Start writing results and create the pool (workers start at the first floatx)."""
        if self.out_dir is not None:
            if self.previous is not None:  # its start record stays the run's
                self.previous.keep_finished({"started": now_text(self.started),
                                             "argv": sys.argv,
                                             "cases_done": self.previous.cases_done})
            self.writer = store.ResultsWriter(self.out_dir)
            if self.previous is None:
                self.writer.write("run", self._run_record())
        for status in self.missing:
            for floatx in self.floatx:
                self.write("target", {**status.as_dict(), "floatx": floatx})
            self.say(printable(f"target {status.id}: {status.status}: {status.reason} "
                               f"(fix: {status.fix})"))
        if not memory.can_watch():
            self.say("memory caps are not enforced: resident memory cannot be read here "
                     "(no /proc)")
        runnable = [t for t in self.targets if t.id in self.pythons]
        self.pool = Pool(runnable, self.pythons, self.workdir)
        self.engine = Engine(self.pool, self.settings, self.writer)

    def _run_record(self) -> dict:
        settings = self.settings
        return {
            "seed": settings.seed, "harness_version": __version__, "started": now_text(self.started),
            "max_examples": settings.max_examples, "floatx": self.floatx, "argv": sys.argv,
            "targets": [t.id for t in self.targets], "ops": self.total,
            "memory_caps": {t.id: t.memory_cap for t in self.targets},
            "hypothesis": {"version": hypothesis.__version__,
                           "max_examples": settings.max_examples,
                           "shrink_calls": settings.shrink_calls,
                           "phases": ["explicit", "generate", "shrink (divergent targets)"],
                           "deadline": None, "derandomize": False,
                           "seed_per_case": "crc32('<seed>/<op>/<floatx>')",
                           "example_db": str(settings.example_db)},
            # the registry the verdicts were marked with, to tell its stale entries
            "registry": known.describe(settings.registry),
            **self.header}

    def announce(self) -> None:
        if self.previous is not None:
            done = self.previous.cases_done
            self.say(f"resuming the run in {self.out_dir}: {done} of {done + self.total} "
                     f"(op, floatx) cases done, {self.total} left (seed {self.seed})")
            return
        self.say(f"conformance run: seed {self.seed}, profile {self.header.get('profile')} "
                 f"({self.settings.max_examples} examples per op), {self.total} (op, floatx) "
                 f"cases, targets {', '.join(t.id for t in self.targets)}; results in "
                 f"{self.out_dir}")

    def start_config_checks(self, cases: list[tuple[str, str]]) -> None:
        """Start these (target id, scenario) configuration checks in the background;
        their records are written as each scenario finishes (once: a no-op when
        started already, or when there is none)."""
        if self.config_suite is not None or not cases:
            return
        self.config_suite = configsuite.ConfigSuite(
            self.targets, self.pythons, self.out_dir / "config-workers", registry=self.registry,
            floatx=self.floatx, writer=self.writer, parallel=CONFIG_PARALLEL,
            niceness=CONFIG_NICENESS)
        self.config_suite.prefetch(cases)
        self.say(f"configuration checks: {len(cases)} (target, scenario) started in the "
                 f"background (niced workers); their tests run last")

    def close(self) -> None:
        """Stop every worker, finish results.jsonl, write summary.json and the report."""
        with interrupts.finishing():  # a signal now asks for what this does already
            self._close()

    def _close(self) -> None:
        if self.config_suite is not None:  # before the writer closes: it writes records
            self.config_suite.close()
        if self.pool is not None:
            self.pool.close()
        if self.writer is None:
            return
        finished = time.time()
        writer, self.writer = self.writer, None
        try:
            if writer.failure is None:  # else said already, and the file takes no more
                writer.write("run", self._end_record(finished))
        finally:
            writer.close()
        write_outputs(self.out_dir, self.say, report=self.report)

    def _end_record(self, finished: float) -> dict:
        """The run record that ends results.jsonl; a resumed run's counts what the
        interrupted one finished too."""
        previous = self.previous
        record = {"finished": now_text(finished), "duration_s": round(finished - self.started, 1),
                  "cases_done": self.done + (previous.cases_done if previous else 0),
                  "harness_errors": (previous.harness_errors if previous else [])
                  + self.harness_errors}
        if interrupts.received():  # stopped by a signal: the cases left can be resumed
            record["interrupted"] = interrupts.received()
        return record

    # -- floatx ----------------------------------------------------------------------
    def switch_floatx(self, floatx: str) -> dict:
        """Bring every worker to `floatx` (started on first use); the target records are
        written and broken targets said. Returns {target id: worker info} of the ready."""
        if self.pool.floatx == floatx:
            return self.pool.infos
        first = self.pool.floatx is None
        self.say(f"{'starting workers' if first else 'switching workers to'} floatx={floatx} ...")
        started = time.time()
        infos = self.pool.use_floatx(floatx)
        for status in pool_statuses(self.pool, infos):
            if status.status != "ready":
                first_line = (status.reason.splitlines() or [""])[0]
                self.say(f"target {status.id} cannot run: {printable(first_line)}")
            self.write("target", {**status.as_dict(), "floatx": floatx})
        self.say(f"  {len(infos)} targets ready in {time.time() - started:.1f}s")
        return infos

    # -- cases -----------------------------------------------------------------------
    def check(self, op, floatx: str, upcoming=()) -> list[dict]:
        """One (op, floatx) on every ready target: the engine's records, written.
        `upcoming`: the next cases' ops at this floatx (queued ahead by the engine)."""
        self.switch_floatx(floatx)
        started = time.time()
        case_id = f"{op.name}-{floatx}"
        try:
            records = self.engine.check(op, floatx, list(upcoming))
        except store.OutputError:  # the disk, not the harness: trying again cannot help
            raise
        except Exception:
            # A bug of the harness itself: said at once with its traceback and kept in
            # the run record; the case is tried once more so that a passing fault
            # (a worker restart racing a reply, say) does not lose it. A second
            # failure propagates and is reported by the caller the same way.
            self.harness_error(case_id, traceback.format_exc(), retried=True)
            records = self.engine.check(op, floatx, list(upcoming))
        self.write("case", {"case": case_id})  # its records are all written: see resume
        self.case_done(f"{op.family}/{case_id:<34}", records, time.time() - started)
        return records

    def fan_out(self, fn: str, *args, floatx: str = "float32", keras2_fn: str | None = None,
                **kwargs) -> dict[str, dict]:
        """Call one function on every ready target with byte-identical inputs.

        `fn` is the Keras 3 path (``keras.ops.exp``; ops-module plugins get its last
        name), `keras2_fn` the Keras 2 one (targets of that flavor are skipped without
        it). Returns {target id: reply} with ``status`` and, when ok, ``outputs``."""
        self.switch_floatx(floatx)
        requests = {}
        for target_id in self.pool.ready:
            name = keras2_fn if self.pool.targets[target_id].flavor == "keras2" else fn
            if name is not None:
                requests[target_id] = {"cmd": "call", "fn": name, "args": list(args),
                                       "kwargs": kwargs}
        return self.pool.call(requests)

    def case_done(self, label: str, records: list[dict], seconds: float) -> None:
        """Count a finished case and say its progress line."""
        self.done += 1
        self.say(progress_line(self.done, self.total, label, records, seconds,
                               time.time() - self.started))

    def harness_error(self, where: str, trace: str, retried: bool) -> None:
        lines = trace.rstrip().splitlines()[-12:]
        self.harness_errors.append({"case": where, "retried": retried,
                                    "traceback": "\n".join(lines)})
        then = "; trying the case once more" if retried else ""
        self.say(f"HARNESS ERROR in {where}{then}:\n  " + printable("\n  ".join(lines)))

    def write(self, kind: str, record: dict) -> None:
        """A record to results.jsonl (nothing when the run keeps no results file)."""
        if self.writer is not None:
            self.writer.write(kind, record)


def progress_line(done: int, total: int, label: str, records: list[dict], seconds: float,
                  elapsed: float | None = None) -> str:
    """`[  12/456] elementwise/exp-float64   0.4s  dtype 2 (a, b) · pass 6  [1:23]`."""
    by_status: dict[str, list[str]] = {}
    for record in records:
        by_status.setdefault(record["status"], []).append(record["target"])
    parts = []
    for status in sorted(by_status, key=lambda s: (s == "pass", s)):
        names = by_status[status]
        detail = ("" if status in ("pass", "unsupported")
                  else f" ({printable(', '.join(names), one_line=True)})")
        parts.append(f"{status} {len(names)}{detail}")
    clock = "" if elapsed is None else f"  [{int(elapsed) // 60}:{int(elapsed) % 60:02d}]"
    return f"[{done:>4}/{total}] {label} {seconds:6.1f}s  {' · '.join(parts)}{clock}"


def write_outputs(out_dir: Path, say=say_on_stderr, report: bool = True) -> None:
    """summary.json, then index.html and junit.xml, beside results.jsonl."""
    summary = store.load(out_dir / "results.jsonl")
    # first, so that a failing report never loses the run's summary
    store.write_summary(out_dir, summary)
    if not report:
        return
    try:
        from conformance import report as report_mod
    except ImportError as exc:  # the report's libraries are optional for bare runs
        say(f"report skipped: {exc}")
        return
    try:  # render rewrites summary.json beside index.html and junit.xml
        path = report_mod.render([summary], out_dir / "index.html", [out_dir])
    except Exception:
        lines = traceback.format_exc().rstrip().splitlines()[-8:]
        say("REPORT ERROR (results.jsonl and summary.json are complete; "
            f"`conformance report {out_dir}` renders it again):\n  " + "\n  ".join(lines))
        return
    say(f"report: {path}")
