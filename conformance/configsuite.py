"""Configuration conformance: keras.json, KERAS_BACKEND, floatx, epsilon, data format.

How a backend is chosen and configured is part of the contract. Each target is
started under several configurations ("setups": its own keras.json, none at all,
another backend named in keras.json, ...) and asked what it sees (the worker's
``config`` command) or made to compute with the real ops (the ``call`` command).

Scenarios, each a list of checks on one target:

- precedence          KERAS_BACKEND beats keras.json's "backend"; the keras.json in
                      KERAS_HOME is the one read; keras.json's backend is used when
                      KERAS_BACKEND is unset; a missing keras.json is created with the
                      defaults in KERAS_HOME and nowhere else; the "Using ... backend"
                      line where the flavor prints it
- floatx              variables, constants, op results and ones() take keras.json's
                      floatx (float16 / float32 / float64)
- runtime             set_floatx / set_epsilon / set_image_data_format take effect;
                      invalid values raise the documented error
- epsilon             binary_crossentropy at p in {0, 1} and l2 normalization of a tiny
                      vector follow the configured epsilon (1e-7 and 1e-3 runs, each
                      against a float64 reference with that epsilon)
- image_data_format   conv2d and max / average pooling give transposed-equal results
                      in channels_first and channels_last, explicitly and when the
                      format comes from keras.json

Every check becomes one record (results.jsonl kind ``config``)::

    {"target", "check", "op": "config/<check>", "scenario", "floatx",
     "status": pass|fail|error|unsupported|known, "verdict" (status before the
     registry), "expected", "observed", "detail"}

A fail or error that matches the known-divergence registry (op globs such as
``config/floatx/*``) becomes ``known``.
"""
from __future__ import annotations

import fnmatch
import json
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from conformance import known
from conformance.pool import GENERATED, StartupError, Worker
from conformance.targets import FLOATX, Target

SCENARIOS = ("precedence", "floatx", "runtime", "epsilon", "image_data_format")
FAILING = {"fail", "error"}

# The keras.json Keras 2.3.1 and Keras 3 write when there is none: their defaults, with
# the default backend, because the file is written before KERAS_BACKEND is applied.
DEFAULT_KERAS_JSON = {"floatx": "float32", "epsilon": 1e-07, "backend": "tensorflow",
                      "image_data_format": "channels_last"}
DISTINCT_EPSILON = 1e-3  # the json-read setup's epsilon: also the epsilon scenario's second run
OTHER_BACKENDS = {"keras3": ("numpy", "jax"), "keras2": ("theano", "tensorflow")}
KERAS2_USING = {"tensorflow": "Using TensorFlow backend.", "theano": "Using Theano backend.",
                "cntk": "Using CNTK backend"}
RUNTIME_EPSILON = 0.00123  # what configprobe sets at run time
# What the flavor's reference source raises for invalid values (type, words the message
# holds), or None where it accepts the value.
INVALID = {
    "keras3": {"set_floatx": ("ValueError", "Unknown `floatx` value: float8"),
               "set_image_data_format": ("ValueError", "Received: data_format=channels_middle"),
               "set_epsilon": None},
    "keras2": {"set_floatx": ("ValueError", "Unknown floatx type"),
               "set_image_data_format": ("ValueError", "Unknown data_format"),
               "set_epsilon": ("ValueError", "could not convert string to float")},
}
INVALID_SOURCES = {
    "keras3": "keras/src/backend/config.py (Keras 3.x): set_floatx and set_image_data_format "
              "raise ValueError; set_epsilon stores any value (no validation)",
    "keras2": "keras/backend/common.py (Keras 2.3.1): set_floatx and set_image_data_format "
              "raise ValueError; set_epsilon does float(e)",
}


class SetupFailed(Exception):
    """A worker for one setup could not start; the message says why."""


@dataclass(frozen=True)
class Setup:
    """One way of starting a target: its keras.json (GENERATED, a dict, None for none)
    and environment overrides (None removes a variable)."""

    name: str
    floatx: str = "float32"
    keras_json: object = GENERATED
    env: tuple = ()
    sandbox_home: bool = False  # HOME points at an empty folder we can inspect


def selected(scenario: str, patterns: list[str] | None) -> bool:
    """Whether --ops patterns select a scenario: "config" selects them all, and a glob
    selects those whose "config/<scenario>" it matches (no patterns: all)."""
    name = f"config/{scenario}"
    return not patterns or any(p == "config" or fnmatch.fnmatchcase(name, p) for p in patterns)


def other_backend(target: Target) -> str:
    """Another backend of the target's flavor, to name in keras.json."""
    choices = OTHER_BACKENDS.get(target.flavor, ("numpy",))
    return next(b for b in choices if b != target.backend)


