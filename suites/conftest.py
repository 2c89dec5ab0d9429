"""The conformance suites: one file per op family, one test per (op, floatx).

Run them with `conformance run` (or `pytest suites/ -p conformance.pytest_plugin
--conformance-targets=...`; an installed package registers the plugin by itself).
"""
