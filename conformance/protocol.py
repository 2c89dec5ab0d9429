"""Frame format shared by the pool (parent) and the worker (inside a target).

This module runs inside every target interpreter, Python 3.6 + numpy 1.18 included:
stdlib + numpy only, no f-strings-with-=, no dataclasses, no walrus.

A message is a JSON header plus zero or more arrays. On the wire:

    b"KC" | uint32 header_len | uint32 n_arrays | header (utf-8 JSON)
          | for each array: uint64 len | raw bytes (C order)

In a header, ``{"__array__": i, "dtype": "<f4", "shape": [2, 3]}`` stands for the
i-th array of the message, so arrays can sit anywhere in a nested structure. The
dtype string is numpy's ``dtype.str``, so every plain dtype (float16..float64, ints,
bool, complex, big-endian) round-trips exactly; object and structured dtypes are
refused. Raw bytes instead of ``.npy`` files: ``np.load`` parses each header with
``ast.literal_eval`` (21 us per array, against 1 us for ``np.frombuffer``).
"""
import json
import os
import struct

import numpy as np

MAGIC = b"KC"
_PREFIX = struct.Struct(">2sII")
_LEN = struct.Struct(">Q")
ARRAY_KEY = "__array__"


class ProtocolError(Exception):
    """The peer sent bytes that are not a frame (or closed the pipe mid-frame)."""


def _plain_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None:
        raise ValueError("only plain numeric and bool arrays cross the pipe, not %s" % dtype)
    return dtype


def decode_array(marker, blob):
    """The array a header marker describes, from its raw bytes (writable: the blob is
    a bytearray, so backends that write into their inputs can)."""
    try:
        return np.frombuffer(blob, dtype=_plain_dtype(marker["dtype"])).reshape(marker["shape"])
    except (ValueError, TypeError, KeyError) as exc:
        raise ProtocolError("malformed array in frame: %s" % exc)


def _lift_arrays(value, arrays):
    """Replace every ndarray / numpy scalar in `value` by an {"__array__": i} marker."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        dtype = _plain_dtype(array.dtype)
        arrays.append(np.ascontiguousarray(array).tobytes())
        return {ARRAY_KEY: len(arrays) - 1, "dtype": dtype.str, "shape": list(array.shape)}
    if isinstance(value, dict):
        return dict((k, _lift_arrays(v, arrays)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_lift_arrays(v, arrays) for v in value]
    return value


def _sink_arrays(value, arrays):
    """Inverse of _lift_arrays."""
    if isinstance(value, dict):
        if ARRAY_KEY in value:
            return decode_array(value, arrays[value[ARRAY_KEY]])
        return dict((k, _sink_arrays(v, arrays)) for k, v in value.items())
    if isinstance(value, list):
        return [_sink_arrays(v, arrays) for v in value]
    return value


def pack(message):
    """Serialize a JSON-able structure that may contain numpy arrays into one frame."""
    arrays = []
    header = json.dumps(_lift_arrays(message, arrays)).encode("utf-8")
    parts = [_PREFIX.pack(MAGIC, len(header), len(arrays)), header]
    for blob in arrays:
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def write_frame(fd, message):
    write_all(fd, pack(message))


def write_all(fd, data):
    """Write all of `data` (a packed frame) to a blocking fd."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FrameReader(object):
    """Reads frames from a pipe with as few system calls as possible.

    Small frames usually arrive in one ``os.read``; `wait(fd)` (optional) is called
    before each read that would block, so the pool can enforce deadlines.
    """

    def __init__(self, fd, wait=None):
        self.fd = fd
        self.wait = wait
        self.buffer = bytearray()

    def _take(self, n):
        while len(self.buffer) < n:
            if self.wait is not None:
                self.wait(self.fd)
            chunk = os.read(self.fd, max(n - len(self.buffer), 1 << 16))
            if not chunk:
                raise EOFError("pipe closed")
            self.buffer += chunk
        data = self.buffer[:n]  # a bytearray: arrays decoded from it are writable
        del self.buffer[:n]
        return data

    def read(self):
        magic, header_len, n_arrays = _PREFIX.unpack(self._take(_PREFIX.size))
        if magic != MAGIC:
            raise ProtocolError("bad frame magic %r: the peer wrote to the protocol pipe"
                                % magic)
        header = json.loads(self._take(header_len).decode("utf-8"))
        blobs = []
        for _ in range(n_arrays):
            (length,) = _LEN.unpack(self._take(_LEN.size))
            blobs.append(self._take(length))
        return _sink_arrays(header, blobs)


def read_frame(fd):
    """Read one frame (convenience for one-off reads; keeps no buffer between calls)."""
    return FrameReader(fd).read()
