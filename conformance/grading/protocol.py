"""Framing for the grader <-> worker channel: a JSON header plus raw arrays.

One frame is a 4-byte little-endian header length, a UTF-8 JSON object, and
then the raw little-endian bytes of the arrays the header lists under
"arrays" ([{"key", "dtype", "shape"}], in order).  Nothing is ever pickled,
so a hostile worker can at worst send bad numbers, which the reader rejects
when they break the caps below (`ProtocolError`).

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


class ProtocolError(Exception):
    """The peer sent a frame that breaks the format or the caps."""


class Closed(ProtocolError):
    """The peer closed the channel (usually: the process died)."""


def _recv_exact(sock, n):
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise Closed("channel closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


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
    return struct.pack("<I", len(body)) + body + b"".join(blobs)


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
    return out


def recv(sock):
    """(header, {key: ndarray}) from one frame; raises Closed or ProtocolError."""
    (length,) = struct.unpack("<I", _recv_exact(sock, 4))
    if length > MAX_HEADER:
        raise ProtocolError(f"header of {length} bytes is over the {MAX_HEADER} cap")
    try:
        header = json.loads(_recv_exact(sock, length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    arrays = {}
    for key, dtype, shape, nbytes in _array_specs(header):
        arrays[key] = np.frombuffer(_recv_exact(sock, nbytes), dtype=dtype).reshape(shape).copy()
    return header, arrays


def pair():
    """A connected pair of stream sockets (grader end, worker end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
