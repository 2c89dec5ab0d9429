"""Command line: every ``conformance`` subcommand is registered here (`_commands`);
the modules named there hold their arguments and handlers."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from conformance import __version__, baseline, envs, interrupts, runcli, store
from conformance import targets as targets_mod, validate


def _load(args) -> tuple[dict, dict]:
    config = targets_mod.load_project_config(Path(args.project))
    return targets_mod.load_targets(config, Path(args.project)), targets_mod.load_envs(config)


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [v for value in values for v in value.split(",") if v]


# -- targets ----------------------------------------------------------------
def cmd_targets(args) -> int:
    from conformance import probe

    all_targets, specs = _load(args)
    selected = targets_mod.select(all_targets, _split(args.targets))
    if not args.json:
        print(f"probing {len(selected)} targets (starting one worker each)...", file=sys.stderr)
    statuses = probe.probe(selected, specs)
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        for status in statuses:
            print(_format_status(status))
        opt_in = [t.id for t in all_targets.values() if t.opt_in and t not in selected]
        if opt_in:
            print(f"opt-in targets (run only when named with --targets): {', '.join(opt_in)}")
    return 0 if all(s.status == "ready" for s in statuses) else 1


def _format_status(status) -> str:
    lines = [f"{status.id}  [{status.status}]  flavor={status.flavor} backend={status.backend}"]
    info = status.info
    if status.status == "ready":
        lines += [
            f"    python       {info.get('python')}  ({status.python})",
            f"    keras        {info.get('keras')}",
            f"    backend lib  {info.get('backend_library')} {info.get('backend_version')}",
            f"    using line   {info.get('using_line') or '(none printed)'}",
            f"    keras.json   floatx={info.get('floatx')} epsilon={info.get('epsilon')} "
            f"image_data_format={info.get('image_data_format')}",
        ]
        if info.get("execution"):
            lines.append(f"    execution    {info['execution']}")
    else:
        reason = status.reason.replace("\n", "\n                 ")
        lines += [f"    reason       {reason}", f"    fix          {status.fix}"]
        if status.python:
            lines.append(f"    python       {status.python}")
    return "\n".join(lines)


# -- envs -----------------------------------------------------------------------
def _env_specs(args, specs: dict) -> list:
    names = _split(args.names) or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise targets_mod.ConfigError(f"unknown environment(s) {unknown}; known: {list(specs)}")
    return [specs[n] for n in names]


def cmd_envs(args) -> int:
    _, specs = _load(args)
    if args.envs_command == "list":
        rows = envs.listing(_env_specs(args, specs))
        if args.json:
            print(json.dumps(rows, indent=2))
        for row in rows if not args.json else []:
            print(f"{row['name']:<10} python {row['python']:<6} {row['state']:<12} {row['path']}")
            if row["reason"]:
                print(f"    {row['reason']}; fix: conformance envs sync {row['name']}")
            elif not row["checked"]:
                print(f"    built before manifests, so not checked for damage: `conformance "
                      f"envs sync {row['name']}` records its files (no rebuild)")
        return 0
    if args.envs_command == "sync":
        failed = []
        for spec in _env_specs(args, specs):
            try:
                envs.sync(spec, log=lambda m: print(m, file=sys.stderr, flush=True))
            except envs.EnvError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed.append(spec.name)
        return 1 if failed else 0
    if args.envs_command == "clean":
        removed = envs.clean(_env_specs(args, specs), everything=args.all,
                             log=lambda m: print(m, file=sys.stderr, flush=True))
        for path in removed:
            print(f"removed {path}")
        if not removed:
            print("nothing to remove")
        return 0
    raise AssertionError(args.envs_command)


# -- check-config ---------------------------------------------------------------
def cmd_check_config(args) -> int:
    from conformance import checkconfig

    return checkconfig.main(([args.path] if args.path else []) + (["--json"] if args.json else []))


def _targets_arguments(parser) -> None:
    parser.add_argument("--targets", action="append", help="comma-separated target ids")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _envs_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="envs_command", required=True, metavar="ACTION")
    for name, text in [("sync", "create missing environments, rebuild interrupted or damaged "
                                "ones (reuses identical whole ones; waits for another "
                                "process building the same one)"),
                       ("list", "show environments and whether they are ready, interrupted, "
                                "damaged (files differ from what their build recorded) or "
                                "missing"),
                       ("clean", "remove environments")]:
        sub = actions.add_parser(name, help=text)
        sub.add_argument("names", nargs="*", help="environment names (default: all)")
        if name == "list":
            sub.add_argument("--json", action="store_true")
        if name == "clean":
            sub.add_argument("--all", action="store_true",
                             help="also remove stale environments of older specifications")


def _check_config_arguments(parser) -> None:
    parser.add_argument("path", nargs="?", help="keras.json to check (default: the one "
                        "Keras would read, honouring KERAS_HOME)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _commands() -> list[tuple]:
    """Every subcommand: (name, help, description or None, add its arguments, handler)."""
    return [
        ("targets", "list targets with status, versions and the configuration each backend "
         "reports", None, _targets_arguments, cmd_targets),
        ("envs", "create, show and remove target environments", None, _envs_arguments,
         cmd_envs),
        ("ops", "list the op catalog", None, runcli.add_ops_arguments, runcli.cmd_ops),
        ("run", "run the conformance suites on the selected targets",
         "Run every selected op on every selected target at each floatx, compare with "
         "float64 references, stream results to OUT/results.jsonl and write OUT/summary.json "
         "and the HTML report. Exit status 1 when an unexpected divergence was found (known "
         "ones live in known_divergences.toml), 2 when the run could not say, 130 / 143 "
         "when Ctrl-C / SIGTERM stopped it (--resume OUT runs the cases left).",
         runcli.add_run_arguments, runcli.cmd_run),
        ("costs", "rewrite the table of case costs that balances --shard, from finished runs",
         "Measure each (op, floatx) case's wall time in the results of finished runs and "
         "write the cost table that `conformance run --shard I/N` uses to give every shard "
         "the same estimated work (and `--plan` prints).", runcli.add_costs_arguments,
         runcli.cmd_costs),
        ("report", "render results folders (shards are merged) into an HTML report", None,
         runcli.add_report_arguments, runcli.cmd_report),
        ("check-config", "validate a keras.json without changing it",
         "Validate a keras.json without changing it: JSON syntax, keys, values, backend "
         "availability, and what KERAS_BACKEND overrides.", _check_config_arguments,
         cmd_check_config),
        ("validate", validate.HELP, validate.DESCRIPTION, validate.add_arguments,
         validate.cmd_validate),
        ("baseline", "record a reproducible baseline of every target's outputs",
         "Record what every backend computes today on a stored corpus, to compare after an "
         "upgrade with `conformance compare`.", baseline.add_baseline_arguments, None),
        ("compare", "replay a baseline on today's environments and report what changed",
         "Replay a baseline's stored corpus on today's environments; classify each (op, "
         "target, floatx) as unchanged, changed within / beyond tolerance, newly failing / "
         "passing / unsupported / supported; list version changes. Exit status 1 when "
         "something changed beyond tolerance or newly fails.", baseline.add_compare_arguments,
         baseline.cmd_compare),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conformance",
        description="Run the same Keras backend operations on every backend and report "
                    "where the numbers differ.")
    parser.add_argument("--version", action="version", version=f"conformance {__version__}")
    parser.add_argument("--project", default=".", help="folder holding pyproject.toml "
                        "with [tool.conformance] (default: current folder)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text, description, add_arguments, handler in _commands():
        laid_out = description and "\n" in description  # keep its own line breaks
        sub = commands.add_parser(name, help=text, description=description or text,
                                  formatter_class=argparse.RawDescriptionHelpFormatter
                                  if laid_out else argparse.HelpFormatter)
        add_arguments(sub)
        if handler is not None:  # else its actions set their own
            sub.set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with interrupts.handled():  # SIGTERM (a CI time limit) stops a command as Ctrl-C does
        try:
            return args.handler(args)
        except (targets_mod.ConfigError, envs.EnvError, store.StoreError,
                store.OutputError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"interrupted ({interrupts.received() or 'SIGINT'})", file=sys.stderr)
            return interrupts.exit_status()


if __name__ == "__main__":
    sys.exit(main())
