"""`conformance validate MODULE`: how conformant is a plugin backend, in one command.

Two kinds of plugins:

- ``--flavor keras2`` (default): a Keras 2 external backend, the module named by
  ``KERAS_BACKEND=my_package.my_module``. It is loaded exactly as Keras 2.3.1 loads
  it, in the legacy environment, in an isolated worker.
- ``--flavor ops-module``: a Keras 3 style plugin, a module exposing functions under
  ``keras.ops`` names that take and return arrays.

Steps, each reported on its own line:

1. import: does it load? (Keras's own error message when not; a plugin that raises,
   calls ``sys.exit``, segfaults, hangs or prints to stdout gets a clear verdict, with
   the plugin line where it happened.)
2. surface: the required entries (placeholder / variable / function) and every name
   ``keras.backend`` takes from a backend, read from the installed Keras sources,
   with every missing name listed; for ops-module plugins, the catalog's
   ``keras.ops`` names.
3. suites: `conformance run` on the plugin and the ``--against`` targets, with the
   same results folder and HTML report.
4. a short summary: surface coverage, verdict counts, the worst ops. The exit status
   is 1 when the plugin does not import or has unexpected divergences.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

from conformance import catalog, options as options_mod, runcli, store, targets as targets_mod
from conformance.targets import Target
from conformance.validate import printing, processes
from conformance.validate.checks import ImportVerdict, Surface, name_clash
from conformance.validate.suites import summarize_suites

DEFAULT_AGAINST = {"keras2": ["keras2-tensorflow", "keras2-theano", "keras2-cntk"],
                   "ops-module": ["keras3-numpy"]}
DEFAULT_ENV = {"keras2": "keras2", "ops-module": "keras3"}
HELP = "how conformant is a plugin backend: import, surface, suites"
# laid out by hand (RawDescriptionHelpFormatter keeps it); no docstrings under python -OO
DESCRIPTION = __doc__.split("\n\n", 1)[1] if __doc__ else None


# -- the parser --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("module", help="the plugin: a dotted module name (found on --path, "
                        "default the current folder) or a path to its .py file")
    parser.add_argument("--flavor", choices=("keras2", "ops-module"), default="keras2",
                        help="keras2: a Keras 2 external backend (KERAS_BACKEND=MODULE); "
                             "ops-module: functions under keras.ops names (default: %(default)s)")
    parser.add_argument("--against", help="comma-separated targets to compare with, or 'none' "
                        "(default: the built-in Keras 2 targets for keras2, keras3-numpy for "
                        "ops-module)")
    parser.add_argument("--path", action="append", default=[], metavar="DIR",
                        help="folder put on the plugin's sys.path (repeatable)")
    parser.add_argument("--env", help="environment the plugin runs in "
                        "(default: keras2 for keras2, keras3 for ops-module)")
    parser.add_argument("--python", help="interpreter the plugin runs in (instead of --env)")
    parser.add_argument("--import-timeout", type=float, default=processes.IMPORT_TIMEOUT_S,
                        metavar="S",
                        help="seconds the plugin may take to import (default: %(default)g)")
    parser.add_argument("--call-timeout", type=float, default=None, metavar="S",
                        help="seconds one op call may take (default: the target default)")
    parser.add_argument("--surface-only", action="store_true",
                        help="stop after the import and surface checks")
    runcli.add_suite_options(parser, out_default="reports/validate-MODULE-<time>")
    # also accepted after the subcommand; SUPPRESS keeps the top-level default otherwise
    parser.add_argument("--project", default=argparse.SUPPRESS,
                        help="folder holding pyproject.toml")


# -- from the arguments to a plugin target -----------------------------------------------
def resolve_module(spec: str, paths: list[str]) -> tuple[str, list[str]]:
    """(dotted module name, absolute plugin folders) from a name or a .py / package path."""
    folders = [str(Path(p).resolve()) for p in paths]
    candidate = Path(spec)
    if spec.endswith(".py") and not candidate.is_file():
        raise targets_mod.ConfigError(f"{spec} does not exist (give the plugin's .py file, "
                                      "its package folder, or a module name with --path)")
    if spec.endswith(".py") or candidate.is_dir() and (candidate / "__init__.py").exists():
        candidate = candidate.resolve()
        name = candidate.stem if candidate.suffix == ".py" else candidate.name
        folder = str(candidate.parent)
        return name, [folder] + [f for f in folders if f != folder]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", spec):
        raise targets_mod.ConfigError(f"{spec!r} is neither a dotted module name nor a .py file")
    return spec, folders or [str(Path.cwd())]


def plugin_target(args, module: str, folders: list[str]) -> Target:
    extra = {}
    if args.call_timeout:
        extra["timeout_s"] = args.call_timeout
    if args.python:
        return Target(id=module, flavor=args.flavor, backend=module, python=args.python,
                      pythonpath=tuple(folders), **extra)
    return Target(id=module, flavor=args.flavor, backend=module,
                  env=args.env or DEFAULT_ENV[args.flavor], pythonpath=tuple(folders), **extra)


def against_targets(args, known_targets: dict) -> list[str]:
    """The --against target ids; unknown ids are a ConfigError naming the known ones."""
    if args.against is None:
        against = list(DEFAULT_AGAINST[args.flavor])
    elif args.against.strip().lower() in ("", "none"):
        against = []
    else:
        against = [t.strip() for t in args.against.split(",") if t.strip()]
    targets_mod.select(known_targets, against)
    return against


def chosen_ops(args, all_ops: list[catalog.Op]) -> list[catalog.Op]:
    """The --ops the plugin's flavor can call; none is an error unless --surface-only."""
    chosen = [op for op in catalog.select(all_ops, _csv(args.ops))
              if op.call_for(args.flavor) is not None]
    if not chosen and not args.surface_only:
        raise targets_mod.ConfigError(f"no op matches --ops {args.ops!r} for the "
                                      f"{args.flavor} flavor; see `conformance ops`")
    return chosen


