"""Shared caches: two processes that build, use or remove one environment at once, and
environments that a build left half done or that were damaged since.

Every test builds in its own CONFORMANCE_CACHE (never the real environments). Real
builds use an environment with nothing to install (a bare virtualenv of this
interpreter's version: a few seconds); the others fake a finished build, which is a
folder, its manifest and its marker.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import envs, locks, manifest, probe, targets
from conftest import FAKE_PLUGINS, require_env

ROOT = Path(__file__).resolve().parent.parent
VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
SITE = f"lib/python{VERSION}/site-packages"
SPEC = envs.EnvSpec(name="tiny", python=VERSION, requirements=())
TARGET = targets.Target(id="tiny-np", flavor="ops-module", backend="numpy_ops", env="tiny",
                        pythonpath=(FAKE_PLUGINS,))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONFORMANCE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def fake_build(spec=SPEC, with_manifest=True) -> Path:
    """What a finished build leaves, without the virtualenv: some files, a link, the
    manifest, then the marker (a marker without manifest: a build of older versions)."""
    folder = envs.env_dir(spec)
    package = folder / SITE / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (package / "core.py").write_text("def f():\n    return 2\n")
    (folder / "bin").mkdir()
    (folder / "bin" / "python").symlink_to(sys.executable)
    marker = {"name": spec.name}
    if with_manifest:
        marker["manifest"] = manifest.write(folder, skip=(envs.MARKER,))
    (folder / envs.MARKER).write_text(json.dumps(marker))
    return folder


def in_subprocess(code: str, **kwargs) -> subprocess.Popen:
    """Python `code` in another process (another CI job), sharing this test's cache."""
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, **kwargs)


SYNC = (f"from conformance import envs\n"
        f"envs.sync(envs.EnvSpec(name='tiny', python='{VERSION}', requirements=()), "
        f"log=lambda m: print(m, flush=True))\n")


def wait_until_building(proc: subprocess.Popen) -> None:
    """Until `proc` holds the environment's lock exclusively (its build has begun)."""
    lock = locks.lock_file(envs.env_dir(SPEC))
    deadline = time.monotonic() + 60
    while not locks.held_exclusively(lock):
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, f"{lock} was never held"
        time.sleep(0.05)


# -- two processes at once ------------------------------------------------------------
def test_a_second_sync_waits_for_the_first_and_uses_what_it_built(cache):
    """Before: the second sync deleted the folder the first was filling (the first then
    failed: "ensurepip ... returned non-zero exit status 1")."""
    first = in_subprocess(SYNC)
    wait_until_building(first)
    second = in_subprocess(SYNC)
    first_out, _ = first.communicate(timeout=300)
    second_out, _ = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, first_out + second_out
    assert "creating virtualenv" in first_out
    assert "waiting for another process building or removing environment tiny" in second_out
    assert "built by another process meanwhile" in second_out
    assert "creating virtualenv" not in second_out
    assert envs.state(SPEC).ready and envs.verify(SPEC) == []


def test_clean_waits_for_a_build_instead_of_removing_its_half(cache):
    """Before: clean removed the half-built folder and the build failed."""
    build = in_subprocess(SYNC)
    wait_until_building(build)
    said = []
    removed = envs.clean([SPEC], log=said.append)
    out, _ = build.communicate(timeout=300)
    assert build.returncode == 0 and "tiny: ready" in out, out
    assert said and "waiting for another process building or removing" in said[0]
    assert removed == [envs.env_dir(SPEC)] and not envs.env_dir(SPEC).exists()
    assert locks.lock_file(envs.env_dir(SPEC)).is_file()  # lock files are never removed


