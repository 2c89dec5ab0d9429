import sys
from pathlib import Path

import pytest

from conformance import envs, targets
from conformance.pool import Pool

FAKE_PLUGINS = str(Path(__file__).parent / "fake_plugins")


def fake_target(module="misbehaving", target_id="fake", timeout_s=3.0, python=None):
    """An ops-module target served by this very interpreter (no heavy backend)."""
    return targets.Target(id=target_id, flavor="ops-module", backend=module,
                          python=python or sys.executable, pythonpath=(FAKE_PLUGINS,),
                          timeout_s=timeout_s)


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


def provisioned_python(env_name):
    spec = envs.BUILTIN_ENVS[env_name]
    if not envs.is_provisioned(spec):
        pytest.skip(f"environment {env_name} not provisioned (conformance envs sync {env_name})")
    return str(envs.env_python(spec))
