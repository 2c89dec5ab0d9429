"""`conformance run`, `conformance ops` and `conformance report`."""
from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

from conformance import catalog, compare, configsuite, known, store, targets as targets_mod
from conformance.engine import PROFILES
from conformance.pytest_plugin import parse_shard

def suites_dir() -> Path:
    """suites/ of a checkout, or the copy a wheel installs as conformance/suites."""
    checkout = Path(__file__).resolve().parent.parent / "suites"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "suites"


def add_commands(commands) -> None:
    run = commands.add_parser(
        "run", help="run the conformance suites on the selected targets",
        description="Run every selected op on every selected target at each floatx, compare "
                    "with float64 references, stream results to OUT/results.jsonl and write "
                    "OUT/summary.json and the HTML report. Exit status 1 when an unexpected "
                    "divergence was found (known ones live in known_divergences.toml).")
    run.add_argument("--targets", help="comma-separated target ids (default: all)")
    add_suite_options(run, out_default="reports/run-<timestamp>")
    run.add_argument("--shard", help="I/N: run a deterministic 1/N of the (op, floatx) cases, "
                     "for CI matrices; merge the shards with `conformance report`")
    run.set_defaults(handler=cmd_run)

    ops = commands.add_parser("ops", help="list the op catalog")
    ops.add_argument("--family", choices=catalog.FAMILIES)
    ops.add_argument("--json", action="store_true", help="machine-readable output")
    ops.set_defaults(handler=cmd_ops)

    report = commands.add_parser(
        "report", help="render results folders (shards are merged) into an HTML report")
    report.add_argument("results", nargs="+", help="results folders, results.jsonl or summary.json")
    report.add_argument("-o", "--output", default="reports/report/index.html",
                        help="HTML file to write (junit.xml and summary.json go beside it)")
    report.set_defaults(handler=cmd_report)


def add_suite_options(parser, out_default: str) -> None:
    """Options shared by every command that runs the suites (run, validate)."""
    parser.add_argument("--ops", help="comma-separated globs on op names or family/name, "
                        "e.g. 'soft*,reductions/*'")
    parser.add_argument("--floatx", default="float32,float64,float16",
                        help="comma-separated floatx values (default: %(default)s)")
    parser.add_argument("--profile", default="default", choices=sorted(PROFILES),
                        help="examples per (op, floatx): " + ", ".join(
                            f"{k}={v['max_examples']}" for k, v in PROFILES.items())
                        + "; thorough also builds shapes axis by axis instead of reusing "
                          "a short menu (more shapes, many more JAX compiles)")
    parser.add_argument("--max-examples", type=int, help="override the profile's example count")
    parser.add_argument("--seed", type=int, help="reproduce a run: reuse its printed seed")
    parser.add_argument("--out", help=f"results folder (default: {out_default})")
    parser.add_argument("--known", help="known-divergence registry "
                        "(default: known_divergences.toml in the project)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")


def cmd_ops(args) -> int:
    ops = catalog.select(catalog.all_ops(), family=args.family)
    rows = [{"name": op.name, "family": op.family,
             "keras3": op.keras3.fn if op.keras3 else None,
             "keras2": op.keras2.fn if op.keras2 else None,
             "tolerance": op.tolerance.formula, "floatx": list(op.floatx),
             "result": op.result, "notes": op.notes} for op in ops]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['family']:<12} {row['name']:<32} keras3={'yes' if row['keras3'] else 'no ':<3} "
              f"keras2={'yes' if row['keras2'] else 'no ':<3} {row['tolerance']}")
    by_family = Counter(r["family"] for r in rows)
    print(f"{len(rows)} ops: " + ", ".join(f"{f} {n}" for f, n in by_family.items()))
    return 0


def cmd_run(args, extra_targets: dict | None = None) -> int:
    """Run the suites; `extra_targets` adds targets for this run only (used by validate)."""
    import pytest

    _check_arguments(args, extra_targets)
    out = Path(args.out or Path("reports") / time.strftime("run-%Y%m%d-%H%M%S"))
    suites = suites_dir()
    pytest_args = [str(suites), "-o", "addopts=", "-p", "conformance.pytest_plugin",
                   "-p", "no:cacheprovider", "-p", "no:terminal",
                   f"--rootdir={suites}", f"--conformance-out={out}",
                   f"--conformance-floatx={args.floatx}", f"--conformance-profile={args.profile}",
                   f"--conformance-project={Path(args.project).resolve()}"]
    for option, value in [("targets", args.targets), ("ops", args.ops), ("seed", args.seed),
                          ("max-examples", args.max_examples), ("known", args.known),
                          ("shard", args.shard)]:
        if value is not None:
            pytest_args.append(f"--conformance-{option}={value}")
    if args.no_report:
        pytest_args.append("--conformance-no-report")
    if extra_targets:
        pytest_args.append(f"--conformance-extra-targets={json.dumps(extra_targets)}")
    code = pytest.main(pytest_args)
    results = out / "results.jsonl"
    if not results.exists():
        print(f"error: the suites did not start (pytest exit {int(code)}); see the messages above",
              file=sys.stderr)
        return 2
    summary = store.load(out / "summary.json") if (out / "summary.json").exists() \
        else store.load(results)  # the plugin writes summary.json and the report on close
    _print_summary(summary, out)
    if not args.no_report and (out / "index.html").exists():
        print(f"report: {out / 'index.html'}")
    return exit_status(int(code), summary)


