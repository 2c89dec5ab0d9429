"""Conformance of the activations family (ops in conformance/catalog/activations.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("activations")


def test_activations(case, conformance):
    assert_conformant(conformance.check(case))
