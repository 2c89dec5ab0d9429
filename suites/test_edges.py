"""Conformance at the edges: elementwise ops fed special values (conformance/catalog/edges.py)."""
import pytest

from conformance.pytest_plugin import assert_conformant

pytestmark = pytest.mark.family("edges")


def test_edges(case, conformance):
    assert_conformant(conformance.check(case))
