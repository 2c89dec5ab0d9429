"""Keras 2 adapter (graph backends: TensorFlow 1, Theano, CNTK, external modules).

Arrays become placeholders of the same rank and dtype; ``K.function`` is compiled
once per signature (fn, ranks, dtypes, static arguments) and reused, so the cost of
building a graph (Theano's C compile, CNTK's and TF1's graph construction) is paid
once per signature, not per example.

The Keras 2 package is ``keras`` unless the worker is given another (``--module`` or
the environment variable ``CONFORMANCE_KERAS_MODULE``): ``tf_keras`` is the Keras 2
backend API on TensorFlow 2. Requests keep their ``keras.backend.*`` /
``keras.losses.*`` / ``keras.activations.*`` paths and are rewritten to that package.
TensorFlow 2 runs eagerly, where ``K.placeholder`` and ``K.function`` do not work, so
for ``tf_keras`` eager execution is switched off before the import (``info`` says so).
"""
import json
import os
import time

import numpy as np

from conformance import adapters
from conformance.adapters import Unsupported

_LIBRARY = {"tensorflow": "tensorflow", "theano": "theano", "cntk": "cntk"}
MODULE_VAR = "CONFORMANCE_KERAS_MODULE"
GRAPH_FUNCTIONS = 16  # TensorFlow 1: functions built before an op change drops the graph
# Keras 2 packages that run on TensorFlow 2 and need its graph mode
_GRAPH_MODE_PACKAGES = ("tf_keras",)


