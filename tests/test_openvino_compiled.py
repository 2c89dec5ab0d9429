"""keras3-openvino compiles an op once per signature (Parameters, as model.predict
does) and reuses it; keras3-openvino-eager keeps Keras's compile-per-call path."""
import numpy as np
import pytest

from conformance import targets
from conftest import FAKE_PLUGINS, require_env


def call(pool, target_id, fn, *args, **kwargs):
    reply = pool.call_all({"cmd": "call", "fn": fn, "args": list(args), "kwargs": kwargs})[target_id]
    assert reply["status"] == "ok", reply
    return reply


@pytest.fixture
def openvino_pool(make_pool):
    python = require_env("keras3")

    def make(target_id):
        target = targets.load_targets({})[target_id]
        return make_pool(targets.Target(**{**target.__dict__, "python": python,
                                           "pythonpath": (FAKE_PLUGINS,)}))
    return make


def test_compiled_once_per_signature_and_correct(openvino_pool):
    pool = openvino_pool("keras3-openvino")
    assert pool.workers["keras3-openvino"].info["execution"] == "compiled"
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((3, 4)).astype("float32"), rng.standard_normal((3, 4)).astype("float32")
    first = call(pool, "keras3-openvino", "keras.ops.exp", x1)
    second = call(pool, "keras3-openvino", "keras.ops.exp", x2)
    assert first["compile_s"] > 0 and second["compile_s"] == 0  # reused: same shape and dtype
    np.testing.assert_allclose(second["outputs"][0], np.exp(x2), rtol=1e-6)
    other_shape = call(pool, "keras3-openvino", "keras.ops.exp", x1[:2])
    assert other_shape["compile_s"] > 0
    np.testing.assert_allclose(other_shape["outputs"][0], np.exp(x1[:2]), rtol=1e-6)
    # static arguments are part of the signature
    by_axis = [call(pool, "keras3-openvino", "keras.ops.sum", x1, axis=a)["outputs"][0] for a in (0, 1)]
    np.testing.assert_allclose(by_axis[0], x1.sum(0), rtol=1e-5)
    np.testing.assert_allclose(by_axis[1], x1.sum(1), rtol=1e-5)


def test_boolean_and_multiple_outputs(openvino_pool):
    pool = openvino_pool("keras3-openvino")
    x = np.array([[1.0, -2.0], [3.0, 0.5]], dtype="float32")
    less = call(pool, "keras3-openvino", "keras.ops.less", x, np.zeros_like(x))["outputs"][0]
    assert less.dtype == np.bool_ and less.tolist() == [[False, True], [False, False]]
    values, indices = call(pool, "keras3-openvino", "keras.ops.top_k", x[0], k=1)["outputs"]
    assert values.tolist() == [1.0] and indices.tolist() == [0]


def test_models_of_the_last_ops_are_kept(openvino_pool):
    """Shrink steps run between queued cases: going back to a recent op reuses its
    models; an op KEPT_OPS ops back compiles again (the memory stays bounded)."""
    from conformance.adapters.openvino_graphs import KEPT_OPS

    pool = openvino_pool("keras3-openvino")
    x = np.ones((2, 2), dtype="float32")
    ops = ["exp", "log", "sin", "cos", "tanh", "sqrt"][:KEPT_OPS + 1]
    for name in ops[:KEPT_OPS]:
        call(pool, "keras3-openvino", f"keras.ops.{name}", x)
    assert call(pool, "keras3-openvino", "keras.ops.exp", x)["compile_s"] == 0  # kept
    call(pool, "keras3-openvino", f"keras.ops.{ops[KEPT_OPS]}", x)  # drops the oldest: log
    assert call(pool, "keras3-openvino", "keras.ops.exp", x)["compile_s"] == 0
    assert call(pool, "keras3-openvino", "keras.ops.log", x)["compile_s"] > 0


def test_floatx_switch_drops_compiled_models(openvino_pool):
    pool = openvino_pool("keras3-openvino")
    x = np.ones((2, 2), dtype="float32")
    call(pool, "keras3-openvino", "keras.ops.exp", x)
    pool.use_floatx("float64")
    assert call(pool, "keras3-openvino", "keras.ops.exp", x)["compile_s"] > 0


def test_eager_target_compiles_per_call_and_is_opt_in(openvino_pool):
    all_targets = targets.load_targets({})
    assert all_targets["keras3-openvino-eager"].opt_in
    assert "keras3-openvino-eager" not in [t.id for t in targets.select(all_targets, None)]
    pool = openvino_pool("keras3-openvino-eager")
    assert pool.workers["keras3-openvino-eager"].info["execution"] == "eager"
    x = np.ones((2, 2), dtype="float32")
    replies = [call(pool, "keras3-openvino-eager", "keras.ops.exp", x) for _ in range(2)]
    assert all(r["compile_s"] == 0 for r in replies)  # no cache: nothing is reported as compile
    np.testing.assert_allclose(replies[1]["outputs"][0], np.exp(x), rtol=1e-6)


def test_op_that_needs_values_runs_eagerly(openvino_pool):
    pool = openvino_pool("keras3-openvino")
    x = np.array([1.5, -2.0], dtype="float32")
    replies = [call(pool, "keras3-openvino", "openvino_needs_values.double_via_numpy", x)
               for _ in range(2)]
    assert all(r["outputs"][0].tolist() == [3.0, -4.0] for r in replies)
    assert replies[1]["compile_s"] == 0  # the failed compile is not tried again
