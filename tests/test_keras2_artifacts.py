"""Harness artifacts of the Keras 2 adapter (issue 16): results that came from the way
the harness drove Theano and CNTK, not from what a Keras user gets.

- Theano takes floatx at import (theano.config.floatX): a worker switched in place
  kept the start floatx for Python float constants, so it must give what a worker
  started with that floatx gives.
- CNTK: K.function refuses a variable as an output (eye, truncated_normal), where K.eval
  works; a 0-d int or bool input went in as K.constant(dtype='int32'), which CNTK
  refuses; the second operand of K.dot and the reference of K.gather went in as
  placeholders, which CNTK reads as a batch axis, where a model holds them in variables.
"""
import numpy as np
import pytest

from conformance import catalog, targets
from conformance.pool import Pool, Worker
from conftest import require_env

# Keras 2 selu's scale, a Python float: Theano at floatX=float32 rounds it to float32
SELU_SCALE = 1.0507009873554804934193349852946


def _target(target_id):
    return targets.load_targets({})[target_id]


def _keras2_call(op_name, example):
    ops = {op.name: op for op in catalog.all_ops()}
    return ops[op_name].keras2.request(example)


def _ok(reply):
    assert reply["status"] == "ok", (reply.get("error_type"), reply.get("message", "")[:300])
    return reply["outputs"]


# -- Theano: a floatx switch is a fresh worker at that floatx ------------------------------
THEANO_REQUESTS = {
    "float16": {"cmd": "call", "fn": "keras.backend.l2_normalize",
                "args": [np.array([0.1, 0.5, 2.0], dtype="float16")], "kwargs": {"axis": -1}},
    "float64": {"cmd": "call", "fn": "keras.activations.selu",
                "args": [np.array([1.0, 2.0, -0.5], dtype="float64")], "kwargs": {}},
}


def test_theano_after_a_floatx_switch_gives_what_a_fresh_worker_gives(tmp_path):
    python = require_env("keras2")
    target = _target("keras2-theano")
    switched = {}
    with Pool([target], {target.id: python}, tmp_path / "pool") as pool:
        pool.use_floatx("float32")
        for floatx, request in THEANO_REQUESTS.items():
            assert pool.use_floatx(floatx)[target.id]["floatx"] == floatx
            switched[floatx] = _ok(pool.call_all(request)[target.id])[0]
    # float16 in, float16 out (a stale floatX gave float32)
    assert switched["float16"].dtype == np.float16
    # float64 constants stay float64 (a stale floatX rounded selu's scale to float32)
    assert switched["float64"][0] == np.float64(SELU_SCALE)
    for floatx, request in THEANO_REQUESTS.items():
        workdir = tmp_path / ("fresh-" + floatx)
        workdir.mkdir()
        fresh = Worker(target, python, floatx, workdir)
        fresh.start()
        try:
            expected = _ok(fresh.call(request))[0]
        finally:
            fresh.stop()
        assert switched[floatx].dtype == expected.dtype
        np.testing.assert_array_equal(switched[floatx], expected)


# -- CNTK ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cntk_worker(tmp_path_factory):
    python = require_env("keras2")
    worker = Worker(_target("keras2-cntk"), python, "float32", tmp_path_factory.mktemp("cntk"))
    worker.start()
    if worker.info is None or worker.info.get("backend") != "cntk":
        worker.stop()
        pytest.skip("the CNTK worker did not start: %s" % (worker.info,))
    yield worker
    worker.stop()


def test_cntk_ops_with_nothing_to_feed_are_evaluated(cntk_worker):
    eye = _ok(cntk_worker.call(_keras2_call("eye", {"N": 3, "M": 2})))[0]
    np.testing.assert_array_equal(eye, np.eye(3, 2))
    drawn = _ok(cntk_worker.call(_keras2_call(
        "truncated_normal", {"shape": (200,), "mean": 1.0, "stddev": 0.5})))[0]
    assert drawn.shape == (200,) and np.all(np.isfinite(drawn))  # its statistics: the suite's


@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_cntk_takes_0d_int_inputs(cntk_worker, dtype):
    index = np.array(2, dtype=dtype)
    one_hot = _ok(cntk_worker.call(_keras2_call("one_hot", {"x": index, "num_classes": 4})))[0]
    np.testing.assert_array_equal(one_hot, np.eye(4)[2])
    x = np.arange(12, dtype="float32").reshape(4, 3)
    gathered = _ok(cntk_worker.call(_keras2_call("gather", {"x": x, "indices": index})))[0]
    np.testing.assert_array_equal(gathered, x[2])
    cast = _ok(cntk_worker.call(_keras2_call(
        "cast_from_int32", {"x": np.array(3, dtype="int32"), "dtype": "float32"})))[0]
    assert cast == 3.0


def test_cntk_takes_a_0d_bool_condition(cntk_worker):
    x1, x2 = np.array([1.0, 2.0], dtype="float32"), np.array([-1.0, -2.0], dtype="float32")
    for condition in (True, False):
        reply = cntk_worker.call(_keras2_call(
            "where", {"condition": np.array(condition), "x1": x1, "x2": x2}))
        # what K.switch makes of a scalar condition is CNTK's to say; a refused input is not
        assert "is not supported" not in reply.get("message", ""), reply.get("message")


def test_dot_and_gather_hold_their_weights_in_variables():
    x1, x2 = np.ones((2, 3)), np.ones((3, 4))
    assert _keras2_call("dot", {"x1": x1, "x2": x2})["params"] == [1]
    reference, indices = np.ones((4, 3)), np.array([0, 2])
    assert _keras2_call("gather", {"x": reference, "indices": indices})["params"] == [0]


def test_cntk_dot_and_gather_as_a_model_runs_them(cntk_worker):
    x = (np.arange(6, dtype="float32").reshape(2, 3) / 7)
    w = (np.arange(12, dtype="float32").reshape(3, 4) / 5)
    dot = _ok(cntk_worker.call(_keras2_call("dot", {"x1": x, "x2": w})))[0]
    np.testing.assert_allclose(dot, x @ w, rtol=1e-6)
    reference = np.arange(12, dtype="float32").reshape(4, 3)
    indices = np.array([2, 0, 3], dtype="int32")
    gathered = _ok(cntk_worker.call(_keras2_call("gather", {"x": reference, "indices": indices})))[0]
    np.testing.assert_array_equal(gathered, reference[indices])
