"""`conformance run`, `conformance ops` and `conformance report`."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from conformance import catalog, compare, costs, interrupts, known, options as options_mod
from conformance import coverage, resume, store
from conformance.catalog import edges
from conformance.textsafe import printable


def suites_dir() -> Path:
    """suites/ of a checkout, or the copy a wheel installs as conformance/suites."""
    checkout = Path(__file__).resolve().parent.parent / "suites"
    return checkout if checkout.is_dir() else Path(__file__).resolve().parent / "suites"


def add_run_arguments(parser) -> None:
    options_mod.add_arguments(parser, out_default="reports/run-<timestamp>")
    parser.add_argument("--plan", action="store_true", help="print the (op, floatx) cases "
                        "this run (or --shard) would check, each with its estimated seconds "
                        "(see --costs), and stop without running them")
    parser.add_argument("--json", action="store_true",
                        help="with --plan: a JSON list of {\"case\", \"estimated_s\"}")


def add_ops_arguments(parser) -> None:
    parser.add_argument("--family", choices=catalog.FAMILIES)
    parser.add_argument("--coverage", action="store_true", help="how much of each Keras API "
                        "(Keras 3 ops, activations, losses, random; Keras 2 backend, "
                        "activations, losses) the catalog calls, listed from the Keras "
                        "installed in the keras3 and keras2 environments, with the "
                        "uncovered names")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def add_report_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="results folders, results.jsonl or summary.json")
    parser.add_argument("-o", "--output", default="reports/report/index.html",
                        help="HTML file to write (junit.xml and summary.json go beside it)")


def add_costs_arguments(parser) -> None:
    parser.add_argument("results", nargs="+", help="results folders of finished runs (the "
                        "shards of one run together give every case)")
    parser.add_argument("-o", "--output", default=str(costs.TABLE),
                        help="cost table to write (default: the one --shard uses, %(default)s)")


def add_suite_options(parser, out_default: str) -> None:
    """Options shared by every command that runs the suites on chosen targets (validate)."""
    options_mod.add_arguments(parser, out_default=out_default,
                              exclude=("targets", "shard", "resume"))


def cmd_ops(args) -> int:
    if getattr(args, "coverage", False):
        if args.family:
            raise options_mod.OptionError("--coverage counts every family: leave out --family")
        return coverage.cmd_coverage(args)
    ops = catalog.select(catalog.all_ops(), family=args.family)
    rows = [{"name": op.name, "family": op.family,
             "keras3": op.keras3.fn if op.keras3 else None,
             "keras2": op.keras2.fn if op.keras2 else None,
             "tolerance": op.tolerance.formula, "floatx": list(op.floatx),
             "result": op.result, "edges": edges.coverage(op), "notes": op.notes}
            for op in ops]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['family']:<12} {row['name']:<32} keras3={'yes' if row['keras3'] else 'no ':<3} "
              f"keras2={'yes' if row['keras2'] else 'no ':<3} {row['tolerance']}\n"
              f"{'':<13}edges: {row['edges']}")
    by_family = Counter(r["family"] for r in rows)
    print(f"{len(rows)} ops: " + ", ".join(f"{f} {n}" for f, n in by_family.items()))
    return 0


def cmd_run(args, extra_targets: dict | None = None) -> int:
    """Run the suites; `extra_targets` adds targets for this run only (used by validate)."""
    preset = {"extra_targets": extra_targets} if extra_targets else {}
    options = options_mod.from_arguments(args, **preset)
    if getattr(args, "plan", False):
        return plan(options, as_json=args.json)
    if getattr(args, "json", False):
        raise options_mod.OptionError("--json goes with --plan (a run's machine-readable "
                                      "output is OUT/summary.json)")
    return run(options)


def _pytest_arguments(suites: Path) -> list[str]:
    return [str(suites), "-o", "addopts=", "-p", "conformance.pytest_plugin",
            "-p", "no:cacheprovider", "-p", "no:terminal", f"--rootdir={suites}"]


def plan(options: options_mod.RunOptions, as_json: bool = False) -> int:
    """Print the cases the run would check, with their estimated seconds; run none."""
    import pytest

    from conformance.pytest_plugin import Planner, Preset

    options = resume.resumed(options)
    planner = Planner()
    code = pytest.main(_pytest_arguments(suites_dir()), plugins=[Preset(options), planner])
    if code not in (0, 5):  # 5: no tests ran, which is what a plan wants
        print(f"error: the suites could not be collected (pytest exit {int(code)})",
              file=sys.stderr)
        return 2
    table = costs.load(options.costs)
    rows = costs.plan(planner.case_ids, table, None)
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for row in rows:
        print(f"{row['case']:<40} {row['estimated_s']:8.1f} s")
    shard = f"shard {options.shard[0]}/{options.shard[1]}" if options.shard else "the run"
    print(f"{shard}: {len(rows)} cases, estimated {sum(r['estimated_s'] for r in rows):.0f} s "
          f"of cases (plus worker start-up and floatx switches); costs from {table.source}")
    return 0


def run(options: options_mod.RunOptions) -> int:
    """Run the suites with checked options: pytest drives the cases through the plugin,
    which gets these options as they are. Prints the summary; returns the exit status."""
    import pytest

    from conformance.pytest_plugin import Preset

    options = resume.resumed(options)  # --resume DIR: the interrupted run's own options
    out = options.results_dir()
    options = options.with_(out=out, project=Path(options.project).resolve())
    code = pytest.main(_pytest_arguments(suites_dir()), plugins=[Preset(options)])
    results = out / "results.jsonl"
    if not results.is_file():
        print(f"error: the suites did not start (pytest exit {int(code)}); see the messages above",
              file=sys.stderr)
        return 2
    summary = store.load(out / "summary.json") if (out / "summary.json").exists() \
        else store.load(results)  # the plugin writes summary.json and the report on close
    _print_summary(summary, out)
    if not options.no_report and (out / "index.html").exists():
        print(f"report: {out / 'index.html'}")
    stopped_by = interrupts.received()
    if stopped_by:  # the cases that finished are kept, the one in progress is not
        print(f"interrupted by {stopped_by}: {out} keeps the cases that finished; "
              f"`conformance run --resume {out}` runs the others", file=sys.stderr)
        return interrupts.exit_status()
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
        print(f"{printable(target, one_line=True):<20}"
              + "".join(f"{counter.get(s, 0):>12}" for s in statuses))
    broken = {t["id"]: t for t in summary["targets"] if t.get("status") != "ready"}
    for target in broken.values():  # the reason and its fix are the target's own words
        reason = (str(target.get("reason") or "").splitlines() or [""])[0]
        print(printable(f"{target['id']}: {target['status']}: {reason} "
                        f"(fix: {target.get('fix')})", one_line=True))
    unexpected = known.unexpected(summary)
    print(f"\n{len(unexpected)} unexpected divergences; results in {out}")
    for result in sorted(unexpected, key=lambda r: -float(r.get("worst_ratio") or 0))[:25]:
        print(printable(f"  {result.get('op', result.get('check')):<28} {result['target']:<18} "
                        f"{result.get('floatx', ''):<8} "
                        f"{result['status']:<8} {str(result.get('message', ''))[:90]}",
                        one_line=True))
    run = summary.get("run", {})
    _print_known(summary)
    _print_harness_errors(run.get("harness_errors") or [])
    _print_time_spent(summary)
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


def time_spent(summary: dict, top: int = 5) -> dict:
    """Where a run's time went: its cases' seconds, the `top` slowest cases each with the
    target that spent the most time in its backend there, and each target's backend
    seconds over the run (a target is as slow as its backend; the rest is shared)."""
    cases = {case_id: {"wall_s": seconds, "target": None, "backend_s": -1.0}
             for case_id, seconds in costs.case_seconds(summary["results"]).items()}
    by_target: Counter = Counter()
    for result in summary["results"]:
        if "wall_s" not in result:
            continue
        case = cases[f"{result['op']}-{result['floatx']}"]
        backend_s = float(result.get("backend_s") or 0.0)
        by_target[printable(result["target"], one_line=True)] += backend_s
        if backend_s > case["backend_s"]:
            case.update(target=printable(result["target"], one_line=True), backend_s=backend_s)
    slowest = sorted(cases.items(), key=lambda item: -item[1]["wall_s"])[:top]
    return {"cases": len(cases), "cases_s": sum(c["wall_s"] for c in cases.values()),
            "slowest": [{"case": name, **case} for name, case in slowest],
            "backend_s": dict(by_target.most_common())}


def _print_time_spent(summary: dict) -> None:
    spent = time_spent(summary)
    if not spent["cases"]:
        return
    print(f"\ntime: {spent['cases_s']:.0f} s in {spent['cases']} cases; slowest:")
    for case in spent["slowest"]:
        print(f"  {case['case']:<40} {case['wall_s']:7.1f} s  (most in {case['target']}'s "
              f"backend: {case['backend_s']:.1f} s)")
    print("seconds inside each backend: " + ", ".join(
        f"{target} {seconds:.0f}" for target, seconds in spent["backend_s"].items()))


def _print_harness_errors(errors: list) -> None:
    """Repeated at the end, where CI logs are read: what broke inside the harness."""
    if not errors:
        return
    lost = _lost_cases(errors)
    print(f"\n{len(errors)} harness error(s), {len(lost)} case(s) lost to them "
          f"(the others passed when tried again):")
    for error in errors[:10]:
        if not isinstance(error, dict):  # results of older harness versions
            print(f"  {printable(error)}")
            continue
        print(f"  {error['case']}{' (tried again)' if error.get('retried') else ''}:")
        for line in error.get("traceback", "").splitlines()[-6:]:
            print(f"    {printable(line)}")  # exception messages may quote a target


def cmd_costs(args) -> int:
    """Rewrite the cost table that balances shards from the results of finished runs."""
    measured = []
    for item in args.results:
        summary = store.load(Path(item))
        measured.append(costs.from_results(summary, source=costs.describe_run(summary)))
    table = costs.merged(measured)
    Path(args.output).write_text(json.dumps(table.as_table(), indent=1) + "\n")
    print(f"{args.output}: {len(table.seconds)} cases, {sum(table.seconds.values()):.0f} s of "
          f"cases plus {table.overhead_s:.0f} s outside them (start-up, floatx switches, "
          f"configuration checks, report)")
    return 0


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
