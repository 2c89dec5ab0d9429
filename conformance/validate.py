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
import linecache
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from conformance import catalog, compare, protocol, runcli, targets as targets_mod
from conformance.engine import PROFILES
from conformance.pool import StartupError, Worker
from conformance.targets import Target

IMPORT_TIMEOUT_S = 60.0  # a plugin that takes longer to import is reported as hanging
DEFAULT_AGAINST = {"keras2": ["keras2-tensorflow", "keras2-theano", "keras2-cntk"],
                   "ops-module": ["keras3-numpy"]}
DEFAULT_ENV = {"keras2": "keras2", "ops-module": "keras3"}
WORST_SHOWN = 8
SHARED_FACTOR = 10.0  # a `fail` this much worse than an --against target's is the plugin's own


# -- running one check in an isolated interpreter ----------------------------------------
class _Deadline:
    def __init__(self, at: float):
        self.at = at

    def __call__(self, fd):
        import select

        remaining = self.at - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise TimeoutError()


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    meaning = {"SIGSEGV": "segmentation fault", "SIGABRT": "abort",
               "SIGKILL": "killed, out of memory?", "SIGBUS": "bus error",
               "SIGFPE": "floating point exception", "SIGILL": "illegal instruction"}
    return f"{name} ({meaning[name]})" if name in meaning else name


class CheckWorker(Worker):
    """A Worker (same environment: KERAS_HOME, PYTHONPATH, shims) that runs
    ``conformance.surface`` once instead of serving calls."""

    def __init__(self, target: Target, python: str, workdir: Path, mode: str,
                 keras2_surface: bool = False):
        super().__init__(target, python, "float32", workdir)
        self.mode = mode
        self.keras2_surface = keras2_surface
        self.log_path = workdir / f"{target.id}-{mode}.log"

    def command(self) -> list[str]:
        command = [self.python, "-m", "conformance.surface", "--mode", self.mode,
                   "--module", self.target.backend]
        return command + (["--keras2-surface"] if self.keras2_surface else [])

    def run_check(self, timeout: float) -> dict:
        """The surface report, or {"status": crash|exit|timeout|broken, ...}."""
        try:
            env = self.environment()
        except StartupError as exc:
            return {"status": "broken", "message": str(exc)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=env, cwd=self.workdir, start_new_session=True)
        deadline = _Deadline(time.monotonic() + timeout)
        reader = protocol.FrameReader(self.proc.stdout.fileno(), deadline)
        stage, hello, report = "starting the interpreter", {}, None
        try:
            hello = reader.read()  # the interpreter and numpy are up
            hello = {k: v for k, v in hello.items() if k not in ("status", "hello")}
            stage = "importing the module"
            self.proc.stdin.write(protocol.pack({"cmd": "check"}))
            self.proc.stdin.flush()
            report = reader.read()
            self.proc.wait(timeout=10)
        except TimeoutError:
            report = self._timed_out(timeout, stage)
        except (EOFError, BrokenPipeError, protocol.ProtocolError):
            report = self._died(stage)
        except subprocess.TimeoutExpired:  # answered, then stuck on the way out
            pass
        finally:
            self.kill()
        return {**hello, **report}

    def _timed_out(self, timeout: float, stage: str) -> dict:
        if self.proc.poll() is None and hasattr(signal, "SIGUSR1"):
            try:
                self.proc.send_signal(signal.SIGUSR1)  # faulthandler dumps the stacks
                time.sleep(0.5)
            except ProcessLookupError:
                pass
        self.kill()
        return {"status": "timeout", "stage": stage,
                "message": f"no answer within {timeout:g} s while {stage}",
                "where": stack_from_log(self.log_text()), "log_tail": self.log_tail()}

    def _died(self, stage: str) -> dict:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.poll()
        if code is not None and code < 0:
            status, message = "crash", f"killed by {_signal_name(-code)}"
        else:
            status, message = "exit", f"exited with status {code}"
        return {"status": status, "stage": stage, "message": f"{message} while {stage}",
                "returncode": code, "where": stack_from_log(self.log_text()),
                "log_tail": self.log_tail()}

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def stack_from_log(text: str) -> list[dict]:
    """Frames (outermost first, like a traceback) of the last faulthandler dump in a log."""
    marker = text.rfind("(most recent call first):")
    if marker < 0:
        return []
    frames = []
    for line in text[marker:].splitlines()[1:]:
        match = re.match(r'\s*File "(.*)", line (\d+) in (.*)', line)
        if not match:
            if frames:
                break
            continue
        path, number = match[1], int(match[2])
        if (path.startswith("<frozen importlib") or path.endswith(os.path.join(
                "importlib", "__init__.py")) or path.endswith(os.path.join("conformance",
                                                                           "surface.py"))):
            continue
        frames.append({"file": path, "line": number, "function": match[3].strip(),
                       "code": linecache.getline(path, number).strip()})
    return frames[::-1]


