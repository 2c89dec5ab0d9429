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
        # not supported"): a float scalar input enters its graph as a constant instead,
        # an int or bool one as a variable (see _held).
        self.bakes_scalars = self.K.backend() == "cntk"
        # CNTK's K.function needs every output to be a computed node: a variable or a
        # constant as an output raises "'Parameter' object has no attribute 'output'"
        # (K.function([], [K.eye(3)])), where K.eval works. An op with nothing to feed
        # (eye, truncated_normal, a scalar held in a variable) is evaluated the way a
        # user does, with K.eval.
        self.evaluates_unfed = self.K.backend() == "cntk"
        # TensorFlow 1 keeps every graph ever built in one default graph, and building
        # gets slower as it grows (15 ms per small function on a fresh graph, 300 ms
        # after 400 functions), so its graphs are dropped when the op changes once
        # GRAPH_FUNCTIONS functions are built: a run asks for a few ops' signatures at a
        # time (a case, the cases queued behind it, shrink steps between them). External
        # backends built on TensorFlow grow the same graph: theirs are dropped too when
        # they have a clear_session (see _session_reset).
        self.clear_session = self._session_reset()
        self.graph_per_op = self.K.backend() == "tensorflow" or (
            self.K.backend() not in ("theano", "cntk") and self.clear_session is not None)
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
        if self.K.backend() == "theano" and floatx != self.K.floatx():
            # Keras sets theano.config.floatX from floatx once, at import; K.set_floatx
            # leaves it, so Python float constants stay at the start floatx (float16
            # results came back float32, float64 ones used float32 constants: selu's
            # scale, epsilon). Only a worker started with that floatx in keras.json is
            # what a Theano user at that floatx runs: the pool restarts this one.
            raise Unsupported("Theano takes floatx at import (theano.config.floatX); "
                              "K.set_floatx(%r) would leave it at %r"
                              % (floatx, self.K.floatx()))
        self.K.set_floatx(floatx)
        # compiled graphs may hold floatx constants (epsilon, casts): build them again
        self._drop_graphs()

    def _path(self, fn_name):
        """keras.backend.exp -> tf_keras.backend.exp when the package is tf_keras."""
        if self.package != "keras" and fn_name.startswith("keras."):
            return self.package + fn_name[len("keras"):]
        return fn_name

    def _compile(self, fn_name, args, kwargs, static, params, cotangents=None, wrt=()):
        """K.function over placeholders and variables; with `cotangents`, of the
        gradients (K.gradients) of sum_i sum(output_i * cotangent_i) with respect to
        the `wrt` leaves, the cotangents fed after the inputs.

        Returns (function, indices of fed arrays, [(index, variable)] of parameters).
        """
        fn = adapters.resolve(self._path(fn_name))
        kwargs = adapters.as_tuples(kwargs)
        inputs, fed, variables, symbols = [], [], [], []

        def to_symbol(array):
            index = len(symbols)
            symbols.append(self._symbol(index, array, params, static, inputs, fed, variables))
            return symbols[-1]

        symbolic = adapters.map_structure(to_symbol, args)
        outputs = adapters.flatten(fn(*symbolic, **kwargs))
        if cotangents is not None:
            outputs = self._gradients(outputs, cotangents, [symbols[i] for i in wrt],
                                      static, inputs)
        if not inputs and self.evaluates_unfed:
            return self._evaluator(outputs), fed, variables
        # An op that returns its input unchanged (tile by 1, cast to the same dtype)
        # would make K.function fetch a fed placeholder, which TF1 and CNTK refuse, or
        # a variable, which CNTK refuses.
        held = inputs + [variable for _, variable in variables]
        outputs = [self._identity(o) if any(o is i for i in held) else o for o in outputs]
        return self.K.function(inputs, outputs), fed, variables

    def _symbol(self, index, array, params, static, inputs, fed, variables):
        """Leaf `index` as a graph symbol; placeholders join `inputs` and `fed`,
        variables join `variables`."""
        held = self._held(index, array, params)
        if held == "variable":  # a kernel or bias: a variable, as in a model
            variable = self.K.variable(array, dtype=self._variable_dtype(array))
            variables.append((index, variable))
            return variable
        if held == "constant":
            return self.K.constant(array, dtype=str(array.dtype))
        inputs.append(self._placeholder(array, static))
        fed.append(index)
        return inputs[-1]

    def _placeholder(self, array, static):
        if static:
            return self.K.placeholder(shape=array.shape, dtype=str(array.dtype))
        return self.K.placeholder(ndim=array.ndim, dtype=str(array.dtype))

    def _gradients(self, outputs, cotangents, wrt, static, inputs):
        """K.gradients of sum_i sum(output_i * cotangent_i) over `wrt`, the way a
        Keras 2 optimizer takes them (get_updates calls K.gradients(loss, params));
        the cotangents become placeholders appended to `inputs` (constants where 0-d
        inputs are, see _held)."""
        if len(outputs) != len(cotangents):
            raise ValueError("%d outputs, %d cotangents" % (len(outputs), len(cotangents)))
        loss = None
        for output, cotangent in zip(outputs, cotangents):
            if self._baked(cotangent):
                symbol = self.K.constant(cotangent, dtype=str(cotangent.dtype))
            else:
                symbol = self._placeholder(cotangent, static)
                inputs.append(symbol)
            term = self.K.sum(output * symbol)
            loss = term if loss is None else loss + term
        return self.K.gradients(loss, wrt)

    def _baked(self, array):
        """A 0-d float array CNTK takes as a constant only (see _held)."""
        return self._held(-1, array, ()) == "constant"

    def _held(self, index, array, params):
        """How an array leaf enters the graph: 'variable', 'constant' or 'fed'."""
        if index in params:
            return "variable"
        if array.ndim == 0 and self.bakes_scalars:
            # CNTK has no int or bool tensors: K.constant(dtype='int32') raises 'data
            # type "int32" is not supported'; its K.placeholder and K.variable hold ints
            # as float32, so a 0-d int or bool enters as a variable, as a user keeps one
            return "constant" if array.dtype.kind in "fc" else "variable"
        return "fed"

    def _variable_dtype(self, array):
        """CNTK holds ints and bools in float32: its K.variable turns 'int32' into float32
        itself and refuses 'bool', its K.placeholder makes both float32."""
        if self.bakes_scalars and array.dtype.kind in "biu":
            return "float32"
        return str(array.dtype)

    def _evaluator(self, outputs):
        """A K.function stand-in for a graph with nothing to feed: K.eval per output."""
        K = self.K

        def evaluate(values):
            return [K.eval(output) for output in outputs]
        return evaluate

    def _identity(self, tensor):
        """K.identity; tf_keras.backend has none (dropout at rate 0 erred 'no attribute
        identity' there), and TensorFlow's own does the same."""
        identity = getattr(self.K, "identity", None)
        if identity is None and self.K.backend() == "tensorflow":
            import tensorflow as tf
            identity = tf.identity
        return identity(tensor) if identity is not None else tensor

    def _key(self, fn_name, args, kwargs, arrays, static, params, gradient=None):
        def part(index, array):
            held = self._held(index, array, params)
            if held == "constant":
                return array.tobytes()  # baked in as a constant: its value keys the graph
            return array.shape if static or held == "variable" else array.ndim
        key = (_signature(fn_name, args, kwargs)
               + repr([part(i, a) for i, a in enumerate(arrays)]) + repr(sorted(params)))
        if gradient is not None:
            cotangents, wrt = gradient
            key += "vjp" + repr([c.tobytes() if self._baked(c) else c.shape if static else c.ndim
                                 for c in cotangents]) + repr(wrt)
        return key

    def _run(self, key, fn_name, args, kwargs, arrays, static, params, gradient):
        """`gradient`: None for a call, (cotangents, wrt) for a vjp."""
        compile_s = 0.0
        entry = self.compiled.get(key)
        if entry is None:
            started = time.perf_counter()
            entry = self._compile(fn_name, args, kwargs, static, params, *(gradient or ()))
            compile_s = time.perf_counter() - started
            self.compiled[key] = entry
        function, fed, variables = entry
        if variables:
            self.K.batch_set_value([(variable, arrays[i]) for i, variable in variables])
        values = [arrays[i] for i in fed] + [c for c in (gradient[0] if gradient else ())
                                             if not self._baked(c)]
        return [np.asarray(r) for r in function(values)], compile_s

    def _session_reset(self):
        """The backend's clear_session, or None. keras.backend exports it for the
        tensorflow and cntk backends only; an external backend's own (a plugin that
        re-exports the TensorFlow backend has one) is in keras.backend.load_backend,
        where Keras 2.3.1 puts every entry of the backend module."""
        reset = getattr(self.K, "clear_session", None)
        if reset is None:
            reset = getattr(getattr(self.K, "load_backend", None), "clear_session", None)
        return reset

    def _drop_graphs(self):
        self.compiled = {}
        if self.clear_session is not None:
            self.clear_session()

    def vjp(self, fn_name, args, kwargs, params, wrt, cotangents):
        return self.call(fn_name, args, kwargs, params, (cotangents, list(wrt)))

    def call(self, fn_name, args, kwargs, params=(), gradient=None):
        if self.graph_per_op and fn_name != self.last_fn and len(self.compiled) > GRAPH_FUNCTIONS:
            self._drop_graphs()
        self.last_fn = fn_name
        arrays = adapters.leaf_arrays(args)
        params = set(params)
        if not self.static_shapes:
            dynamic = self._key(fn_name, args, kwargs, arrays, False, params, gradient)
            if dynamic not in self.needs_static:
                try:
                    return self._run(dynamic, fn_name, args, kwargs, arrays, False, params,
                                     gradient)
                except Unsupported:
                    raise
                except Exception:  # some Keras 2 functions need static shapes (int_shape)
                    self._failed()
                    self.needs_static.add(dynamic)
        static_key = self._key(fn_name, args, kwargs, arrays, True, params, gradient)
        try:
            return self._run(static_key, fn_name, args, kwargs, arrays, True, params, gradient)
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
