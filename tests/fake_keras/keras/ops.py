"""The few keras.ops the configuration suite uses, on NumPy (tests only)."""
import numpy as np

from keras.src.backend import config
from keras.src.backend.config import DEFECTS


def _dtype(dtype):
    dtype = np.dtype(dtype or config.tensor_floatx())
    if dtype == np.float64 and "float64_as_float32" in DEFECTS:
        return np.dtype("float32")
    return dtype


def convert_to_tensor(x, dtype=None):
    if dtype is None:
        dtype = getattr(x, "dtype", None) or "float32"
    return np.asarray(x, dtype=_dtype(dtype))


def convert_to_numpy(x):
    return np.asarray(x)


def full(shape, value, dtype=None):
    return np.full(shape, value, dtype=_dtype(dtype))


def ones(shape, dtype=None):
    return np.ones(shape, dtype=_dtype(dtype))


def exp(x):
    return np.exp(x).astype(_dtype(x.dtype))


def _epsilon():
    return 1e-7 if "epsilon_fixed" in DEFECTS else config.epsilon()


def binary_crossentropy(target, output, from_logits=False):
    eps = np.asarray(_epsilon(), output.dtype)
    p = np.clip(output, eps, np.asarray(1, output.dtype) - eps)
    return -(target * np.log(p) + (1 - target) * np.log(1 - p))


def normalize(x, axis=-1, order=2, epsilon=None):
    eps = _epsilon() if epsilon is None else epsilon
    norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return (x / np.maximum(norm, np.asarray(eps, x.dtype))).astype(x.dtype)


def _to_last(x, data_format):
    data_format = data_format or config.image_data_format()
    if data_format == "channels_first" and "channels_first_ignored" not in DEFECTS:
        return np.transpose(x, (0, 2, 3, 1)), lambda y: np.transpose(y, (0, 3, 1, 2))
    return x, lambda y: y


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    x, back = _to_last(inputs, data_format)
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    out = np.einsum("nhwcij,ijco->nhwo", windows, kernel)
    return back(out.astype(inputs.dtype))


def _pool(inputs, pool_size, strides, padding, data_format, reduce):
    x, back = _to_last(inputs, data_format)
    n, h, w, c = x.shape
    blocks = x[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return back(reduce(blocks, axis=(2, 4)).astype(inputs.dtype))


def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return _pool(inputs, pool_size, strides, padding, data_format, np.max)


def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return _pool(inputs, pool_size, strides, padding, data_format, np.mean)