# -- the verdicts of the checks --------------------------------------------------------
@dataclass
class ImportVerdict:
    ok: bool
    kind: str  # imports | error | exit | crash | timeout | broken
    headline: str
    where: list[str] = field(default_factory=list)
    cause: str = ""
    detail: str = ""  # traceback or log tail
    stdout: str = ""
    stdout_bytes: int = 0
    using_line: str | None = None
    keras: str | None = None
    seconds: float | None = None


def _short(path: str, plugin_dirs: list[str], keras_dir: str | None) -> tuple[str, str]:
    """(a short path, where it lives: "Keras" / "the plugin" / "")."""
    if keras_dir and path.startswith(keras_dir):
        return "keras" + path[len(keras_dir):], "Keras"
    for folder in plugin_dirs:
        if path.startswith(folder + os.sep):
            return path[len(folder) + 1:], "the plugin"
    return path, ""


def _where(frames: list[dict], plugin_dirs: list[str], keras_dir: str | None) -> list[str]:
    """The innermost frame, and the innermost plugin frame when that is another one."""
    described = []
    for frame in reversed(frames):
        path, origin = _short(frame["file"], plugin_dirs, keras_dir)
        code = f": {frame['code']}" if frame.get("code") else ""
        described.append((origin, f"{path}:{frame['line']} in {frame['function']}{code}"
                                  + (f"  (in {origin})" if origin else "")))
    if not described:
        return []
    lines = [described[0][1]]
    plugin = next((text for origin, text in described if origin == "the plugin"), None)
    if plugin and plugin not in lines:
        lines.append(plugin)
    return lines


