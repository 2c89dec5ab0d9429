"""Keras 2 adapter (graph backends: TensorFlow 1, Theano, CNTK, external modules).

Arrays become placeholders of the same rank and dtype; ``K.function`` is compiled
once per signature (fn, ranks, dtypes, static arguments) and reused, so the cost of
building a graph (Theano's C compile, CNTK's and TF1's graph construction) is paid
once per signature, not per example.
"""
import json
import os
import time

import numpy as np

from conformance import adapters
from conformance.adapters import Unsupported

_LIBRARY = {"tensorflow": "tensorflow", "theano": "theano", "cntk": "cntk"}


def _signature(fn_name, args, kwargs):
    def describe(value):
        if isinstance(value, np.ndarray):
            return {"ndim": value.ndim, "dtype": str(value.dtype)}
        if isinstance(value, dict):
            return dict((k, describe(v)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return [describe(v) for v in value]
        return value
    return json.dumps([fn_name, describe(args), kwargs], sort_keys=True)


class Adapter(object):
    Unsupported = Unsupported

    def __init__(self, module=None):
        self.keras, self.import_log = adapters.import_capturing_stderr("keras")
        self.K = self.keras.backend
        self.compiled = {}

    def info(self):
        backend = self.K.backend()
        library = _LIBRARY.get(backend, backend)
        info = adapters.base_info()
        info.update({
            "flavor": "keras2",
            "keras": self.keras.__version__,
            "backend": backend,
            "backend_library": library,
            "backend_version": adapters.module_version(library),
            "using_line": adapters.using_line(self.import_log),
            "floatx": self.K.floatx(),
            "epsilon": float(self.K.epsilon()),
            "image_data_format": self.K.image_data_format(),
            "keras_home": os.environ.get("KERAS_HOME"),
        })
        return info

    def _placeholder(self, array):
        # Static shape: several backends (CNTK's batch axis, Theano's broadcastable
        # flags) give different graphs for unknown dims; shape-static graphs are what
        # a user's model with fixed input shapes builds.
        return self.K.placeholder(shape=array.shape, dtype=str(array.dtype))

    def _compile(self, fn_name, args, kwargs):
        """K.function over placeholders; returns (function, indices of fed arrays)."""
        fn = adapters.resolve(fn_name)
        inputs, fed, position = [], [], [0]

        def to_symbol(array):
            index = position[0]
            position[0] += 1
            if array.ndim == 0 and self.K.backend() == "cntk":
                # CNTK cannot make 0-d placeholders ("creating placeholder with 0 dimension
                # is not supported"); a scalar input enters the graph as a constant.
                return self.K.constant(array, dtype=str(array.dtype))
            placeholder = self._placeholder(array)
            inputs.append(placeholder)
            fed.append(index)
            return placeholder

        symbolic = adapters.map_structure(to_symbol, args)
        outputs = adapters.flatten(fn(*symbolic, **kwargs))
        return self.K.function(inputs, outputs), fed

    def call(self, fn_name, args, kwargs):
        arrays = adapters.leaf_arrays(args)
        # 0-d inputs may be baked in as constants (see _compile): their values key the cache
        key = _signature(fn_name, args, kwargs) + str(
            [a.shape if a.ndim else a.tobytes() for a in arrays])
        compile_s = 0.0
        function = self.compiled.get(key)
        if function is None:
            started = time.perf_counter()
            function = self._compile(fn_name, args, kwargs)
            compile_s = time.perf_counter() - started
            self.compiled[key] = function
        function, fed = function
        results = function([arrays[i] for i in fed])
        return [np.asarray(r) for r in results], compile_s
