"""`conformance ops --coverage`: how much of each Keras API the op catalog checks,
computed from the Keras installed in each environment, not claimed.

`conformance.census` lists the public callables of each API inside the environment's
own interpreter (Keras is never imported here). This module decides what counts as an
op, matches the catalog's call paths against every path that reaches each function
(``keras.ops.exp`` is also ``keras.ops.numpy.exp``: one function, counted once), and
reports per API: covered / (functions - excluded), the excluded ones with their reason,
and the uncovered names. A Keras upgrade that adds functions shows them as uncovered.

What counts: functions defined in the API's own package. Classes are not counted (the
Loss classes wrap the functional losses that are counted; ``SeedGenerator`` holds
state), nor are the helpers a Keras 2 module imports from elsewhere
(``keras.losses.deserialize_keras_object`` is ``keras.utils``'s). `EXCLUDED` lists the
functions that are not ops, each with its reason: they are neither covered nor in the
denominator.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from conformance import catalog, probe, targets as targets_mod
from conformance.pool import Worker
from conformance.targets import Target
from conformance.textsafe import printable

CENSUS_TIMEOUT_S = 300.0  # importing TensorFlow 1.15 on a loaded 2-core machine is slow


@dataclass(frozen=True)
class Api:
    """One public Keras API whose functions the catalog should call."""

    id: str  # "keras3.ops"
    flavor: str  # the Keras generation whose environment lists it: keras3 | keras2
    module: str  # the module users call it from
    tree: bool  # its public submodules too (keras.ops.nn, keras.ops.numpy, ...)
    # A function counts when its __module__ is this package or below it: a Keras 2
    # module's namespace also holds what it imports (tensorflow's name_scope, keras.utils'
    # deserialize_keras_object); Keras 3 defines every exported function in keras.src.
    defined_under: str

    @property
    def title(self) -> str:
        return f"{'Keras 3' if self.flavor == 'keras3' else 'Keras 2'} {self.module}"


APIS = (
    Api("keras3.ops", "keras3", "keras.ops", True, "keras.src"),
    Api("keras3.activations", "keras3", "keras.activations", False, "keras.src"),
    Api("keras3.losses", "keras3", "keras.losses", False, "keras.src"),
    Api("keras3.random", "keras3", "keras.random", False, "keras.src"),
    Api("keras2.backend", "keras2", "keras.backend", False, "keras.backend"),
    Api("keras2.activations", "keras2", "keras.activations", False, "keras.activations"),
    Api("keras2.losses", "keras2", "keras.losses", False, "keras.losses"),
)

# The target whose environment, interpreter and backend list each flavor's APIs. The
# Keras 3 namespace is the same whatever the backend (NumPy imports fastest); Keras 2's
# backend namespace is what keras/backend/__init__.py imports, the same names for its
# built-in backends, read here with TensorFlow's.
CENSUS_TARGETS = {"keras3": "keras3-numpy", "keras2": "keras2-tensorflow"}

# -- what is not an op: one table, each entry with its reason ------------------------
PLUMBING = ("harness plumbing: the keras2 adapter builds, feeds and reads every graph "
            "with it, so every case uses it without comparing it")
TENSOR_BRIDGE = ("harness plumbing: the keras3 adapter moves every array in and out of "
                 "the backend with it")
TYPE_TEST = "a type test of a tensor object (a Python bool), not a computed value"
CONFIG = "keras.json configuration: the configuration suite checks it, not the op suites"
SESSION = "session and graph state: it computes no value of its own"
ASSIGNMENT = "variable assignment (state), not a computed result"
DEBUG_OUTPUT = "debugging output (prints a tensor)"
BY_NAME = "looks an object up by name or (de)serializes it: no computation"

EXCLUDED: dict[str, dict[str, str]] = {
    "keras3.ops": {"convert_to_numpy": TENSOR_BRIDGE, "convert_to_tensor": TENSOR_BRIDGE,
                   "is_tensor": TYPE_TEST},
    "keras3.activations": {"get": BY_NAME, "serialize": BY_NAME, "deserialize": BY_NAME},
    "keras3.losses": {"get": BY_NAME, "serialize": BY_NAME, "deserialize": BY_NAME},
    "keras3.random": {},
    "keras2.backend": {
        **dict.fromkeys(("placeholder", "function", "variable", "constant", "eval",
                         "get_value", "batch_get_value"), PLUMBING),
        **dict.fromkeys(("is_tensor", "is_keras_tensor", "is_placeholder", "is_sparse",
                         "is_variable"), TYPE_TEST),
        **dict.fromkeys(("backend", "epsilon", "set_epsilon", "floatx", "set_floatx",
                         "image_data_format", "set_image_data_format",
                         "normalize_data_format"), CONFIG),
        **dict.fromkeys(("get_session", "set_session", "clear_session", "learning_phase",
                         "set_learning_phase", "manual_variable_initialization", "get_uid",
                         "reset_uids", "control_dependencies", "eager", "symbolic"), SESSION),
        **dict.fromkeys(("set_value", "batch_set_value", "update", "update_add",
                         "update_sub"), ASSIGNMENT),
        "print_tensor": DEBUG_OUTPUT,
    },
    "keras2.activations": {"get": BY_NAME, "serialize": BY_NAME, "deserialize": BY_NAME},
    "keras2.losses": {"get": BY_NAME, "serialize": BY_NAME, "deserialize": BY_NAME,
                      "is_categorical_crossentropy": "a test of a loss object's kind "
                      "(a Python bool), not a computed value"},
}


# -- matching a census against the catalog -------------------------------------------
def catalog_paths(ops: list | None = None) -> dict[str, set[str]]:
    """{flavor: every function path the catalog's ops call in that flavor}."""
    ops = catalog.all_ops() if ops is None else ops
    return {flavor: {op.call_for(flavor).fn for op in ops if op.call_for(flavor)}
            for flavor in ("keras3", "keras2")}


def _relative(api: Api, path: str) -> str:
    return path[len(api.module) + 1:] if path.startswith(api.module + ".") else path


def _defined_in_api(api: Api, entry: dict) -> bool:
    where = entry.get("defined_in") or ""
    return where == api.defined_under or where.startswith(api.defined_under + ".")


def display_name(api: Api, entry: dict) -> str:
    """The name an entry is shown by: the first of its paths (the API's own names come
    before a submodule's) that ends with the function's own name, so that an alias
    (Keras 2's MSE, Keras 3's hard_swish) does not stand for the function."""
    names = [_relative(api, path) for path in entry["paths"]]
    own = [n for n in names if n.rsplit(".", 1)[-1] == entry.get("name")]
    return (own or names)[0]


def verdict(api: Api, entry: dict, called: set[str], excluded: dict[str, str]) -> str:
    """What one census entry is: "not counted" (a class, or defined outside the API),
    "excluded" (in the table, by any of its names), "covered" (the catalog calls it by
    any of its paths) or "uncovered"."""
    if entry.get("kind") == "class" or not _defined_in_api(api, entry):
        return "not counted"
    if any(_relative(api, path) in excluded for path in entry["paths"]):
        return "excluded"
    return "covered" if called.intersection(entry["paths"]) else "uncovered"


def api_coverage(api: Api, listing: dict, called: set[str],
                 excluded: dict[str, str] | None = None) -> dict:
    """Coverage of one API from its census listing (``{"callables": [...]}`` or
    ``{"error": ...}``) and the paths the catalog calls in the API's flavor."""
    excluded = EXCLUDED.get(api.id, {}) if excluded is None else excluded
    result = {"api": api.id, "title": api.title, "module": api.module}
    if "callables" not in listing:
        return {**result, "error": listing.get("error", "no census of this module")}
    names: dict[str, list[str]] = {"covered": [], "uncovered": [], "excluded": [],
                                   "not counted": []}
    not_counted, found, matched = {}, set(), set()  # matched: table names in use
    for entry in listing["callables"]:
        found.update(entry["paths"])
        kind = verdict(api, entry, called, excluded)
        name = display_name(api, entry)
        names[kind].append(name)
        if kind == "excluded":
            matched.update({_relative(api, path) for path in entry["paths"]} & set(excluded))
        if kind == "not counted":
            not_counted[name] = ("class" if entry.get("kind") == "class"
                                 else f"defined in {entry.get('defined_in') or '?'}")
    covered, uncovered = sorted(names["covered"]), sorted(names["uncovered"])
    return {**result, "functions": len(covered) + len(uncovered) + len(names["excluded"]),
            "excluded_count": len(names["excluded"]),
            "counted": len(covered) + len(uncovered), "covered_count": len(covered),
            "covered": covered, "uncovered": uncovered,
            "excluded": {name: excluded[name] for name in sorted(matched)},
            "not_counted": dict(sorted(not_counted.items())),
            # the catalog calls these, but this Keras has no such path (renamed, removed)
            "missing_in_keras": sorted(p for p in called
                                       if p.startswith(api.module + ".") and p not in found),
            # table entries that name no function of this Keras: remove them
            "stale_exclusions": sorted(set(excluded) - matched)}


def coverage(censuses: dict[str, dict], called: dict[str, set[str]],
             apis: tuple = APIS) -> list[dict]:
    """Every API's coverage from {flavor: census report} (a report with ``error``
    when the census could not run in that flavor's environment)."""
    results = []
    for api in apis:
        census = censuses.get(api.flavor) or {"error": f"no {api.flavor} census"}
        if "error" in census:
            results.append({"api": api.id, "title": api.title, "module": api.module,
                            "error": census["error"]})
            continue
        listing = census.get("modules", {}).get(api.module, {"error": "not listed"})
        results.append(api_coverage(api, listing, called.get(api.flavor, set())))
    return results


# -- running the census in each environment ------------------------------------------
def census_command(python: str, apis: list[Api]) -> list[str]:
    command = [python, "-m", "conformance.census"]
    for api in apis:
        command += ["--tree" if api.tree else "--module", api.module]
    return command


def run_census(target: Target, python: str, apis: list[Api], workdir: Path,
               timeout: float = CENSUS_TIMEOUT_S) -> dict:
    """The census report of `apis`, listed by `python` in the environment a worker of
    `target` gets (private KERAS_HOME, KERAS_BACKEND, the package alone on PYTHONPATH),
    or {"error": what went wrong}."""
    env = Worker(target, python, "float32", workdir).environment()
    where = f"the census in {target.id}'s interpreter ({python})"
    try:
        done = subprocess.run(census_command(python, apis), env=env, cwd=workdir,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{where} did not finish within {timeout:.0f} s"}
    except OSError as exc:
        return {"error": f"{where} could not start: {exc}"}
    tail = "\n".join(done.stderr.splitlines()[-8:])
    if done.returncode != 0:
        return {"error": f"{where} exited with status {done.returncode}:\n{tail}"}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"error": f"{where} printed no JSON report:\n{tail}"}


def gather(project: Path, apis: tuple = APIS) -> dict[str, dict]:
    """{flavor: census report or {"error", "fix"}}, the flavors' censuses in parallel."""
    config = targets_mod.load_project_config(project)
    all_targets = targets_mod.load_targets(config, project)
    specs = targets_mod.load_envs(config)
    flavors = sorted({api.flavor for api in apis})
    censuses: dict[str, dict] = {}
    runnable = {}
    for flavor in flavors:
        target = all_targets[CENSUS_TARGETS[flavor]]
        pythons, unusable = probe.resolve_interpreters([target], specs)
        if unusable:
            censuses[flavor] = {"error": f"{target.id}: {unusable[0].status}: "
                                f"{unusable[0].reason}", "fix": unusable[0].fix}
        else:
            runnable[flavor] = (target, pythons[target.id])
    with tempfile.TemporaryDirectory(prefix="conformance-coverage-") as workdir, \
            ThreadPoolExecutor(max_workers=max(1, len(runnable))) as threads:
        futures = {flavor: threads.submit(run_census, target, python,
                                          [a for a in apis if a.flavor == flavor], Path(workdir))
                   for flavor, (target, python) in runnable.items()}
        censuses.update({flavor: future.result() for flavor, future in futures.items()})
    return censuses


# -- the report ----------------------------------------------------------------------
def percent(result: dict) -> float:
    return 100.0 * result["covered_count"] / result["counted"] if result["counted"] else 0.0


def summary_table(results: list[dict]) -> list[str]:
    """One line per API: the numbers the README shows."""
    lines = [f"{'API':<26} {'covered':>7} {'of':>5} {'excluded':>9} {'functions':>10} "
             f"{'covered %':>10}"]
    for result in results:
        if "error" in result:
            lines.append(f"{result['title']:<26} {'(no census: see above)':>34}")
            continue
        lines.append(f"{result['title']:<26} {result['covered_count']:>7} "
                     f"{result['counted']:>5} {result['excluded_count']:>9} "
                     f"{result['functions']:>10} {percent(result):>9.1f}%")
    return lines


def _names(label: str, names, indent: int = 4) -> list[str]:
    text = printable(", ".join(names), one_line=True)
    return textwrap.wrap(f"{label} ({len(names)}): {text}", width=100,
                         initial_indent=" " * (indent - 2), subsequent_indent=" " * indent,
                         break_on_hyphens=False) if names else []


def api_lines(result: dict) -> list[str]:
    """The detail of one API: numbers, uncovered names, exclusions by reason."""
    if "error" in result:
        return [f"{result['title']}: no census: {printable(result['error'])}"]
    lines = [f"{result['title']}: {result['covered_count']} / {result['counted']} covered "
             f"({percent(result):.1f}%); {result['excluded_count']} excluded; "
             f"{result['functions']} functions"]
    lines += _names("uncovered", result["uncovered"])
    by_reason: dict[str, list[str]] = {}
    for name, reason in result["excluded"].items():
        by_reason.setdefault(reason, []).append(name)
    for reason, names in by_reason.items():
        lines += _names(f"excluded, {reason}", names)
    skipped = result["not_counted"]
    if skipped:
        classes = [n for n, why in skipped.items() if why == "class"]
        lines.append(f"  not counted (--json lists them): classes {len(classes)}, "
                     f"functions defined outside the API {len(skipped) - len(classes)}")
    lines += _names("the catalog calls these, missing in this Keras",
                    result["missing_in_keras"])
    lines += _names("stale exclusions (no such function: remove them from "
                    "coverage.EXCLUDED)", result["stale_exclusions"])
    return lines


def environment_lines(censuses: dict[str, dict]) -> list[str]:
    lines = []
    for flavor, census in sorted(censuses.items(), reverse=True):  # keras3 first
        if "error" in census:
            fix = f" (fix: {census['fix']})" if census.get("fix") else ""
            lines.append(printable(f"{flavor}: no census: {census['error']}{fix}"))
        else:
            lines.append(printable(f"{flavor}: Keras {census.get('keras')}, backend "
                                   f"{census.get('backend')}, Python {census.get('python')} "
                                   f"({census.get('executable')})", one_line=True))
    return lines


def report_lines(censuses: dict[str, dict], results: list[dict]) -> list[str]:
    lines = environment_lines(censuses) + [""]
    for result in results:
        lines += api_lines(result) + [""]
    return lines + summary_table(results)


def cmd_coverage(args) -> int:
    """Print the coverage of every API; 2 when an environment could not be listed."""
    censuses = gather(Path(getattr(args, "project", ".")).resolve())
    results = coverage(censuses, catalog_paths())
    if args.json:
        print(json.dumps({"environments": censuses_facts(censuses), "apis": results},
                         indent=1))
    else:
        print("\n".join(report_lines(censuses, results)))
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"error: no coverage for {', '.join(r['api'] for r in failed)} (see above)",
              file=sys.stderr)
        return 2
    return 0


def censuses_facts(censuses: dict[str, dict]) -> dict:
    """What --json says of each environment: its Keras, backend and Python, or why not."""
    keys = ("keras", "backend", "python", "executable", "error", "fix")
    return {flavor: {k: census[k] for k in keys if k in census}
            for flavor, census in censuses.items()}
