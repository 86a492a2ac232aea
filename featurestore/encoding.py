"""Feast's byte encodings, written and read without protobuf or Feast (``import feast`` takes ~18 s).

- entity keys: ``serialize_entity_key`` v3 of one INT64 join key;
- values: the serialized ``ValueProto`` (int64 and double by hand, any other kind decoded with
  protobuf), empty bytes for a missing value;
- timestamps: SQLite's ``event_ts`` (what Feast's sqlite3 adapter stores) and Redis's serialized
  ``google.protobuf.Timestamp``.

tests/featurestore/test_encoding.py checks each against Feast's and protobuf's own functions.
"""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pyarrow as pa

_VT_STRING, _VT_INT64 = 2, 4  # feast ValueType.STRING / INT64
_TAG_INT64, _TAG_DOUBLE = b"\x20", b"\x29"  # ValueProto field 4 (varint) / field 5 (64-bit)
_TS_SECONDS, _TS_NANOS = 0x08, 0x10  # Timestamp fields 1 (seconds) and 2 (nanos), varint
NULL_VALUE = b""  # ValueProto() with no field set: what Feast writes for a missing value
_EPOCH_NAIVE = dt.datetime(1970, 1, 1)


def entity_key_prefix(join_key: str) -> bytes:
    """``serialize_entity_key`` v3 of one INT64 join key, without the 8 value bytes."""
    k = join_key.encode("utf8")
    return struct.pack("<III", 1, _VT_STRING, len(k)) + k + struct.pack("<II", _VT_INT64, 8)


def entity_key(join_key: str, value: int) -> bytes:
    return entity_key_prefix(join_key) + struct.pack("<q", int(value))


def entity_keys(join_key: str, values: np.ndarray) -> list[bytes]:
    prefix = entity_key_prefix(join_key)
    raw = np.ascontiguousarray(values, dtype="<i8").tobytes()
    return [prefix + raw[i : i + 8] for i in range(0, len(raw), 8)]


def varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # proto int64: negatives are 10-byte two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_int64(v: int) -> bytes:
    """``ValueProto(int64_val=v).SerializeToString()``."""
    return _TAG_INT64 + varint(int(v))


def encode_double(x: float) -> bytes:
    """``ValueProto(double_val=x).SerializeToString()``."""
    return _TAG_DOUBLE + struct.pack("<d", x)


def decode_value(blob: bytes):
    """A stored ValueProto as a Python value (None when unset); int64 and double fast, else protobuf."""
    if not blob:
        return None
    tag = blob[0]
    if tag == 0x29 and len(blob) == 9:
        return struct.unpack_from("<d", blob, 1)[0]
    if tag == 0x20:
        n, shift = 0, 0
        for b in blob[1:]:
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return n - (1 << 64) if n >= 1 << 63 else n
    from feast.protos.feast.types.Value_pb2 import Value

    v = Value.FromString(blob)
    kind = v.WhichOneof("val")
    return getattr(v, kind) if kind and kind != "null_val" else None


def encode_column(col: pa.ChunkedArray | pa.Array, dtype: str) -> tuple[list[bytes], list[str | None]]:
    """(value bytes, value_text) per row, as Feast's online_write_batch stores them.

    ``dtype`` is the ``feast.types`` name of the feature (Float64/Float32 as double, else int64).
    """
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    valid = None if col.null_count == 0 else ~np.asarray(col.is_null())
    kind = "Float64" if dtype in ("Float64", "Float32") else "Int64"
    values = (
        col.fill_null(0).to_numpy(zero_copy_only=False).astype("float64" if kind == "Float64" else "int64")
    )
    uniq, inverse = np.unique(values, return_inverse=True)
    if kind == "Float64":
        enc = [encode_double(float(x)) for x in uniq]
        txt = [str(float(x)) for x in uniq]
    else:
        enc = [encode_int64(int(x)) for x in uniq]
        txt = [str(int(x)) for x in uniq]
    blobs = np.array(enc, dtype=object)[inverse]
    texts = np.array(txt, dtype=object)[inverse]
    if valid is not None:
        blobs[~valid] = NULL_VALUE
        texts[~valid] = None
    return blobs.tolist(), texts.tolist()


def sqlite_event_ts(us: np.ndarray) -> list[int]:
    """Feast's stored SQLite event_ts: ``int(naive_utc_datetime.timestamp())`` (its sqlite3 adapter)."""
    uniq, inverse = np.unique(us, return_inverse=True)
    conv = np.array(
        [int((_EPOCH_NAIVE + dt.timedelta(microseconds=int(u))).timestamp()) for u in uniq], dtype=np.int64
    )
    return conv[inverse].tolist()


def encode_timestamp(us: int) -> bytes:
    """``Timestamp(seconds, nanos)`` of epoch microseconds, serialized (proto3 omits zero fields)."""
    seconds, rest = divmod(int(us), 1_000_000)
    out = b""
    if seconds:
        out += bytes([_TS_SECONDS]) + varint(seconds)
    if rest:
        out += bytes([_TS_NANOS]) + varint(rest * 1000)
    return out


def decode_timestamp_ns(blob: bytes | None) -> int:
    """Nanoseconds since the epoch of a serialized Timestamp (0 when absent, as Feast treats it)."""
    if not blob:
        return 0
    seconds = nanos = 0
    i = 0
    while i < len(blob):
        tag = blob[i]
        i += 1
        n, shift = 0, 0
        while True:
            b = blob[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if n >= 1 << 63:
            n -= 1 << 64
        if tag == _TS_SECONDS:
            seconds = n
        elif tag == _TS_NANOS:
            nanos = n
    return seconds * 1_000_000_000 + nanos