def plugin_python(plugin: Target, specs: dict) -> str:
    python, reason = targets_mod.interpreter(plugin, specs)
    if python is None:
        fix = f"conformance envs sync {plugin.env}" if plugin.env else "check --python"
        raise targets_mod.ConfigError(f"cannot run {plugin.backend}: {reason} (fix: {fix})")
    return python


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


# -- the command -------------------------------------------------------------------------
def cmd_validate(args) -> int:
    project = Path(getattr(args, "project", "."))
    config = targets_mod.load_project_config(project)
    specs = targets_mod.load_envs(config)
    known_targets = targets_mod.load_targets(config, project)
    module, folders = resolve_module(args.module, args.path)
    plugin = plugin_target(args, module, folders)
    against = against_targets(args, known_targets)
    all_ops = catalog.all_ops()
    chosen = chosen_ops(args, all_ops)
    python = plugin_python(plugin, specs)
    out = Path(args.out or Path("reports") / time.strftime(f"validate-{module}-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)

    kind = "Keras 2 external backend" if args.flavor == "keras2" else "ops-module plugin"
    print(f"validating {module} ({kind}) from {', '.join(folders)} with {python}")
    verdict, inspect_verdict, surface = processes.validate_checks(
        plugin, python, out / "checks", args.import_timeout, all_ops)
    printing.print_checks(verdict, surface, args.flavor, module, inspect_verdict)

    record = {"module": module, "flavor": args.flavor, "paths": folders, "python": python,
              "import": asdict(verdict), "surface": {**asdict(surface),
                                                     "coverage": round(surface.coverage, 2)},
              "against": against, "out": str(out), "name_clash": name_clash(module)}
    status = 0 if verdict.ok else 1
    if verdict.ok and not args.surface_only:
        status = run_suites(args, plugin, against, chosen, out, record, verdict, surface)
    record["exit_status"] = status
    (out / "validate.json").write_text(json.dumps(record, indent=1, default=str))
    printing.print_result(module, record, args.surface_only, out)
    return status


def run_suites(args, plugin: Target, against: list[str], chosen: list[catalog.Op], out: Path,
               record: dict, verdict: ImportVerdict, surface: Surface) -> int:
    """Step 3 and the summary; adds "suites" to the record. Returns the exit status."""
    print(f"running the suites: {len(chosen)} ops on {', '.join([plugin.id, *against])} "
          f"at floatx {args.floatx}")
    sys.stdout.flush()  # before the run's own output
    code = runcli.run(options_mod.from_arguments(
        args, targets=[plugin.id, *against], ops=[op.name for op in chosen], out=str(out),
        extra_targets={plugin.id: _extra_target(plugin)}))
    results = out / "results.jsonl"
    if not results.exists():
        return code or 2
    suites = summarize_suites(store.load(results), plugin.id)
    record["suites"] = suites
    print()
    print(f"== {plugin.backend}: validation summary ==")
    printing.print_checks(verdict, surface, args.flavor, plugin.backend, compact=True)
    printing.print_suites(suites, plugin.id, against)
    if (out / "index.html").exists():
        print(f"report    {out / 'index.html'}")
    if code not in (0, 1):
        return code
    return 1 if suites["unexpected"] or suites["broken"] else 0


def _extra_target(target: Target) -> dict:
    entry = {"flavor": target.flavor, "backend": target.backend,
             "pythonpath": list(target.pythonpath), "timeout_s": target.timeout_s}
    if target.python:
        entry["python"] = target.python
    else:
        entry["env"] = target.env
    return entry