def setups(target: Target) -> dict[str, Setup]:
    json_read = {"floatx": "float32", "epsilon": DISTINCT_EPSILON,
                 "image_data_format": "channels_first", "backend": other_backend(target)}
    return {s.name: s for s in [
        Setup("default"),
        Setup("floatx-float16", floatx="float16"),
        Setup("floatx-float64", floatx="float64"),
        # KERAS_BACKEND (set by the pool to the target's backend) against a keras.json
        # naming another backend, with a distinctive epsilon and data format
        Setup("json-read", keras_json=json_read),
        Setup("json-backend", keras_json=target.keras_json("float32"),
              env=(("KERAS_BACKEND", None),)),
        Setup("missing", keras_json=None, sandbox_home=True),
    ]}


SHARED_SETUPS = {"default", "json-read"}  # kept across scenarios; the others are released


# -- records ------------------------------------------------------------------------
def make_record(target_id: str, scenario: str, check: str, status: str, expected=None,
                observed=None, detail: str = "", floatx: str = "float32") -> dict:
    return {"target": target_id, "scenario": scenario, "check": check, "op": f"config/{check}",
            "floatx": floatx, "status": status, "verdict": status,
            "expected": _jsonable(expected), "observed": _jsonable(observed), "detail": detail}


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _first_lines(text: str, lines: int = 3) -> str:
    return "\n".join(str(text).splitlines()[:lines])


# -- one target's workers -------------------------------------------------------------
class TargetRun:
    """The workers of one target, one per setup, started on first use."""

    def __init__(self, target: Target, python: str, workdir: Path, niceness: int = 0):
        self.target, self.python = target, python
        self.workdir = Path(workdir)
        self.niceness = niceness  # see Worker: > 0 for checks run beside the op cases
        self.setups = setups(target)
        self.workers: dict[str, Worker] = {}
        self.failed: dict[str, str] = {}
        self.homes: dict[str, Path] = {}  # sandboxed HOME per setup

    def setup_dir(self, name: str) -> Path:
        return self.workdir / self.target.id / name

    def worker(self, name: str) -> Worker:
        if name in self.failed:
            raise SetupFailed(self.failed[name])
        if name in self.workers:
            return self.workers[name]
        setup = self.setups[name]
        folder = self.setup_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(setup.env)
        if setup.sandbox_home:
            home = folder / "home"
            home.mkdir(exist_ok=True)
            self.homes[name] = home
            env["HOME"] = str(home)
        worker = Worker(self.target, self.python, setup.floatx, folder,
                        keras_json=setup.keras_json, env=env, niceness=self.niceness)
        try:
            worker.start()
        except StartupError as exc:
            self.failed[name] = str(exc)
            raise SetupFailed(str(exc)) from None
        self.workers[name] = worker
        return worker

    def probe(self, name: str, *sections: str) -> dict:
        reply = self.worker(name).call({"cmd": "config", "sections": list(sections)})
        if reply.get("status") != "ok":
            raise SetupFailed(f"config probe: {reply.get('status')}: {reply.get('message')}")
        return reply

    def call(self, name: str, fn: str, args: list, kwargs: dict, params=()) -> dict:
        """`params`: indices of array arguments that are model parameters (a conv
        kernel): graph backends hold them in variables, as a model does."""
        request = {"cmd": "call", "fn": fn, "args": args, "kwargs": kwargs}
        if params:
            request["params"] = list(params)
        return self.worker(name).call(request)

    def release(self, keep=SHARED_SETUPS) -> None:
        for name in [n for n in self.workers if n not in keep]:
            self.workers.pop(name).stop()

    def close(self) -> None:
        self.release(keep=())


def _section(reply: dict, name: str) -> dict:
    value = reply.get(name) or {}
    if "error" in value and len(value) == 1:
        error = value["error"]
        raise SetupFailed(f"probe section {name}: {error.get('type')}: {error.get('message')}")
    return value