def test_clean_waits_for_a_run_using_the_environment(cache):
    """A run holds its environments shared (probe.resolve_interpreters): a clean in
    another process waits until the run ends. Before: it removed the environment under
    the running workers."""
    fake_build()
    run = in_subprocess(
        "import sys\nfrom conformance import envs, probe, targets\n"
        "t = targets.Target(id='tiny-np', flavor='ops-module', backend='numpy_ops', env='tiny')\n"
        "spec = envs.EnvSpec(name='tiny', python='%s', requirements=())\n"
        "pythons, missing = probe.resolve_interpreters([t], {'tiny': spec})\n"
        "print('running' if pythons else missing, flush=True)\nsys.stdin.read()\n" % VERSION,
        stdin=subprocess.PIPE)
    assert run.stdout.readline().strip() == "running"
    clean = in_subprocess("from conformance import envs\n"
                          f"print(envs.clean([envs.EnvSpec(name='tiny', python='{VERSION}', "
                          "requirements=())], log=lambda m: print(m, flush=True)))\n")
    first_line = clean.stdout.readline()
    assert "waiting for another process using environment tiny-" in first_line
    assert envs.env_dir(SPEC).is_dir() and clean.poll() is None  # still waiting
    run.stdin.close()
    out, _ = clean.communicate(timeout=60)
    run.wait(timeout=60)
    assert clean.returncode == 0 and "tiny-" in out, out
    assert not envs.env_dir(SPEC).exists()


def test_a_target_whose_environment_is_being_built_says_so(cache):
    fake_build()
    with locks.locked(locks.lock_file(envs.env_dir(SPEC)), exclusive=True):
        _, missing = probe.resolve_interpreters([TARGET], {"tiny": SPEC})
    assert missing[0].status == "not provisioned"
    assert "another process is building or removing environment tiny" in missing[0].reason
    assert "envs sync tiny` waits for it" in missing[0].fix


