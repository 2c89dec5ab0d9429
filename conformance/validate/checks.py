"""Steps 1 and 2 of `conformance validate`, as pure functions of the check reports:
the import verdict, the API surface, and the trouble a plugin's name causes.

A report is what ``conformance.surface`` answers in the plugin's interpreter, or what
`processes` makes of a worker that crashed, exited or hung (``status`` crash / exit /
timeout / broken, the ``stage`` it was at, the stack from its log)."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from conformance import catalog

# The stage at which a hang is the plugin's own (before it, the interpreter is starting).
IMPORTING = "importing the module"


# -- import ------------------------------------------------------------------------------
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
        return _process_verdict(report, plugin_dirs, keras_dir)
    keras_dir = keras_dir or report.get("keras_dir")
    common = dict(stdout=report.get("stdout", ""), stdout_bytes=report.get("stdout_bytes", 0),
                  using_line=_using_line(report.get("stderr", "")), keras=report.get("keras"),
                  seconds=report.get("import_s"))
    if report.get("imported"):
        return ImportVerdict(True, "imports", _imported_headline(report, flavor, module),
                             **common)
    return _error_verdict(report.get("error", {}), plugin_dirs, keras_dir, common)


def _process_verdict(report: dict, plugin_dirs: list[str],
                     keras_dir: str | None) -> ImportVerdict:
    """The interpreter crashed, exited or hung: what the process did, and where."""
    status = report["status"]
    if status == "timeout":
        head = (f"hangs: {report['message']} (raise --import-timeout if it is only slow)"
                if report.get("stage", "") == IMPORTING else
                f"the interpreter did not start: {report['message']}")
    elif status == "crash":
        head = f"crashes: the interpreter was {report['message']}"
    else:
        head = (f"exits: the interpreter {report['message']} (os._exit or a C-level exit; "
                "a plugin must not end the process)")
    return ImportVerdict(False, status, head,
                         where=_where(report.get("where") or [], plugin_dirs, keras_dir),
                         detail=report.get("log_tail", ""))


def _imported_headline(report: dict, flavor: str, module: str) -> str:
    if flavor != "keras2":
        return f"imports in {report.get('import_s', 0):.1f} s"
    head = (f"imports: Keras {report.get('keras')} loads it as its backend "
            f"in {report.get('import_s', 0):.1f} s")
    backend = report.get("backend")
    if backend != module:
        head += f" (but keras.backend.backend() says {backend!r})"
    return head


def _error_verdict(error: dict, plugin_dirs: list[str], keras_dir: str | None,
                   common: dict) -> ImportVerdict:
    """Importing raised (SystemExit included): the error, where, and its cause."""
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


def keras_dir(inspect_report: dict) -> str | None:
    """The Keras package folder whose sources the surface was read from, if any."""
    spec = inspect_report.get("keras2_surface") or {}
    files = spec.get("files") or []
    return str(Path(files[0]).parent.parent) if files else None


# -- surface -----------------------------------------------------------------------------
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


# -- the plugin's name -------------------------------------------------------------------
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