def _using_line(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith("Using ") and "backend" in line:
            return line.strip()
    return None


def import_verdict(report: dict, flavor: str, module: str, plugin_dirs: list[str],
                   keras_dir: str | None = None) -> ImportVerdict:
    """Turn a check report (or a crash / timeout / exit) into one clear verdict."""
    status = report.get("status")
    if status == "broken":
        return ImportVerdict(False, "broken", f"cannot start the interpreter: {report['message']}")
    if status in ("crash", "exit", "timeout"):
        stage = report.get("stage", "")
        if status == "timeout":
            head = (f"hangs: {report['message']} (raise --import-timeout if it is only slow)"
                    if stage == "importing the module" else
                    f"the interpreter did not start: {report['message']}")
        elif status == "crash":
            head = f"crashes: the interpreter was {report['message']}"
        else:
            head = (f"exits: the interpreter {report['message']} (os._exit or a C-level exit; "
                    "a plugin must not end the process)")
        return ImportVerdict(False, status, head,
                             where=_where(report.get("where") or [], plugin_dirs, keras_dir),
                             detail=report.get("log_tail", ""))
    keras_dir = keras_dir or report.get("keras_dir")
    common = dict(stdout=report.get("stdout", ""), stdout_bytes=report.get("stdout_bytes", 0),
                  using_line=_using_line(report.get("stderr", "")), keras=report.get("keras"),
                  seconds=report.get("import_s"))
    if report.get("imported"):
        if flavor == "keras2":
            backend = report.get("backend")
            head = (f"imports: Keras {report.get('keras')} loads it as its backend "
                    f"in {report.get('import_s', 0):.1f} s")
            if backend != module:
                head += f" (but keras.backend.backend() says {backend!r})"
        else:
            head = f"imports in {report.get('import_s', 0):.1f} s"
        return ImportVerdict(True, "imports", head, **common)
    error = report.get("error", {})
    where = _where(error.get("frames", []), plugin_dirs, keras_dir)
    cause = ""
    if error.get("cause"):
        c = error["cause"]
        cause = f"{c['error_type']}: {c['message']}"
        # the cause's plugin line when it has one, else its innermost line
        where += [f"{line} (the cause)" for line in _where(c.get("frames", []), plugin_dirs,
                                                            keras_dir)[-1:] if line not in where]
    if error.get("error_type") == "SystemExit":
        head = f"exits: it calls sys.exit({error.get('exit_code')!r}) while being imported"
        kind = "exit"
    else:
        raiser = " (raised by Keras)" if where and where[0].endswith("(in Keras)") else ""
        if cause:
            raiser += f", because of {cause}"
        head = f"does not import: {error.get('error_type')}: {error.get('message')}{raiser}"
        kind = "error"
    return ImportVerdict(False, kind, head, where=where, cause=cause,
                         detail=error.get("traceback", ""), **common)


@dataclass
class Surface:
    expected: list[str]
    present: list[str]
    missing: list[str]
    required: dict[str, bool] = field(default_factory=dict)
    not_callable: list[str] = field(default_factory=list)
    shadowed: list[str] = field(default_factory=list)  # defined, but Keras uses its own
    predicted_error: str = ""
    source: str = ""
    error: str = ""
    ops_affected: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        return 100.0 * len(self.present) / len(self.expected) if self.expected else 0.0


def keras2_surface(report: dict) -> Surface:
    """Compare the plugin's entries with what keras/backend/__init__.py imports."""
    spec = report.get("keras2_surface")
    if spec is None:
        return Surface([], [], [], error=report.get("surface_error", "no Keras surface"))
    attributes = report.get("attributes")
    if attributes is None:
        return Surface(spec["expected"], [], [], source=", ".join(spec["files"]),
                       error=f"Keras expects {len(spec['expected'])} names "
                             f"({', '.join(spec['required'])} required); the module's own names "
                             "are unknown: it does not import by itself")
    names, callables = set(attributes["names"]), set(attributes["callable"])
    required = {n: n in names for n in spec["required"]}
    present = [n for n in spec["expected"] if n in names]
    missing = [n for n in spec["expected"] if n not in names]
    surface = Surface(
        expected=spec["expected"], present=present, missing=missing, required=required,
        not_callable=[n for n in present if n not in callables],
        shadowed=[n for n in spec["provided"] if n in set(attributes.get("own", []))],
        source=", ".join(spec["files"]))
    first_required = next((n for n, ok in required.items() if not ok), None)
    if first_required:
        surface.predicted_error = f"ValueError: {spec['message']}{first_required}"
    elif missing:
        surface.predicted_error = f"ImportError: cannot import name '{missing[0]}'"
    return surface


def ops_names(ops: list[catalog.Op]) -> dict[str, list[str]]:
    """keras.ops function name -> catalog ops calling it."""
    names: dict[str, list[str]] = {}
    for op in ops:
        if op.keras3 is not None:
            names.setdefault(op.keras3.fn.rsplit(".", 1)[-1], []).append(op.name)
    return names


def ops_surface(report: dict, ops: list[catalog.Op]) -> Surface:
    wanted = ops_names(ops)
    expected = sorted(wanted)
    attributes = report.get("attributes")
    if attributes is None:
        return Surface(expected, [], [], error="the module does not import")
    names, callables = set(attributes["names"]), set(attributes["callable"])
    present = [n for n in expected if n in callables]
    missing = [n for n in expected if n not in callables]
    return Surface(expected, present, missing,
                   not_callable=[n for n in expected if n in names and n not in callables],
                   source="the op catalog (keras.ops names)",
                   ops_affected=sorted(o for n in missing for o in wanted[n]))


# -- the command -------------------------------------------------------------------------
def add_command(commands) -> None:
    """Add `validate` to the `conformance` subcommands."""
    parser = commands.add_parser(
        "validate", help="how conformant is a plugin backend: import, surface, suites",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    # also accepted after the subcommand; SUPPRESS keeps the top-level default otherwise
    parser.add_argument("--project", default=argparse.SUPPRESS,
                        help="folder holding pyproject.toml")
    parser.set_defaults(handler=cmd_validate)


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
    parser.add_argument("--import-timeout", type=float, default=IMPORT_TIMEOUT_S, metavar="S",
                        help="seconds the plugin may take to import (default: %(default)g)")
    parser.add_argument("--call-timeout", type=float, default=None, metavar="S",
                        help="seconds one op call may take (default: the target default)")
    parser.add_argument("--surface-only", action="store_true",
                        help="stop after the import and surface checks")
    runcli.add_suite_options(parser, out_default="reports/validate-MODULE-<time>")


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


def check_plugin(target: Target, python: str, workdir: Path, timeout: float):
    """Run the import check (and, for keras2, the standalone inspection) in parallel.

    Returns (load report, inspect report); for ops-module both are the same report."""
    workdir.mkdir(parents=True, exist_ok=True)
    if target.flavor != "keras2":
        report = CheckWorker(target, python, workdir, "inspect").run_check(timeout)
        return report, report
    # Keras 2 imports a backend with KERAS_BACKEND=<module>. The inspection imports the
    # plugin alone; should the plugin import keras itself, Keras then loads TensorFlow.
    alone = replace(target, extra_env=target.extra_env + (("KERAS_BACKEND", "tensorflow"),))
    with ThreadPoolExecutor(max_workers=2) as threads:
        load = threads.submit(CheckWorker(target, python, workdir, "load").run_check, timeout)
        inspect = threads.submit(CheckWorker(alone, python, workdir, "inspect",
                                             keras2_surface=True).run_check, timeout)
        return load.result(), inspect.result()


def validate_checks(plugin: Target, python: str, workdir: Path,
                    timeout: float = IMPORT_TIMEOUT_S, ops: list | None = None):
    """Steps 1 and 2: (import verdict, verdict of importing it alone or None, surface)."""
    load, inspect = check_plugin(plugin, python, workdir, timeout)
    if "attributes" not in inspect and "attributes" in load:
        # Imported alone it failed (e.g. it imports keras, whose default backend is not
        # installed), but Keras's own load got as far as importing it: use those names.
        inspect = {**inspect, "attributes": load["attributes"]}
    keras_dir = _keras_dir(inspect) or load.get("keras_dir")
    folders = list(plugin.pythonpath)
    verdict = import_verdict(load, plugin.flavor, plugin.backend, folders, keras_dir)
    alone = (import_verdict(inspect, "ops-module", plugin.backend, folders, keras_dir)
             if inspect is not load else None)
    if plugin.flavor == "keras2":
        surface = keras2_surface(inspect)
    else:
        surface = ops_surface(inspect, catalog.all_ops() if ops is None else ops)
    return verdict, alone, surface


def _keras_dir(inspect_report: dict) -> str | None:
    spec = inspect_report.get("keras2_surface") or {}
    files = spec.get("files") or []
    return str(Path(files[0]).parent.parent) if files else None


def _wrap(names: list[str], indent: int = 14) -> str:
    return textwrap.fill(", ".join(names), width=96, initial_indent=" " * indent,
                         subsequent_indent=" " * indent)


def name_clash(module: str) -> str | None:
    """Why the plugin's top-level name is trouble, if it is: a file named like a module
    of Python itself (json.py, random.py) replaces that module for everything in the
    worker that imports it, harness and Keras included; one named like a builtin module
    (time.py) is never imported at all."""
    top = module.split(".")[0]
    rename = f"rename it (e.g. {top}_backend)"
    if top in sys.builtin_module_names:
        return (f"{top!r} is a module built into Python: `import {top}` never reaches the "
                f"plugin; {rename}")
    if top in sys.stdlib_module_names or top in ("numpy", "keras", "conformance"):
        return (f"{top!r} is also a module of Python's standard library (or numpy, keras): "
                f"with the plugin's folder first on the path, whatever imports {top} in "
                f"the worker gets the plugin instead; {rename}")
    return None


def print_checks(verdict: ImportVerdict, surface: Surface, flavor: str, module: str,
                 inspect_verdict: ImportVerdict | None = None, compact: bool = False) -> None:
    """The import and surface lines; `compact` shortens long name lists (summary)."""

    def missing(header: str) -> None:
        if compact and len(surface.missing) > 12:
            print(f"          missing: {len(surface.missing)} names (listed above and in "
                  "validate.json)")
        else:
            print(f"          missing ({len(surface.missing)}{header}):")
            print(_wrap(surface.missing))

    mark = "ok" if verdict.ok else "FAIL"
    print(f"import    [{mark}] {verdict.headline}")
    for line in verdict.where:
        print(f"          at {line}")
    if verdict.using_line:
        print(f"          Keras printed: {verdict.using_line}")
    if verdict.stdout_bytes:
        preview = verdict.stdout.strip().replace("\n", " | ")[:100]
        print(f"          note: it writes {verdict.stdout_bytes} bytes to stdout while being "
              f"imported ({preview!r}); the harness is unaffected, but a Keras user's program "
              "output gets this text: write to stderr or use logging")
    note = name_clash(module)
    if note:
        print(f"          note: {note}")
    if inspect_verdict is not None and not inspect_verdict.ok and verdict.ok is False \
            and inspect_verdict.kind != verdict.kind:
        print(f"          imported alone (without Keras): {inspect_verdict.headline}")

    if flavor == "keras2":
        if surface.required:
            marks = "  ".join(f"{n} {'present' if ok else 'MISSING'}"
                              for n, ok in surface.required.items())
            print(f"surface   required entries: {marks}")
        if surface.error:
            print(f"{'          ' if surface.required else 'surface   '}{surface.error}")
        if surface.expected and not surface.error:
            print(f"          keras.backend API: {len(surface.present)}/{len(surface.expected)} "
                  f"names ({surface.coverage:.1f}%) of what keras/backend/__init__.py imports")
        if surface.missing:
            missing(", in the order Keras imports them")
        if surface.not_callable:
            print(f"          present but not callable: {', '.join(surface.not_callable)}")
        if surface.shadowed:
            print(f"          defined but ignored (Keras keeps its own): "
                  f"{', '.join(surface.shadowed)}")
    else:
        if surface.error:
            print(f"surface   {surface.error}")
        else:
            print(f"surface   keras.ops names: {len(surface.present)}/{len(surface.expected)} "
                  f"({surface.coverage:.1f}%) of the functions the op catalog calls")
        if surface.missing and not surface.error:
            missing("; their ops are reported 'unsupported'")
        if surface.not_callable:
            print(f"          present but not callable: {', '.join(surface.not_callable)}")


def _ratio(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def summarize_suites(summary: dict, plugin_id: str) -> dict:
    """Verdict counts, worst ops and agreement with the other targets, for the plugin.

    A divergence is *shared* when an --against target has the same verdict on the same
    (op, floatx), and for `fail` an error of the same order (often inherited from the
    backend a plugin builds on); *own* otherwise."""
    results = summary.get("results", [])
    mine = [r for r in results if r.get("target") == plugin_id]
    others: dict[tuple, dict[str, str]] = {}
    ratios: dict[tuple, dict[str, float]] = {}
    for r in results:
        if r.get("target") != plugin_id:
            others.setdefault((r["op"], r["floatx"]), {})[r["target"]] = r["status"]
            ratios.setdefault((r["op"], r["floatx"]), {})[r["target"]] = _ratio(
                r.get("worst_ratio"))
    counts = Counter(r["status"] for r in mine)
    worst = []
    for r in mine:
        if r["status"] not in compare.DIVERGENT:
            continue
        key = (r["op"], r["floatx"])
        around, ratio = others.get(key, {}), _ratio(r.get("worst_ratio"))
        shared = any(status == r["status"] and (status != "fail" or ratio <= SHARED_FACTOR *
                                                 ratios[key][target])
                     for target, status in around.items())
        worst.append({"op": r["op"], "floatx": r["floatx"], "status": r["status"],
                      "worst_ratio": ratio, "max_ulp": _ratio(r.get("max_ulp")),
                      "message": str(r.get("message") or ""), "others": around,
                      "shared": shared})
    worst.sort(key=lambda w: (w["shared"], compare.SEVERITY.index(w["status"]),
                              -w["worst_ratio"], w["op"], w["floatx"]))
    broken = [t for t in summary.get("targets", [])
              if t.get("id") == plugin_id and t.get("status") != "ready"]
    return {"counts": dict(counts), "cases": len(mine), "unexpected": worst,
            "flagged": sorted({w["op"] for w in worst}),
            "own": _by_op([w for w in worst if not w["shared"]]),
            "shared": _by_op([w for w in worst if w["shared"]]),
            "broken": [{"floatx": t.get("floatx"), "reason": t.get("reason")} for t in broken]}


def _by_op(entries: list[dict]) -> dict[str, list[str]]:
    """{op: [floatx, ...]} in first-seen order."""
    grouped: dict[str, list[str]] = {}
    for entry in entries:
        grouped.setdefault(entry["op"], []).append(entry["floatx"])
    return {op: sorted(fx) for op, fx in grouped.items()}


def print_suites(result: dict, plugin_id: str, against: list[str]) -> None:
    counts = result["counts"]
    order = [s for s in compare.SEVERITY + ["known"] if s in counts]
    text = " · ".join(f"{s} {counts[s]}" for s in order) or "no results"
    print(f"suites    {result['cases']} (op, floatx) cases on {plugin_id}: {text}")
    for broken in result["broken"]:
        reason = str(broken.get("reason") or "").splitlines()[:1]
        print(f"          did not start at floatx={broken['floatx']}: {reason}")
    if result["unexpected"]:
        print((f"worst     {'op':<22} {'floatx':<8} {'verdict':<8} {'x tol':>9}  "
               + ("against" if against else "")).rstrip())
    for entry in result["unexpected"][:WORST_SHOWN]:
        others = ", ".join(f"{t} {s}" for t, s in sorted(entry["others"].items()))
        ratio = entry["worst_ratio"]
        ratio_text = f"{ratio:9.3g}" if entry["status"] == "fail" and ratio else " " * 9
        print(f"          {entry['op']:<22} {entry['floatx']:<8} {entry['status']:<8} "
              f"{ratio_text}  {others}".rstrip())
        if entry["message"]:
            print(f"            {entry['message'][:110]}")
    if len(result["unexpected"]) > WORST_SHOWN:
        print(f"          ... and {len(result['unexpected']) - WORST_SHOWN} more "
              "(see the report)")

    def listing(grouped):
        return ", ".join(f"{op} ({', '.join(fx)})" for op, fx in grouped.items())

    if result["own"]:
        label = f"only on {plugin_id}: " if against else ""
        print(f"flagged   {label}{listing(result['own'])}")
    if result["shared"]:
        print(f"{'flagged' if not result['own'] else '':<10}also on the --against targets "
              f"(inherited?): {listing(result['shared'])}")


def _run_args(args, plugin: Target, against: list[str], op_names: list[str], out: Path):
    """A `conformance run` namespace with every default of the run parser."""
    scratch = argparse.ArgumentParser(add_help=False)
    runcli.add_commands(scratch.add_subparsers(dest="command"))
    run_args = scratch.parse_args(["run"])
    run_args.targets = ",".join([plugin.id, *against])
    run_args.ops = ",".join(op_names)
    run_args.project = getattr(args, "project", ".")
    for name in ("floatx", "profile", "max_examples", "seed", "known", "no_report"):
        setattr(run_args, name, getattr(args, name))
    run_args.out = str(out)
    return run_args


def _extra_target(target: Target) -> dict:
    entry = {"flavor": target.flavor, "backend": target.backend,
             "pythonpath": list(target.pythonpath), "timeout_s": target.timeout_s}
    if target.python:
        entry["python"] = target.python
    else:
        entry["env"] = target.env
    return entry


def cmd_validate(args) -> int:
    project = Path(getattr(args, "project", "."))
    config = targets_mod.load_project_config(project)
    specs = targets_mod.load_envs(config)
    known_targets = targets_mod.load_targets(config, project)
    module, folders = resolve_module(args.module, args.path)
    plugin = plugin_target(args, module, folders)
    if args.against is None:
        against = list(DEFAULT_AGAINST[args.flavor])
    elif args.against.strip().lower() in ("", "none"):
        against = []
    else:
        against = [t.strip() for t in args.against.split(",") if t.strip()]
    targets_mod.select(known_targets, against)  # unknown ids: ConfigError with the known ones
    all_ops = catalog.all_ops()
    chosen = [op for op in catalog.select(all_ops, _csv(args.ops))
              if op.call_for(args.flavor) is not None]
    if not chosen and not args.surface_only:
        raise targets_mod.ConfigError(f"no op matches --ops {args.ops!r} for the "
                                      f"{args.flavor} flavor; see `conformance ops`")
    python, reason = targets_mod.interpreter(plugin, specs)
    if python is None:
        fix = f"conformance envs sync {plugin.env}" if plugin.env else "check --python"
        raise targets_mod.ConfigError(f"cannot run {module}: {reason} (fix: {fix})")
    out = Path(args.out or Path("reports") / time.strftime(f"validate-{module}-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)

    kind = "Keras 2 external backend" if args.flavor == "keras2" else "ops-module plugin"
    print(f"validating {module} ({kind}) from {', '.join(folders)} with {python}")
    verdict, inspect_verdict, surface = validate_checks(plugin, python, out / "checks",
                                                        args.import_timeout, all_ops)
    print_checks(verdict, surface, args.flavor, module, inspect_verdict)

    record = {"module": module, "flavor": args.flavor, "paths": folders, "python": python,
              "import": asdict(verdict), "surface": {**asdict(surface),
                                                     "coverage": round(surface.coverage, 2)},
              "against": against, "out": str(out), "name_clash": name_clash(module)}
    status = 0 if verdict.ok else 1
    if verdict.ok and not args.surface_only:
        print(f"running the suites: {len(chosen)} ops on {', '.join([plugin.id, *against])} "
              f"at floatx {args.floatx}")
        sys.stdout.flush()
        from conformance import store

        code = runcli.cmd_run(_run_args(args, plugin, against, [op.name for op in chosen], out),
                              extra_targets={plugin.id: _extra_target(plugin)})
        results = out / "results.jsonl"
        if not results.exists():
            status = code or 2
        else:
            suites = summarize_suites(store.load(results), plugin.id)
            record["suites"] = suites
            print()
            print(f"== {module}: validation summary ==")
            print_checks(verdict, surface, args.flavor, module, compact=True)
            print_suites(suites, plugin.id, against)
            if (out / "index.html").exists():
                print(f"report    {out / 'index.html'}")
            if suites["unexpected"] or suites["broken"]:
                status = 1
            if code not in (0, 1):
                status = code
    record["exit_status"] = status
    (out / "validate.json").write_text(json.dumps(record, indent=1, default=str))
    if not verdict.ok:
        print(f"result    FAIL: {module} does not import; details in {out / 'checks'}")
    elif status:
        suites = record.get("suites", {})
        flagged = suites.get("flagged", [])
        reasons = []
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
        print(f"result    FAIL: {'; '.join(reasons)}; exit status {status}")
    elif args.surface_only:
        print("result    ok: it imports (the suites were skipped: --surface-only)")
    else:
        print("result    ok")
    return status


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def main(argv: list[str] | None = None) -> int:
    """`python -m conformance.validate ...`: the same as `conformance validate ...`."""
    from conformance import cli

    return cli.main(["validate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
