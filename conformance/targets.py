"""Targets: one backend in one environment, with the keras.json it runs under.

Built-in targets cover the eight backends that run on our machines. Users add or
override targets (and environments) in ``pyproject.toml``::

    [tool.conformance.targets.my-backend]
    flavor = "keras2"                      # keras3 | keras2 | ops-module
    backend = "my_package.my_module"       # the KERAS_BACKEND value
    env = "keras2"                         # a built-in or [tool.conformance.envs.*] name
    pythonpath = ["plugins"]               # folders put on the worker's sys.path
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from conformance import envs

FLAVORS = ("keras3", "keras2", "ops-module")
FLOATX = ("float16", "float32", "float64")


@dataclass(frozen=True)
class Target:
    id: str
    flavor: str
    backend: str  # KERAS_BACKEND value, or the module name for ops-module plugins
    env: str | None = None  # name of an environment spec
    python: str | None = None  # explicit interpreter; wins over env
    extra_env: tuple[tuple[str, str], ...] = ()
    pythonpath: tuple[str, ...] = ()
    epsilon: float = 1e-7
    image_data_format: str = "channels_last"
    needs_openmpi_shim: bool = False  # CNTK 2.7 links OpenMPI 1.10 sonames
    timeout_s: float = 120.0

    def keras_json(self, floatx: str) -> dict:
        config = {"floatx": floatx, "epsilon": self.epsilon,
                  "image_data_format": self.image_data_format}
        if self.flavor != "ops-module":
            config["backend"] = self.backend
        return config


def _keras3(backend: str) -> Target:
    return Target(id=f"keras3-{backend}", flavor="keras3", backend=backend, env="keras3")


def _keras2(backend: str, **extra) -> Target:
    return Target(id=f"keras2-{backend}", flavor="keras2", backend=backend, env="keras2",
                  **extra)


BUILTIN_TARGETS = {
    t.id: t
    for t in [
        _keras3("numpy"), _keras3("jax"), _keras3("torch"), _keras3("tensorflow"),
        _keras3("openvino"),
        _keras2("tensorflow"), _keras2("theano"), _keras2("cntk", needs_openmpi_shim=True),
    ]
}


class ConfigError(Exception):
    """pyproject.toml's [tool.conformance] is not valid; the message says where."""


def load_project_config(root: Path | None = None) -> dict:
    path = (root or Path.cwd()) / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data.get("tool", {}).get("conformance", {})


def load_envs(config: dict) -> dict[str, envs.EnvSpec]:
    specs = dict(envs.BUILTIN_ENVS)
    for name, table in config.get("envs", {}).items():
        try:
            specs[name] = envs.EnvSpec(
                name=name, python=str(table["python"]),
                requirements=tuple(table.get("requirements", ())),
                bootstrap=tuple(table.get("bootstrap", ())),
                description=table.get("description", ""))
        except KeyError as exc:
            raise ConfigError(f"[tool.conformance.envs.{name}] needs the key {exc}") from None
    return specs


_TARGET_KEYS = {"flavor", "backend", "env", "python", "env_vars", "pythonpath", "epsilon",
                "image_data_format", "needs_openmpi_shim", "timeout_s"}


def load_targets(config: dict, root: Path | None = None) -> dict[str, Target]:
    """Built-in targets updated by [tool.conformance.targets.<id>] tables."""
    targets = dict(BUILTIN_TARGETS)
    for target_id, table in config.get("targets", {}).items():
        unknown = set(table) - _TARGET_KEYS
        if unknown:
            raise ConfigError(f"[tool.conformance.targets.{target_id}]: unknown keys "
                              f"{sorted(unknown)}; valid: {sorted(_TARGET_KEYS)}")
        base = targets.get(target_id)
        if base is None:
            if "flavor" not in table or "backend" not in table:
                raise ConfigError(f"[tool.conformance.targets.{target_id}] is a new target: "
                                  "it needs `flavor` and `backend`")
            base = Target(id=target_id, flavor=table["flavor"], backend=table["backend"])
        updates = {k: v for k, v in table.items() if k in _TARGET_KEYS - {"env_vars", "pythonpath"}}
        if "env_vars" in table:
            updates["extra_env"] = tuple(sorted(table["env_vars"].items()))
        if "pythonpath" in table:
            updates["pythonpath"] = tuple(str((root or Path.cwd()) / p) for p in table["pythonpath"])
        target = replace(base, **updates)
        if target.flavor not in FLAVORS:
            raise ConfigError(f"target {target_id}: flavor must be one of {FLAVORS}")
        targets[target_id] = target
    return targets


def select(targets: dict[str, Target], wanted: list[str] | None) -> list[Target]:
    """Targets named in `wanted` (all when None), with a clear error for unknown ids."""
    if not wanted:
        return list(targets.values())
    unknown = [w for w in wanted if w not in targets]
    if unknown:
        raise ConfigError(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(targets)}")
    return [targets[w] for w in wanted]


def interpreter(target: Target, specs: dict[str, envs.EnvSpec]) -> tuple[str | None, str]:
    """(python path or None, reason when None) for a target."""
    if target.python:
        if os.access(target.python, os.X_OK):
            return target.python, ""
        return None, f"interpreter {target.python} does not exist"
    spec = specs.get(target.env or "")
    if spec is None:
        return None, f"target names unknown environment {target.env!r}"
    if not envs.is_provisioned(spec):
        return None, "environment not provisioned"
    return str(envs.env_python(spec)), ""
