"""What a baseline records of the versions: harness, each target's worker info and
environment, `pip freeze` of each interpreter; and what changed between two records."""
from __future__ import annotations

import json
import os
import platform
import subprocess

import numpy as np

from conformance import __version__, envs

# worker info keys that describe the run, not the versions
_VOLATILE_INFO = {"keras_home", "floatx", "status"}

_FREEZE_CACHE: dict = {}


def pip_freeze(python: str) -> dict:
    """`python -m pip freeze --all` of an interpreter: {"packages": [...]} or {"error": ...}."""
    if python in _FREEZE_CACHE:
        return _FREEZE_CACHE[python]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_REQUIRE_VIRTUALENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1")
    try:
        done = subprocess.run([python, "-m", "pip", "freeze", "--all"], capture_output=True,
                              text=True, timeout=300, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    else:
        if done.returncode == 0:
            result = {"packages": sorted(line.strip() for line in done.stdout.splitlines()
                                         if line.strip() and not line.startswith("#"))}
        else:
            result = {"error": (done.stderr.strip().splitlines() or ["pip freeze failed"])[-1]}
    _FREEZE_CACHE[python] = result
    return result


def collect_versions(targets: dict, pythons: dict, replay_, specs: dict,
                     missing: list | None = None) -> dict:
    """Per target: interpreter, worker info per floatx, environment spec, pip freeze."""
    versions = {}
    for tid, target in targets.items():
        entry = {"flavor": target.flavor, "backend": target.backend, "env": target.env,
                 "interpreter": pythons.get(tid)}
        if tid in replay_.infos:
            entry["info"] = replay_.infos[tid]
        if tid in replay_.broken:
            entry["broken"] = replay_.broken[tid]
        spec = specs.get(target.env or "")
        if spec is not None and not target.python:
            marker = envs.env_dir(spec) / "conformance-env.json"
            entry["environment"] = {"name": spec.name, "digest": spec.digest,
                                    "python": spec.python, "requirements": list(spec.requirements),
                                    "path": str(envs.env_dir(spec)),
                                    "marker": json.loads(marker.read_text()) if marker.is_file() else None}
        if pythons.get(tid):
            entry["pip_freeze"] = pip_freeze(pythons[tid])
        versions[tid] = entry
    for status in missing or []:
        versions.setdefault(status.id, {"flavor": status.flavor, "backend": status.backend,
                                        "status": status.status, "reason": status.reason,
                                        "fix": status.fix})
    return versions


def harness_versions() -> dict:
    import hypothesis

    return {"harness": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "hypothesis": hypothesis.__version__}

def _package_map(freeze: dict | None) -> dict:
    packages = {}
    for line in (freeze or {}).get("packages") or []:
        for separator in ("===", "==", " @ "):
            if separator in line:
                name, version = line.split(separator, 1)
                packages[name.strip().lower().replace("_", "-")] = version.strip()
                break
        else:
            packages[line.strip().lower()] = ""
    return packages


def version_changes(old: dict, new: dict) -> dict:
    """Per target: changed worker-info fields, interpreter/environment, package diffs."""
    changes = {}
    for tid in sorted(set(old) | set(new)):
        before, after = old.get(tid) or {}, new.get(tid) or {}
        change = {"info": [], "packages": {"added": [], "removed": [], "changed": []}}
        first = lambda entry: next(iter((entry.get("info") or {}).values()), {}) or {}
        info_old, info_new = first(before), first(after)
        for key in sorted(set(info_old) | set(info_new)):
            if key in _VOLATILE_INFO:
                continue
            if info_old.get(key) != info_new.get(key):
                change["info"].append({"key": key, "old": info_old.get(key),
                                       "new": info_new.get(key)})
        for key in ("interpreter", "backend", "flavor"):
            if before.get(key) != after.get(key) and not any(
                    c["key"] == key for c in change["info"]):
                change["info"].append({"key": key, "old": before.get(key), "new": after.get(key)})
        env_old = (before.get("environment") or {}).get("digest")
        env_new = (after.get("environment") or {}).get("digest")
        if env_old != env_new:
            change["info"].append({"key": "environment", "old": env_old, "new": env_new})
        p_old = _package_map(before.get("pip_freeze"))
        p_new = _package_map(after.get("pip_freeze"))
        packages = change["packages"]
        packages["added"] = [{"name": n, "new": p_new[n]} for n in sorted(set(p_new) - set(p_old))]
        packages["removed"] = [{"name": n, "old": p_old[n]} for n in sorted(set(p_old) - set(p_new))]
        packages["changed"] = [{"name": n, "old": p_old[n], "new": p_new[n]}
                               for n in sorted(set(p_old) & set(p_new)) if p_old[n] != p_new[n]]
        for side, entry in (("baseline", before), ("today", after)):
            error = (entry.get("pip_freeze") or {}).get("error")
            if error:
                change.setdefault("notes", []).append(f"pip freeze failed ({side}): {error}")
        if not before:
            change.setdefault("notes", []).append("not in the baseline")
        if not after:
            change.setdefault("notes", []).append("not run today")
        change["changed"] = bool(change["info"] or any(packages.values()))
        changes[tid] = change
    return changes
