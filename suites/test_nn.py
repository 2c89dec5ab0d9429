"""Conformance of the nn family (ops in conformance/catalog/nn.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("nn")


def test_nn(case, conformance):
    assert_conformant(conformance.check(case))
