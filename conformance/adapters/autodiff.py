"""Vector-Jacobian products on Keras 3 backends, through each backend's own autodiff,
the way Keras's trainers differentiate a loss: ``jax.grad`` compiled with ``jax.jit``
(JAXTrainer jit-compiles a step that calls ``jax.value_and_grad``),
``tf.GradientTape`` (TensorFlowTrainer), ``torch.autograd`` (TorchTrainer calls
``loss.backward()``).

The loss is sum_i sum(output_i * cotangent_i): its gradient with respect to an input
is the vector-Jacobian product with those cotangents, and the loss adds no rounding to
it (the derivative of a product by a constant is the constant, a sum's is ones).
An input the outputs do not depend on gets zeros (JAX's answer; TensorFlow and torch
say None). NumPy and OpenVINO have no autodiff: ``unsupported``.
"""
import numpy as np

from conformance import adapters
from conformance.adapters import Unsupported


def vjp(keras, fn, args, kwargs, wrt, cotangents):
    """[d loss / d leaf for each leaf index in `wrt`] as NumPy arrays."""
    ops = keras.ops
    backend = keras.backend.backend()
    differentiate = _DIFFERENTIATORS.get(backend)
    if differentiate is None:
        raise Unsupported("the %s backend has no automatic differentiation" % backend)
    arrays = adapters.leaf_arrays(args)
    leaves = [ops.convert_to_tensor(a, dtype=str(a.dtype)) for a in arrays]
    cotangents = [ops.convert_to_tensor(c, dtype=str(c.dtype)) for c in cotangents]

    def loss(chosen, all_leaves, all_cotangents):
        current = list(all_leaves)
        for index, tensor in zip(wrt, chosen):
            current[index] = tensor
        outputs = adapters.flatten(fn(*adapters.with_leaves(args, current), **kwargs))
        if len(outputs) != len(all_cotangents):
            raise ValueError("%d outputs, %d cotangents" % (len(outputs), len(all_cotangents)))
        terms = [ops.sum(ops.multiply(o, c)) for o, c in zip(outputs, all_cotangents)]
        total = terms[0]
        for term in terms[1:]:
            total = ops.add(total, term)
        return total

    grads = differentiate(loss, [leaves[i] for i in wrt], leaves, cotangents)
    return [np.zeros_like(arrays[i]) if g is None else np.asarray(ops.convert_to_numpy(g))
            for i, g in zip(wrt, grads)]


def _jax(loss, inputs, leaves, cotangents):
    # Compiled as JAXTrainer compiles its train step (jit_compile defaults to True on
    # JAX); an op that cannot be traced (a shape that depends on values) is
    # differentiated eagerly instead.
    import jax
    differentiate = jax.grad(loss)
    try:
        return jax.jit(differentiate)(inputs, leaves, cotangents)
    except (jax.errors.JAXTypeError, jax.errors.JAXIndexError):
        return differentiate(inputs, leaves, cotangents)


def _tensorflow(loss, inputs, leaves, cotangents):
    import tensorflow as tf
    with tf.GradientTape() as tape:
        for tensor in inputs:
            tape.watch(tensor)
        value = loss(inputs, leaves, cotangents)
    return tape.gradient(value, inputs)


def _torch(loss, inputs, leaves, cotangents):
    import torch
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    return torch.autograd.grad(loss(inputs, leaves, cotangents), inputs, allow_unused=True)


_DIFFERENTIATORS = {"jax": _jax, "tensorflow": _tensorflow, "torch": _torch}
