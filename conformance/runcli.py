"""`conformance run`, `conformance ops` and `conformance report`."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from conformance import catalog, compare, known, options as options_mod, store


def suites_dir() -> Path:
    """suites/ of a checkout, or the copy a wheel installs as conformance/suites."""
    checkout = Path(__file__).resolve().parent.parent / "suites"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "suites"


def add_run_arguments(parser) -> None:
    options_mod.add_arguments(parser, out_default="reports/run-<timestamp>")


def add_ops_arguments(parser) -> None:
    parser.add_argument("--family", choices=catalog.FAMILIES)
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_report_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="results folders, results.jsonl or summary.json")
    parser.add_argument("-o", "--output", default="reports/report/index.html",
                        help="HTML file to write (junit.xml and summary.json go beside it)")


def add_suite_options(parser, out_default: str) -> None:
    """Options shared by every command that runs the suites on chosen targets (validate)."""
    options_mod.add_arguments(parser, out_default=out_default, exclude=("targets", "shard"))


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
    preset = {"extra_targets": extra_targets} if extra_targets else {}
    return run(options_mod.from_arguments(args, **preset))


def run(options: options_mod.RunOptions) -> int:
    """Run the suites with checked options: pytest drives the cases through the plugin,
    which gets these options as they are. Prints the summary; returns the exit status."""
    import pytest

    from conformance.pytest_plugin import Preset

    out = options.results_dir()
    options = options.with_(out=out, project=Path(options.project).resolve())
    suites = suites_dir()
    pytest_args = [str(suites), "-o", "addopts=", "-p", "conformance.pytest_plugin",
                   "-p", "no:cacheprovider", "-p", "no:terminal", f"--rootdir={suites}"]
    code = pytest.main(pytest_args, plugins=[Preset(options)])
    results = out / "results.jsonl"
    if not results.exists():
        print(f"error: the suites did not start (pytest exit {int(code)}); see the messages above",
              file=sys.stderr)
        return 2
    summary = store.load(out / "summary.json") if (out / "summary.json").exists() \
        else store.load(results)  # the plugin writes summary.json and the report on close
    _print_summary(summary, out)
    if not options.no_report and (out / "index.html").exists():
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
    return 1 if known.unexpected(summary) else 0


def _lost_cases(errors: list) -> list:
    """Harness errors that were not overcome by trying the case again."""
    return [e for e in errors if not isinstance(e, dict) or not e.get("retried")]


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
    unexpected = known.unexpected(summary)
    print(f"\n{len(unexpected)} unexpected divergences; results in {out}")
    for result in sorted(unexpected, key=lambda r: -float(r.get("worst_ratio") or 0))[:25]:
        print(f"  {result.get('op', result.get('check')):<28} {result['target']:<18} "
              f"{result.get('floatx', ''):<8} "
              f"{result['status']:<8} {str(result.get('message', ''))[:90]}")
    run = summary.get("run", {})
    _print_known(summary)
    _print_harness_errors(run.get("harness_errors") or [])
    print(f"seed {run.get('seed')} (rerun with --seed {run.get('seed')} to reproduce)")


def _print_known(summary: dict) -> None:
    """How many results the registry explained, by how many causes, and its stale entries:
    those the run could have matched (it ran their op, target and floatx) that explained
    nothing, so the registry shrinks as backends are fixed."""

    explained = [r for r in list(summary["results"]) + list(summary.get("config") or [])
                 if r.get("status") == "known"]
    causes = {str((r.get("known") or {}).get("cause") or (r.get("known") or {}).get("reason"))
              for r in explained}
    if explained:
        print(f"{len(explained)} known divergences, explained by {len(causes)} "
              f"cause{'' if len(causes) == 1 else 's'} in the registry")
    stale = summary.get("known_stale")
    if stale is None:
        stale = known.summary_stale(summary)
    if not stale:
        return
    print(f"\n{len(stale)} stale known-divergence entr{'y' if len(stale) == 1 else 'ies'}: the run "
          "covered what they name but they explained nothing: fixed (then remove or narrow "
          "them), or not drawn this time (a small profile misses rare inputs; check with the "
          "default profile):")
    for entry in stale:
        globs = "  ".join(f"{key} {','.join(map(str, entry.get(key) or []))}"
                          for key in ("op", "target", "floatx", "verdict"))
        print(f"  {entry.get('cause')}: {globs} ({entry.get('covered')} results in scope)")


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
