"""Target environments: specification, content-hashed cache, sync / list / clean.

An environment is a virtualenv built from a base interpreter plus pinned
requirements. Its folder name carries a hash of the specification, so changing a
pin builds a new environment and a second run with the same pins reuses the old one.
Environments live outside the repository, in ``$CONFORMANCE_CACHE`` (default
``$XDG_CACHE_HOME/keras-conformance`` or ``~/.cache/keras-conformance``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class EnvSpec:
    name: str
    python: str  # "3.11", "3.6" or an interpreter path
    requirements: tuple[str, ...]
    bootstrap: tuple[str, ...] = ()  # installed first (old pips cannot read new wheels)
    description: str = ""

    @property
    def digest(self) -> str:
        payload = json.dumps([self.python, self.bootstrap, self.requirements])
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


BUILTIN_ENVS = {
    "keras3": EnvSpec(
        name="keras3",
        python="3.11",
        # torch pinned: an unpinned torch pulls a multi-GB CUDA build.
        requirements=("keras==3.15.1", "jax[cpu]==0.10.2", "torch==2.13.0",
                      "tensorflow-cpu==2.21.0", "openvino==2026.4.1", "numpy<2.5"),
        description="Keras 3 with numpy, jax, torch, tensorflow and openvino backends",
    ),
    "keras2": EnvSpec(
        name="keras2",
        python="3.6",
        # pip 18 (bundled with 3.6) cannot see tensorflow 1.15's manylinux2010 wheels.
        bootstrap=("pip<22",),
        requirements=("keras==2.3.1", "theano==1.0.5", "cntk==2.7", "tensorflow==1.15.5",
                      "numpy<1.19", "h5py<3", "scipy<1.6"),
        description="Keras 2.3.1 with TensorFlow 1.15, Theano 1.0.5 and CNTK 2.7",
    ),
}

# Environment variables that name a base interpreter explicitly.
PYTHON_OVERRIDE_VARS = {"3.6": "CONFORMANCE_PYTHON36", "3.11": "CONFORMANCE_PYTHON311"}


class EnvError(Exception):
    """An environment cannot be built or used; the message says how to fix it."""


def cache_root() -> Path:
    if os.environ.get("CONFORMANCE_CACHE"):
        return Path(os.environ["CONFORMANCE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "keras-conformance"


def env_dir(spec: EnvSpec) -> Path:
    return cache_root() / "envs" / f"{spec.name}-{spec.digest}"


def env_python(spec: EnvSpec) -> Path:
    return env_dir(spec) / "bin" / "python"


def is_provisioned(spec: EnvSpec) -> bool:
    return (env_dir(spec) / "conformance-env.json").is_file()


def base_interpreter(version: str) -> str:
    """Find the interpreter for `version`: explicit path, env var, pyenv, PATH."""
    if os.sep in version:
        if not os.access(version, os.X_OK):
            raise EnvError(f"interpreter {version} does not exist or is not executable")
        return version
    override = os.environ.get(PYTHON_OVERRIDE_VARS.get(version, ""), "")
    if override:
        return base_interpreter(override)
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    for candidate in _pyenv_candidates(version) + [shutil.which(f"python{version}")]:
        if candidate and _runs(candidate):
            return candidate
    var = PYTHON_OVERRIDE_VARS.get(version, "CONFORMANCE_PYTHON")
    raise EnvError(f"no Python {version} interpreter found: install it with "
                   f"`pyenv install {version}` or set {var}=/path/to/python{version}")


def _pyenv_candidates(version: str) -> list[str]:
    pyenv = shutil.which("pyenv")
    if not pyenv:
        return []
    listing = subprocess.run([pyenv, "versions", "--bare"], capture_output=True, text=True)
    matches = [v for v in listing.stdout.split() if v == version or v.startswith(version + ".")]
    found = []
    for match in sorted(matches, reverse=True):
        prefix = subprocess.run([pyenv, "prefix", match], capture_output=True, text=True)
        if prefix.returncode == 0:
            found.append(str(Path(prefix.stdout.strip()) / "bin" / f"python{version}"))
    return found


def _runs(interpreter: str) -> bool:
    probe = subprocess.run([interpreter, "-c", "pass"], capture_output=True)
    return probe.returncode == 0


def sync(spec: EnvSpec, log=print) -> Path:
    """Create the environment unless an identical one exists; return its python."""
    if is_provisioned(spec):
        log(f"{spec.name}: up to date ({env_dir(spec)})")
        return env_python(spec)
    target = env_dir(spec)
    shutil.rmtree(target, ignore_errors=True)  # a build that died half-way
    base = base_interpreter(spec.python)
    log(f"{spec.name}: creating virtualenv with {base}")
    _check([base, "-m", "venv", str(target)], spec)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--upgrade"]
    if spec.bootstrap:
        log(f"{spec.name}: pip install {' '.join(spec.bootstrap)}")
        _check(pip + list(spec.bootstrap), spec)
    log(f"{spec.name}: pip install {' '.join(spec.requirements)} (minutes on a new machine)")
    _check(pip + list(spec.requirements), spec)
    # The marker is written last: its presence means the build finished.
    (target / "conformance-env.json").write_text(json.dumps(asdict(spec), indent=2))
    log(f"{spec.name}: ready ({target})")
    return env_python(spec)


def _check(command: list[str], spec: EnvSpec) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-15:])
        raise EnvError(f"building environment {spec.name!r} failed: {' '.join(command)}\n{tail}")


def listing(specs) -> list[dict]:
    rows = []
    for spec in specs:
        rows.append({"name": spec.name, "python": spec.python, "digest": spec.digest,
                     "path": str(env_dir(spec)), "provisioned": is_provisioned(spec),
                     "requirements": list(spec.requirements)})
    return rows


def clean(specs, everything: bool = False) -> list[Path]:
    """Remove the given environments (or every cached one, stale hashes included)."""
    root = cache_root() / "envs"
    if everything:
        doomed = [p for p in root.iterdir()] if root.is_dir() else []
    else:
        doomed = [env_dir(s) for s in specs if env_dir(s).exists()]
    for path in doomed:
        shutil.rmtree(path)
    return doomed
