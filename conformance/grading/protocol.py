"""Framing for the grader <-> worker channel: a JSON header plus raw arrays.

One frame is a prefix of two 4-byte little-endian lengths (the header's and
the arrays'), a UTF-8 JSON object, and then the raw little-endian bytes of
the arrays the header lists under "arrays" ([{"key", "dtype", "shape"}], in
order).  Knowing both lengths first, a reader takes a whole frame in two
reads, however many arrays it carries, and refuses an oversized one before
reading it.  Nothing is ever pickled, so a hostile worker can at worst send
bad numbers, which the reader rejects when they break the caps below or do
not add up to the length announced (`ProtocolError`).

The channel is a private socket, never the worker's stdout, so prints in
the submission cannot forge a reply.  Imports numpy only.
"""

import json
import math
import socket
import struct

import numpy as np

MAX_HEADER = 1 << 20  # bytes of JSON per frame
MAX_PAYLOAD = 256 << 20  # bytes of arrays per frame
MAX_DIMS = 8
DTYPES = {"float64": "<f8", "float32": "<f4", "int64": "<i8", "bool": "|b1"}
_NUMPY_DTYPES = {name: np.dtype(code) for name, code in DTYPES.items()}
PREFIX = struct.Struct("<II")  # header bytes, array bytes


class ProtocolError(Exception):
    """The peer sent a frame that breaks the format or the caps."""


class Closed(ProtocolError):
    """The peer closed the channel (usually: the process died)."""


def _recv_exact(sock, n):
    """Exactly n bytes, as a bytearray (arrays made from it are writable)."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 20))
        if not k:
            raise Closed("channel closed")
        got += k
    return buf


def encode(header, arrays=None):
    """Bytes for one frame; `arrays` maps key -> ndarray, sent in that order."""
    header = dict(header)
    blobs, specs = [], []
    for key, value in (arrays or {}).items():
        a = np.asarray(value)
        name = {"f": "float64", "i": "int64", "u": "int64", "b": "bool"}.get(a.dtype.kind)
        if name is None:
            raise ProtocolError(f"cannot send array {key!r} of dtype {a.dtype}")
        a = np.ascontiguousarray(a, dtype=DTYPES[name])
        specs.append({"key": key, "dtype": name, "shape": list(a.shape)})
        blobs.append(a.tobytes())
    header["arrays"] = specs
    body = json.dumps(header, allow_nan=True).encode("utf-8")
    if len(body) > MAX_HEADER:
        raise ProtocolError(f"header of {len(body)} bytes is over the {MAX_HEADER} cap")
    payload = b"".join(blobs)
    return PREFIX.pack(len(body), len(payload)) + body + payload


def send(sock, header, arrays=None):
    sock.sendall(encode(header, arrays))


def _array_specs(header):
    specs = header.get("arrays", [])
    if not isinstance(specs, list):
        raise ProtocolError("'arrays' is not a list")
    out, total = [], 0
    for spec in specs:
        if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES or not isinstance(spec.get("key"), str):
            raise ProtocolError(f"bad array description {str(spec)[:80]}")
        shape = spec.get("shape")
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or not all(type(d) is int and 0 <= d <= MAX_PAYLOAD for d in shape)
        ):
            raise ProtocolError(f"bad array shape {str(shape)[:80]}")
        dtype = _NUMPY_DTYPES[spec["dtype"]]
        nbytes = math.prod(shape) * dtype.itemsize  # exact integers: no overflow to wrap around a cap
        total += nbytes
        if total > MAX_PAYLOAD:
            raise ProtocolError(f"arrays of more than {MAX_PAYLOAD} bytes")
        out.append((spec["key"], dtype, tuple(shape), nbytes))
    return out, total


def recv(sock):
    """(header, {key: ndarray}) from one frame; raises Closed or ProtocolError."""
    length, size = PREFIX.unpack(_recv_exact(sock, PREFIX.size))
    if length > MAX_HEADER:
        raise ProtocolError(f"header of {length} bytes is over the {MAX_HEADER} cap")
    if size > MAX_PAYLOAD:
        raise ProtocolError(f"arrays of more than {MAX_PAYLOAD} bytes")
    frame = _recv_exact(sock, length + size)
    try:
        header = json.loads(frame[:length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    specs, total = _array_specs(header)
    if total != size:
        raise ProtocolError(f"the arrays listed take {total} bytes, the frame carries {size}")
    arrays, offset = {}, length
    for key, dtype, shape, nbytes in specs:
        arrays[key] = np.frombuffer(frame, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset).reshape(shape)
        offset += nbytes
    return header, arrays


def pair():
    """A connected pair of stream sockets (grader end, worker end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
