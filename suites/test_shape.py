"""Conformance of the shape family (ops in conformance/catalog/shape.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("shape")


def test_shape(case, conformance):
    assert_conformant(conformance.check(case))
