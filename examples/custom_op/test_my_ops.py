"""Property tests in your own repository, with keras-conformance's pytest plugin.

Install the harness (`pip install keras-conformance` or `pip install -e .`): its pytest
plugin registers itself. Then, in your repository:

    pytest examples/custom_op --conformance-targets keras3-numpy,keras3-torch \\
        --conformance-floatx float32,float64 --conformance-profile smoke

Results stream to the folder given by --conformance-out (default reports/run-<time>),
with the same verdicts, results.jsonl and counterexamples as `conformance run`
(render them with `conformance report`).

A custom op is a `conformance.catalog.Op`: a hypothesis strategy that draws one example
(a dict of arrays in floatx and static arguments), a float64 reference, a tolerance class
from `conformance.tolerance`, and how each Keras flavor calls it.
"""
import numpy as np
import pytest
from scipy import special

from conformance import strategies as S
from conformance.catalog import Op, keras2, keras3
from conformance.pytest_plugin import assert_conformant
from conformance.tolerance import Elementwise

MY_SOFTPLUS = Op(
    name="my_softplus",
    family="custom",
    # inputs drawn in floatx; wide enough that a naive log(1 + exp(x)) overflows in float16
    inputs=lambda floatx: S.unary(floatx, -30.0, 30.0),
    # float64 reference: softplus(x) = log(1 + e^x), computed without overflow
    reference=lambda example, ctx: np.logaddexp(0.0, example["x"].astype("float64")),
    # transcendental: 4 ulp(y) + 4 u |x f'(x)| with f'(x) = sigmoid(x)
    tolerance=Elementwise(4, lambda example: np.abs(example["x"] * special.expit(example["x"]))),
    keras3=keras3("softplus", "x"),            # keras.ops.softplus(x)
    keras2=keras2("softplus", "x"),            # keras.backend.softplus(x)
)


@pytest.mark.conformance_ops(MY_SOFTPLUS)
def test_my_softplus(case, conformance):
    """One test per floatx; fails on divergences not in the known-divergence registry."""
    assert_conformant(conformance.check(case))


def test_exp_agrees_everywhere(conformance_call):
    """A plain call fanned out to every target, checked by hand."""
    x = np.linspace(-5, 5, 11, dtype="float32")
    replies = conformance_call("keras.ops.exp", x, keras2_fn="keras.backend.exp")
    assert replies, "no target ran"
    for target, reply in replies.items():
        assert reply["status"] == "ok", (target, reply)
        np.testing.assert_allclose(reply["outputs"][0], np.exp(x), rtol=4e-7, err_msg=target)