# -- scenario: precedence ---------------------------------------------------------------
def scenario_precedence(run: TargetRun) -> list[dict]:
    target = run.target
    rec = lambda check, *a, **k: make_record(target.id, "precedence", check, *a, **k)
    if target.flavor == "ops-module":
        return [rec("precedence", "unsupported",
                    detail="an ops-module plugin reads no keras.json and no KERAS_BACKEND")]
    records = []
    other = other_backend(target)

    # 1-2: KERAS_BACKEND over keras.json, and the keras.json in KERAS_HOME is read
    try:
        reply = run.probe("json-read", "settings", "files")
        settings, files = _section(reply, "settings"), _section(reply, "files")
        home = run.workers["json-read"].keras_home
        records.append(rec(
            "precedence/KERAS_BACKEND-over-keras.json",
            "pass" if settings.get("backend") == target.backend else "fail",
            {"backend()": target.backend}, {"backend()": settings.get("backend")},
            f"keras.json says \"backend\": \"{other}\", KERAS_BACKEND={target.backend}"))
        expected = {"epsilon()": DISTINCT_EPSILON, "image_data_format()": "channels_first",
                    "config path": str(home / "keras.json")}
        observed = {"epsilon()": settings.get("epsilon"),
                    "image_data_format()": settings.get("image_data_format"),
                    "config path": files.get("config_path")}
        records.append(rec(
            "precedence/KERAS_HOME-keras.json-read", "pass" if observed == expected else "fail",
            expected, observed,
            f"KERAS_HOME={home} holds a keras.json with epsilon {DISTINCT_EPSILON} and "
            "channels_first; the user's ~/.keras is never read"))
    except SetupFailed as exc:
        for check in ("precedence/KERAS_BACKEND-over-keras.json",
                      "precedence/KERAS_HOME-keras.json-read"):
            records.append(rec(check, "error", None, "worker did not start or answer",
                               _first_lines(exc)))

    # 3: keras.json's backend when KERAS_BACKEND is unset
    check = "precedence/keras.json-backend-without-KERAS_BACKEND"
    try:
        settings = _section(run.probe("json-backend", "settings"), "settings")
        records.append(rec(check, "pass" if settings.get("backend") == target.backend else "fail",
                           {"backend()": target.backend}, {"backend()": settings.get("backend")},
                           "KERAS_BACKEND unset; keras.json says "
                           f"\"backend\": \"{target.backend}\""))
    except SetupFailed as exc:
        records.append(rec(check, "error", None, "worker did not start or answer",
                           _first_lines(exc)))

    # 4-5: a missing keras.json is created with the defaults, in KERAS_HOME only
    records += _missing_json_checks(run, rec)

    # 6: the "Using ... backend" line
    check = "precedence/using-line"
    if target.flavor == "keras2":
        line = KERAS2_USING.get(target.backend, f"Using {target.backend} backend.")
        expected = {"stderr during import keras": line}
        where = "Keras 2 writes it to sys.stderr while importing keras.backend"
    else:
        expected = {"stderr during import keras": None}
        where = "Keras 3 prints no backend line"
    try:
        info = run.worker("default").info or {}
        observed = {"stderr during import keras": info.get("using_line")}
        records.append(rec(check, "pass" if observed == expected else "fail", expected, observed,
                           where))
    except SetupFailed as exc:
        records.append(rec(check, "error", expected, "worker did not start", _first_lines(exc)))
    return records


def _keras_files(folder: Path) -> list[str]:
    """keras.json files and .keras folders under a setup's folder, outside the worker's
    KERAS_HOME folders (keras-home-*, one per start)."""
    found = []
    for root, dirs, files in os.walk(folder):  # symlinks (the worker's pythonpath) not followed
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if not d.startswith("keras-home-")]
        found += [str((Path(root) / name).relative_to(folder)) for name in dirs + files
                  if name in ("keras.json", ".keras")]
    return sorted(found)


def _missing_json_checks(run: TargetRun, rec) -> list[dict]:
    created = "precedence/missing-keras.json-created"
    outside = "precedence/keras.json-written-only-in-KERAS_HOME"
    try:
        worker = run.worker("missing")
        settings = _section(run.probe("missing", "settings", "files"), "settings")
    except SetupFailed as exc:
        return [rec(check, "error", None, "worker did not start or answer", _first_lines(exc))
                for check in (created, outside)]
    home = worker.keras_home
    path = home / "keras.json"
    if path.is_file():
        text = path.read_text(errors="replace")
        try:
            content = json.loads(text)
        except ValueError:
            content = text
    else:
        content = None
    in_effect_expected = {"backend": run.target.backend, "floatx": "float32", "epsilon": 1e-07,
                          "image_data_format": "channels_last"}
    in_effect = {k: settings.get(k) for k in in_effect_expected}
    expected = {"KERAS_HOME/keras.json": DEFAULT_KERAS_JSON, "in effect": in_effect_expected}
    observed = {"KERAS_HOME/keras.json": content if content is not None else "(not created)",
                "in effect": in_effect}
    records = [rec(created, "pass" if observed == expected else "fail", expected, observed,
                   f"KERAS_HOME={home} started empty. Both Keras 2.3.1 and Keras 3 write the file "
                   "before applying KERAS_BACKEND, so it names the default backend "
                   "\"tensorflow\" whatever KERAS_BACKEND says")]
    sandbox = run.homes["missing"]
    stray = _keras_files(run.setup_dir("missing"))
    other_files = sorted(str(p.relative_to(sandbox)) for p in sandbox.iterdir())
    records.append(rec(
        outside, "pass" if not stray else "fail", {"keras files outside KERAS_HOME": []},
        {"keras files outside KERAS_HOME": stray},
        f"HOME pointed at an empty folder; afterwards it holds: "
        f"{', '.join(other_files) if other_files else 'nothing'} "
        "(files of other libraries are listed, not judged)"))
    return records


