"""Configuration probes: what a target says about its own configuration.

Runs inside target interpreters (Python 3.6 safe, stdlib + numpy only), behind the
worker's ``config`` command::

    {"cmd": "config", "sections": ["settings", "files", "dtypes", "runtime", "invalid"]}

``sections`` is optional (default: all). Each section is probed on its own: one that
raises is reported as ``{"error": ...}`` and the others still run. Every probe that
changes a setting (``set_floatx`` and friends) restores it before it returns.

- settings: backend(), floatx(), epsilon(), image_data_format() as the flavor's API says
- files: KERAS_HOME, the folder and keras.json Keras itself resolved, whether that file
  exists now (and its text), HOME and whether ``~/.keras`` exists, the ``Using ...
  backend`` line captured from stderr during ``import keras``
- dtypes: the dtype of a variable, a constant, an op result (exp of the constant) and
  ``ones`` created with the default dtype; both the dtype Keras declares and the dtype
  of the value that comes back
- runtime: set_floatx / set_epsilon / set_image_data_format take effect (then restored)
- invalid: set_floatx('float8'), set_image_data_format('channels_middle'),
  set_epsilon('x'): the error raised (type and message), or what was stored instead
"""
import os
import sys

import numpy as np

from conformance import adapters, kerasfacts

SECTIONS = ("settings", "files", "dtypes", "runtime", "invalid")
RUNTIME_EPSILON = 0.00123  # distinct from any default, so that setting it shows


class _NotAvailable(Exception):
    """The flavor has no such thing (an ops-module plugin has no keras.json)."""


def _describe_error(exc):
    return {"type": type(exc).__name__, "message": str(exc)[:1000]}


