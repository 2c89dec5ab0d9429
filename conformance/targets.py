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

import json
import os
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from conformance import envs, kerasfacts, memory

FLAVORS = ("keras3", "keras2", "ops-module")
FLOATX = kerasfacts.FLOATX_VALUES  # every floatx a run can use: what keras.json accepts


@dataclass(frozen=True)
class Target:
    id: str
    flavor: str
    backend: str  # KERAS_BACKEND value, or the module name for ops-module plugins
    env: str | None = None  # name of an environment spec
    python: str | None = None  # explicit interpreter; wins over env
    extra_env: tuple[tuple[str, str], ...] = ()
    pythonpath: tuple[str, ...] = ()
    epsilon: float = kerasfacts.DEFAULT_EPSILON
    image_data_format: str = kerasfacts.DEFAULT_IMAGE_DATA_FORMAT
    needs_openmpi_shim: bool = False  # CNTK 2.7 links OpenMPI 1.10 sonames
    timeout_s: float = 120.0
    # bytes of resident memory a worker may hold (the worker is stopped above it);
    # None: the run's default (see conformance.memory)
    memory_cap: int | None = None
    opt_in: bool = False  # runs only when named (--targets), not in "all targets"

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

# Built-in targets that run a backend above under another Keras package: the Keras 2
# backend API on today's TensorFlow is the `tf_keras` package (tf-keras), so the same
# Keras 2 suites compare TensorFlow 1.15 (keras2-tensorflow) with today's TensorFlow.
# The keras2 adapter imports the package named by CONFORMANCE_KERAS_MODULE instead of
# `keras` (and switches TensorFlow 2 to graph mode first, for K.placeholder/K.function).
VARIANT_TARGETS = {
    "keras2-tf-keras": Target(id="keras2-tf-keras", flavor="keras2", backend="tensorflow",
                              env="tfkeras",
                              extra_env=(("CONFORMANCE_KERAS_MODULE", "tf_keras"),)),
    # keras3-openvino compiles each op once per signature, as model.predict does; this
    # one keeps Keras's eager path (a model compiled for every call, inputs as constants)
    "keras3-openvino-eager": Target(id="keras3-openvino-eager", flavor="keras3",
                                    backend="openvino", env="keras3",
                                    extra_env=(("CONFORMANCE_OPENVINO_EXECUTION", "eager"),),
                                    opt_in=True),
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
    tables = config.get("envs", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError("[tool.conformance.envs.<name>] must be tables (python = ..., "
                          "requirements = [...])")
    for name, table in tables.items():
        try:
            specs[name] = envs.EnvSpec(
                name=name, python=str(table["python"]),
                requirements=tuple(table.get("requirements", ())),
                bootstrap=tuple(table.get("bootstrap", ())),
                no_deps=tuple(table.get("no_deps", ())),
                description=table.get("description", ""))
        except KeyError as exc:
            raise ConfigError(f"[tool.conformance.envs.{name}] needs the key {exc}") from None
    return specs


# What each key of a [tool.conformance.targets.<id>] table holds.
_TARGET_KEYS = {"flavor": str, "backend": str, "env": str, "python": str, "env_vars": dict,
                "pythonpath": list, "epsilon": float, "image_data_format": str,
                "needs_openmpi_shim": bool, "timeout_s": float, "opt_in": bool,
                "memory_cap": object}  # bytes or a size text: checked by memory.parse_size


def _check_table(target_id: str, table) -> None:
    """Keys and value types of a target table, with where and what to write instead."""
    where = f"[tool.conformance.targets.{target_id}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table (flavor = ..., backend = ...), "
                          f"not {table!r}")
    unknown = set(table) - set(_TARGET_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; valid: {sorted(_TARGET_KEYS)}")
    for key, value in table.items():
        kind = _TARGET_KEYS[key]
        if kind is float:  # TOML writes 120 as an integer
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            fits = isinstance(value, kind)
        if not fits:
            raise ConfigError(f"{where}: {key} must be a {kind.__name__}, not {value!r}")
    if not all(isinstance(p, str) for p in table.get("pythonpath", [])):
        raise ConfigError(f"{where}: pythonpath must be a list of folders (strings)")
    if not all(isinstance(v, str) for v in table.get("env_vars", {}).values()):
        raise ConfigError(f"{where}: env_vars values must be strings")
    if table.get("timeout_s", 1) <= 0:
        raise ConfigError(f"{where}: timeout_s must be more than 0 seconds")
    if "memory_cap" in table:
        try:
            memory.parse_size(table["memory_cap"])
        except memory.CapError as exc:
            raise ConfigError(f"{where}: memory_cap {exc}") from None
    formats = kerasfacts.IMAGE_DATA_FORMATS
    if table.get("image_data_format", kerasfacts.DEFAULT_IMAGE_DATA_FORMAT) not in formats:
        raise ConfigError(f"{where}: image_data_format must be {' or '.join(formats)}")


def load_targets(config: dict, root: Path | None = None) -> dict[str, Target]:
    """Built-in targets updated by [tool.conformance.targets.<id>] tables."""
    targets = {**BUILTIN_TARGETS, **VARIANT_TARGETS}
    tables = config.get("targets", {})
    if not isinstance(tables, dict):
        raise ConfigError("[tool.conformance.targets] must be a table of target tables")
    for target_id, table in tables.items():
        _check_table(target_id, table)
        base = targets.get(target_id)
        if base is None:
            if "flavor" not in table or "backend" not in table:
                raise ConfigError(f"[tool.conformance.targets.{target_id}] is a new target: "
                                  "it needs `flavor` and `backend`")
            base = Target(id=target_id, flavor=table["flavor"], backend=table["backend"])
        updates = {k: v for k, v in table.items() if k not in ("env_vars", "pythonpath")}
        if "env_vars" in table:  # added to the target's own (keras2-tf-keras needs its one)
            updates["extra_env"] = tuple(sorted({**dict(base.extra_env),
                                                 **table["env_vars"]}.items()))
        if "pythonpath" in table:
            updates["pythonpath"] = tuple(str((root or Path.cwd()) / p) for p in table["pythonpath"])
        if "memory_cap" in table:  # "3GiB" -> bytes (checked above)
            updates["memory_cap"] = memory.parse_size(table["memory_cap"])
        target = replace(base, **updates)
        if target.flavor not in FLAVORS:
            raise ConfigError(f"target {target_id}: flavor must be one of {FLAVORS}")
        targets[target_id] = target
    return targets


def select(targets: dict[str, Target], wanted: list[str] | None) -> list[Target]:
    """Targets named in `wanted` (all but the opt-in ones when None), with a clear error
    for unknown ids."""
    if not wanted:
        return [t for t in targets.values() if not t.opt_in]
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


# -- upgrades: the environments that pin a project, built with two pins --------------
def upgrade_plan(config: dict, before: str, after: str, root: Path | None = None,
                 only_envs: list[str] | None = None) -> dict:
    """What `nox -s upgrade -- BEFORE AFTER` builds and runs: every environment that pins
    the project BEFORE names (or those of `only_envs`), once with each requirement, and
    the targets that run in those environments (targets with an explicit `python` do
    not: nothing rebuilds them)."""
    project = envs.project_name(before)
    if envs.project_name(after) != project:
        raise ConfigError(f"{before!r} and {after!r} name different projects ({project}, "
                          f"{envs.project_name(after)}): give two pins of one project, e.g. "
                          "tensorflow-cpu==2.20.0 tensorflow-cpu==2.21.0")
    specs = load_envs(config)
    unknown = [name for name in only_envs or () if name not in specs]
    if unknown:
        raise ConfigError(f"unknown environment(s) {', '.join(unknown)}; the environments and "
                          f"what they install:\n{envs.describe(specs.values())}")
    candidates = [specs[name] for name in only_envs] if only_envs else list(specs.values())
    affected = envs.containing(candidates, before)
    if not affected:
        raise ConfigError(f"no environment{' of ' + ', '.join(only_envs) if only_envs else ''} "
                          f"installs {project!r}; the environments and what they install:\n"
                          f"{envs.describe(specs.values())}")
    names = [spec.name for spec in affected]
    chosen = [t.id for t in load_targets(config, root).values()
              if t.env in names and not t.python]
    if not chosen:
        raise ConfigError(f"no target runs in environment(s) {', '.join(names)}")
    plan = {"project": project, "before": before, "after": after, "targets": chosen, "envs": {}}
    for spec in affected:
        sides = {"current": spec, "before": envs.with_requirement(spec, before),
                 "after": envs.with_requirement(spec, after)}
        plan["envs"][spec.name] = {
            side: {"digest": s.digest, "path": str(envs.env_dir(s)),
                   "provisioned": envs.is_provisioned(s), "table": _env_table(s)}
            for side, s in sides.items()}
    return plan


def _env_table(spec: envs.EnvSpec) -> dict:
    table = {"python": spec.python, "requirements": list(spec.requirements)}
    if spec.bootstrap:
        table["bootstrap"] = list(spec.bootstrap)
    if spec.no_deps:
        table["no_deps"] = list(spec.no_deps)
    if spec.description:
        table["description"] = spec.description
    return table


def write_upgrade_projects(config: dict, plan: dict, out: Path, root: Path | None = None) -> dict:
    """OUT/before and OUT/after: project folders whose pyproject.toml is the project's
    [tool.conformance] with the affected environments re-pinned (so `conformance
    --project OUT/before ...` runs the targets on the old pin), plus OUT/plan.json."""
    root = Path(root or Path.cwd())
    out = Path(out)
    folders = {}
    for side in ("before", "after"):
        copy = {key: value for key, value in config.items() if key not in ("envs", "targets")}
        copy["envs"] = {**config.get("envs", {}),
                        **{name: sides[side]["table"] for name, sides in plan["envs"].items()}}
        for target_id, table in config.get("targets", {}).items():
            table = dict(table)
            if "pythonpath" in table:  # relative to the project, which moves
                table["pythonpath"] = [str(root / p) for p in table["pythonpath"]]
            copy.setdefault("targets", {})[target_id] = table
        folder = out / side
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pyproject.toml").write_text(
            f"# generated for an upgrade check: {plan['before']} -> {plan['after']}\n"
            + dump_toml(copy, ("tool", "conformance")))
        known = root / "known_divergences.toml"
        if known.is_file():
            (folder / known.name).write_text(known.read_text())
        folders[side] = str(folder)
    (out / "plan.json").write_text(json.dumps({**plan, "projects": folders}, indent=1))
    return folders


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value).lower() if isinstance(value, float) else str(value)  # inf, nan
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"cannot write {value!r} to TOML")


