import ast
import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import envs, targets
from conformance.pool import Pool

pytest_plugins = ["pytester"]

FAKE_PLUGINS = str(Path(__file__).parent / "fake_plugins")

# CI sets it: a test that needs something CI provisions fails instead of skipping, so a
# broken provisioning step cannot turn into a green run that tested nothing.
REQUIRE_ENVS = "CONFORMANCE_REQUIRE_ENVS"


def fake_target(module="misbehaving", target_id="fake", timeout_s=3.0, python=None):
    """An ops-module target served by this very interpreter (no heavy backend)."""
    return targets.Target(id=target_id, flavor="ops-module", backend=module,
                          python=python or sys.executable, pythonpath=(FAKE_PLUGINS,),
                          timeout_s=timeout_s)


def check_ops(targets_, op_names, workdir, seed, examples, floatx="float32"):
    """Every catalog op named in `op_names` checked on `targets_`, as a run does:
    {(op name, target id): result record}."""
    from conformance import catalog
    from conformance.engine import Engine, RunSettings

    chosen = [op for op in catalog.all_ops() if op.name in op_names]
    assert sorted(op.name for op in chosen) == sorted(op_names), "catalog lost an op a test uses"
    results = {}
    with Pool(targets_, {t.id: t.python for t in targets_}, workdir) as pool:
        pool.use_floatx(floatx)
        engine = Engine(pool, RunSettings(seed=seed, max_examples=examples, shrink_calls=examples))
        for op in chosen:
            for record in engine.check(op, floatx):
                results[(op.name, record["target"])] = record
    return results


@pytest.fixture
def make_pool(tmp_path):
    pools = []

    def make(*target_list, floatx="float32"):
        pool = Pool(list(target_list), {t.id: t.python for t in target_list}, tmp_path / "work")
        pools.append(pool)
        pool.use_floatx(floatx)
        return pool

    yield make
    for pool in pools:
        pool.close()


def envs_required() -> bool:
    return os.environ.get(REQUIRE_ENVS, "").strip() not in ("", "0")


def skip_or_fail(reason: str):
    """Skip the test, or fail it when CONFORMANCE_REQUIRE_ENVS is set."""
    if envs_required():
        pytest.fail(f"{reason}; {REQUIRE_ENVS}=1 requires it (CI provisions it)", pytrace=False)
    pytest.skip(reason)


def require_env(env_name: str) -> str:
    """The interpreter of the built-in target environment `env_name` (keras3, keras2,
    tfkeras). Skips the test where the environment is not provisioned; fails it
    instead under CONFORMANCE_REQUIRE_ENVS=1."""
    spec = envs.BUILTIN_ENVS[env_name]
    if not envs.is_provisioned(spec):
        skip_or_fail(f"environment {env_name} not provisioned "
                     f"(conformance envs sync {env_name})")
    return str(envs.env_python(spec))


@functools.lru_cache(maxsize=None)
def python36():
    """A Python 3.6 interpreter (CONFORMANCE_PYTHON36, pyenv, PATH), or None."""
    try:
        return envs.base_interpreter("3.6")
    except envs.EnvError:
        return None


# Run by the 3.6 interpreter itself: {name: source} on stdin, {name: error} on stdout.
_COMPILE_ALL = """
import json, sys
errors = {}
for name, source in json.load(sys.stdin).items():
    try:
        compile(source, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        errors[name] = "line %s: %s" % (exc.lineno, exc.msg)
json.dump(errors, sys.stdout)
"""


def python36_syntax_errors(sources: dict) -> dict:
    """{name: error} for the sources ({name: text}) that Python 3.6 cannot compile.

    Compiled by a real Python 3.6 where one exists. Without one the check falls back to
    this interpreter's `ast.parse(feature_version=(3, 6))`, which is best-effort (it
    misses some newer syntax); under CONFORMANCE_REQUIRE_ENVS=1 that fails instead."""
    python = python36()
    if python is None:
        if envs_required():
            pytest.fail(f"no Python 3.6 interpreter (pyenv install 3.6.15 or set "
                        f"{envs.PYTHON_OVERRIDE_VARS['3.6']}); {REQUIRE_ENVS}=1 requires it",
                        pytrace=False)
        errors = {}
        for name, source in sources.items():
            try:
                ast.parse(source, name, feature_version=(3, 6))
            except SyntaxError as exc:
                errors[name] = f"line {exc.lineno}: {exc.msg}"
        return errors
    done = subprocess.run([python, "-c", _COMPILE_ALL], input=json.dumps(sources),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