# -- scenario: floatx ---------------------------------------------------------------------
def _dtype_text(entry) -> str:
    if not isinstance(entry, dict):
        return str(entry)
    if "error" in entry:
        error = entry["error"]
        return f"raised {error.get('type')}: {error.get('message')}"
    value, declared = entry.get("value"), entry.get("declared")
    return value if declared == value else f"{value} (declared {declared})"


def scenario_floatx(run: TargetRun, floatxs=FLOATX) -> list[dict]:
    target = run.target
    records = []
    for floatx in floatxs:
        check = f"floatx/{floatx}"
        rec = lambda *a, **k: make_record(target.id, "floatx", check, *a, floatx=floatx, **k)
        if target.flavor == "ops-module":
            records.append(rec("unsupported",
                               detail="an ops-module plugin has no floatx to configure"))
            continue
        setup = "default" if floatx == "float32" else f"floatx-{floatx}"
        try:
            reply = run.probe(setup, "settings", "dtypes")
            settings, dtypes = _section(reply, "settings"), _section(reply, "dtypes")
        except SetupFailed as exc:
            records.append(rec("error", None, "worker did not start or answer", _first_lines(exc)))
            continue
        names = [n for n in dtypes if n != "python_floats"]
        expected = {"floatx()": floatx, **{n: floatx for n in names}}
        observed = {"floatx()": settings.get("floatx"),
                    **{n: _dtype_text(dtypes[n]) for n in names}}
        how = "; ".join(f"{n}: {dtypes[n].get('how')}" for n in names
                        if isinstance(dtypes[n], dict))
        extra = dtypes.get("python_floats")
        if isinstance(extra, dict):
            how += (f". For information: {extra.get('how')} gives {_dtype_text(extra)} "
                    "(Keras 3 types Python floats as float32 whatever floatx is)")
        records.append(rec("pass" if observed == expected else "fail", expected, observed,
                           f"keras.json floatx {floatx}. {how}"))
    return records


# -- scenario: runtime setters and invalid values ---------------------------------------------
def scenario_runtime(run: TargetRun) -> list[dict]:
    target = run.target
    rec = lambda check, *a, **k: make_record(target.id, "runtime", check, *a, **k)
    try:
        reply = run.probe("default", "settings", "runtime", "invalid")
        settings = _section(reply, "settings")
        runtime, invalid = _section(reply, "runtime"), _section(reply, "invalid")
    except SetupFailed as exc:
        return [rec("runtime", "error", None, "worker did not start or answer", _first_lines(exc))]
    records = []
    for setter, getter in [("set_floatx", "floatx"), ("set_epsilon", "epsilon"),
                           ("set_image_data_format", "image_data_format")]:
        check = f"runtime/{setter}"
        entry = runtime.get(setter) or {}
        if "unsupported" in entry:
            records.append(rec(check, "unsupported", detail=entry["unsupported"]))
            continue
        if "error" in entry:
            error = entry["error"]
            records.append(rec(check, "error", None, f"raised {error.get('type')}: "
                               f"{error.get('message')}", f"{setter}({entry.get('set')!r})"))
            continue
        value = entry.get("set")
        expected = {f"{getter}()": value, "restored": settings.get(getter)}
        observed = {f"{getter}()": entry.get("read"), "restored": entry.get("restored")}
        if "constant" in entry:
            expected["new constant"] = value
            observed["new constant"] = _dtype_text(entry["constant"])
        records.append(rec(check, "pass" if observed == expected else "fail", expected, observed,
                           f"{setter}({value!r}) at run time, then back to "
                           f"{settings.get(getter)!r}"))
    for setter, value in [("set_floatx", "float8"), ("set_image_data_format", "channels_middle"),
                          ("set_epsilon", "x")]:
        records.append(_invalid_check(target, rec, setter, value, invalid.get(setter) or {}))
    return records


