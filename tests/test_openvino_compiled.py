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


def test_zero_d_outputs_compile_and_run(openvino_pool):
    """0-d results are not a problem of the compiled path: OpenVINO builds, compiles
    and runs them (vdot, dot, a full sum, moments over every axis)."""
    pool = openvino_pool("keras3-openvino")
    rng = np.random.default_rng(1)
    v, w = rng.standard_normal(5).astype("float32"), rng.standard_normal(5).astype("float32")
    m = rng.standard_normal((2, 3)).astype("float32")
    for fn, args, kwargs, expected in [
            ("keras.ops.vdot", (v, w), {}, [np.vdot(v, w)]),
            ("keras.ops.dot", (v, w), {}, [np.dot(v, w)]),
            ("keras.ops.sum", (m,), {}, [m.sum()]),
            ("keras.ops.moments", (m,), {"axes": [0, 1]}, [m.mean(), m.var()])]:
        outputs = call(pool, "keras3-openvino", fn, *args, **kwargs)["outputs"]
        assert [o.shape for o in outputs] == [()] * len(expected), fn
        for got, want in zip(outputs, expected):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=fn)


# OpenVINO alone, no Keras: MatMul -> Reshape to an empty shape (a 0-d result), the
# graph Keras 3.15's OpenVINO tensordot builds when every axis is contracted
# (keras/src/backend/openvino/numpy.py, "Scalar output case"; inner of two vectors).
# On OpenVINO 2026.4.1 the CPU plugin's inference dies with SIGSEGV.
MATMUL_RESHAPE_TO_SCALAR = """
import numpy as np, openvino as ov, openvino.opset13 as op
a, b = op.parameter([1, 5], ov.Type.f32), op.parameter([5, 1], ov.Type.f32)
out = op.reshape(op.matmul(a, b, False, False), op.constant(np.array([], np.int32)), False)
model = ov.compile_model(ov.Model([op.result(out)], [a, b]), "CPU")
print(np.array(model([np.ones((1, 5), np.float32), np.ones((5, 1), np.float32)])[0]))
"""


def test_full_contraction_reports_what_openvino_does(openvino_pool):
    """inner of two vectors is MatMul -> Reshape to (): the compiled target reports
    exactly what OpenVINO does with that graph over Parameters (a user's model.predict
    gets the same graph and the same crash), instead of reshaping the result to hide
    it; the eager target (constant-folded at compile time) computes it."""
    import subprocess

    plain = subprocess.run([require_env("keras3"), "-c", MATMUL_RESHAPE_TO_SCALAR],
                           capture_output=True, text=True, timeout=120)
    openvino_crashes = plain.returncode != 0
    x, y = np.arange(1, 6, dtype="float32"), np.linspace(-1, 1, 5).astype("float32")
    request = {"cmd": "call", "fn": "keras.ops.inner", "args": [x, y], "kwargs": {}}
    compiled = openvino_pool("keras3-openvino").call_all(request)["keras3-openvino"]
    if openvino_crashes:
        assert compiled["status"] == "crash", (plain.returncode, compiled)
    else:
        assert compiled["status"] == "ok", compiled
        np.testing.assert_allclose(compiled["outputs"][0], np.inner(x, y), atol=1e-6)
    eager = call(openvino_pool("keras3-openvino-eager"), "keras3-openvino-eager",
                 "keras.ops.inner", x, y)
    np.testing.assert_allclose(eager["outputs"][0], np.inner(x, y), atol=1e-6)
