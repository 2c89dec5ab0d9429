"""Harness artifacts on the Keras 3 side: calls made the way Keras documents them, so a
divergence is the backend's and not the harness's."""
import numpy as np
import pytest

from conformance import targets
from conformance.adapters import keras3
from conftest import require_env

KERAS3 = ["keras3-numpy", "keras3-jax", "keras3-torch", "keras3-tensorflow",
          "keras3-openvino", "keras3-openvino-eager"]


def test_moments_axes_is_the_documented_list():
    """keras/src/ops/nn.py, moments: "axes: A list of axes". JSON gives every static
    sequence back as a list and `as_tuples` turns them into tuples; moments' axes stays
    the list Keras documents, everything else keeps the tuple form."""
    kwargs = keras3.keyword_arguments("keras.ops.moments", {"axes": [0, 2], "keepdims": True})
    assert kwargs == {"axes": [0, 2], "keepdims": True} and isinstance(kwargs["axes"], list)
    assert keras3.keyword_arguments("keras.ops.sum", {"axis": [0, 2]}) == {"axis": (0, 2)}


@pytest.fixture(scope="module")
def keras3_pool(tmp_path_factory):
    from conformance.pool import Pool

    python = require_env("keras3")
    all_targets = targets.load_targets({})
    chosen = [targets.Target(**{**all_targets[t].__dict__, "python": python}) for t in KERAS3]
    pool = Pool(chosen, {t.id: python for t in chosen}, tmp_path_factory.mktemp("work"))
    pool.use_floatx("float32")
    yield pool
    pool.close()


@pytest.mark.parametrize("axes, keepdims", [([0], False), ([0, 2], True), ([0, 1, 2], False)])
def test_moments_runs_on_every_keras3_backend(keras3_pool, axes, keepdims):
    """With a tuple, OpenVINO's moments raised TypeError (compiled and eager alike),
    a call no Keras user following the docs makes."""
    x = np.random.default_rng(0).uniform(-10, 10, (2, 3, 4)).astype("float32")
    replies = keras3_pool.call_all({"cmd": "call", "fn": "keras.ops.moments", "args": [x],
                                    "kwargs": {"axes": axes, "keepdims": keepdims}})
    for target_id in KERAS3:
        reply = replies[target_id]
        assert reply["status"] == "ok", (target_id, reply)
        mean, variance = reply["outputs"]
        np.testing.assert_allclose(mean, x.mean(axis=tuple(axes), keepdims=keepdims), rtol=1e-5,
                                   atol=1e-5, err_msg=target_id)
        np.testing.assert_allclose(variance, x.var(axis=tuple(axes), keepdims=keepdims),
                                   rtol=1e-4, atol=1e-4, err_msg=target_id)
