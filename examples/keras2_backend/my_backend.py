"""my_backend: a small Keras 2 external backend, written to show `conformance validate`.

Use it with Keras 2.3.1 the way Keras loads any external backend, with this folder
on ``sys.path``::

    KERAS_BACKEND=my_backend python train.py
    # or "backend": "my_backend" in $KERAS_HOME/keras.json

It starts from TensorFlow 1's backend (``keras.backend.tensorflow_backend``), as many
third-party backends do, and replaces three functions with versions of its own. Each
looks reasonable and holds one documented mistake:

1. ``softmax`` skips the max-subtraction: ``exp(x) / sum(exp(x))``. Right for small
   logits, but exp overflows for large ones (x > 88 in float32, > 11 in float16) and
   the result is inf / inf = NaN. Wrong at every floatx.
2. ``sigmoid`` is off by a constant: it adds ``epsilon()`` "so that log(sigmoid(x))
   never sees 0". Every output moves by 1e-7, which is far beyond rounding wherever
   sigmoid is small (x < -10 or so) in float32, and everywhere in float64. (In
   float16, 1e-7 is below the flush-to-zero floor the comparison allows.)
3. ``square`` casts to float32 "for speed", so its result is float32 whatever floatx
   is: a dtype divergence at float16 and float64; float32 is unaffected.

Everything else is TensorFlow's own Keras backend and conforms.
"""
import tensorflow as tf

from keras.backend.common import epsilon
from keras.backend.tensorflow_backend import *  # noqa: F401,F403  (the base backend)

__version__ = "0.1.0"


def softmax(x, axis=-1):
    """Mistake 1: no max-subtraction, so large logits overflow to NaN."""
    e = tf.exp(x)
    return e / tf.reduce_sum(e, axis=axis, keepdims=True)


def sigmoid(x):
    """Mistake 2: off by the constant epsilon()."""
    return tf.nn.sigmoid(x) + epsilon()


def square(x):
    """Mistake 3: computes, and returns, float32 whatever floatx is."""
    return tf.square(tf.cast(x, tf.float32))
