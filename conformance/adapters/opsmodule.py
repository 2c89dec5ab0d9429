"""ops-module adapter: a plugin module exposing functions under ``keras.ops`` names
that take and return arrays. ``keras.ops.softmax`` is looked up as ``module.softmax``.

Gradients: a plugin that differentiates defines the optional hook

    conformance_vjp(name, args, kwargs, wrt, cotangents) -> list of arrays

`name` is the keras.ops name (``softmax``), `args` / `kwargs` as the op takes them,
`wrt` the indices of the array leaves of `args` (in order, nested lists flattened)
to differentiate with respect to, `cotangents` one array per output of the op. It
returns the vector-Jacobian product: for each `wrt` leaf, the gradient of
sum_i sum(output_i * cotangents[i]) with respect to it. Without the hook, gradient
cases are ``unsupported`` on the plugin."""
import os

import numpy as np

from conformance import adapters, kerasfacts
from conformance.adapters import Unsupported

VJP_HOOK = "conformance_vjp"


class Adapter(object):
    Unsupported = Unsupported

    def __init__(self, module):
        self.module, self.import_log = adapters.import_capturing_stderr(module)

    def info(self):
        info = adapters.base_info()
        info.update({
            "flavor": "ops-module",
            "keras": None,
            "backend": self.module.__name__,
            "backend_library": self.module.__name__,
            "backend_version": getattr(self.module, "__version__", "unknown"),
            "using_line": adapters.using_line(self.import_log),
            # a plugin without a setting's getter runs with Keras' default for it
            "floatx": getattr(self.module, "floatx", lambda: kerasfacts.DEFAULT_FLOATX)(),
            "epsilon": float(getattr(self.module, "epsilon",
                                     lambda: kerasfacts.DEFAULT_EPSILON)()),
            "image_data_format": getattr(self.module, "image_data_format",
                                         lambda: kerasfacts.DEFAULT_IMAGE_DATA_FORMAT)(),
            "keras_home": os.environ.get("KERAS_HOME"),
        })
        return info

    def set_floatx(self, floatx):
        set_floatx = getattr(self.module, "set_floatx", None)
        if set_floatx is None:  # the pool restarts the worker with keras.json instead
            raise Unsupported("%s has no set_floatx" % self.module.__name__)
        set_floatx(floatx)

    def call(self, fn_name, args, kwargs, params=()):  # eager: params are plain inputs
        name = fn_name.rsplit(".", 1)[-1]
        fn = getattr(self.module, name, None)
        if fn is None:
            raise Unsupported("%s has no function %r" % (self.module.__name__, name))
        result = fn(*args, **adapters.as_tuples(kwargs))
        return [np.asarray(leaf) for leaf in adapters.flatten(result)], 0.0

    def vjp(self, fn_name, args, kwargs, params, wrt, cotangents):
        hook = getattr(self.module, VJP_HOOK, None)
        if hook is None:
            raise Unsupported("%s has no %s hook (see conformance.adapters.opsmodule)"
                              % (self.module.__name__, VJP_HOOK))
        grads = hook(fn_name.rsplit(".", 1)[-1], args, adapters.as_tuples(kwargs),
                     list(wrt), list(cotangents))
        return [np.asarray(g) for g in grads], 0.0
