"""Configuration conformance: keras.json, KERAS_BACKEND, floatx, epsilon, data format.

How a backend is chosen and configured is part of the contract. Each target is
started under several configurations ("setups": its own keras.json, none at all,
another backend named in keras.json, ...) and asked what it sees (the worker's
``config`` command) or made to compute with the real ops (the ``call`` command).

Scenarios, each a list of checks on one target:

- precedence          where the configuration comes from (`precedence`)
- floatx, runtime     what the settings and dtypes say (`settings`)
- epsilon,            the real ops follow the configured epsilon and data format
  image_data_format   (`computed`, against `references`, judged by `judging`)

Every check becomes one record (`records`); `setups` says how targets are started,
`processes` holds their workers, `suite` runs the scenarios. The names other
modules use are imported here.
"""
from conformance.configsuite.records import FAILING, divergent, make_record
from conformance.configsuite.references import (
    bce_reference, conv_reference, normalize_reference, pool_reference)
from conformance.configsuite.setups import DISTINCT_EPSILON, Setup, setups
from conformance.configsuite.processes import CallFailed, SetupFailed, TargetRun
from conformance.configsuite.suite import (
    SCENARIO_FUNCTIONS, SCENARIOS, ConfigSuite, TargetBroken, run_target, selected)
from conformance.kerasfacts import keras_json_defaults

# The keras.json Keras 2.3.1 and Keras 3 write when there is none.
DEFAULT_KERAS_JSON = keras_json_defaults()

__all__ = [
    "FAILING", "divergent", "make_record", "bce_reference", "conv_reference",
    "normalize_reference", "pool_reference", "DISTINCT_EPSILON", "Setup", "setups",
    "CallFailed", "SetupFailed", "TargetRun", "SCENARIO_FUNCTIONS", "SCENARIOS",
    "ConfigSuite", "TargetBroken", "run_target", "selected", "DEFAULT_KERAS_JSON",
]
