"""Conformance of the linalg family (ops in conformance/catalog/linalg.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("linalg")


def test_linalg(case, conformance):
    assert_conformant(conformance.check(case))
