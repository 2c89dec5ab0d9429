"""Conformance of the reductions family (ops in conformance/catalog/reductions.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("reductions")


def test_reductions(case, conformance):
    assert_conformant(conformance.check(case))
