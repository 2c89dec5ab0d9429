"""Run options: declared once, parsed and checked once.

`OPTIONS` is the one table of what a run can be told. It becomes the arguments of
`conformance run` (``--ops``) and of `conformance validate`, and the options of the
pytest plugin (``--conformance-ops``) for people who run the suites with plain pytest.
`RunOptions.parse` turns raw values from either into a checked `RunOptions`;
`conformance run` hands that object to the plugin as it is, so nothing is parsed twice.
"""
from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from conformance import catalog, configsuite, known, memory, store, targets as targets_mod
from conformance import costs as costs_mod
from conformance.engine import PROFILES

ALL_FLOATX = "float32,float64,float16"
PYTEST_PREFIX = "--conformance-"


class OptionError(targets_mod.ConfigError):
    """A run option that cannot be used; the message names it and says what to give."""


@dataclass(frozen=True)
class Option:
    """One run option: its RunOptions field, its flag, its help and how to read it."""

    name: str
    help: str
    kind: str = "text"  # text | list | int | flag | json
    default: object = None
    choices: tuple = ()
    on_command_line: bool = True  # False: pytest plugin only (set by other commands)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = (
    Option("targets", "comma-separated target ids (default: every built-in and configured "
           "target but the opt-in ones)", "list"),
    Option("ops", "comma-separated globs on op names or family/name, e.g. "
           "'soft*,reductions/*' ('config' selects the configuration checks)", "list"),
    Option("floatx", "comma-separated floatx values (default: %(default)s)", "list",
           default=ALL_FLOATX),
    Option("profile", "examples per (op, floatx): " + ", ".join(
        f"{k}={v['max_examples']}" for k, v in PROFILES.items())
        + "; thorough also builds shapes axis by axis instead of reusing a short menu "
          "(more shapes, many more JAX compiles)", default="default",
        choices=tuple(sorted(PROFILES))),
    Option("max_examples", "override the profile's examples per (op, floatx)", "int"),
    Option("seed", "run seed (printed at start; reuse it to reproduce a run)", "int"),
    Option("out", "results folder (default: reports/run-<timestamp>)"),
    Option("known", "known-divergence registry (default: known_divergences.toml in the "
           "project)"),
    Option("shard", "I/N: run a deterministic 1/N of the (op, floatx) cases, for CI "
           "matrices; merge the shards with `conformance report`"),
    Option("costs", "cost table, or results folder of an earlier run, that --shard "
           "balances the cases by (default: the table in the package, "
           "conformance/case_costs.json, rewritten by `conformance costs`)"),
    Option("example_db", "folder of saved counterexamples, replayed first by the next run "
           "(default: .conformance-examples beside the results folder)"),
    Option("no_report", "write results.jsonl and summary.json only, no HTML/JUnit report",
           "flag", default=False),
    Option("resume", "DIR: continue the interrupted run whose results are in DIR, with the "
           "options it was started with (give no other): the cases it finished are kept, "
           "the others run, and the summary is the one an uninterrupted run gives"),
    Option("memory_cap", "resident memory a worker may hold; one over it is stopped, its "
           "request recorded as a crash, and restarted. A size for every target ('3GiB', "
           "'512MiB', '2G') or per target ('keras3-jax=4GiB,keras2-theano=3GiB'). Default: "
           "memory_cap of [tool.conformance.targets.<id>], else 3/4 of the machine's memory "
           f"split between the run's workers, at least {memory.describe(memory.FLOOR_BYTES)} "
           "(at most 3/4 of the machine)"),
    Option("extra_targets", "JSON object {id: {flavor, backend, env, python, pythonpath, "
           "...}} of targets to add for this run (same keys as [tool.conformance.targets])",
           "json", on_command_line=False),
    Option("project", "folder holding pyproject.toml with [tool.conformance]",
           default=".", on_command_line=False),  # `conformance --project` on the CLI
)


