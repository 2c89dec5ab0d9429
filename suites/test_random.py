"""Conformance of the random family (ops in conformance/catalog/random.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("random")


def test_random(case, conformance):
    assert_conformant(conformance.check(case))