def exit_status(pytest_code: int, summary: dict) -> int:
    """1 for unexpected divergences, 0 for none; 2 when the run could not say: cases lost
    to harness errors (their results are missing), or pytest's own code when it was
    interrupted or hit an internal or usage error."""
    if pytest_code not in (0, 1):
        return pytest_code
    lost = _lost_cases(summary.get("run", {}).get("harness_errors") or [])
    if lost:
        print(f"error: {len(lost)} case(s) lost to harness errors (above); the results are "
              "incomplete", file=sys.stderr)
        return 2
    return 1 if _unexpected(summary) else 0


def _lost_cases(errors: list) -> list:
    """Harness errors that were not overcome by trying the case again."""
    return [e for e in errors if not isinstance(e, dict) or not e.get("retried")]


def _check_arguments(args, extra_targets: dict | None) -> None:
    """Reject bad arguments here, with a clear message: once pytest runs with its terminal
    reporter off, a usage error inside the plugin would only show as an exit status."""
    config = targets_mod.load_project_config(Path(args.project))
    if extra_targets:
        config.setdefault("targets", {}).update(extra_targets)
    all_targets = targets_mod.load_targets(config, Path(args.project))
    targets_mod.select(all_targets, [t for t in (args.targets or "").split(",") if t] or None)
    unknown = [f for f in args.floatx.split(",") if f and f not in targets_mod.FLOATX]
    if unknown:
        raise targets_mod.ConfigError(f"--floatx: unknown {unknown}; use {list(targets_mod.FLOATX)}")
    patterns = [p.strip() for p in (args.ops or "").split(",") if p.strip()]
    if patterns and not catalog.select(catalog.all_ops(), patterns) and not any(
            configsuite.selected(s, patterns) for s in configsuite.SCENARIOS):
        raise targets_mod.ConfigError(f"--ops {args.ops!r} matches no op; `conformance ops` "
                                      "lists them (globs like 'soft*' or 'reductions/*' work)")
    if args.max_examples is not None and args.max_examples < 1:
        raise targets_mod.ConfigError(f"--max-examples {args.max_examples}: give at least 1")
    if args.known and not Path(args.known).is_file():
        raise targets_mod.ConfigError(f"--known {args.known}: no such file")
    registry = args.known or Path(args.project) / "known_divergences.toml"
    try:
        known.load(Path(registry))
    except known.RegistryError as exc:
        raise targets_mod.ConfigError(f"known-divergence registry: {exc}") from None
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        raise targets_mod.ConfigError(f"--out {args.out}: exists and is not a folder; "
                                      "give a folder for the results")
    try:
        parse_shard(getattr(args, "shard", None))
    except ValueError as exc:
        raise targets_mod.ConfigError(str(exc)) from None


def _unexpected(summary: dict) -> list[dict]:
    """Divergent op results and failed configuration checks the registry doesn't know."""
    ops = [r for r in summary["results"] if r["status"] in compare.DIVERGENT]
    config = [c for c in summary.get("config", []) if c["status"] in ("fail", "error")]
    return ops + config


def _print_summary(summary: dict, out: Path) -> None:
    counts: dict[str, Counter] = {}
    for result in summary["results"]:
        counts.setdefault(result["target"], Counter())[result["status"]] += 1
    statuses = [s for s in compare.SEVERITY + ["known"]
                if any(s in c for c in counts.values())]
    print()
    print(f"{'target':<20}" + "".join(f"{s:>12}" for s in statuses))
    for target, counter in counts.items():
        print(f"{target:<20}" + "".join(f"{counter.get(s, 0):>12}" for s in statuses))
    broken = {t["id"]: t for t in summary["targets"] if t.get("status") != "ready"}
    for target in broken.values():
        reason = (str(target.get("reason") or "").splitlines() or [""])[0]
        print(f"{target['id']}: {target['status']}: {reason} (fix: {target.get('fix')})")
    unexpected = _unexpected(summary)
    print(f"\n{len(unexpected)} unexpected divergences; results in {out}")
    for result in sorted(unexpected, key=lambda r: -float(r.get("worst_ratio") or 0))[:25]:
        print(f"  {result.get('op', result.get('check')):<28} {result['target']:<18} "
              f"{result.get('floatx', ''):<8} "
              f"{result['status']:<8} {str(result.get('message', ''))[:90]}")
    run = summary.get("run", {})
    _print_harness_errors(run.get("harness_errors") or [])
    print(f"seed {run.get('seed')} (rerun with --seed {run.get('seed')} to reproduce)")


def _print_harness_errors(errors: list) -> None:
    """Repeated at the end, where CI logs are read: what broke inside the harness."""
    if not errors:
        return
    lost = _lost_cases(errors)
    print(f"\n{len(errors)} harness error(s), {len(lost)} case(s) lost to them "
          f"(the others passed when tried again):")
    for error in errors[:10]:
        if not isinstance(error, dict):  # results of older harness versions
            print(f"  {error}")
            continue
        print(f"  {error['case']}{' (tried again)' if error.get('retried') else ''}:")
        for line in error.get("traceback", "").splitlines()[-6:]:
            print(f"    {line}")


def cmd_report(args) -> int:
    from conformance import report

    summaries, dirs = [], []
    for item in args.results:
        path = Path(item)
        if not path.exists():
            print(f"error: {path} does not exist", file=sys.stderr)
            return 2
        summaries.append(store.load(path))
        dirs.append(path if path.is_dir() else path.parent)
    out = report.render(summaries, Path(args.output), dirs)
    print(f"report: {out}")
    return 0