@dataclass(frozen=True)
class RunOptions:
    """Everything a run is told, checked: see OPTIONS for what each field means."""

    targets: list | None = None
    ops: list | None = None
    floatx: list = field(default_factory=lambda: ALL_FLOATX.split(","))
    profile: str = "default"
    max_examples: int | None = None
    seed: int | None = None
    out: Path | None = None
    known: Path | None = None
    shard: tuple | None = None
    costs: Path | None = None
    example_db: Path | None = None
    no_report: bool = False
    resume: Path | None = None
    memory_cap: dict = field(default_factory=dict)  # target id (None: every one) -> bytes
    extra_targets: dict = field(default_factory=dict)
    project: Path = Path(".")

    @classmethod
    def parse(cls, raw: dict, catalog_ops: bool = True) -> "RunOptions":
        """Options from raw values by field name (strings as a command line gives
        them, or already typed); OptionError says what is wrong. `catalog_ops`: --ops
        must match a catalog op or configuration check (not so under plain pytest,
        where a test module may declare its own ops)."""
        values = {}
        for option in OPTIONS:
            value = raw.get(option.name)
            if value is None or value == "":
                continue
            values[option.name] = _read(option, value)
        if "shard" in values:
            values["shard"] = parse_shard(values["shard"])
        if isinstance(values.get("memory_cap"), str):
            values["memory_cap"] = parse_memory_caps(values["memory_cap"])
        for name in ("out", "known", "costs", "example_db", "project", "resume"):
            if name in values:
                values[name] = Path(values[name])
        return cls(**values).checked(catalog_ops)

    def with_(self, **changes) -> "RunOptions":
        return replace(self, **changes)

    # -- derived ---------------------------------------------------------------
    @property
    def examples(self) -> int:
        return self.max_examples or PROFILES[self.profile]["max_examples"]

    def results_dir(self) -> Path:
        """--out, or a new reports/run-<timestamp> (call once per run)."""
        return self.out or Path("reports") / time.strftime("run-%Y%m%d-%H%M%S")

    @property
    def registry_path(self) -> Path:
        return self.known or self.project / "known_divergences.toml"

    def project_config(self) -> dict:
        config = targets_mod.load_project_config(self.project)
        if self.extra_targets:
            config.setdefault("targets", {}).update(self.extra_targets)
        return config

    # -- checks ----------------------------------------------------------------
    def checked(self, catalog_ops: bool = True) -> "RunOptions":
        """Self, after every check that can be made before workers start."""
        unknown = [f for f in self.floatx if f not in targets_mod.FLOATX]
        if unknown or not self.floatx:
            raise OptionError(f"--floatx: unknown {unknown}; use {list(targets_mod.FLOATX)}")
        if self.profile not in PROFILES:
            raise OptionError(f"--profile {self.profile!r}: use one of {sorted(PROFILES)}")
        if self.max_examples is not None and self.max_examples < 1:
            raise OptionError(f"--max-examples {self.max_examples}: give at least 1")
        if self.known is not None and not self.known.is_file():
            raise OptionError(f"--known {self.known}: no such file")
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise OptionError(f"--out {self.out}: exists and is not a folder; give a folder "
                              "for the results")
        if self.resume is not None:
            self._check_resume()
        config = self.project_config()
        all_targets = targets_mod.load_targets(config, self.project)
        targets_mod.select(all_targets, self.targets)
        capped_unknown = [t for t in self.memory_cap if t is not None and t not in all_targets]
        if capped_unknown:
            raise OptionError(f"--memory-cap: unknown target(s) {', '.join(capped_unknown)}; "
                              f"known: {', '.join(all_targets)}")
        if catalog_ops and self.ops and not catalog.select(catalog.all_ops(), self.ops) and not any(
                configsuite.selected(s, self.ops) for s in configsuite.SCENARIOS):
            raise OptionError(f"--ops {','.join(self.ops)!r} matches no op; `conformance ops` "
                              "lists them (globs like 'soft*' or 'reductions/*' work)")
        self.registry()
        if self.shard is not None and self.costs is not None:
            try:
                costs_mod.load(self.costs)
            except costs_mod.CostError as exc:
                raise OptionError(f"--costs: {exc}") from None
        try:  # last: the checks above fail without touching the disk
            store.check_writable(self.out or Path("reports"))
        except store.OutputError as exc:
            raise OptionError(f"--out: {exc}") from None
        return self

    def _check_resume(self) -> None:
        """--resume comes alone: the run goes on with the options it was started with."""
        fresh = RunOptions()
        given = [o.flag for o in OPTIONS if o.name not in ("resume", "project")
                 and getattr(self, o.name, None) != getattr(fresh, o.name, None)]
        if given:
            raise OptionError(f"--resume continues a run with the options it was started "
                              f"with (its results.jsonl records them); drop {', '.join(given)}")
        if not (self.resume / "results.jsonl").is_file():
            raise OptionError(f"--resume {self.resume}: no results.jsonl there; give the --out "
                              "folder of an interrupted run")

    def registry(self) -> list:
        try:
            return known.load(self.registry_path)
        except known.RegistryError as exc:
            raise OptionError(f"known-divergence registry: {exc}") from None


