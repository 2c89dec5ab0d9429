"""The keras2-tf-keras target: the Keras 2 backend API on today's TensorFlow (`tf_keras`),
driven by the same keras2 adapter as Keras 2.3.1 on TensorFlow 1.15."""
import numpy as np
import pytest

from conformance import envs, targets
from conformance.adapters import keras2
from conformance.pool import Worker
from conftest import require_env


def test_tf_keras_target_and_environment_are_built_in():
    target = targets.load_targets({})["keras2-tf-keras"]
    assert (target.flavor, target.backend, target.env) == ("keras2", "tensorflow", "tfkeras")
    assert dict(target.extra_env)[keras2.MODULE_VAR] == "tf_keras"
    spec = envs.BUILTIN_ENVS["tfkeras"]
    assert spec.python == "3.11"
    # tf-keras requires the `tensorflow` distribution; tensorflow-cpu provides its module
    assert "tensorflow-cpu==2.21.0" in spec.requirements
    assert spec.no_deps == ("tf-keras==2.21.0",)
    assert "tf-keras==2.21.0" in spec.pins()


def test_no_deps_pins_are_part_of_the_digest_only_when_present():
    spec = envs.BUILTIN_ENVS["keras3"]
    # environments without --no-deps pins keep the folder they had before the field existed
    import hashlib
    import json
    old = hashlib.sha256(json.dumps([spec.python, spec.bootstrap, spec.requirements])
                         .encode()).hexdigest()[:12]
    assert spec.digest == old
    with_extra = envs.EnvSpec(spec.name, spec.python, spec.requirements, no_deps=("tf-keras",))
    assert with_extra.digest != spec.digest


def test_pyproject_env_vars_add_to_the_targets_own(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conformance.targets.keras2-tf-keras]\nenv_vars = {TF_ENABLE_ONEDNN_OPTS = "0"}\n')
    target = targets.load_targets(targets.load_project_config(tmp_path), tmp_path)["keras2-tf-keras"]
    assert dict(target.extra_env) == {keras2.MODULE_VAR: "tf_keras", "TF_ENABLE_ONEDNN_OPTS": "0"}


def test_pyproject_environment_takes_no_deps(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conformance.envs.mine]\npython = "3.11"\nrequirements = ["tensorflow-cpu==2.20.0"]\n'
        'no_deps = ["tf-keras==2.20.1"]\n')
    spec = targets.load_envs(targets.load_project_config(tmp_path))["mine"]
    assert spec.no_deps == ("tf-keras==2.20.1",)


class _Stub:
    package = "tf_keras"


@pytest.mark.parametrize("path, expected", [
    ("keras.backend.exp", "tf_keras.backend.exp"),
    ("keras.losses.binary_crossentropy", "tf_keras.losses.binary_crossentropy"),
    ("keras.activations.elu", "tf_keras.activations.elu"),
    ("numpy.exp", "numpy.exp"),  # only keras.* paths move
])
def test_request_paths_are_rewritten_to_the_package(path, expected):
    assert keras2.Adapter._path(_Stub(), path) == expected
    stub = _Stub()
    stub.package = "keras"
    assert keras2.Adapter._path(stub, path) == path


@pytest.fixture(scope="module")
def tf_keras_worker(tmp_path_factory):
    python = require_env("tfkeras")
    target = targets.load_targets({})["keras2-tf-keras"]
    worker = Worker(target, python, "float64",
                    tmp_path_factory.mktemp("tfkeras"))
    worker.start()
    yield worker
    worker.stop()


def test_worker_reports_tf_keras_on_tensorflow_in_graph_mode(tf_keras_worker):
    info = tf_keras_worker.info
    assert info["keras"].startswith("2.") and info["keras_package"] == "tf_keras"
    assert info["backend"] == "tensorflow" and info["backend_library"] == "tensorflow"
    assert info["backend_version"].startswith("2.")
    assert "disable_eager_execution" in info["graph_mode"]
    assert info["floatx"] == "float64"  # the generated keras.json, read through KERAS_HOME


def test_keras2_requests_run_on_tf_keras(tf_keras_worker):
    x = np.array([-1.0, 0.0, 0.5], dtype="float64")
    reply = tf_keras_worker.call({"cmd": "call", "fn": "keras.backend.exp", "args": [x],
                                  "kwargs": {}})
    assert reply["status"] == "ok", reply
    assert reply["outputs"][0].dtype == np.float64
    np.testing.assert_allclose(reply["outputs"][0], np.exp(x), rtol=1e-15)

    t, p = np.array([[1.0, 0.0]]), np.array([[0.9, 0.2]])
    reply = tf_keras_worker.call({"cmd": "call", "fn": "keras.losses.binary_crossentropy",
                                  "args": [t, p], "kwargs": {}})
    assert reply["status"] == "ok", reply
    expected = -np.mean(t * np.log(p) + (1 - t) * np.log(1 - p), axis=-1)
    np.testing.assert_allclose(reply["outputs"][0], expected, rtol=1e-6)

    reply = tf_keras_worker.call({"cmd": "call", "fn": "keras.activations.elu", "args": [x],
                                  "kwargs": {"alpha": 1.0}})
    assert reply["status"] == "ok", reply
    np.testing.assert_allclose(reply["outputs"][0], np.where(x > 0, x, np.expm1(x)), rtol=1e-12)


def test_missing_function_is_unsupported_on_tf_keras(tf_keras_worker):
    reply = tf_keras_worker.call({"cmd": "call", "fn": "keras.backend.no_such_function",
                                  "args": [np.zeros(2)], "kwargs": {}})
    assert reply["status"] == "unsupported"
    assert "tf_keras.backend" in reply["message"]


def test_a_failed_function_does_not_fail_the_next_ops(tmp_path):
    """TensorFlow has no float16 MaxPool3D kernel on CPU; once that function had failed,
    tf_keras failed every function built after it with the same error (average_pool2d,
    conv2d), so their verdicts depended on what ran before them."""
    from hypothesis import given, seed, settings
    from conformance import catalog

    python = require_env("tfkeras")
    ops = {op.name: op for op in catalog.all_ops()}

    def request(name):
        drawn = []

        @seed(1)
        @settings(max_examples=1, database=None)
        @given(ops[name].inputs("float16"))
        def draw(example):
            drawn.append(example)

        draw()
        return ops[name].call_for("keras2").request(drawn[0])

    worker = Worker(targets.load_targets({})["keras2-tf-keras"], python, "float16", tmp_path)
    worker.start()
    try:
        failed = worker.call(request("max_pool3d"))
        assert failed["status"] == "error" and "MaxPool3D" in failed["message"]
        for name in ("average_pool2d", "conv2d"):
            reply = worker.call(request(name))
            assert reply["status"] == "ok", (name, reply.get("message", "")[:200])
    finally:
        worker.stop()


def test_an_op_returning_its_input_runs_on_tf_keras(tf_keras_worker):
    """A function may not fetch a fed placeholder, so such outputs go through identity;
    tf_keras.backend has no K.identity (dropout erred there), TensorFlow's is used."""
    x = np.array([1.0, 2.0], dtype="float64")
    reply = tf_keras_worker.call({"cmd": "call", "fn": "keras.backend.cast", "args": [x],
                                  "kwargs": {"dtype": "float64"}})
    assert reply["status"] == "ok", reply.get("message")
    np.testing.assert_array_equal(reply["outputs"][0], x)
