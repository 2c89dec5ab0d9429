"""Scenario precedence: where a target's configuration comes from.

KERAS_BACKEND beats keras.json's "backend"; the keras.json in KERAS_HOME is the one
read; keras.json's backend is used when KERAS_BACKEND is unset; a missing keras.json
is created with the defaults in KERAS_HOME and nowhere else; the "Using ... backend"
line where the flavor prints it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from conformance import kerasfacts
from conformance.configsuite.processes import SetupFailed, TargetRun, section
from conformance.configsuite.records import first_lines, make_record
from conformance.configsuite.setups import DISTINCT_EPSILON, other_backend

NO_ANSWER = "worker did not start or answer"


def scenario_precedence(run: TargetRun) -> list[dict]:
    target = run.target
    rec = lambda check, *a, **k: make_record(target.id, "precedence", check, *a, **k)
    if target.flavor == "ops-module":
        return [rec("precedence", "unsupported",
                    detail="an ops-module plugin reads no keras.json and no KERAS_BACKEND")]
    return (_json_read_checks(run, rec) + [_json_backend_check(run, rec)]
            + _missing_json_checks(run, rec) + [_using_line_check(run, rec)])


def _json_read_checks(run: TargetRun, rec) -> list[dict]:
    """KERAS_BACKEND over keras.json, and the keras.json in KERAS_HOME is read."""
    target = run.target
    checks = ("precedence/KERAS_BACKEND-over-keras.json", "precedence/KERAS_HOME-keras.json-read")
    try:
        reply = run.probe("json-read", "settings", "files")
        settings, files = section(reply, "settings"), section(reply, "files")
    except SetupFailed as exc:
        return [rec(check, "error", None, NO_ANSWER, first_lines(exc)) for check in checks]
    home = run.workers["json-read"].keras_home
    backend = rec(
        checks[0], "pass" if settings.get("backend") == target.backend else "fail",
        {"backend()": target.backend}, {"backend()": settings.get("backend")},
        f"keras.json says \"backend\": \"{other_backend(target)}\", "
        f"KERAS_BACKEND={target.backend}")
    expected = {"epsilon()": DISTINCT_EPSILON, "image_data_format()": "channels_first"}
    observed = {"epsilon()": settings.get("epsilon"),
                "image_data_format()": settings.get("image_data_format")}
    if files.get("config_path") is not None:
        # the path only where the Keras exposes it (Keras 2.3.1's private _config_path;
        # tf_keras has none): what the backend reports above is the evidence everywhere
        expected["config path"] = str(home / "keras.json")
        observed["config path"] = files["config_path"]
    read = rec(checks[1], "pass" if observed == expected else "fail", expected, observed,
               f"KERAS_HOME={home} holds a keras.json with epsilon {DISTINCT_EPSILON} and "
               "channels_first; the user's ~/.keras is never read")
    return [backend, read]


def _json_backend_check(run: TargetRun, rec) -> dict:
    """keras.json's backend when KERAS_BACKEND is unset."""
    target = run.target
    check = "precedence/keras.json-backend-without-KERAS_BACKEND"
    try:
        settings = section(run.probe("json-backend", "settings"), "settings")
    except SetupFailed as exc:
        return rec(check, "error", None, NO_ANSWER, first_lines(exc))
    return rec(check, "pass" if settings.get("backend") == target.backend else "fail",
               {"backend()": target.backend}, {"backend()": settings.get("backend")},
               f"KERAS_BACKEND unset; keras.json says \"backend\": \"{target.backend}\"")


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


def _read_keras_json(path: Path):
    """The parsed file, its text where it is not JSON, None where it does not exist."""
    if not path.is_file():
        return None
    text = path.read_text(errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _missing_json_checks(run: TargetRun, rec) -> list[dict]:
    """A missing keras.json is created with the defaults, in KERAS_HOME only."""
    created = "precedence/missing-keras.json-created"
    outside = "precedence/keras.json-written-only-in-KERAS_HOME"
    try:
        worker = run.worker("missing")
        settings = section(run.probe("missing", "settings", "files"), "settings")
    except SetupFailed as exc:
        return [rec(check, "error", None, NO_ANSWER, first_lines(exc))
                for check in (created, outside)]
    home = worker.keras_home
    content = _read_keras_json(home / "keras.json")
    # in effect: the defaults, but the backend KERAS_BACKEND names
    in_effect_expected = {"backend": run.target.backend, "floatx": kerasfacts.DEFAULT_FLOATX,
                          "epsilon": kerasfacts.DEFAULT_EPSILON,
                          "image_data_format": kerasfacts.DEFAULT_IMAGE_DATA_FORMAT}
    in_effect = {k: settings.get(k) for k in in_effect_expected}
    expected = {"KERAS_HOME/keras.json": kerasfacts.keras_json_defaults(),
                "in effect": in_effect_expected}
    observed = {"KERAS_HOME/keras.json": content if content is not None else "(not created)",
                "in effect": in_effect}
    records = [rec(created, "pass" if observed == expected else "fail", expected, observed,
                   f"KERAS_HOME={home} started empty. Both Keras 2.3.1 and Keras 3 write the file "
                   "before applying KERAS_BACKEND, so it names the default backend "
                   f"\"{kerasfacts.DEFAULT_BACKEND}\" whatever KERAS_BACKEND says")]
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


def _using_line_check(run: TargetRun, rec) -> dict:
    """The "Using ... backend" line: Keras 2 prints it, Keras 3 does not."""
    target = run.target
    check = "precedence/using-line"
    if target.flavor == "keras2":
        expected = {"stderr during import keras": kerasfacts.keras2_using_line(target.backend)}
        where = "Keras 2 writes it to sys.stderr while importing keras.backend"
    else:
        expected = {"stderr during import keras": None}
        where = "Keras 3 prints no backend line"
    try:
        info = run.worker("default").info or {}
    except SetupFailed as exc:
        return rec(check, "error", expected, "worker did not start", first_lines(exc))
    observed = {"stderr during import keras": info.get("using_line")}
    return rec(check, "pass" if observed == expected else "fail", expected, observed, where)
