"""Frame format shared by the pool (parent) and the worker (inside a target).

This module runs inside every target interpreter, Python 3.6 + numpy 1.18 included:
stdlib + numpy only, no f-strings-with-=, no dataclasses, no walrus.

A message is a JSON header plus zero or more arrays. On the wire:

    b"KC" | uint32 header_len | uint32 n_arrays | header (utf-8 JSON)
          | for each array: uint64 len | .npy bytes

Arrays are encoded with ``np.save(allow_pickle=False)``, so object arrays are refused
and any dtype numpy can describe in a .npy header (float16..float64, ints, bool,
big-endian) round-trips exactly. In a header, the value ``{"__array__": i}`` stands
for the i-th array of the message, so arrays can sit anywhere in a nested structure.
"""
import io
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


def encode_array(array):
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def decode_array(blob):
    return np.load(io.BytesIO(blob), allow_pickle=False)


def _lift_arrays(value, arrays):
    """Replace every ndarray / numpy scalar in `value` by an {"__array__": i} marker."""
    if isinstance(value, (np.ndarray, np.generic)):
        arrays.append(value)
        return {ARRAY_KEY: len(arrays) - 1}
    if isinstance(value, dict):
        return dict((k, _lift_arrays(v, arrays)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_lift_arrays(v, arrays) for v in value]
    return value


def _sink_arrays(value, arrays):
    """Inverse of _lift_arrays."""
    if isinstance(value, dict):
        if len(value) == 1 and ARRAY_KEY in value:
            return arrays[value[ARRAY_KEY]]
        return dict((k, _sink_arrays(v, arrays)) for k, v in value.items())
    if isinstance(value, list):
        return [_sink_arrays(v, arrays) for v in value]
    return value


def pack(message):
    """Serialize a JSON-able structure that may contain numpy arrays into one frame."""
    arrays = []
    header = json.dumps(_lift_arrays(message, arrays)).encode("utf-8")
    parts = [_PREFIX.pack(MAGIC, len(header), len(arrays)), header]
    for array in arrays:
        blob = encode_array(array)
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def write_frame(fd, message):
    data = pack(message)
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
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def read(self):
        magic, header_len, n_arrays = _PREFIX.unpack(self._take(_PREFIX.size))
        if magic != MAGIC:
            raise ProtocolError("bad frame magic %r: the peer wrote to the protocol pipe"
                                % magic)
        header = json.loads(self._take(header_len).decode("utf-8"))
        arrays = []
        for _ in range(n_arrays):
            (length,) = _LEN.unpack(self._take(_LEN.size))
            arrays.append(decode_array(self._take(length)))
        return _sink_arrays(header, arrays)


def read_frame(fd):
    """Read one frame (convenience for one-off reads; keeps no buffer between calls)."""
    return FrameReader(fd).read()
