"""The lines of a repro script that compute a gradient (`grad_<op>` counterexamples),
the way a user of each flavor differentiates: ``K.gradients`` in a ``K.function``
(Keras 2), the backend's autodiff on ``keras.ops`` (Keras 3: ``jax.grad`` under ``jax.jit``,
``tf.GradientTape``, ``torch.autograd.grad``), the ``conformance_vjp`` hook (ops-module
plugins). The differentiated function is sum_i sum(output_i * cotangent_i), so the
gradients are the vector-Jacobian product the harness compared with its reference.

Each function returns the lines that follow the flavor's own helpers (and, for Keras 2,
its call) in `repro.script`, and end with ``outputs``, the list of gradients as NumPy
arrays.
"""
from __future__ import annotations


def keras2(wrt: list[str], cotangents: list[str]) -> list[str]:
    """After the call: `result` holds its outputs, `symbols` each input's placeholder."""
    return [
        "# the gradient of sum(output * cotangent), as an optimizer takes K.gradients of a loss",
        f"cotangents = [{', '.join(cotangents)}]",
        "cotangent_placeholders = [K.placeholder(shape=c.shape, dtype=str(c.dtype)) for c in cotangents]",
        "loss = sum(K.sum(o * c) for o, c in zip(result, cotangent_placeholders))",
        f"grads = K.gradients(loss, [symbols[id(a)] for a in [{', '.join(wrt)}]])",
        "run = K.function(placeholders + cotangent_placeholders, [K.identity(g) for g in grads])",
        "outputs = [np.asarray(o) for o in run(feeds + cotangents)]",
    ]


def keras3(backend: str, fn_expr: str, call_args: list[str], kw_text: str, wrt: list[str],
           cotangents: list[str]) -> list[str]:
    """After the definition of `_tensor`. `call_args`: source text of each positional
    argument (input names); inside `loss`, the wrt inputs are its parameters, tensors
    the autodiff tracks."""
    lines = [
        f"def loss({', '.join(wrt)}):  # sum(output * cotangent): its gradient is the VJP",
        f"    result = {fn_expr}(" + ", ".join(f"_tensor({a})" for a in call_args) + kw_text + ")",
        "    result = list(result) if isinstance(result, (list, tuple)) else [result]",
        f"    return sum(keras.ops.sum(keras.ops.multiply(o, _tensor(c))) for o, c in zip(result, [{', '.join(cotangents)}]))",
        "",
        f"wrt = [_tensor(a) for a in [{', '.join(wrt)}]]",
    ]
    if backend == "jax":
        lines += ["import jax", "# compiled, as Keras's JAX trainer compiles its train step",
                  "grads = jax.jit(jax.grad(loss, argnums=tuple(range(len(wrt)))))(*wrt)"]
    elif backend == "torch":
        lines += ["import torch", "wrt = [t.detach().requires_grad_(True) for t in wrt]",
                  "grads = torch.autograd.grad(loss(*wrt), wrt, allow_unused=True)"]
    else:
        lines += ["import tensorflow as tf", "with tf.GradientTape() as tape:",
                  "    for t in wrt:", "        tape.watch(t)", "    value = loss(*wrt)",
                  "grads = tape.gradient(value, wrt)"]
    return lines + ["outputs = [np.asarray(keras.ops.convert_to_numpy(g)) for g in grads]"]


def ops_module(name: str, call_args: list[str], kwargs_text: str, wrt_indices: list[int],
               cotangents: list[str]) -> list[str]:
    return [
        f"grads = plugin.conformance_vjp({name!r}, [{', '.join(call_args)}], {kwargs_text}, "
        f"{wrt_indices!r}, [{', '.join(cotangents)}])",
        "outputs = [np.asarray(g) for g in grads]",
    ]
