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
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class EnvSpec:
    name: str
    python: str  # "3.11", "3.6" or an interpreter path
    requirements: tuple[str, ...]
    bootstrap: tuple[str, ...] = ()  # installed first (old pips cannot read new wheels)
    description: str = ""
    # installed last with `pip install --no-deps`: packages whose declared dependencies
    # name a distribution we replace (tf-keras requires `tensorflow`; we give it
    # `tensorflow-cpu`, which provides the same `tensorflow` module)
    no_deps: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        parts = [self.python, self.bootstrap, self.requirements]
        if self.no_deps:  # only when used: existing environments keep their folder
            parts.append(self.no_deps)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12]

    def pins(self) -> tuple[str, ...]:
        """Every requirement the environment installs (bootstrap excluded)."""
        return self.requirements + self.no_deps


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
    "tfkeras": EnvSpec(
        name="tfkeras",
        python="3.11",
        # tf-keras 2.21.0 declares `tensorflow>=2.21,<2.22`: the full `tensorflow`
        # distribution, a separate large download that our local wheel index lacks. The
        # same `tensorflow` module comes with tensorflow-cpu 2.21.0, which the keras3
        # environment already uses and the local index holds, so tensorflow-cpu is
        # installed normally and tf-keras with --no-deps (tensorflow is its only
        # dependency). Verified: K.placeholder / K.function work once the adapter turns
        # eager execution off.
        requirements=("tensorflow-cpu==2.21.0", "numpy<2.5"),
        no_deps=("tf-keras==2.21.0",),
        description="The Keras 2 API on today's TensorFlow: tf-keras 2.21 on tensorflow-cpu 2.21",
    ),
}

# -- requirements: which environment installs a project, with another pin ----------
_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?(.*)$")


def _split_requirement(requirement: str) -> tuple[str, str, str]:
    """'jax[cpu]==0.10.2' -> ('jax', '[cpu]', '==0.10.2')."""
    match = _REQUIREMENT.match(requirement)
    if not match:
        raise EnvError(f"{requirement!r} is not a requirement (expected e.g. numpy==2.3.5)")
    name, extras, rest = match.groups()
    return name, extras or "", rest.strip()


def project_name(requirement: str) -> str:
    """The normalised (PEP 503) project name: 'TensorFlow_CPU==2.20' -> 'tensorflow-cpu'."""
    return re.sub(r"[-_.]+", "-", _split_requirement(requirement)[0]).lower()


def installs(spec: EnvSpec, requirement: str) -> bool:
    """Whether the environment pins the project that `requirement` names."""
    wanted = project_name(requirement)
    return any(project_name(r) == wanted for r in spec.pins())


def with_requirement(spec: EnvSpec, requirement: str) -> EnvSpec:
    """`spec` with its requirement on the same project replaced by `requirement`.

    Names compare normalised (tensorflow_cpu == TensorFlow-CPU) and the environment's
    spelling is kept, so re-pinning today's version gives today's spec (and digest)
    back. Extras of the old requirement stay when the new one names none
    (`jax==0.10.3` in an environment with `jax[cpu]==0.10.2` gives `jax[cpu]==0.10.3`).
    Any other pin has another digest: it builds (and caches) its own environment beside
    the original."""
    wanted = project_name(requirement)
    _, new_extras, new_rest = _split_requirement(requirement)

    def swap(pins: tuple[str, ...]) -> tuple[str, ...]:
        swapped = []
        for pin in pins:
            if project_name(pin) == wanted:
                name, extras, _ = _split_requirement(pin)
                pin = name + (new_extras or extras) + new_rest
            swapped.append(pin)
        return tuple(swapped)

    if not installs(spec, requirement):
        raise EnvError(f"environment {spec.name!r} has no requirement on {wanted!r}; it "
                       f"installs {', '.join(spec.pins())}")
    return replace(spec, requirements=swap(spec.requirements), no_deps=swap(spec.no_deps))


def containing(specs, requirement: str) -> list[EnvSpec]:
    """The environments (of `specs`) that pin the project `requirement` names."""
    return [spec for spec in specs if installs(spec, requirement)]


def describe(specs) -> str:
    """One line per environment: name, python, what it installs (for error messages)."""
    return "\n".join(f"  {s.name} (python {s.python}): {', '.join(s.pins())}" for s in specs)


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
    if spec.no_deps:
        log(f"{spec.name}: pip install --no-deps {' '.join(spec.no_deps)}")
        _check(pip + ["--no-deps"] + list(spec.no_deps), spec)
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
                     "requirements": list(spec.requirements), "no_deps": list(spec.no_deps)})
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