def _plain(value):
    """A JSON-able stand-in for whatever a getter returned (epsilon may be a string)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return repr(value)


class _Keras3(object):
    flavor = "keras3"

    def __init__(self, adapter):
        self.keras = adapter.keras
        self.ops = adapter.ops
        self.config = getattr(self.keras, "config", self.keras.backend)
        self.import_log = adapter.import_log

    def get(self, name):
        return getattr(self.config, name)()

    def set(self, name, value):
        getattr(self.config, name)(value)

    def files(self):
        from keras.src.backend import config as config_module
        return {"keras_dir": getattr(config_module, "_KERAS_DIR", None),
                "config_path": getattr(config_module, "_config_path", None)}

    def dtype_name(self, x):
        return self.keras.backend.standardize_dtype(x.dtype)

    def value_dtype(self, x):
        return str(np.asarray(self.ops.convert_to_numpy(x)).dtype)

    def makers(self):
        # The creators whose documented default dtype is floatx. A Variable built from
        # an array-like takes the array's dtype, and Python floats are float32 in Keras
        # 3's promotion rules whatever floatx says: those go in "python_floats", for
        # information only.
        constant = lambda: self.ops.full((2,), 1.5)
        return [("variable", "keras.Variable(initializer='ones', shape=(2,))",
                 lambda: self.keras.Variable(initializer="ones", shape=(2,))),
                ("constant", "keras.ops.full((2,), 1.5)", constant),
                ("op", "keras.ops.exp(keras.ops.full((2,), 1.5))",
                 lambda: self.ops.exp(constant())),
                ("ones", "keras.ops.ones((2,))", lambda: self.ops.ones((2,))),
                ("python_floats", "keras.ops.convert_to_tensor([1.0, 2.0])",
                 lambda: self.ops.convert_to_tensor([1.0, 2.0]))]


class _Keras2(object):
    flavor = "keras2"

    def __init__(self, adapter):
        self.K = adapter.K
        self.import_log = adapter.import_log

    def get(self, name):
        return getattr(self.K, name)()

    def set(self, name, value):
        getattr(self.K, name)(value)

    def files(self):
        load_backend = sys.modules.get("keras.backend.load_backend")
        return {"keras_dir": getattr(load_backend, "_keras_dir", None),
                "config_path": getattr(load_backend, "_config_path", None)}

    def dtype_name(self, x):
        return str(self.K.dtype(x))

    def value_dtype(self, x):
        return str(np.asarray(self.K.eval(x)).dtype)

    def makers(self):
        constant = lambda: self.K.constant([1.0, 2.0])
        return [("variable", "K.variable([1.0, 2.0])", lambda: self.K.variable([1.0, 2.0])),
                ("constant", "K.constant([1.0, 2.0])", constant),
                ("op", "K.exp(K.constant([1.0, 2.0]))", lambda: self.K.exp(constant())),
                ("ones", "K.ones((2,))", lambda: self.K.ones((2,)))]


class _OpsModule(object):
    """A plugin module: settings from its optional floatx()/epsilon()/... functions."""
    flavor = "ops-module"
    defaults = {"backend": None, "floatx": kerasfacts.DEFAULT_FLOATX,
                "epsilon": kerasfacts.DEFAULT_EPSILON,
                "image_data_format": kerasfacts.DEFAULT_IMAGE_DATA_FORMAT}

    def __init__(self, adapter):
        self.module = adapter.module
        self.import_log = adapter.import_log

    def get(self, name):
        if name == "backend":
            return self.module.__name__
        fn = getattr(self.module, name, None)
        return fn() if fn is not None else self.defaults[name]

    def set(self, name, value):
        fn = getattr(self.module, name, None)
        if fn is None:
            raise _NotAvailable("%s has no %s()" % (self.module.__name__, name))
        fn(value)

    def files(self):
        raise _NotAvailable("an ops-module plugin reads no keras.json")

    def makers(self):
        raise _NotAvailable("an ops-module plugin has no variables or constants")


def _api(adapter):
    flavor = type(adapter).__module__.rsplit(".", 1)[-1]
    if flavor == "keras3":
        return _Keras3(adapter)
    if flavor == "keras2":
        return _Keras2(adapter)
    return _OpsModule(adapter)


# -- sections -----------------------------------------------------------------------
def settings(api):
    return dict((name, _plain(api.get(name)))
                for name in ("backend", "floatx", "epsilon", "image_data_format"))


def files(api):
    home = os.path.expanduser("~")
    found = {"keras_home_env": os.environ.get("KERAS_HOME"),
             "keras_backend_env": os.environ.get("KERAS_BACKEND"),
             "home": home,
             "home_keras_exists": os.path.exists(os.path.join(home, ".keras")),
             "using_line": adapters.using_line(api.import_log),
             "import_stderr": api.import_log[-2000:]}
    try:
        found.update(api.files())
    except _NotAvailable as exc:
        found["unsupported"] = str(exc)
        return found
    path = found.get("config_path")
    found["config_exists"] = bool(path) and os.path.exists(path)
    if found["config_exists"]:
        with open(path) as handle:
            found["config_text"] = handle.read(4000)
    return found


def _dtype_of(api, make):
    x = make()
    return {"declared": api.dtype_name(x), "value": api.value_dtype(x)}


def dtypes(api):
    result = {}
    for name, how, make in api.makers():
        try:
            result[name] = _dtype_of(api, make)
        except Exception as exc:
            result[name] = {"error": _describe_error(exc)}
        result[name]["how"] = how
    return result


def _restoring(api, getter, setter, value, read):
    """Set `value` with `setter`, return `read()`, put the previous value back."""
    before = api.get(getter)
    try:
        api.set(setter, value)
        return read()
    finally:
        api.set(setter, before)


def runtime(api):
    floatx_now, format_now = api.get("floatx"), api.get("image_data_format")
    checks = [
        ("floatx", "float16" if floatx_now != "float16" else "float32"),
        ("epsilon", RUNTIME_EPSILON),
        ("image_data_format",
         "channels_first" if format_now != "channels_first" else "channels_last")]

    def read(name):
        observed = {"read": _plain(api.get(name))}
        if name == "floatx":  # a constant made now must take the new floatx
            try:
                make = [m for name_, _, m in api.makers() if name_ == "constant"][0]
                observed["constant"] = _dtype_of(api, make)
            except _NotAvailable:
                pass
            except Exception as exc:
                observed["constant"] = {"error": _describe_error(exc)}
        return observed

    result = {}
    for name, value in checks:
        setter = "set_" + name
        try:
            observed = _restoring(api, name, setter, value, lambda: read(name))
            observed["set"] = value
            observed["restored"] = _plain(api.get(name))
            result[setter] = observed
        except _NotAvailable as exc:
            result[setter] = {"unsupported": str(exc)}
        except Exception as exc:
            result[setter] = {"error": _describe_error(exc)}
    return result


def invalid(api):
    result = {}
    for setter, value in kerasfacts.INVALID_VALUES:
        getter = setter[len("set_"):]
        before = api.get(getter)
        entry = {"value": value, "before": _plain(before)}
        try:
            api.set(setter, value)
        except _NotAvailable as exc:
            result[setter] = {"unsupported": str(exc)}
            continue
        except Exception as exc:
            entry["raised"] = _describe_error(exc)
        else:
            entry["raised"] = None
        entry["after"] = _plain(api.get(getter))
        if entry["after"] != entry["before"]:
            api.set(setter, before)  # an accepted invalid value must not leak into later probes
        result[setter] = entry
    return result


_PROBES = {"settings": settings, "files": files, "dtypes": dtypes, "runtime": runtime,
           "invalid": invalid}


def probe(adapter, request):
    """The ``config`` command: the requested sections, each probed on its own."""
    api = _api(adapter)
    reply = {"flavor": api.flavor}
    for name in request.get("sections") or SECTIONS:
        fn = _PROBES.get(name)
        if fn is None:
            reply[name] = {"error": {"type": "KeyError", "message": "unknown section %r" % name}}
            continue
        try:
            reply[name] = fn(api)
        except _NotAvailable as exc:
            reply[name] = {"unsupported": str(exc)}
        except Exception as exc:
            reply[name] = {"error": _describe_error(exc)}
    return reply
