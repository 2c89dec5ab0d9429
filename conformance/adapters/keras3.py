"""Keras 3 adapter: arrays become backend tensors, ``fn`` is a dotted path such as
``keras.ops.softmax``; results come back through ``keras.ops.convert_to_numpy``.

On OpenVINO, ops are compiled once per signature, as ``model.predict`` does
(``openvino_graphs``), unless the environment variable ``CONFORMANCE_OPENVINO_EXECUTION``
is ``eager`` (the target ``keras3-openvino-eager``)."""
import os

import numpy as np

from conformance import adapters
from conformance.adapters import Unsupported, autodiff, jax_cache

EXECUTION_VAR = "CONFORMANCE_OPENVINO_EXECUTION"  # compiled (default) | eager

# Keyword arguments Keras 3 documents as lists, where `adapters.as_tuples` would pass
# the tuple it gives every other static sequence. keras/src/ops/nn.py, moments: "axes:
# A list of axes" (the only static list in keras.ops's documented signatures, 3.15).
# It matters: OpenVINO's moments hands `axes` to ov_opset.constant, which has no
# overload for a tuple ("TypeError: The necessary overload for constant was not found").
DOCUMENTED_LISTS = {"keras.ops.moments": ("axes",)}


def keyword_arguments(fn_name, kwargs):
    """The call's keyword arguments in the form Keras documents for `fn_name`."""
    kwargs = adapters.as_tuples(kwargs)
    for name in DOCUMENTED_LISTS.get(fn_name, ()):
        if isinstance(kwargs.get(name), tuple):
            kwargs[name] = list(kwargs[name])
    return kwargs


class Adapter(object):
    Unsupported = Unsupported

    def __init__(self, module=None):
        self.keras, self.import_log = adapters.import_capturing_stderr("keras")
        # Keras imports JAX under every backend, and the runs of a machine share its
        # compile cache: entries are written whole (see jax_cache)
        jax_cache.write_entries_atomically()
        self.ops = self.keras.ops
        self.execution = "eager"
        self.compiled = None
        if self.keras.backend.backend() == "openvino":
            self.execution = os.environ.get(EXECUTION_VAR) or "compiled"
            if self.execution not in ("compiled", "eager"):
                raise ValueError("%s must be 'compiled' or 'eager', not %r"
                                 % (EXECUTION_VAR, self.execution))
        if self.execution == "compiled":
            from conformance.adapters import openvino_graphs
            self.compiled = openvino_graphs.CompiledCalls()

    def info(self):
        backend = self.keras.backend.backend()
        library = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch",
                   "numpy": "numpy", "openvino": "openvino"}.get(backend, backend)
        info = adapters.base_info()
        info.update({
            "flavor": "keras3",
            "keras": self.keras.__version__,
            "backend": backend,
            "backend_library": library,
            "backend_version": adapters.module_version(library),
            "using_line": adapters.using_line(self.import_log),
            "floatx": self.keras.backend.floatx(),
            "epsilon": float(self.keras.backend.epsilon()),
            "image_data_format": self.keras.backend.image_data_format(),
            "keras_home": os.environ.get("KERAS_HOME"),
        })
        if backend == "openvino":
            info["execution"] = self.execution
        return info

    def set_floatx(self, floatx):
        self.keras.config.set_floatx(floatx)
        if self.compiled is not None:  # compiled models may hold floatx constants
            self.compiled.clear()

    def call(self, fn_name, args, kwargs, params=()):  # params are plain inputs here
        fn = adapters.resolve(fn_name)
        kwargs = keyword_arguments(fn_name, kwargs)
        if self.compiled is not None:
            return self.compiled.call(fn, fn_name, args, kwargs,
                                      lambda: self._eager(fn, args, kwargs))
        return self._eager(fn, args, kwargs), 0.0

    def vjp(self, fn_name, args, kwargs, params, wrt, cotangents):
        fn = adapters.resolve(fn_name)
        grads = autodiff.vjp(self.keras, fn, args, keyword_arguments(fn_name, kwargs),
                             wrt, cotangents)
        return grads, 0.0

    def _eager(self, fn, args, kwargs):
        # Explicit dtype: the op is under test, not convert_to_tensor's default dtype
        # (which on some backends turns float64 input into float32).
        tensors = adapters.map_structure(
            lambda a: self.ops.convert_to_tensor(a, dtype=str(a.dtype)), args)
        result = fn(*tensors, **kwargs)
        return [np.asarray(self.ops.convert_to_numpy(leaf))
                for leaf in adapters.flatten(result)]
