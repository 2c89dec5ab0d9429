"""What `conformance validate` prints: one line (and its details) per step, then the
summary and the result."""
from __future__ import annotations

import signal
import textwrap
from pathlib import Path

from conformance import compare
from conformance.textsafe import printable
from conformance.validate.checks import ImportVerdict, Surface, name_clash

WORST_SHOWN = 8
INDENT = " " * 10  # under the step's name


def _wrap(names: list[str], indent: int = 14) -> str:
    return textwrap.fill(", ".join(names), width=96, initial_indent=" " * indent,
                         subsequent_indent=" " * indent)


def print_checks(verdict: ImportVerdict, surface: Surface, flavor: str, module: str,
                 inspect_verdict: ImportVerdict | None = None, compact: bool = False) -> None:
    """The import and surface lines; `compact` shortens long name lists (summary)."""
    print_import(verdict, module, inspect_verdict)
    if flavor == "keras2":
        _print_keras2_surface(surface, compact)
    else:
        _print_ops_surface(surface, compact)


def print_import(verdict: ImportVerdict, module: str,
                 inspect_verdict: ImportVerdict | None = None) -> None:
    mark = "ok" if verdict.ok else "FAIL"
    # the headline quotes the plugin's error; `where` its source lines; the using line its
    # stderr: the plugin's own text, shown with its terminal controls escaped
    print(f"import    [{mark}] {printable(verdict.headline)}")
    for line in verdict.where:
        print(f"{INDENT}at {printable(line, one_line=True)}")
    if verdict.using_line:
        print(f"{INDENT}Keras printed: {printable(verdict.using_line, one_line=True)}")
    if verdict.stdout_bytes:
        preview = verdict.stdout.strip().replace("\n", " | ")[:100]
        print(f"{INDENT}note: it writes {verdict.stdout_bytes} bytes to stdout while being "
              f"imported ({preview!r}); the harness is unaffected, but a Keras user's program "
              "output gets this text: write to stderr or use logging")
    note = name_clash(module)
    if note:
        print(f"{INDENT}note: {note}")
    if inspect_verdict is not None and not inspect_verdict.ok and verdict.ok is False \
            and inspect_verdict.kind != verdict.kind:
        print(f"{INDENT}imported alone (without Keras): {printable(inspect_verdict.headline)}")


def _print_missing(surface: Surface, header: str, compact: bool) -> None:
    if compact and len(surface.missing) > 12:
        print(f"{INDENT}missing: {len(surface.missing)} names (listed above and in "
              "validate.json)")
    else:
        print(f"{INDENT}missing ({len(surface.missing)}{header}):")
        print(_wrap(surface.missing))


def _print_keras2_surface(surface: Surface, compact: bool) -> None:
    if surface.required:
        marks = "  ".join(f"{n} {'present' if ok else 'MISSING'}"
                          for n, ok in surface.required.items())
        print(f"surface   required entries: {marks}")
    if surface.error:
        print(f"{INDENT if surface.required else 'surface   '}{printable(surface.error)}")
    if surface.expected and not surface.error:
        print(f"{INDENT}keras.backend API: {len(surface.present)}/{len(surface.expected)} "
              f"names ({surface.coverage:.1f}%) of what keras/backend/__init__.py imports")
    if surface.missing:
        _print_missing(surface, ", in the order Keras imports them", compact)
    if surface.not_callable:
        print(f"{INDENT}present but not callable: {', '.join(surface.not_callable)}")
    if surface.shadowed:
        print(f"{INDENT}defined but ignored (Keras keeps its own): "
              f"{', '.join(surface.shadowed)}")


def _print_ops_surface(surface: Surface, compact: bool) -> None:
    if surface.error:
        print(f"surface   {printable(surface.error)}")
    else:
        print(f"surface   keras.ops names: {len(surface.present)}/{len(surface.expected)} "
              f"({surface.coverage:.1f}%) of the functions the op catalog calls")
    if surface.missing and not surface.error:
        _print_missing(surface, "; their ops are reported 'unsupported'", compact)
    if surface.not_callable:
        print(f"{INDENT}present but not callable: {', '.join(surface.not_callable)}")


def print_suites(result: dict, plugin_id: str, against: list[str]) -> None:
    """The verdict counts, the worst ops, and which ops are the plugin's own."""
    counts = result["counts"]
    order = [s for s in compare.SEVERITY + ["known"] if s in counts]
    text = " · ".join(f"{s} {counts[s]}" for s in order) or "no results"
    print(f"suites    {result['cases']} (op, floatx) cases on {plugin_id}: {text}")
    for broken in result["broken"]:
        reason = str(broken.get("reason") or "").splitlines()[:1]
        print(f"{INDENT}did not start at floatx={broken['floatx']}: {printable(reason)}")
    _print_worst(result["unexpected"], against)

    def listing(grouped):
        return ", ".join(f"{op} ({', '.join(fx)})" for op, fx in grouped.items())

    if result["own"]:
        label = f"only on {plugin_id}: " if against else ""
        print(f"flagged   {label}{listing(result['own'])}")
    if result["shared"]:
        print(f"{'flagged' if not result['own'] else '':<10}also on the --against targets "
              f"(inherited?): {listing(result['shared'])}")


def _print_worst(unexpected: list[dict], against: list[str]) -> None:
    if unexpected:
        print((f"worst     {'op':<22} {'floatx':<8} {'verdict':<8} {'x tol':>9}  "
               + ("against" if against else "")).rstrip())
    for entry in unexpected[:WORST_SHOWN]:
        others = ", ".join(f"{t} {s}" for t, s in sorted(entry["others"].items()))
        ratio = entry["worst_ratio"]
        ratio_text = f"{ratio:9.3g}" if entry["status"] == "fail" and ratio else " " * 9
        print(f"{INDENT}{entry['op']:<22} {entry['floatx']:<8} {entry['status']:<8} "
              f"{ratio_text}  {others}".rstrip())
        if entry["message"]:
            print(f"            {printable(entry['message'][:110], one_line=True)}")
    if len(unexpected) > WORST_SHOWN:
        print(f"{INDENT}... and {len(unexpected) - WORST_SHOWN} more (see the report)")


def print_result(module: str, record: dict, surface_only: bool, out: Path) -> None:
    """The last line: ok, or FAIL and why."""
    status = record["exit_status"]
    if not record["import"]["ok"]:
        print(f"result    FAIL: {module} does not import; details in {out / 'checks'}")
    elif status > 128:  # stopped by a signal (see conformance.interrupts)
        print(f"result    interrupted by {signal.Signals(status - 128).name}: the suites did "
              f"not finish; exit status {status}")
    elif status:
        reasons = _failure_reasons(record.get("suites", {}))
        print(f"result    FAIL: {'; '.join(reasons)}; exit status {status}")
    elif surface_only:
        print("result    ok: it imports (the suites were skipped: --surface-only)")
    else:
        print("result    ok")


def _failure_reasons(suites: dict) -> list[str]:
    reasons = []
    flagged = suites.get("flagged", [])
    if flagged:
        text = f"unexpected divergences in {len(flagged)} ops"
        own, shared = suites.get("own", {}), suites.get("shared", {})
        if shared:
            text += (f": {len(own)} of its own ({', '.join(own) or '-'}), "
                     f"{len(set(shared) - set(own))} shared with --against targets")
        else:
            text += f" ({', '.join(flagged)})"
        reasons.append(text)
    if suites.get("broken"):
        reasons.append("its worker did not start for the suites")
    if not suites:
        reasons.append("the suites did not run")
    return reasons
