"""Wire format of the cluster: numpy arrays as raw bytes inside msgpack, never pickle.

Every message between client, dispatcher and workers is serialized by Pyro5's ``msgpack``
serializer, set by :mod:`distlda.cluster.transport` (about 1 GB/s on loopback, against 34 MB/s
for Pyro5's default serpent, which base64-encodes bytes). An array travels as ``{"dtype": "<i4", "shape": [n], "data": b"..."}``:
msgpack copies the buffer once as a ``bin`` object, and :func:`dec` maps it back with
``np.frombuffer`` (no copy, read-only). Nothing that arrives can make the receiver build an
arbitrary object: only dicts, lists, numbers, strings and bytes exist in msgpack.

Big arrays travel in pieces (:func:`stage_out`, :func:`send_pieces`, :class:`Staging`,
:func:`stage_in`): no call carries more than :data:`PIECE_BYTES` of array data, so a model of
any K and V fits through Pyro5 (whose messages stop at 1 GiB).
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from typing import Any, Callable

import numpy as np

from distlda import config
from distlda.errors import ProtocolError

#: dtypes a peer may send (anything else is refused rather than interpreted).
_ALLOWED = {"|u1", "|i1", "<i2", "<u2", "<i4", "<u4", "<i8", "<f8"}


def enc(a: np.ndarray) -> dict:
    """An array as a msgpack-friendly dict of dtype, shape and raw little-endian bytes."""
    a = np.ascontiguousarray(a)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}


def dec(d: dict, copy: bool = False) -> np.ndarray:
    """The array of :func:`enc` (read-only view of the message unless ``copy``).

    Raises
    ------
    ValueError
        Not an encoded array: a field missing, a dtype outside the allowed ones, a shape that
        is not a list of non-negative integers or does not hold exactly the data's items.
    """
    if not isinstance(d, dict) or not {"dtype", "shape", "data"} <= d.keys():
        raise ValueError("not an encoded array (needs dtype, shape and data)")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if not isinstance(dtype, str) or dtype not in _ALLOWED:
        raise ValueError(f"refusing array of dtype {dtype!r}")
    if (not isinstance(shape, (list, tuple)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ValueError(f"array shape must be a list of non-negative integers, got {shape!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError("array data must be bytes")
    item = np.dtype(dtype).itemsize
    if len(data) % item or math.prod(shape) != len(data) // item:
        raise ValueError(f"array of shape {list(shape)} and dtype {dtype} does not match its "
                         f"{len(data)} bytes")
    a = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)
    return a.copy() if copy else a


def nbytes(obj) -> int:
    """Bytes of array payload inside a message (the part that grows with the data)."""
    if isinstance(obj, dict):
        if "data" in obj and "dtype" in obj:
            return len(obj["data"])
        return sum(nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(nbytes(v) for v in obj)
    return 0


def topic_dtype(num_topics: int) -> np.dtype:
    """Narrowest dtype for topic ids: 1 byte up to 256 topics, 2 up to 65,536."""
    if num_topics <= 256:
        return np.dtype("|u1")
    return np.dtype("<u2") if num_topics <= 65536 else np.dtype("<i4")


def digest(a: np.ndarray) -> str:
    """SHA-1 of an array's bytes (C order): how two processes check they hold the same
    counts without sending them again."""
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def enc_topics(topics: np.ndarray, num_topics: int) -> dict:
    return enc(topics.astype(topic_dtype(num_topics), copy=False))


def dec_topics(d: dict) -> np.ndarray:
    return dec(d).astype(np.int32)


# ---------------------------------------------------------------------------- big messages
#: Largest piece of array data one call carries: far below Pyro5's 1 GiB message limit, and
#: small enough that a piece's copies in flight stay a small share of what each side holds.
PIECE_BYTES = config.piece_bytes()  # $DISTLDA_PIECE_BYTES: tests set it small


def stage_out(msg, limit: int | None = None):
    """Split the big arrays out of a message: returns ``(msg, blobs)`` where every codec array
    of more than ``limit`` bytes is replaced by a reference ``{"dtype", "shape", "staged": id,
    "nbytes": n}`` and ``blobs`` maps each id to its bytes (not copied). The blobs travel in
    pieces (:func:`send_pieces`, :class:`Staging`) and :func:`stage_in` puts them back."""
    blobs: dict[str, Any] = {}
    limit = PIECE_BYTES if limit is None else limit

    def walk(obj):
        if isinstance(obj, dict):
            if "data" in obj and "dtype" in obj and len(obj["data"]) > limit:
                sid = uuid.uuid4().hex
                blobs[sid] = memoryview(obj["data"]).cast("B")
                return {"dtype": obj["dtype"], "shape": obj["shape"], "staged": sid,
                        "nbytes": len(blobs[sid])}
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [walk(v) for v in obj]
        return obj

    return walk(msg), blobs


def send_pieces(put: Callable, blobs: dict, limit: int | None = None) -> None:
    """Call ``put(id, offset, total, piece)`` for consecutive pieces of every blob."""
    limit = PIECE_BYTES if limit is None else limit
    for sid, data in blobs.items():
        total = len(data)
        for off in range(0, total, limit):
            put(sid, off, total, bytes(data[off:off + limit]))


def stage_in(msg, fetch: Callable):
    """Put staged arrays back into a message: ``fetch(id, nbytes)`` returns a reference's
    bytes (from a :class:`Staging`, or pulled in pieces from the sender)."""
    def walk(obj):
        if isinstance(obj, dict):
            if "staged" in obj and "dtype" in obj:
                n = obj.get("nbytes")
                if not isinstance(obj["staged"], str) or isinstance(n, bool) or not (
                        n is None or isinstance(n, int) and n >= 0):
                    raise ProtocolError("staged array: bad id or size")
                return {"dtype": obj["dtype"], "shape": obj.get("shape"),
                        "data": fetch(obj["staged"], n)}
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    return walk(msg)


class Staging:
    """The receiving side of :func:`send_pieces`: pieces assembled per id, taken once.

    Parameters
    ----------
    max_bytes : int
        Most bytes held at once (a declared total beyond it is refused before allocating).
    """

    def __init__(self, max_bytes: int = 1 << 40):
        self.max_bytes = max_bytes
        self._parts: dict[str, list] = {}  # id -> [buffer, bytes received]
        self._lock = threading.Lock()

    def put(self, sid: str, offset: int, total: int, piece: bytes,
            max_total: int | None = None) -> None:
        """Store ``piece`` at ``offset`` of blob ``sid`` of ``total`` bytes (at most
        ``max_total``, e.g. what the receiver's session can need), all checked first."""
        if (not isinstance(sid, str) or len(sid) > 128
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, total))):
            raise ValueError("staged piece: bad id, offset or total")
        if not isinstance(piece, (bytes, bytearray)) or len(piece) > 2 * PIECE_BYTES:
            raise ValueError(f"staged piece: expected at most {2 * PIECE_BYTES} bytes")
        if max_total is not None and total > max_total:
            raise ValueError(f"staged piece: a message of {total} bytes, more than the "
                             f"{max_total} this session can need")
        with self._lock:
            entry = self._parts.get(sid)
            if entry is None:
                held = sum(len(e[0]) for e in self._parts.values())
                if total < 0 or held + total > self.max_bytes:
                    raise ValueError(f"staged piece: {total} bytes exceed the bound of "
                                     f"{self.max_bytes - held} bytes")
                entry = self._parts[sid] = [bytearray(total), 0]
            buf = entry[0]
            if total != len(buf) or offset < 0 or offset + len(piece) > len(buf):
                raise ValueError("staged piece: outside its message")
            buf[offset:offset + len(piece)] = piece
            entry[1] += len(piece)

    def take(self, sid: str, nbytes=None) -> bytearray:
        with self._lock:
            entry = self._parts.pop(sid, None)
        if entry is None or entry[1] != len(entry[0]) or (nbytes is not None
                                                          and nbytes != len(entry[0])):
            raise ValueError(f"staged data {str(sid)[:8]} is missing or incomplete")
        return entry[0]

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()


def pull(piece: Callable, limit: int | None = None) -> Callable:
    """A ``fetch`` for :func:`stage_in` that pulls a blob in pieces: ``piece(id, offset, n)``
    returns ``n`` bytes of blob ``id`` from ``offset`` (a remote call on the sender)."""
    limit = PIECE_BYTES if limit is None else limit

    def fetch(sid, nbytes):
        if nbytes is None:
            raise ProtocolError("staged array: no size")
        buf = bytearray(nbytes)
        for off in range(0, nbytes, limit):
            n = min(limit, nbytes - off)
            part = piece(sid, off, n)
            if not isinstance(part, (bytes, bytearray)) or len(part) != n:
                raise ProtocolError(f"staged array: expected a piece of {n} bytes")
            buf[off:off + n] = part
        return buf
    return fetch
