"""`conformance baseline save|list` and `conformance compare`: arguments and printing."""
from __future__ import annotations

import math
import re
import sys
import time
from pathlib import Path

from conformance import catalog, corpus, known, targets as targets_mod
from conformance.baseline.drift import CHANGES, LABELS, number
from conformance.baseline.outputs import (DEFAULT_EXAMPLES, BaselineError, default_dir,
                                          read_manifest, resolve, safe_name)
from conformance.baseline.replay import compare_baseline, save
from conformance.probe import resolve_interpreters
from conformance.runloop import say_on_stderr


def _split(values) -> list[str] | None:
    if not values:
        return None
    if isinstance(values, str):
        values = [values]
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def add_baseline_arguments(parser) -> None:
    """`baseline save NAME ...` and `baseline list`."""
    actions = parser.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    save_ = actions.add_parser(
        "save", help="draw and store a corpus, run it, store outputs, verdicts and versions",
        description="Draw a fixed corpus (stored, so a replay uses the same inputs even after "
                    "a hypothesis upgrade), run it on the selected ready targets and write "
                    "DIR/NAME: manifest.json, corpus/ and outputs/.")
    save_.add_argument("name", help="baseline name (a folder under --dir)")
    save_.add_argument("--targets", action="append", help="comma-separated target ids "
                       "(default: all)")
    save_.add_argument("--ops", action="append", help="comma-separated globs on op names or "
                       "family/name (default: the whole catalog)")
    save_.add_argument("--floatx", default="float32,float64,float16",
                       help="comma-separated floatx values (default: %(default)s)")
    save_.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES,
                       help="examples per (op, floatx) (default: %(default)s)")
    save_.add_argument("--seed", type=int, default=corpus.SEED,
                       help="corpus seed (default: %(default)s)")
    save_.add_argument("--dir", help="baselines folder (default: baselines/ in the project)")
    save_.add_argument("--force", action="store_true", help="replace an existing baseline")
    save_.set_defaults(handler=cmd_save)
    listing = actions.add_parser("list", help="list the baselines in the baselines folder")
    listing.add_argument("--dir", help="baselines folder (default: baselines/ in the project)")
    listing.set_defaults(handler=cmd_list)


def add_compare_arguments(parser) -> None:
    parser.add_argument("baseline", help="baseline name (under --dir) or folder")
    parser.add_argument("--targets", action="append",
                        help="comma-separated target ids (default: the baseline's)")
    parser.add_argument("--ops", action="append", help="only these ops (globs)")
    parser.add_argument("--out", help="results folder (default: reports/compare-NAME-<time>)")
    parser.add_argument("--dir", help="baselines folder (default: baselines/ in the project)")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")


def _project(args) -> Path:
    return Path(getattr(args, "project", ".") or ".")


def _load_targets(args):
    project = _project(args)
    config = targets_mod.load_project_config(project)
    all_targets = targets_mod.load_targets(config, project)
    specs = targets_mod.load_envs(config)
    return all_targets, specs


