"""The conformance suites: one file per op family, one test per (op, floatx).

Run them with `conformance run` (or `pytest suites/ --conformance-targets=...`).
"""
pytest_plugins = ["conformance.pytest_plugin"]
