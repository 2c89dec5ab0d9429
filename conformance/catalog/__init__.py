"""The op catalog: one declarative entry per canonical operation.

An entry is named by its ``keras.ops`` name and says
- ``inputs(floatx)``: a hypothesis strategy drawing one *example*, a dict of named
  arrays (drawn in floatx) and static arguments (axis, padding, ...);
- ``reference(example, ctx)``: float64 NumPy/SciPy outputs (a list of arrays);
- ``tolerance``: a `conformance.tolerance.Tolerance`;
- how each flavor calls it: ``keras3`` and ``keras2`` are `Call`s (or None: "not
  available in this flavor"); ops-module plugins use the Keras 3 call;
- ``result``: the dtype the outputs must have: "floatx", "int", "bool", "input"
  (same as the first array input) or a dtype name.

Family modules (``elementwise``, ``activations``, ...) each define ``OPS``; the
registry collects them in `all_ops()`.
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from conformance.adapters import leaf_arrays  # the order the worker's adapters see leaves in
from conformance.tolerance import Tolerance

FAMILIES = ("elementwise", "activations", "reductions", "linalg", "shape", "nn", "losses",
            "random", "gradients", "edges")


@dataclass(frozen=True)
class Context:
    """What a reference may depend on besides the example: the run's keras.json."""

    floatx: str
    epsilon: float = 1e-7


@dataclass(frozen=True)
class Call:
    """How one flavor calls an op: a dotted function path plus argument building.

    `args` are example keys passed positionally (a tuple of keys becomes a list, for
    ops such as concatenate that take a sequence); `kwargs` maps the flavor's
    keyword to an example key; `static` holds fixed keyword values; `build`, when
    given, replaces all of that with a function example -> (args, kwargs).
    """

    fn: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    static: dict = field(default_factory=dict)
    build: Callable[[dict], tuple[list, dict]] | None = None
    # Example keys that are model parameters (kernels, biases, batch-norm statistics):
    # graph backends hold them in variables, as a model does, instead of feeding them.
    params: tuple = ()
    # Gradient calls (conformance.catalog.gradients): the example keys of the inputs to
    # differentiate with respect to, and of the cotangents, one per output.
    wrt: tuple = ()
    cotangents: tuple = ()

    def arguments(self, example: dict) -> tuple[list, dict]:
        if self.build is not None:
            return self.build(example)
        args = [[example[k] for k in key] if isinstance(key, tuple) else example[key]
                for key in self.args]
        kwargs = {name: example[key] for name, key in self.kwargs.items() if key in example}
        kwargs.update(self.static)
        return args, kwargs

    def request(self, example: dict) -> dict:
        args, kwargs = self.arguments(example)
        request = {"cmd": "call", "fn": self.fn, "args": args, "kwargs": _jsonable(kwargs)}
        if self.params:
            wanted = {id(example[key]) for key in self.params if key in example}
            request["params"] = [i for i, leaf in enumerate(leaf_arrays(args)) if id(leaf) in wanted]
        if self.wrt:
            request.update(cmd="vjp", wrt=_leaf_indices(args, [example[k] for k in self.wrt]),
                           cotangents=[example[k] for k in self.cotangents])
        return request


def _leaf_indices(args, arrays) -> list[int]:
    """The position of each of `arrays` (by identity) among the array leaves of args."""
    position = {}
    for index, leaf in enumerate(leaf_arrays(args)):
        position.setdefault(id(leaf), index)
    return [position[id(a)] for a in arrays]


def _jsonable(value):
    """Keyword values as a request carries them: numpy scalars as Python numbers;
    arrays stay arrays (they cross the pipe as raw bytes, see conformance.protocol)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic) and not isinstance(value, np.ndarray):
        return value.item()
    return value


@dataclass(frozen=True)
class Op:
    name: str
    family: str
    inputs: Callable[[str], Any]
    reference: Callable[[dict, Context], list]
    tolerance: Tolerance
    keras3: Call | None = None
    keras2: Call | None = None
    result: str | tuple[str, ...] = "floatx"
    floatx: tuple[str, ...] = ("float16", "float32", "float64")
    notes: str = ""
    # Structural arguments every case covers, pairwise (conformance.structure):
    # dimension name -> values, e.g. {"axis": ("none", "neg_first"), "keepdims": (False, True)}
    structure: dict | None = None
    # Gradient entries: example -> the kinks.Kink of its non-differentiable points, where
    # the gradient is judged as a subgradient and its convention reported.
    kinks: Callable[[dict], list] | None = None
    # Edge entries: example -> the specials.Special of its special-value elements, whose
    # values the report's special-values table shows.
    specials: Callable[[dict], list] | None = None
    # Edge entries of ops whose intermediates can overflow floatx (sum, var, cumprod):
    # example -> NumPy's outputs computed in floatx itself. Where those are NaN or inf
    # and the float64 reference is finite, a target returning the same is not wrong.
    floatx_reference: Callable[[dict], list] | None = None

    def call_for(self, flavor: str) -> Call | None:
        return self.keras2 if flavor == "keras2" else self.keras3

    def expected_dtype(self, example: dict, floatx: str, index: int = 0) -> str:
        """'int' and 'bool' are kinds; anything else is an exact dtype name. A tuple
        `result` gives one entry per output (top_k: values, then int indices)."""
        result = self.result[index] if isinstance(self.result, tuple) else self.result
        if result == "floatx":
            return floatx
        if result == "input":
            first = next(v for v in example.values() if isinstance(v, np.ndarray))
            return str(first.dtype)
        return result

    def references(self, example: dict, ctx: Context) -> list[np.ndarray]:
        outputs = self.reference(example, ctx)
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return [np.asarray(o, dtype="float64") if np.asarray(o).dtype.kind in "fc"
                else np.asarray(o) for o in outputs]


def keras3(name: str, *args, module: str = "keras.ops", **kwargs) -> Call:
    """Shorthand: keras3("softmax", "x", axis="axis") -> keras.ops.softmax(x, axis=...)."""
    return Call(f"{module}.{name}", args=args, kwargs=kwargs)


def keras2(name: str, *args, module: str = "keras.backend", **kwargs) -> Call:
    return Call(f"{module}.{name}", args=args, kwargs=kwargs)


_MODULES = {family: f"conformance.catalog.{family}" for family in FAMILIES}


def all_ops() -> list[Op]:
    ops = []
    for family, module_name in _MODULES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # family not written yet
                continue
            raise
        ops.extend(module.OPS)
    names = [op.name for op in ops]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate op names in the catalog: {sorted(duplicates)}")
    return ops


def select(ops: list[Op], patterns: list[str] | None = None, family: str | None = None) -> list[Op]:
    """Ops matching any glob pattern (name or family/name), optionally one family."""
    chosen = [op for op in ops if family is None or op.family == family]
    if patterns:
        chosen = [op for op in chosen
                  if any(fnmatch.fnmatch(op.name, p) or fnmatch.fnmatch(f"{op.family}/{op.name}", p)
                         for p in patterns)]
    return chosen