def _invalid_check(target: Target, rec, setter: str, value: str, entry: dict) -> dict:
    check = f"invalid/{setter}"
    if "unsupported" in entry:
        return rec(check, "unsupported", detail=entry["unsupported"])
    if target.flavor in INVALID:
        rule, source = INVALID[target.flavor][setter], INVALID_SOURCES[target.flavor]
    else:  # a plugin that has the setter: any ValueError, as Keras raises
        rule, source = ("ValueError", ""), "a ValueError, as Keras raises"
    raised = entry.get("raised") or None
    before, after = entry.get("before"), entry.get("after")
    observed = {"raises": raised.get("type") if raised else None, "value after": after}
    if raised:
        observed["message"] = raised.get("message")
    if rule is None:  # the reference accepts the value and stores it
        expected = {"raises": None, "value after": value}
        ok = raised is None
    else:
        kind, words = rule
        expected = {"raises": kind, "message contains": words, "value after": before}
        ok = (raised is not None and raised.get("type") == kind
              and words in str(raised.get("message")) and after == before)
    detail = f"{setter}({value!r}); reference: {source}"
    if after != before:
        detail += f"; the value was stored ({after!r}); the probe put {before!r} back"
    return rec(check, "pass" if ok else "fail", expected, observed, detail)


# -- real ops through `call` ---------------------------------------------------------------------
def _calls(target: Target) -> dict:
    """Function names and keyword style of the flavor."""
    if target.flavor == "keras2":
        return {"bce": "keras.backend.binary_crossentropy",
                "normalize": "keras.backend.l2_normalize", "conv": "keras.backend.conv2d",
                "max_pool": "keras.backend.pool2d", "avg_pool": "keras.backend.pool2d"}
    return {"bce": "keras.ops.binary_crossentropy", "normalize": "keras.ops.normalize",
            "conv": "keras.ops.conv", "max_pool": "keras.ops.max_pool",
            "avg_pool": "keras.ops.average_pool"}


def _pool_kwargs(target: Target, mode: str, data_format) -> dict:
    kwargs = {"pool_size": [2, 2], "strides": [2, 2], "padding": "valid"}
    if data_format is not None:
        kwargs["data_format"] = data_format
    if target.flavor == "keras2":
        kwargs["pool_mode"] = mode
    return kwargs


def _conv_kwargs(target: Target, data_format) -> dict:
    kwargs = {"strides": [1, 1] if target.flavor == "keras2" else 1, "padding": "valid"}
    if data_format is not None:
        kwargs["data_format"] = data_format
    return kwargs


class CallFailed(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def _output(run: TargetRun, setup: str, fn: str, args: list, kwargs: dict,
            params=()) -> np.ndarray:
    try:
        reply = run.call(setup, fn, args, kwargs, params)
    except SetupFailed as exc:
        raise CallFailed("error", f"worker did not start: {_first_lines(exc)}") from None
    status = reply.get("status")
    if status == "ok":
        return np.asarray(reply["outputs"][0])
    message = f"{reply.get('error_type') or status}: {reply.get('message')}"
    raise CallFailed("unsupported" if status == "unsupported" else "error", message)


def _compare(observed: np.ndarray, reference: np.ndarray, allowed: np.ndarray):
    """(ok, max |error|, worst error / allowed)."""
    if observed.shape != reference.shape:
        return False, math.inf, math.inf
    error = np.abs(observed.astype("float64") - reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(allowed > 0, error / allowed, np.where(error > 0, np.inf, 0.0))
    ok = bool(np.all(np.isfinite(observed)) and np.all(error <= allowed))
    return ok, float(error.max(initial=0.0)), float(ratio.max(initial=0.0))


def _rounded(values) -> list:
    return [float(f"{v:.8g}") for v in np.asarray(values, dtype="float64").ravel()]


# -- scenario: epsilon ------------------------------------------------------------------------
U32 = float(np.finfo("float32").eps) / 2
TINY32 = float(np.finfo("float32").tiny)
BCE_TARGET = np.array([1.0, 0.0, 1.0, 0.0, 1.0], dtype="float32")
BCE_OUTPUT = np.array([0.0, 0.0, 1.0, 1.0, 0.25], dtype="float32")
TINY_VECTORS = np.array([[1e-8, -2e-8, 3e-8], [3.0, 4.0, 0.0]], dtype="float32")


def bce_reference(target, output, eps: float, floatx: str = "float32") -> np.ndarray:
    """-(t log p + (1 - t) log(1 - p)), p clipped to [eps, 1 - eps], logs in float64.

    The clip bounds are floatx numbers, as in every backend: 1 - 1e-7 rounds to
    1 - 2^-23 in float32, so the p = 1 term is -log(1.19e-7) = 15.942, not 16.118.
    """
    low = np.asarray(eps, floatx)
    high = np.asarray(1, floatx) - low
    p = np.clip(np.asarray(output, floatx), low, high).astype("float64")
    t = np.asarray(target, "float64")
    return -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))


