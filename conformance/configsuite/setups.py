"""Setups: the ways each target is started for the configuration checks.

A setup is a keras.json (the target's own, a custom one, or none at all) plus
environment overrides; every scenario asks one or more setups' workers what they see.
"""
from __future__ import annotations

from dataclasses import dataclass

from conformance import kerasfacts
from conformance.pool import GENERATED
from conformance.targets import Target

# The json-read setup's epsilon, distinct from the default so that reading it shows;
# also the epsilon scenario's second run.
DISTINCT_EPSILON = 1e-3
# Backends to name in a keras.json that KERAS_BACKEND must override: ones the flavor has.
OTHER_BACKENDS = {"keras3": ("numpy", "jax"), "keras2": ("theano", "tensorflow")}
SHARED_SETUPS = {"default", "json-read"}  # kept across scenarios; the others are released


@dataclass(frozen=True)
class Setup:
    """One way of starting a target: its keras.json (GENERATED, a dict, None for none)
    and environment overrides (None removes a variable)."""

    name: str
    floatx: str = kerasfacts.DEFAULT_FLOATX
    keras_json: object = GENERATED
    env: tuple = ()
    sandbox_home: bool = False  # HOME points at an empty folder we can inspect


def other_backend(target: Target) -> str:
    """Another backend of the target's flavor, to name in keras.json."""
    choices = OTHER_BACKENDS.get(target.flavor, ("numpy",))
    return next(b for b in choices if b != target.backend)


def setups(target: Target) -> dict[str, Setup]:
    json_read = {"floatx": kerasfacts.DEFAULT_FLOATX, "epsilon": DISTINCT_EPSILON,
                 "image_data_format": "channels_first", "backend": other_backend(target)}
    return {s.name: s for s in [
        Setup("default"),
        Setup("floatx-float16", floatx="float16"),
        Setup("floatx-float64", floatx="float64"),
        # KERAS_BACKEND (set by the pool to the target's backend) against a keras.json
        # naming another backend, with a distinctive epsilon and data format
        Setup("json-read", keras_json=json_read),
        Setup("json-backend", keras_json=target.keras_json(kerasfacts.DEFAULT_FLOATX),
              env=(("KERAS_BACKEND", None),)),
        Setup("missing", keras_json=None, sandbox_home=True),
    ]}