def _read(option: Option, value):
    """One raw value as its option's type."""
    if option.kind == "list" and isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()] or None
    if option.kind == "int" and not isinstance(value, int):
        try:
            return int(value)
        except ValueError:
            raise OptionError(f"{option.flag} {value!r}: give a whole number") from None
    if option.kind == "json" and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise OptionError(f"{option.flag}: not a JSON object ({exc})") from None
    if option.choices and value not in option.choices:
        raise OptionError(f"{option.flag} {value!r}: use one of {list(option.choices)}")
    return value


# -- the two front ends ----------------------------------------------------------
def add_arguments(parser, out_default: str | None = None, exclude=()) -> None:
    """The run options as arguments of a `conformance` subcommand (`--ops`, ...)."""
    for option in OPTIONS:
        if not option.on_command_line or option.name in exclude:
            continue
        text = option.help
        if option.name == "out" and out_default:
            text = f"results folder (default: {out_default})"
        if option.kind == "flag":
            parser.add_argument(option.flag, action="store_true", help=text)
        else:
            parser.add_argument(option.flag, default=option.default, help=text,
                                choices=option.choices or None)


def add_pytest_options(parser) -> None:
    """The run options as pytest options (`--conformance-ops`, ...)."""
    group = parser.getgroup("conformance", "Keras backend conformance")
    for option in OPTIONS:
        flag = PYTEST_PREFIX + option.name.replace("_", "-")
        if option.kind == "flag":
            group.addoption(flag, action="store_true", help=option.help)
        else:
            group.addoption(flag, default=option.default, help=option.help,
                            choices=option.choices or None)


def from_arguments(args, **preset) -> RunOptions:
    """RunOptions from a parsed `conformance` command line (plus preset fields)."""
    raw = {o.name: getattr(args, o.name, None) for o in OPTIONS}
    raw["project"] = getattr(args, "project", None)
    raw.update(preset)
    return RunOptions.parse(raw)


def from_pytest(config) -> RunOptions:
    """RunOptions from pytest's options (plain `pytest` runs of the suites)."""
    return RunOptions.parse({o.name: config.getoption(PYTEST_PREFIX + o.name.replace("_", "-"))
                             for o in OPTIONS}, catalog_ops=False)


# -- sharding ----------------------------------------------------------------------
def parse_shard(text) -> tuple[int, int] | None:
    """'I/N' -> (I, N), or None for no sharding; OptionError says what is wrong."""
    if not text:
        return None
    if isinstance(text, tuple):
        return text
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        index, count = 0, 0
    if not 1 <= index <= count:
        raise OptionError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return index, count


def parse_memory_caps(text: str) -> dict[str | None, int]:
    """'3GiB' or 'keras3-jax=4GiB,...' -> {target id or None: bytes} (memory.parse_caps);
    OptionError says what is wrong."""
    try:
        return memory.parse_caps(text)
    except memory.CapError as exc:
        raise OptionError(f"--memory-cap {exc}; for one target write id=size, e.g. "
                          "keras3-jax=4GiB") from None


def in_shard(case_id: str, shard: tuple[int, int] | None) -> bool:
    """A stable hash of the id picks the shard: the same split on every machine. The
    configuration checks are split so (they run in the background, beside the op
    cases); the op cases are split by their cost (conformance.costs)."""
    if shard is None:
        return True
    index, count = shard
    return zlib.crc32(case_id.encode()) % count == index - 1