def normalize_reference(x, eps: float, flavor: str) -> np.ndarray:
    """Keras 3 documents x / max(||x||, eps); Keras 2.3.1's reference (Theano backend)
    is x / sqrt(max(sum x^2, eps))."""
    x = np.asarray(x, "float64")
    square_sum = np.sum(x * x, axis=-1, keepdims=True)
    if flavor == "keras2":
        return x / np.sqrt(np.maximum(square_sum, eps))
    return x / np.maximum(np.sqrt(square_sum), eps)


def scenario_epsilon(run: TargetRun) -> list[dict]:
    target = run.target
    records = []
    if target.flavor == "ops-module":
        return [make_record(target.id, "epsilon", "epsilon", "unsupported",
                            detail="an ops-module plugin has no configurable epsilon")]
    calls = _calls(target)
    runs = [("default", float(target.epsilon)), ("json-read", DISTINCT_EPSILON)]
    ops = [
        ("epsilon/binary_crossentropy", calls["bce"], [BCE_TARGET, BCE_OUTPUT], {},
         lambda eps: bce_reference(BCE_TARGET, BCE_OUTPUT, eps),
         lambda ref: 16 * U32 * (np.abs(ref) + 1.0),
         "binary_crossentropy(target=[1, 0, 1, 0, 1], output=[0, 0, 1, 1, 0.25]); reference "
         "-(t log p + (1 - t) log(1 - p)) in float64, p clipped to [eps, 1 - eps] with the "
         "bounds rounded to float32 (1 - 1e-7 is 1 - 2^-23 there); "
         "bound 16 u (|ref| + 1), u = 2^-24"),
        ("epsilon/l2_normalize", calls["normalize"], [TINY_VECTORS], {"axis": -1},
         lambda eps: normalize_reference(TINY_VECTORS, eps, target.flavor),
         lambda ref: 16 * U32 * np.abs(ref) + 2 * TINY32,
         ("normalize" if target.flavor != "keras2" else "l2_normalize")
         + "(x=[[1e-8, -2e-8, 3e-8], [3, 4, 0]], axis=-1); reference "
         + ("x / max(||x||, eps) (Keras 3 docs)" if target.flavor != "keras2" else
            "x / sqrt(max(sum x^2, eps)) (Keras 2.3.1 Theano backend)")
         + " in float64; bound 16 u |ref| + 2 tiny, u = 2^-24"),
    ]
    for check, fn, args, kwargs, reference, bound, text in ops:
        rec = lambda *a, **k: make_record(target.id, "epsilon", check, *a, **k)
        expected, observed, statuses, values = {}, {}, [], []
        for setup, eps in runs:
            key = f"epsilon {eps:g}"
            ref = reference(eps)
            expected[key] = _rounded(ref)
            try:
                out = _output(run, setup, fn, args, kwargs)
            except CallFailed as exc:
                observed[key] = exc.args[0]
                statuses.append(exc.status)
                values.append(None)
                continue
            ok, max_err, ratio = _compare(out, ref, bound(ref))
            observed[key] = _rounded(out) if out.shape == ref.shape else f"shape {list(out.shape)}"
            statuses.append("pass" if ok else "fail")
            values.append(out)
            if not ok:
                observed[key + " error"] = f"max |error| {max_err:.3g} = {ratio:.3g} x bound"
        if "error" in statuses:
            status = "error"
        elif all(s == "unsupported" for s in statuses):
            status = "unsupported"
        elif "fail" in statuses or "unsupported" in statuses:
            status = "fail"
        else:
            status = "pass"
        first, second = values if len(values) == 2 else (None, None)
        if first is not None and second is not None and first.shape == second.shape:
            observed["runs differ"] = bool(np.any(first != second))
        expected["runs differ"] = True
        records.append(rec(status, expected, observed,
                           f"{text}. Runs: keras.json epsilon {runs[0][1]:g} (default worker) and "
                           f"{runs[1][1]:g} (the KERAS_HOME-keras.json-read worker)"))
    return records


# -- scenario: image_data_format ----------------------------------------------------------------
def _image_data():
    rng = np.random.default_rng(20240607)
    x_conv = rng.uniform(-1, 1, (2, 5, 6, 3)).astype("float32")
    kernel = rng.uniform(-1, 1, (3, 3, 3, 4)).astype("float32")
    x_pool = rng.uniform(-1, 1, (2, 6, 6, 3)).astype("float32")
    return x_conv, kernel, x_pool


def conv_reference(x_nhwc, kernel) -> tuple[np.ndarray, np.ndarray]:
    """Valid cross-correlation in float64, and the same with |x| and |w| (for the bound)."""
    x, w = np.asarray(x_nhwc, "float64"), np.asarray(kernel, "float64")
    kh, kw = w.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    # windows: (N, H', W', C, kh, kw)
    out = np.einsum("nhwcij,ijco->nhwo", windows, w)
    magnitude = np.einsum("nhwcij,ijco->nhwo", np.abs(windows), np.abs(w))
    return out, magnitude