def cmd_save(args) -> int:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.name):  # ../x would leave --dir
        print(f"error: baseline name {args.name!r}: use letters, digits, '.', '_' and '-' "
              "(it names a folder under --dir; give --dir to keep baselines elsewhere)",
              file=sys.stderr)
        return 2
    all_targets, specs = _load_targets(args)
    selected = targets_mod.select(all_targets, _split(args.targets))
    floatx = _split(args.floatx) or []
    bad = [f for f in floatx if f not in targets_mod.FLOATX]
    if bad or not floatx:
        print(f"error: --floatx: unknown {bad}; use {targets_mod.FLOATX}", file=sys.stderr)
        return 2
    if args.examples < 1:
        print("error: --examples must be at least 1", file=sys.stderr)
        return 2
    ops = catalog.select(catalog.all_ops(), _split(args.ops))
    if not ops:
        print(f"error: no op matches {_split(args.ops)}", file=sys.stderr)
        return 2
    pythons, missing = resolve_interpreters(selected, specs)
    for status in missing:
        say_on_stderr(f"target {status.id}: {status.status}: {status.reason} (fix: {status.fix})")
    destination = Path(args.dir or default_dir(_project(args))) / args.name
    started = time.perf_counter()
    try:
        manifest = save(destination, ops, floatx, selected, pythons, specs,
                        examples=args.examples, corpus_seed=args.seed, missing=missing,
                        force=args.force)
    except (BaselineError, corpus.CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts: dict = {}
    for entry in manifest["entries"]:
        counts.setdefault(entry["target"], {}).setdefault(entry["status"], 0)
        counts[entry["target"]][entry["status"]] += 1
    for tid, by_status in counts.items():
        print(f"  {tid:<20} " + ", ".join(f"{s} {n}" for s, n in sorted(by_status.items())))
    print(f"baseline {destination} saved: {len(manifest['corpus']['cases'])} (op, floatx) cases x "
          f"{len(counts)} targets in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_list(args) -> int:
    folder = Path(args.dir or default_dir(_project(args)))
    found = sorted(p for p in folder.glob("*/manifest.json")) if folder.is_dir() else []
    if not found:
        print(f"no baselines in {folder}")
        return 0
    for manifest_path in found:
        try:
            manifest = read_manifest(manifest_path.parent)
        except BaselineError as exc:
            print(f"{manifest_path.parent.name:<24} unreadable: {exc}")
            continue
        print(f"{manifest['name']:<24} {manifest['created']}  "
              f"{len(manifest['corpus']['cases'])} cases  targets {', '.join(manifest['targets'])}")
    return 0


def cmd_compare(args) -> int:
    all_targets, specs = _load_targets(args)
    path = resolve(args.baseline, Path(args.dir or default_dir(_project(args))))
    wanted = _split(args.targets)
    try:
        manifest = read_manifest(path)
    except BaselineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ran = {e["target"] for e in manifest["entries"]}
    chosen = wanted or [t for t in manifest["targets"] if t in ran]
    configured = [all_targets[t] for t in chosen if t in all_targets]
    pythons, missing = resolve_interpreters(configured, specs)
    out = Path(args.out or Path("reports") / time.strftime(
        f"compare-{safe_name(manifest['name'])}-%Y%m%d-%H%M%S"))
    try:
        comparison = compare_baseline(path, all_targets, pythons, specs, out, wanted=wanted,
                                      op_patterns=_split(args.ops), missing=missing,
                                      render_report=not args.no_report,
                                      registry=known.load(_project(args) / "known_divergences.toml"))
    except (BaselineError, corpus.CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_comparison(comparison, out)
    return 1 if comparison["regressions"] else 0


def _fmt(value, digits=3) -> str:
    figure = number(value)
    if figure is None:
        return "–"
    if math.isinf(figure):
        return "inf"
    return f"{figure:.{digits}g}"


def print_comparison(comparison: dict, out: Path | None = None) -> None:
    counts = comparison["counts"]
    print()
    print("  ".join(f"{LABELS[c]} {counts[c]}" for c in CHANGES if counts.get(c)))
    for entry in comparison["entries"]:
        if entry["change"] == "unchanged":
            continue
        old = (entry.get("old") or {}).get("status_today") or (entry.get("old") or {}).get("status")
        new = (entry.get("new") or {}).get("status", "–")
        drift_text = ""
        if entry["change"] in ("within", "beyond"):
            drift_text = (f" drift {_fmt(entry.get('drift_ulp'))} ulp, "
                          f"{_fmt(entry.get('drift_ratio'))}x tolerance")
        notes = "; ".join(n for n in entry.get("notes") or [] if not n.startswith("verdict "))
        print(f"  {LABELS[entry['change']]:<25} {entry['op']:<24} {entry['target']:<18} "
              f"{entry['floatx']:<8} {old} -> {new}{drift_text}"
              + (f"  ({notes[:120]})" if notes else ""))
    for key, change in comparison.get("harness_change", {}).items():
        print(f"  harness {key}: {change['old']} -> {change['new']}")
    for tid, change in comparison["versions"].items():
        if not change.get("changed") and not change.get("notes"):
            continue
        packages = change["packages"]
        parts = [f"{c['key']} {c['old']} -> {c['new']}" for c in change["info"]]
        parts += [f"{p['name']} {p['old']} -> {p['new']}" for p in packages["changed"]]
        parts += [f"+{p['name']} {p['new']}" for p in packages["added"]]
        parts += [f"-{p['name']} {p['old']}" for p in packages["removed"]]
        parts += change.get("notes", [])
        print(f"  versions {tid}: " + "; ".join(parts[:12])
              + (f" (+{len(parts) - 12} more)" if len(parts) > 12 else ""))
    status = (f"{comparison['regressions']} regression(s)" if comparison["regressions"]
              else "no regression")
    where = f"; results in {out}" if out else ""
    print(f"\n{status} against baseline {comparison['baseline']['name']}{where}")
    if comparison.get("report"):
        print(f"report: {comparison['report']}")