def dump_toml(table: dict, path: tuple[str, ...] = ()) -> str:
    """TOML text for nested dicts (what tomllib reads back as `table` under `path`)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
             if not isinstance(v, dict)]
    text = ""
    if lines or not table:
        header = f"[{'.'.join(_toml_key(p) for p in path)}]\n" if path else ""
        text = header + "\n".join(lines) + ("\n" if lines else "") + "\n"
    for key, value in table.items():
        if isinstance(value, dict):
            text += dump_toml(value, path + (key,))
    return text


def main(argv: list[str] | None = None) -> int:
    """`python -m conformance.targets upgrade-plan BEFORE AFTER --out DIR`: the step of
    `nox -s upgrade` that finds the environments to re-pin and writes their projects."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m conformance.targets")
    commands = parser.add_subparsers(dest="command", required=True)
    plan_ = commands.add_parser("upgrade-plan", help="environments and targets that an "
                                "upgrade from BEFORE to AFTER touches; writes OUT/before, "
                                "OUT/after (project folders) and OUT/plan.json")
    plan_.add_argument("before", help="requirement today, e.g. tensorflow-cpu==2.20.0")
    plan_.add_argument("after", help="requirement after the upgrade, e.g. tensorflow-cpu==2.21.0")
    plan_.add_argument("--out", required=True, help="folder for the generated projects")
    plan_.add_argument("--project", default=".", help="folder holding pyproject.toml")
    plan_.add_argument("--envs", help="comma-separated environments to re-pin (default: "
                       "every one that installs the project)")
    args = parser.parse_args(argv)
    root = Path(args.project).resolve()
    only = [name for name in (args.envs or "").split(",") if name] or None
    try:
        config = load_project_config(root)
        plan = upgrade_plan(config, args.before, args.after, root, only)
        folders = write_upgrade_projects(config, plan, Path(args.out), root)
    except (ConfigError, envs.EnvError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{plan['project']}: {plan['before']} -> {plan['after']}")
    for name, sides in plan["envs"].items():
        print(f"  environment {name}: today {' '.join(sides['current']['table']['requirements'])}")
        for side in ("before", "after"):
            state = "built" if sides[side]["provisioned"] else "to build"
            print(f"    {side:<6} {sides[side]['digest']} ({state}) {sides[side]['path']}")
    print(f"  targets: {', '.join(plan['targets'])}")
    print(f"  projects: {folders['before']}, {folders['after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