def _force_graph_mode():
    """Switch TensorFlow 2 from eager to graph execution; returns what was done."""
    tf, log = adapters.import_capturing_stderr("tensorflow")
    if not tf.executing_eagerly():
        return None, log
    tf.compat.v1.disable_eager_execution()
    return "tf.compat.v1.disable_eager_execution() before import", log


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
        self.package = module or os.environ.get(MODULE_VAR) or "keras"
        self.graph_mode, tf_log = None, ""
        if self.package in _GRAPH_MODE_PACKAGES:
            self.graph_mode, tf_log = _force_graph_mode()
        self.keras, self.import_log = adapters.import_capturing_stderr(self.package)
        self.import_log = tf_log + self.import_log
        self.K = self.keras.backend
        self.compiled = {}
        # Theano placeholders carry only a rank (Keras 2 gives every dim
        # broadcastable=False whatever the shape), and TF1 runs the same kernels for
        # known and unknown dims, so both compile once per rank instead of once per
        # shape (a Theano compile costs seconds, a TF1 graph + first session run ~0.1 s).
        # A function that needs static shapes (int_shape) is retried with them. CNTK
        # and external backends get static shapes: CNTK cannot reshape unknown dims.
        self.static_shapes = self.K.backend() not in ("theano", "tensorflow")
        # CNTK cannot make 0-d placeholders ("creating placeholder with 0 dimension is
        # not supported"): a scalar input enters its graph as a constant instead.
        self.bakes_scalars = self.K.backend() == "cntk"
        # TensorFlow 1 keeps every graph ever built in one default graph, and building
        # gets slower as it grows (15 ms per small function on a fresh graph, 300 ms
        # after 400 functions), so its graphs are dropped when the op changes once
        # GRAPH_FUNCTIONS functions are built: a run asks for a few ops' signatures at a
        # time (a case, the cases queued behind it, shrink steps between them).
        self.graph_per_op = self.K.backend() == "tensorflow"
        self.last_fn = None
        # Signatures whose function fails with unknown dims: straight to static shapes
        # (each failure drops TensorFlow's graph, see _failed).
        self.needs_static = set()

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
        if self.package != "keras":
            info["keras_package"] = self.package
        if self.graph_mode:
            info["graph_mode"] = self.graph_mode
        if backend == "theano":
            import theano
            info["theano_blas"] = theano.config.blas.ldflags or "(none: slow fallbacks)"
        return info

    def set_floatx(self, floatx):
        self.K.set_floatx(floatx)
        # compiled graphs may hold floatx constants (epsilon, casts): build them again
        self._drop_graphs()

    def _path(self, fn_name):
        """keras.backend.exp -> tf_keras.backend.exp when the package is tf_keras."""
        if self.package != "keras" and fn_name.startswith("keras."):
            return self.package + fn_name[len("keras"):]
        return fn_name

    def _compile(self, fn_name, args, kwargs, static, params):
        """K.function over placeholders and variables.

        Returns (function, indices of fed arrays, [(index, variable)] of parameters).
        """
        fn = adapters.resolve(self._path(fn_name))
        kwargs = adapters.as_tuples(kwargs)
        inputs, fed, variables, position = [], [], [], [0]

        def to_symbol(array):
            index = position[0]
            position[0] += 1
            if index in params:  # a kernel or bias: a variable, as in a model
                variable = self.K.variable(array, dtype=str(array.dtype))
                variables.append((index, variable))
                return variable
            if array.ndim == 0 and self.bakes_scalars:
                return self.K.constant(array, dtype=str(array.dtype))
            if static:
                placeholder = self.K.placeholder(shape=array.shape, dtype=str(array.dtype))
            else:
                placeholder = self.K.placeholder(ndim=array.ndim, dtype=str(array.dtype))
            inputs.append(placeholder)
            fed.append(index)
            return placeholder

        symbolic = adapters.map_structure(to_symbol, args)
        outputs = adapters.flatten(fn(*symbolic, **kwargs))
        # An op that returns its input unchanged (tile by 1, cast to the same dtype)
        # would make K.function fetch a fed placeholder, which TF1 and CNTK refuse.
        outputs = [self._identity(o) if any(o is i for i in inputs) else o for o in outputs]
        return self.K.function(inputs, outputs), fed, variables

    def _identity(self, tensor):
        """K.identity; tf_keras.backend has none (dropout at rate 0 erred 'no attribute
        identity' there), and TensorFlow's own does the same."""
        identity = getattr(self.K, "identity", None)
        if identity is None and self.K.backend() == "tensorflow":
            import tensorflow as tf
            identity = tf.identity
        return identity(tensor) if identity is not None else tensor

    def _key(self, fn_name, args, kwargs, arrays, static, params):
        def part(index, array):
            if array.ndim == 0 and self.bakes_scalars and index not in params:
                return array.tobytes()  # baked in as a constant: its value keys the graph
            return array.shape if static or index in params else array.ndim
        return (_signature(fn_name, args, kwargs)
                + repr([part(i, a) for i, a in enumerate(arrays)]) + repr(sorted(params)))

    def _run(self, key, fn_name, args, kwargs, arrays, static, params):
        compile_s = 0.0
        entry = self.compiled.get(key)
        if entry is None:
            started = time.perf_counter()
            entry = self._compile(fn_name, args, kwargs, static, params)
            compile_s = time.perf_counter() - started
            self.compiled[key] = entry
        function, fed, variables = entry
        if variables:
            self.K.batch_set_value([(variable, arrays[i]) for i, variable in variables])
        return [np.asarray(r) for r in function([arrays[i] for i in fed])], compile_s

    def _drop_graphs(self):
        self.compiled = {}
        clear_session = getattr(self.K, "clear_session", None)  # external backends may lack it
        if clear_session is not None:
            clear_session()

    def call(self, fn_name, args, kwargs, params=()):
        if self.graph_per_op and fn_name != self.last_fn and len(self.compiled) > GRAPH_FUNCTIONS:
            self._drop_graphs()
        self.last_fn = fn_name
        arrays = adapters.leaf_arrays(args)
        params = set(params)
        if not self.static_shapes:
            dynamic = self._key(fn_name, args, kwargs, arrays, False, params)
            if dynamic not in self.needs_static:
                try:
                    return self._run(dynamic, fn_name, args, kwargs, arrays, False, params)
                except Unsupported:
                    raise
                except Exception:  # some Keras 2 functions need static shapes (int_shape)
                    self._failed()
                    self.needs_static.add(dynamic)
        static_key = self._key(fn_name, args, kwargs, arrays, True, params)
        try:
            return self._run(static_key, fn_name, args, kwargs, arrays, True, params)
        except Unsupported:
            raise
        except Exception:
            self._failed()
            raise

    def _failed(self):
        """A function that failed leaves its nodes in TensorFlow's one graph, and
        tf_keras (TensorFlow 2 in graph mode) then fails every function built after it
        with that node's error (measured: average_pool2d and conv2d at float16 raised
        'No OpKernel ... MaxPool3D' once max_pool3d had failed). What one op leaves
        behind must not decide another's verdict: the graph goes with the failure."""
        if self.graph_per_op:
            self._drop_graphs()