# -- interrupted and damaged environments ------------------------------------------
def test_an_interrupted_build_is_reported_and_rebuilt(cache, tmp_path):
    """Before: `conformance targets` said "not provisioned: environment not provisioned"."""
    (envs.env_dir(SPEC) / "bin").mkdir(parents=True)  # the build died before its marker
    (tmp_path / "pyproject.toml").write_text(
        f'[tool.conformance.envs.tiny]\npython = "{VERSION}"\nrequirements = []\n'
        f'[tool.conformance.targets.tiny-np]\nflavor = "ops-module"\nbackend = "numpy_ops"\n'
        f'env = "tiny"\n')
    shown = subprocess.run([sys.executable, "-m", "conformance.cli", "--project", str(tmp_path),
                            "targets", "--targets", "tiny-np"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert shown.returncode == 1
    assert "tiny-np  [damaged]" in shown.stdout
    assert "interrupted build" in shown.stdout and "fix          conformance envs sync tiny" \
        in shown.stdout
    said = []
    envs.sync(SPEC, log=said.append)
    assert said[0].startswith("tiny: rebuilding: interrupted build")
    assert envs.verify(SPEC) == []


def test_damage_is_found_and_named(cache):
    folder = fake_build()
    (folder / SITE / "pkg" / "__init__.py").unlink()
    (folder / SITE / "pkg" / "core.py").write_text("longer than it was when it was built\n")
    (folder / "bin" / "python").unlink()  # the base interpreter went away
    (folder / "bin" / "python").symlink_to(folder / "no-such-python")
    assert envs.verify(SPEC) == [f"1 file missing, e.g. {SITE}/pkg/__init__.py",
                                 f"1 file changed size, e.g. {SITE}/pkg/core.py",
                                 f"1 link broken, e.g. bin/python -> {folder / 'no-such-python'}"]
    assert not envs.is_provisioned(SPEC)
    assert envs.state(SPEC).status == "damaged"


def test_a_damaged_environment_is_not_ready_and_sync_rebuilds_it(cache):
    """Before: the environment counted as provisioned; `targets` started its worker and
    `envs sync` said "up to date", leaving the damage in place."""
    folder = fake_build()
    (folder / SITE / "pkg" / "__init__.py").unlink()
    pythons, missing = probe.resolve_interpreters([TARGET], {"tiny": SPEC})
    assert pythons == {}
    assert (missing[0].status, missing[0].fix) == ("damaged", "conformance envs sync tiny")
    assert missing[0].reason == ("environment tiny is damaged: 1 file missing, e.g. "
                                 f"{SITE}/pkg/__init__.py")
    said = []
    envs.sync(SPEC, log=said.append)
    assert said[0] == f"tiny: rebuilding: {missing[0].reason}"
    assert envs.state(SPEC).ready and envs.verify(SPEC) == []
    assert json.loads((folder / envs.MARKER).read_text())["manifest"]["files"] > 100


def test_an_environment_built_before_manifests_stays_usable_and_sync_records_it(cache):
    """Compatible: a marker without manifest is ready (unchecked); `envs sync` checks it
    against pip's RECORD files and writes its manifest without rebuilding."""
    folder = fake_build(with_manifest=False)
    site = folder / SITE
    record = site / "pkg-1.0.dist-info" / "RECORD"
    record.parent.mkdir()
    record.write_text("pkg/__init__.py,sha256=x,10\npkg/core.py,,\npkg-1.0.dist-info/RECORD,,\n")
    assert envs.state(SPEC) == envs.EnvState("ready", checked=False)
    said = []
    envs.sync(SPEC, log=said.append)
    assert "files are recorded now (no rebuild)" in said[0] and len(said) == 2
    assert envs.state(SPEC) == envs.EnvState("ready")
    (site / "pkg" / "core.py").unlink()
    assert envs.verify(SPEC) == [f"1 file missing, e.g. {SITE}/pkg/core.py"]


def test_an_old_environment_missing_files_of_its_packages_is_rebuilt(cache):
    folder = fake_build(with_manifest=False)
    record = folder / SITE / "pkg-1.0.dist-info" / "RECORD"
    record.parent.mkdir()
    record.write_text("pkg/__init__.py,,\npkg/gone.py,,\n")
    assert envs.verify(SPEC) == [f"1 file missing, e.g. {SITE}/pkg/gone.py"]
    said = []
    envs.sync(SPEC, log=said.append)
    assert said[0].startswith("tiny: rebuilding: environment tiny is damaged: 1 file missing")
    assert envs.verify(SPEC) == []


def test_clean_all_removes_environment_folders_and_keeps_lock_files(cache):
    fake_build()
    stale = envs.cache_root() / "envs" / "tiny-000000000000"
    stale.mkdir()
    assert set(envs.clean([], everything=True)) == {stale, envs.env_dir(SPEC)}
    left = {p.name for p in (envs.cache_root() / "envs").iterdir()}
    assert left == {"tiny-000000000000.lock", envs.env_dir(SPEC).name + ".lock"}


# -- compile caches ---------------------------------------------------------------------
JAX_WRITE = """
import os, resource, signal, sys
os.environ.update(JAX_COMPILATION_CACHE_DIR=sys.argv[1], JAX_PLATFORMS="cpu",
                  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                  JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
import jax, jax.numpy as jnp
from conformance.adapters import jax_cache
assert jax_cache.write_entries_atomically()
x = jnp.ones(7)
if sys.argv[2] != "0":  # the disk fills up while the entry is written
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
jax.jit(lambda v: jnp.sin(v) * 2 + 1)(x).block_until_ready()
"""


def test_a_jax_cache_entry_cut_short_is_never_left_for_other_runs(tmp_path):
    """Before (JAX 0.10 writes entries in place): the truncated entry stayed, and every
    later process warned "Error reading persistent compilation cache entry ...:
    incomplete or truncated stream", compiled again and never replaced it."""
    python = require_env("keras3")
    folder = tmp_path / "jax"

    def compile_once(limit):
        return subprocess.run([python, "-c", JAX_WRITE, str(folder), str(limit)],
                              capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    cut = compile_once(1000)
    assert cut.returncode == 0, cut.stderr[-2000:]
    assert "Error writing persistent compilation cache entry" in cut.stderr
    entries = {p.name: p.stat().st_size for p in folder.glob("jit__lambda-*-cache")}
    assert entries == {}  # nothing half written under an entry's name
    assert not list(folder.glob("*.tmp"))  # and the temporary file is gone
    whole = compile_once(0)
    assert whole.returncode == 0 and "Error reading" not in whole.stderr, whole.stderr[-2000:]
    assert [p.stat().st_size > 1000 for p in folder.glob("jit__lambda-*-cache")] == [True]
