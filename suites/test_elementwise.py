"""Conformance of the elementwise family (ops in conformance/catalog/elementwise.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("elementwise")


def test_elementwise(case, conformance):
    assert_conformant(conformance.check(case))
