"""Keras facts: what Keras 2.3.1 and Keras 3 accept, default to and raise.

Every module that needs one of these reads it from here, the parent's and the
worker's alike, so this module runs inside target interpreters too: Python 3.6 safe,
standard library only, importing nothing from the package. Each fact says the Keras
source it comes from; the harness's own choices (which bad value a probe tries, which
other backend a setup names) live with the code that makes them.
"""

# -- keras.json ----------------------------------------------------------------------
# What Keras uses for a key missing from keras.json, and what it writes to a keras.json
# it creates: identical in keras/backend/common.py + load_backend.py (2.3.1) and
# keras/src/backend/config.py (3). The backend is the default one even when
# KERAS_BACKEND names another: the file is written before KERAS_BACKEND is applied.
DEFAULT_FLOATX = "float32"
DEFAULT_EPSILON = 1e-07
DEFAULT_BACKEND = "tensorflow"
DEFAULT_IMAGE_DATA_FORMAT = "channels_last"


def keras_json_defaults():
    """The keras.json Keras writes when there is none (a new dict each call: callers
    may change theirs)."""
    return {"floatx": DEFAULT_FLOATX, "epsilon": DEFAULT_EPSILON,
            "backend": DEFAULT_BACKEND, "image_data_format": DEFAULT_IMAGE_DATA_FORMAT}


# Keys Keras reads from keras.json; "nnx_enabled" is read by Keras 3 only.
KERAS_JSON_KEYS = ("floatx", "epsilon", "backend", "image_data_format", "nnx_enabled")

# The floatx values both versions accept from keras.json, narrowest first. Keras 3
# takes "bfloat16" only through set_floatx() in code.
FLOATX_VALUES = ("float16", "float32", "float64")
IMAGE_DATA_FORMATS = ("channels_last", "channels_first")

# -- backends ------------------------------------------------------------------------
KERAS2_BACKENDS = ("tensorflow", "theano", "cntk")
KERAS3_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")
KNOWN_BACKENDS = ("tensorflow", "theano", "cntk", "jax", "torch", "numpy", "openvino")

# What Keras 2.3.1 writes to stderr while importing keras.backend (CNTK's line has no
# period); Keras 3 prints none.
KERAS2_USING_LINES = {"tensorflow": "Using TensorFlow backend.",
                      "theano": "Using Theano backend.",
                      "cntk": "Using CNTK backend"}


def keras2_using_line(backend):
    """The line Keras 2.3.1 prints for `backend`; an external backend module gets the
    generic form."""
    return KERAS2_USING_LINES.get(backend, "Using %s backend." % backend)


# -- invalid values --------------------------------------------------------------------
# A value each setter must refuse: (setter, value).
INVALID_VALUES = (("set_floatx", "float8"), ("set_image_data_format", "channels_middle"),
                  ("set_epsilon", "x"))

# What each flavor's reference source raises for INVALID_VALUES: (exception type, words
# its message holds), or None where it accepts the value and stores it.
INVALID_ERRORS = {
    "keras3": {"set_floatx": ("ValueError", "Unknown `floatx` value: float8"),
               "set_image_data_format": ("ValueError", "Received: data_format=channels_middle"),
               "set_epsilon": None},
    "keras2": {"set_floatx": ("ValueError", "Unknown floatx type"),
               "set_image_data_format": ("ValueError", "Unknown data_format"),
               "set_epsilon": ("ValueError", "could not convert string to float")},
}
INVALID_SOURCES = {
    "keras3": "keras/src/backend/config.py (Keras 3.x): set_floatx and set_image_data_format "
              "raise ValueError; set_epsilon stores any value (no validation)",
    "keras2": "keras/backend/common.py (Keras 2.3.1): set_floatx and set_image_data_format "
              "raise ValueError; set_epsilon does float(e)",
}
