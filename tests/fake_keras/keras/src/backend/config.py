"""A miniature of Keras 3's keras/src/backend/config.py, for fast configuration tests.

Defects to plant come from FAKE_KERAS_DEFECTS (comma-separated names, see DEFECTS).
"""
import json
import os
import sys

DEFECTS = set(filter(None, os.environ.get("FAKE_KERAS_DEFECTS", "").split(",")))
KNOWN_DEFECTS = {
    "float64_as_float32",      # float64 tensors come out float32 (Keras 3 JAX without x64)
    "ignore_keras_backend",    # KERAS_BACKEND is not read
    "ignore_keras_home",       # keras.json is read from ~/.keras, not KERAS_HOME
    "writes_home",             # a missing keras.json is written to ~/.keras
    "epsilon_fixed",           # ops use 1e-7 whatever epsilon says
    "channels_first_ignored",  # conv and pooling treat every input as channels_last
    "set_floatx_unchecked",    # set_floatx accepts anything
    "runtime_floatx_ignored",  # set_floatx changes floatx() but not new tensors
    "using_line",              # prints a Keras 2 style "Using ... backend." line
}
unknown = DEFECTS - KNOWN_DEFECTS
if unknown:
    raise ValueError("unknown FAKE_KERAS_DEFECTS %s" % sorted(unknown))

_FLOATX = "float32"
_EPSILON = 1e-7
_IMAGE_DATA_FORMAT = "channels_last"
_BACKEND = "tensorflow"
_TENSOR_FLOATX = None  # what new tensors use when runtime_floatx_ignored


def floatx():
    return _FLOATX


def set_floatx(value):
    global _FLOATX
    if "set_floatx_unchecked" not in DEFECTS and value not in {
            "bfloat16", "float16", "float32", "float64"}:
        raise ValueError("Unknown `floatx` value: %s. Expected one of ..." % value)
    _FLOATX = str(value)


def epsilon():
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = value


def image_data_format():
    return _IMAGE_DATA_FORMAT


def set_image_data_format(data_format):
    global _IMAGE_DATA_FORMAT
    data_format = str(data_format).lower()
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError("The `data_format` argument must be one of {'channels_first', "
                         "'channels_last'}. Received: data_format=%s" % data_format)
    _IMAGE_DATA_FORMAT = data_format


def backend():
    return _BACKEND


def tensor_floatx():
    return _TENSOR_FLOATX if _TENSOR_FLOATX is not None else _FLOATX


_home = os.path.expanduser("~")
if "KERAS_HOME" in os.environ and "ignore_keras_home" not in DEFECTS:
    _KERAS_DIR = os.environ["KERAS_HOME"]
else:
    _KERAS_DIR = os.path.join(_home, ".keras")
_config_path = os.path.join(_KERAS_DIR, "keras.json")
if os.path.exists(_config_path):
    with open(_config_path) as handle:
        _config = json.load(handle)
    set_floatx(_config.get("floatx", _FLOATX))
    set_epsilon(_config.get("epsilon", _EPSILON))
    set_image_data_format(_config.get("image_data_format", _IMAGE_DATA_FORMAT))
    _BACKEND = _config.get("backend", _BACKEND)
else:
    _write_dir = os.path.join(_home, ".keras") if "writes_home" in DEFECTS else _KERAS_DIR
    if not os.path.exists(_write_dir):
        os.makedirs(_write_dir)
    with open(os.path.join(_write_dir, "keras.json"), "w") as handle:
        handle.write(json.dumps({"floatx": _FLOATX, "epsilon": _EPSILON, "backend": _BACKEND,
                                 "image_data_format": _IMAGE_DATA_FORMAT}, indent=4))
if os.environ.get("KERAS_BACKEND") and "ignore_keras_backend" not in DEFECTS:
    _BACKEND = os.environ["KERAS_BACKEND"]
if "runtime_floatx_ignored" in DEFECTS:
    _TENSOR_FLOATX = _FLOATX
if "using_line" in DEFECTS:
    sys.stderr.write("Using %s backend.\n" % _BACKEND)
