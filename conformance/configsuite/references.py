"""Float64 references and fixed inputs of the checks that compute with real ops.

Binary crossentropy and the l2 normalisation come from the op catalog, so the
configuration checks and the op cases hold a backend to the same formulas; the
convolution and pooling references here take the fixed NHWC inputs of the
image_data_format scenario and also return the magnitudes their bounds scale with.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from conformance import kerasfacts
from conformance.catalog import Context, Op, losses, nn

BCE_TARGET = np.array([1.0, 0.0, 1.0, 0.0, 1.0], dtype="float32")
BCE_OUTPUT = np.array([0.0, 0.0, 1.0, 1.0, 0.25], dtype="float32")
TINY_VECTORS = np.array([[1e-8, -2e-8, 3e-8], [3.0, 4.0, 0.0]], dtype="float32")


@lru_cache(maxsize=None)
def _catalog_op(family: str, name: str) -> Op:
    ops = {"losses": losses.OPS, "nn": nn.OPS}[family]
    return next(op for op in ops if op.name == name)


def bce_reference(target, output, eps: float,
                  floatx: str = kerasfacts.DEFAULT_FLOATX) -> np.ndarray:
    """The catalog's binary_crossentropy: -(t log p + (1 - t) log(1 - p)), p clipped to
    [eps, 1 - eps] with the bounds in floatx, logs in float64.

    1 - 1e-7 rounds to 1 - 2^-23 in float32, so the p = 1 term is -log(1.19e-7) =
    15.942, not 16.118.
    """
    example = {"target": np.asarray(target, "float64"), "output": np.asarray(output, floatx)}
    op = _catalog_op("losses", "binary_crossentropy")
    return op.references(example, Context(floatx, eps))[0]


def normalize_reference(x, eps: float, flavor: str) -> np.ndarray:
    """The catalog's l2 normalisation along the last axis: Keras 3 documents
    x / max(||x||, eps); Keras 2.3.1's reference (Theano backend) is
    x / sqrt(max(sum x^2, eps))."""
    name = "l2_normalize" if flavor == "keras2" else "normalize"
    example = {"x": np.asarray(x, "float64"), "axis": -1}
    context = Context(kerasfacts.DEFAULT_FLOATX, eps)
    return _catalog_op("nn", name).references(example, context)[0]


def image_data():
    """The image_data_format scenario's inputs: conv input and kernel, pool input."""
    rng = np.random.default_rng(20240607)
    x_conv = rng.uniform(-1, 1, (2, 5, 6, 3)).astype("float32")
    kernel = rng.uniform(-1, 1, (3, 3, 3, 4)).astype("float32")
    x_pool = rng.uniform(-1, 1, (2, 6, 6, 3)).astype("float32")
    return x_conv, kernel, x_pool


def conv_reference(x_nhwc, kernel) -> tuple[np.ndarray, np.ndarray]:
    """Valid cross-correlation in float64, and the same with |x| and |w| (for the bound)."""
    x, w = np.asarray(x_nhwc, "float64"), np.asarray(kernel, "float64")
    kh, kw = w.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    # windows: (N, H', W', C, kh, kw)
    out = np.einsum("nhwcij,ijco->nhwo", windows, w)
    magnitude = np.einsum("nhwcij,ijco->nhwo", np.abs(windows), np.abs(w))
    return out, magnitude


def pool_reference(x_nhwc, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max or average pooling with stride 2 in float64, and mean |x| per window."""
    x = np.asarray(x_nhwc, "float64")
    n, h, w, c = x.shape
    blocks = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    if mode == "max":
        return blocks.max(axis=(2, 4)), np.zeros((n, h // 2, w // 2, c))
    return blocks.mean(axis=(2, 4)), np.abs(blocks).mean(axis=(2, 4))
