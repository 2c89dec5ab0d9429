"""Workers start once per run and switch floatx at runtime; a worker that cannot
switch (or claims to and does not) is restarted with a keras.json at the new floatx."""
import json
import sys
from pathlib import Path

from conformance import targets
from conformance.pool import Pool
from conftest import fake_target

FAKE_KERAS = str(Path(__file__).parent / "fake_keras")


def fake_keras3():
    return targets.Target(id="fake-keras3", flavor="keras3", backend="fakenp",
                          python=sys.executable, pythonpath=(FAKE_KERAS,), timeout_s=30)


def pids_across_switch(pool, target_id):
    pool.use_floatx("float32")
    before = pool.workers[target_id].proc.pid
    info = pool.use_floatx("float64")[target_id]
    return before, pool.workers[target_id].proc.pid, info


def test_keras3_worker_switches_in_place(tmp_path):
    target = fake_keras3()
    with Pool([target], {target.id: target.python}, tmp_path) as pool:
        before, after, info = pids_across_switch(pool, target.id)
        assert before == after, "the worker was restarted instead of switched"
        assert info["floatx"] == "float64"
        # the run never rewrites a keras.json: it still holds the floatx of the start
        keras_json = json.loads((Path(info["keras_home"]) / "keras.json").read_text())
        assert keras_json["floatx"] == "float32"


def test_switch_in_place_off_restarts(tmp_path):
    target = fake_keras3()
    with Pool([target], {target.id: target.python}, tmp_path) as pool:
        pool.switch_in_place = False
        before, after, info = pids_across_switch(pool, target.id)
        assert before != after and info["floatx"] == "float64"


def test_plugin_without_set_floatx_is_restarted(tmp_path):
    target = fake_target("numpy_ops")
    with Pool([target], {target.id: target.python}, tmp_path) as pool:
        before, after, _ = pids_across_switch(pool, target.id)
        assert before != after
        assert not pool.broken


def test_plugin_ignoring_set_floatx_is_restarted(tmp_path):
    target = fake_target("floatx_stuck")
    with Pool([target], {target.id: target.python}, tmp_path) as pool:
        before, after, info = pids_across_switch(pool, target.id)
        assert before != after
        assert info["floatx"] == "float64"
