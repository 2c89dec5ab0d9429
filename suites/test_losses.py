"""Conformance of the losses family (ops in conformance/catalog/losses.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("losses")


def test_losses(case, conformance):
    assert_conformant(conformance.check(case))
