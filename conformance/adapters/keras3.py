"""Keras 3 adapter: arrays become backend tensors, ``fn`` is a dotted path such as
``keras.ops.softmax``; results come back through ``keras.ops.convert_to_numpy``."""
import os

import numpy as np

from conformance import adapters
from conformance.adapters import Unsupported


class Adapter(object):
    Unsupported = Unsupported

    def __init__(self, module=None):
        self.keras, self.import_log = adapters.import_capturing_stderr("keras")
        self.ops = self.keras.ops

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
        return info

    def set_floatx(self, floatx):
        self.keras.config.set_floatx(floatx)

    def call(self, fn_name, args, kwargs, params=()):  # eager: params are plain inputs
        fn = adapters.resolve(fn_name)
        kwargs = adapters.as_tuples(kwargs)
        # Explicit dtype: the op is under test, not convert_to_tensor's default dtype
        # (which on some backends turns float64 input into float32).
        tensors = adapters.map_structure(
            lambda a: self.ops.convert_to_tensor(a, dtype=str(a.dtype)), args)
        result = fn(*tensors, **kwargs)
        return [np.asarray(self.ops.convert_to_numpy(leaf))
                for leaf in adapters.flatten(result)], 0.0
