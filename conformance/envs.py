"""Target environments: specification, content-hashed cache, sync / list / clean.

An environment is a virtualenv built from a base interpreter plus pinned
requirements. Its folder name carries a hash of the specification, so changing a
pin builds a new environment and a second run with the same pins reuses the old one.
Environments live outside the repository, in ``$CONFORMANCE_CACHE`` (default
``$XDG_CACHE_HOME/keras-conformance`` or ``~/.cache/keras-conformance``).

Several processes may share that cache (two CI jobs on one machine). A build holds
the environment's lock (``<folder>.lock``) exclusively, runs hold it shared (`hold`),
so a second `sync` waits for the first and `clean` waits for both. A build writes a
manifest of the files it made (conformance.manifest), then its marker, last: a folder
without the marker is an interrupted build, one whose files differ from the manifest
is damaged; neither is used, and `sync` rebuilds both.
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

from conformance import locks, manifest


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


MARKER = "conformance-env.json"  # written last by a build: its presence means it finished


@dataclass(frozen=True)
class EnvState:
    """Whether an environment can be used, and if not, why."""

    status: str  # ready | missing | busy | interrupted | damaged
    reason: str = ""  # what is wrong, for people (empty when ready)
    checked: bool = True  # False: built before manifests existed, nothing to check against
    problems: tuple[str, ...] = ()  # damaged: one line per kind of damage

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def state(spec: EnvSpec) -> EnvState:
    """Whether the environment exists, whole: its marker, then its files against the
    manifest (0.2 s for keras3, once per process). `busy` while another process builds
    or removes it."""
    folder = env_dir(spec)
    if not folder.is_dir():
        return EnvState("missing", f"environment {spec.name} is not built ({folder})")
    if locks.held_exclusively(locks.lock_file(folder)):
        return EnvState("busy", f"another process is building or removing environment "
                                f"{spec.name} now ({locks.lock_file(folder)} is locked)")
    return _inspect(spec)


# Environments found whole in this process, as (folder, marker mtime and size): checking
# costs a stat per file, and every target of an environment asks.
_WHOLE: set[tuple] = set()


def _inspect(spec: EnvSpec, fresh: bool = False) -> EnvState:
    """state() without looking at the lock (the caller holds it). `fresh`: check the
    files even when this process found them whole before, and check environments built
    before manifests against pip's records of what it installed."""
    folder = env_dir(spec)
    marker = folder / MARKER
    try:
        stamp = marker.stat()
    except FileNotFoundError:
        if not folder.is_dir():
            return EnvState("missing", f"environment {spec.name} is not built ({folder})")
        return EnvState("interrupted", f"interrupted build: {folder} has no {MARKER}, which "
                                       "a build writes when it finishes")
    key = (str(folder), stamp.st_mtime_ns, stamp.st_size)
    if key in _WHOLE and not fresh:
        return EnvState("ready")
    try:
        recorded = json.loads(marker.read_text()).get("manifest")
    except (OSError, ValueError, AttributeError) as exc:
        return EnvState("damaged", f"environment {spec.name} is damaged: its marker {marker} "
                                   f"cannot be read ({exc})")
    if recorded:
        problems = manifest.problems(folder)
    elif fresh:
        problems = manifest.installed_problems(folder)
    else:  # built before manifests: usable as it always was (`sync` adds one)
        return EnvState("ready", checked=False)
    if problems:
        return EnvState("damaged", f"environment {spec.name} is damaged: {'; '.join(problems)}",
                        problems=tuple(problems))
    if recorded:
        _WHOLE.add(key)
    return EnvState("ready", checked=bool(recorded))


def verify(spec: EnvSpec) -> list[str]:
    """What is wrong with the environment, checked now ([] when it is whole): "12
    files missing, e.g. lib/python3.11/site-packages/keras/__init__.py", "1 file
    changed size, e.g. ...", or why it is not there at all."""
    current = _inspect(spec, fresh=True)
    return list(current.problems) or ([current.reason] if current.reason else [])


def is_provisioned(spec: EnvSpec) -> bool:
    return state(spec).ready


def hold(spec: EnvSpec) -> bool:
    """Mark the environment as used by this process until it ends: a `sync` that
    rebuilds it or a `clean` in another process waits. False when another process is
    building or removing it right now."""
    return locks.hold_shared(locks.lock_file(env_dir(spec)))


