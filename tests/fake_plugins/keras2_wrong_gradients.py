"""A Keras 2 external backend whose forward values are all right and whose gradients
are wrong in two functions (TensorFlow 1's backend, two functions given custom
gradients with a planted mistake each):

1. ``tanh``: its gradient is taken as 1 - y instead of 1 - y**2.
2. ``exp``: its gradient is taken as y + 1 instead of y.

K.gradients of everything else is TensorFlow's own and conforms."""
import tensorflow as tf

from keras.backend.tensorflow_backend import *  # noqa: F401,F403  (the base backend)


@tf.custom_gradient
def _tanh(x):
    y = tf.tanh(x)

    def gradient(dy):
        return dy * (1 - y)  # planted: 1 - y**2
    return y, gradient


@tf.custom_gradient
def _exp(x):
    y = tf.exp(x)

    def gradient(dy):
        return dy * (y + 1)  # planted: y
    return y, gradient


def tanh(x):
    return _tanh(x)


def exp(x):
    return _exp(x)
