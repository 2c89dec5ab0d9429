"""Conformance of gradients: vector-Jacobian products (conformance/catalog/gradients.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("gradients")


def test_gradients(case, conformance):
    assert_conformant(conformance.check(case))