def release(spec: EnvSpec) -> None:
    """Give up `hold`."""
    locks.release_shared(locks.lock_file(env_dir(spec)))


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
    """Create the environment unless an identical whole one exists; return its python.
    While another process builds it, wait, then use what it built; rebuild one that is
    interrupted or damaged, saying why. One built before manifests is checked against
    pip's records and, whole, gets its manifest without a rebuild."""
    current = state(spec)
    if current.ready and not current.checked:
        current = _add_manifest(spec, log)
    if current.ready:
        log(f"{spec.name}: up to date ({env_dir(spec)})")
        return env_python(spec)
    with _locked(spec, log, exclusive=True):
        current = _inspect(spec, fresh=True)  # the process we waited for may have built it
        if current.ready:
            log(f"{spec.name}: built by another process meanwhile; up to date ({env_dir(spec)})")
            return env_python(spec)
        if current.status != "missing":
            log(f"{spec.name}: rebuilding: {current.reason}")
        _build(spec, log)
    return env_python(spec)


def _locked(spec: EnvSpec, log, exclusive: bool):
    """The environment's lock, held for a `with` block; says so when it must wait."""
    lock = locks.lock_file(env_dir(spec))
    return locks.locked(lock, exclusive, _waiting(log, spec.name, lock))


def _waiting(log, name: str, lock: Path):
    """What locks.locked calls before it waits: says for what."""
    def on_wait(holder: str) -> None:
        doing = "using" if holder == "shared" else "building or removing"
        log(f"{name}: waiting for another process {doing} environment {name} ({lock})")

    return on_wait


def _build(spec: EnvSpec, log) -> None:
    """Build the environment from nothing (the caller holds its lock exclusively)."""
    target = env_dir(spec)
    shutil.rmtree(target, ignore_errors=True)  # a build that died half-way, or damaged
    base = base_interpreter(spec.python)
    log(f"{spec.name}: creating virtualenv with {base}")
    _check([base, "-m", "venv", str(target)], spec)
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--upgrade"]
    if spec.bootstrap:
        log(f"{spec.name}: pip install {' '.join(spec.bootstrap)}")
        _check(pip + list(spec.bootstrap), spec)
    if spec.requirements:  # pip refuses an install of nothing
        log(f"{spec.name}: pip install {' '.join(spec.requirements)} (minutes on a new machine)")
        _check(pip + list(spec.requirements), spec)
    if spec.no_deps:
        log(f"{spec.name}: pip install --no-deps {' '.join(spec.no_deps)}")
        _check(pip + ["--no-deps"] + list(spec.no_deps), spec)
    recorded = manifest.write(target, skip=(MARKER,))
    _write_marker(spec, recorded)  # last: its presence means the build finished
    log(f"{spec.name}: ready ({target}; {recorded['files']} files recorded to find damage)")


def _write_marker(spec: EnvSpec, recorded: dict) -> None:
    """The marker (the spec and a summary of the manifest), replaced whole."""
    marker = env_dir(spec) / MARKER
    tmp = marker.with_name(f"{MARKER}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**asdict(spec), "manifest": recorded}, indent=2))
    tmp.replace(marker)


def _add_manifest(spec: EnvSpec, log) -> EnvState:
    """An environment built before manifests: whole by pip's records, it gets its
    manifest (no rebuild, which takes minutes and gigabytes); else it is damaged."""
    with _locked(spec, log, exclusive=False):  # not while it is being built or removed
        current = _inspect(spec, fresh=True)
        if current.ready and not current.checked:
            recorded = manifest.write(env_dir(spec), skip=(MARKER,))
            _write_marker(spec, recorded)
            log(f"{spec.name}: built before manifests; whole by pip's records, so its "
                f"{recorded['files']} files are recorded now (no rebuild)")
            current = _inspect(spec)
    return current


def _check(command: list[str], spec: EnvSpec) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-15:])
        raise EnvError(f"building environment {spec.name!r} failed: {' '.join(command)}\n{tail}")


def listing(specs) -> list[dict]:
    rows = []
    for spec in specs:
        current = state(spec)
        rows.append({"name": spec.name, "python": spec.python, "digest": spec.digest,
                     "path": str(env_dir(spec)), "provisioned": current.ready,
                     "state": current.status, "reason": current.reason,
                     "checked": current.checked,
                     "requirements": list(spec.requirements), "no_deps": list(spec.no_deps)})
    return rows


def clean(specs, everything: bool = False, log=print) -> list[Path]:
    """Remove the given environments (or every cached one, stale hashes included),
    each once no other process builds or uses it."""
    root = cache_root() / "envs"
    if everything:  # folders only: the lock files stay (see conformance.locks)
        doomed = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    else:  # also one whose build has begun but not made its folder yet
        doomed = [env_dir(s) for s in specs if env_dir(s).exists()
                  or locks.held_exclusively(locks.lock_file(env_dir(s)))]
    removed = []
    for path in doomed:
        lock = locks.lock_file(path)
        with locks.locked(lock, exclusive=True, on_wait=_waiting(log, path.name, lock)):
            if not path.is_dir():  # another process removed it meanwhile
                continue
            # the marker first: a removal cut short leaves an interrupted build behind,
            # not a folder that claims to be whole
            (path / MARKER).unlink(missing_ok=True)
            shutil.rmtree(path)
            removed.append(path)
    return removed