def pool_reference(x_nhwc, mode: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x_nhwc, "float64")
    n, h, w, c = x.shape
    blocks = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    if mode == "max":
        return blocks.max(axis=(2, 4)), np.zeros((n, h // 2, w // 2, c))
    return blocks.mean(axis=(2, 4)), np.abs(blocks).mean(axis=(2, 4))


def _nchw(x):
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


def _nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


def scenario_image_data_format(run: TargetRun) -> list[dict]:
    target = run.target
    calls = _calls(target)
    x_conv, kernel, x_pool = _image_data()
    conv_ref, conv_mag = conv_reference(x_conv, kernel)
    k = kernel.shape[0] * kernel.shape[1] * kernel.shape[2]
    conv_bound = 2 * k * U32 * conv_mag + 2 * TINY32
    conv_text = (f"|channels_first result, transposed - channels_last result| <= 2 k u sum|x||w| "
                 f"(k = kh kw C_in = {k}, u = 2^-24: two summation orders, Higham's gamma_k); "
                 "the distance to a float64 cross-correlation is shown for information")
    checks = [("image_data_format/conv2d", calls["conv"], [x_conv, kernel],
               [_nchw(x_conv), kernel], lambda fmt: _conv_kwargs(target, fmt),
               conv_ref, conv_bound, "default", "default", conv_text)]
    for mode, name, fn in (("max", "max_pool", calls["max_pool"]),
                           ("avg", "avg_pool", calls["avg_pool"])):
        ref, mag = pool_reference(x_pool, mode)
        p = 4
        bound = (2 * (p + 1) * U32 * mag + 2 * TINY32) if mode == "avg" else np.zeros_like(ref)
        text = ("exact: max pooling picks elements, E = 0" if mode == "max" else
                f"|difference| <= 2 (p + 1) u mean|x| over each window (p = {p}, u = 2^-24)")
        checks.append((f"image_data_format/{name}", fn, [x_pool], [_nchw(x_pool)],
                       (lambda fmt, mode=mode: _pool_kwargs(target, mode, fmt)),
                       ref, bound, "default", "default", text))
    # the format from keras.json: no data_format argument; the default worker has
    # channels_last in keras.json, the json-read worker channels_first
    checks.append(("image_data_format/conv2d-format-from-keras.json", calls["conv"],
                   [x_conv, kernel], [_nchw(x_conv), kernel],
                   lambda fmt: _conv_kwargs(target, None), conv_ref, conv_bound,
                   "default", "json-read",
                   conv_text + "; data_format not passed: channels_last from the default "
                   "worker's keras.json, channels_first from the json-read worker's"))

    records = []
    for (check, fn, args_last, args_first, kwargs, ref, bound, setup_last, setup_first,
         text) in checks:
        rec = lambda *a, **kw: make_record(target.id, "image_data_format", check, *a, **kw)
        try:
            params = [1] if len(args_last) == 2 else []  # the conv kernel
            last = _output(run, setup_last, fn, args_last, kwargs("channels_last"), params)
            first = _output(run, setup_first, fn, args_first, kwargs("channels_first"), params)
        except CallFailed as exc:
            records.append(rec(exc.status, "transposed-equal results", exc.args[0], text))
            continue
        expected = {"channels_last shape": list(ref.shape),
                    "channels_first shape": list(_nchw(ref).shape),
                    "max |first^T - last|": f"<= {float(bound.max()):.3g}"}
        observed = {"channels_last shape": list(last.shape),
                    "channels_first shape": list(first.shape)}
        if list(first.shape) != list(_nchw(ref).shape) or list(last.shape) != list(ref.shape):
            records.append(rec("fail", expected, observed, text))
            continue
        first_t = _nhwc(first).astype("float64")
        ok_pair, pair_err, pair_ratio = _compare(first_t, last.astype("float64"), bound)
        last_err = _compare(last, ref, bound)[1]
        first_err = _compare(first_t, ref, bound)[1]
        observed["max |first^T - last|"] = f"{pair_err:.3g} ({pair_ratio:.3g} x bound)"
        # For information only: the op's own correctness is the nn suite's business
        # (Keras 2 on Theano convolves with a flipped kernel, by design).
        observed["max |error| vs float64 reference (information)"] = {
            "channels_last": f"{last_err:.3g}", "channels_first": f"{first_err:.3g}"}
        records.append(rec("pass" if ok_pair else "fail", expected, observed, text))
    return records


SCENARIO_FUNCTIONS = {
    "precedence": scenario_precedence,
    "floatx": scenario_floatx,
    "runtime": scenario_runtime,
    "epsilon": scenario_epsilon,
    "image_data_format": scenario_image_data_format,
}


# -- the suite -------------------------------------------------------------------------------
class TargetBroken(Exception):
    """The target cannot start at all (its default setup fails): nothing to check."""


class ConfigSuite:
    """Runs scenarios target by target; keeps only the current target's workers alive.

    `writer` (a store.ResultsWriter) receives each record as kind ``config`` as soon as
    its scenario is done, so an interrupted run keeps every finished check.
    `prefetch` runs the scenarios of up to `parallel` targets at once in the
    background (each in its own TargetRun, closed when done); `run` then hands out
    their records in the order asked. With `niceness` > 0 the background workers run
    under `nice`: the pytest plugin starts these checks at the beginning of a run, beside
    the op cases, and they take only the cores the op cases leave idle.
    """

    def __init__(self, targets: list[Target], pythons: dict[str, str], workdir: Path, *,
                 registry=(), floatx=FLOATX, writer=None, parallel: int = 1,
                 niceness: int = 0):
        self.targets = {t.id: t for t in targets}
        self.pythons = pythons
        self.workdir = Path(workdir)
        self.registry = list(registry or [])
        self.floatx = [f for f in FLOATX if f in floatx]
        self.writer = writer
        self.niceness = niceness
        self.current: TargetRun | None = None
        self._threads = ThreadPoolExecutor(max_workers=max(1, parallel))
        self._prefetched: dict[tuple[str, str], Future] = {}
        self._closing = False

    def prefetch(self, cases: list[tuple[str, str]]) -> None:
        """Start computing these (target id, scenario) cases in the background."""
        by_target: dict[str, list[str]] = {}
        for target_id, scenario in cases:
            by_target.setdefault(target_id, []).append(scenario)
        for target_id, scenarios in by_target.items():
            futures = {s: Future() for s in scenarios}
            self._prefetched.update({(target_id, s): f for s, f in futures.items()})
            self._threads.submit(self._compute_target, target_id, futures)

    def _compute_target(self, target_id: str, futures: dict[str, Future]) -> None:
        try:
            target_run = self._new_run(target_id)
        except TargetBroken as exc:
            for future in futures.values():
                future.set_exception(exc)
            return
        try:
            for scenario, future in futures.items():
                if self._closing:  # the run ends: don't start what nobody will read
                    future.cancel()
                    continue
                try:
                    future.set_result(self._compute(target_run, scenario))
                except Exception as exc:  # TargetBroken, or a harness error: run() raises it
                    future.set_exception(exc)
        finally:
            target_run.close()

    def _new_run(self, target_id: str) -> TargetRun:
        python = self.pythons.get(target_id)
        if python is None:
            raise TargetBroken("no interpreter (environment not provisioned)")
        return TargetRun(self.targets[target_id], python, self.workdir, self.niceness)

    def target_run(self, target_id: str) -> TargetRun:
        if self.current is not None and self.current.target.id != target_id:
            self.current.close()
            self.current = None
        if self.current is None:
            self.current = self._new_run(target_id)
        return self.current

    def _compute(self, target_run: TargetRun, scenario: str) -> list[dict]:
        try:
            target_run.worker("default")
        except SetupFailed as exc:
            raise TargetBroken(str(exc)) from None
        function = SCENARIO_FUNCTIONS[scenario]
        if scenario == "floatx":
            records = function(target_run, self.floatx)
        else:
            records = function(target_run)
        target_run.release()
        records = [known.mark(r, self.registry, FAILING) for r in records]
        if self.writer is not None:
            for record in records:
                self.writer.write("config", record)
        return records

    def run(self, target_id: str, scenario: str) -> list[dict]:
        """The records of one scenario (computed now unless prefetched; written once)."""
        future = self._prefetched.pop((target_id, scenario), None)
        if future is not None:
            return future.result()
        return self._compute(self.target_run(target_id), scenario)

    def close(self) -> None:
        self._closing = True  # cases never asked for (deselected, interrupted run)
        self._threads.shutdown(wait=True, cancel_futures=True)
        if self.current is not None:
            self.current.close()
            self.current = None


def run_target(target: Target, python: str, workdir: Path, scenarios=SCENARIOS, *,
               registry=(), floatx=FLOATX) -> list[dict]:
    """Every requested scenario on one target (convenience for tests and scripts)."""
    suite = ConfigSuite([target], {target.id: python}, workdir, registry=registry, floatx=floatx)
    try:
        return [r for s in scenarios for r in suite.run(target.id, s)]
    finally:
        suite.close()


def divergent(records: list[dict]) -> list[dict]:
    """Records that fail a test: fail or error not matched by the registry."""
    return [r for r in records if r["status"] in FAILING]
