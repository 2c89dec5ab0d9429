import os

import numpy as np
import pytest

from conformance import protocol

DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
          "uint16", "uint32", "uint64", "bool", "complex64"]


def roundtrip(message):
    read_fd, write_fd = os.pipe()
    try:
        data = protocol.pack(message)
        assert len(data) < 60000, "keep test frames below the pipe buffer"
        os.write(write_fd, data)
        return protocol.read_frame(read_fd)
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4), (0, 5)])
def test_array_roundtrip_is_exact(dtype, shape):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    back = roundtrip({"x": array})["x"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert array.tobytes() == back.tobytes()


def test_special_float_values_survive_bit_for_bit():
    array = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324, np.finfo("float64").max])
    back = roundtrip({"x": array})["x"]
    assert array.view("uint64").tolist() == back.view("uint64").tolist()


def test_non_contiguous_and_big_endian_inputs():
    base = np.arange(24, dtype="float32").reshape(4, 6)
    strided = base[::2, ::3]
    big = np.arange(5, dtype=">f8")
    back = roundtrip({"a": strided, "b": big})
    np.testing.assert_array_equal(back["a"], strided)
    assert back["b"].dtype == np.dtype(">f8") and back["b"].tolist() == big.tolist()


def test_nested_structure_and_scalars():
    message = {"fn": "keras.ops.concatenate", "args": [[np.ones(2), np.zeros(3)]],
               "kwargs": {"axis": 0, "name": None}, "s": np.float32(2.5)}
    back = roundtrip(message)
    assert back["fn"] == "keras.ops.concatenate" and back["kwargs"] == {"axis": 0, "name": None}
    assert [a.tolist() for a in back["args"][0]] == [[1.0, 1.0], [0.0, 0.0, 0.0]]
    assert back["s"].dtype == np.float32 and float(back["s"]) == 2.5


def test_object_arrays_are_refused():
    with pytest.raises(ValueError):
        protocol.pack({"x": np.array([object()], dtype=object)})


def test_garbage_is_a_protocol_error_not_a_hang():
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"Using TensorFlow backend.\n" + b"\0" * 16)
    with pytest.raises(protocol.ProtocolError):
        protocol.read_frame(read_fd)
    os.close(read_fd)
    os.close(write_fd)
