"""Feast's Redis online store, written and read directly in Feast's own layout.

The layout (Feast 0.67, ``feast/infra/online_stores/redis.py``), one Redis hash per entity:

- key: the entity key serialized as Feast's v3 ``serialize_entity_key`` followed by the project
  name (UTF-8), so the views of one entity (``user_profile`` and ``user_stats_7d``) share a hash;
- one field per feature: the 4 little-endian bytes of ``murmur3_32("{view}:{feature}")``
  (unsigned), holding the serialized ``ValueProto`` (empty bytes for a missing value);
- one field ``_ts:{view}`` per view: the serialized ``google.protobuf.Timestamp`` of the row.

Feast's ``online_write_batch`` skips a row unless it is strictly newer than the stored
``_ts:{view}``; :func:`materialize_view` does the same (so a re-run writes nothing and a
backfill never moves an entity back in time), in pipelined batches and without importing Feast.
tests/components/features/test_redis.py proves the hashes equal to Feast's own materialize and
that Feast's ``get_online_features`` reads them.

Connections: ``features.redis_connection_string`` (host:port[,db=N][,ssl=true], Feast's format)
plus the password from the environment variable ``features.redis_password_env``; the password
is never stored in the configuration or written to a file, and errors are redacted.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from components.features import direct as D
from components.features.store import FeatureStoreError
from taml.core.config import Config
from taml.core.secrets import from_env, redact

_TS_SECONDS, _TS_NANOS = 0x08, 0x10  # Timestamp fields 1 (seconds) and 2 (nanos), varint


class RedisStoreError(FeatureStoreError):
    """The Redis online store cannot be reached or read; the message names the server, never a secret."""


# --- connection ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    params: dict  # db, ssl, ... (Feast's connection-string parameters), never the password

    @property
    def where(self) -> str:
        db = self.params.get("db", 0)
        return f"redis {self.host}:{self.port} db {db}"


def parse_connection_string(value: str) -> RedisTarget:
    """``host:port[,key=value...]`` as Feast reads it (values JSON-decoded when they parse)."""
    nodes = [c.strip() for c in value.split(",") if c.strip() and "=" not in c]
    if len(nodes) != 1 or ":" not in nodes[0]:
        raise RedisStoreError(
            f"features.redis_connection_string {redact(value)!r}: expected host:port[,db=N][,ssl=true] "
            "(one server; Redis Cluster and Sentinel are not supported by the direct reader)"
        )
    host, _, port = nodes[0].rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        raise RedisStoreError(f"features.redis_connection_string: port {port!r} is not a number") from None
    params: dict = {}
    for c in value.split(","):
        if "=" in c:
            k, v = (x.strip() for x in c.split("=", 1))
            try:
                params[k] = json.loads(v)
            except json.JSONDecodeError:
                params[k] = v
    params.pop("password", None)  # refused by the config; never taken from here
    return RedisTarget(host, port_n, params)


def target(config: Config) -> RedisTarget:
    f = config.features
    if not f.redis_connection_string:
        raise RedisStoreError(
            "features.online_store is redis but features.redis_connection_string is empty: set it "
            "(host:port), e.g. with --profile redis"
        )
    return parse_connection_string(f.redis_connection_string)


def password(config: Config) -> str | None:
    return from_env(config.features.redis_password_env)


def feast_connection_string(config: Config, *, password_ref: bool) -> str:
    """The connection string Feast gets: in memory with the password, in files with ``${ENV}`` instead.

    ``password_ref``: write ``password=${VAR}`` (Feast expands environment variables when it reads
    feature_store.yaml) when the variable is set, so the file names the variable, never the value.
    """
    f = config.features
    base = f.redis_connection_string
    if password_ref:
        return base + (f",password=${{{f.redis_password_env}}}" if password(config) else "")
    pw = password(config)
    return base + (f",password={pw}" if pw else "")


def connect(config: Config, **kwargs):
    """A redis-py client of the configured server (connection pool: safe to share across threads)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    f = config.features
    t = target(config)
    options = {
        "socket_timeout": f.redis_timeout_s,
        "socket_connect_timeout": f.redis_timeout_s,
        # redis-py's default retries with back-off for ~5 s on a refused connection: a request
        # would hang that long before its 503.
        "retry": Retry(NoBackoff(), f.redis_retries),
        **t.params,
        **kwargs,
    }
    return redis.Redis(host=t.host, port=t.port, password=password(config), **options)


def store_error(config: Config, e: Exception, doing: str) -> RedisStoreError:
    """A redis-py error as one line naming the server and what failed (redacted)."""
    try:
        where = target(config).where
    except RedisStoreError:
        where = "redis"
    hint = ""
    name = type(e).__name__
    if name in ("AuthenticationError", "AuthenticationWrongNumberOfArgsError") or "NOAUTH" in str(e):
        hint = f" (password from ${config.features.redis_password_env})"
    return RedisStoreError(redact(f"online store {where}: {doing} failed: {name}: {e}{hint}"))


# --- Feast's layout ------------------------------------------------------------------------------


def feature_field(view: str, feature: str) -> bytes:
    """Feast's ``_mmh3(f"{view}:{feature}")``: murmur3_32 (unsigned) as 4 little-endian bytes."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def ts_field(view: str) -> bytes:
    return f"_ts:{view}".encode()


def entity_keys(project: str, join_key: str, values: np.ndarray) -> list[bytes]:
    suffix = project.encode("utf-8")
    return [k + suffix for k in D.entity_keys(join_key, values)]


def entity_key(project: str, join_key: str, value: int) -> bytes:
    return D.entity_key(join_key, value) + project.encode("utf-8")


def encode_timestamp(us: int) -> bytes:
    """``Timestamp(seconds, nanos)`` of epoch microseconds, serialized (proto3 omits zero fields)."""
    seconds, rest = divmod(int(us), 1_000_000)
    out = b""
    if seconds:
        out += bytes([_TS_SECONDS]) + D._varint(seconds)
    if rest:
        out += bytes([_TS_NANOS]) + D._varint(rest * 1000)
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


# --- materialization -----------------------------------------------------------------------------


@dataclass
class RedisWrite:
    view: str
    start: dt.datetime
    end: dt.datetime
    rows: int  # entities with a row in the window
    written: int  # of those, strictly newer than what the store held (Feast's rule)
    holding: int  # entities that hold their window row or a newer one after the write (the check)


def materialization_key(project: str) -> str:
    """A plain string key beside Feast's binary ones: per view, the last window written by this project."""
    return f"_taml:{project}:materialized"


def generation_key(project: str) -> str:
    """Incremented after each materialization: serving drops its item cache when it moves."""
    return f"_taml:{project}:generation"


def materialize_view(
    client,
    project: str,
    view: str,
    key: str,
    files: Sequence[str],
    columns: dict[str, str],
    dtypes: dict[str, str],
    start: dt.datetime,
    end: dt.datetime,
    batch_size: int,
    duck: duckdb.DuckDBPyConnection,
) -> RedisWrite:
    """Write the latest row per key stamped in [start, end] into Feast's Redis hashes, newer rows only.

    Per batch: one pipeline reads every key's ``_ts:{view}``, one writes the rows strictly newer
    (HSET of all the view's fields and its timestamp). Afterwards every key's timestamp is read
    back and counted: a key must hold its window row or a newer one.
    """
    got = D.latest_rows(duck, key, files, columns, start, end)
    rows = got.num_rows
    written = holding = 0
    if rows:
        keys = entity_keys(project, key, got.column(key).to_numpy())
        ts_us = got.column("_ts").to_numpy().astype(np.int64)
        ts_blobs = [encode_timestamp(u) for u in ts_us.tolist()]
        ts_ns = (ts_us * 1000).tolist()
        fields = [feature_field(view, feat) for feat in columns.values()]
        values = [encode_column_blobs(got.column(src), dtypes[feat]) for src, feat in columns.items()]
        tsf = ts_field(view)
        for lo in range(0, rows, batch_size):
            hi = min(rows, lo + batch_size)
            with client.pipeline(transaction=False) as pipe:
                for k in keys[lo:hi]:
                    pipe.hget(k, tsf)
                prev = pipe.execute()
            with client.pipeline(transaction=False) as pipe:
                for j, old in zip(range(lo, hi), prev, strict=True):
                    held = decode_timestamp_ns(old)
                    if held and ts_ns[j] <= held:
                        continue  # not newer than what the store holds: Feast skips it too
                    mapping = {f: col[j] for f, col in zip(fields, values, strict=True)}
                    mapping[tsf] = ts_blobs[j]
                    pipe.hset(keys[j], mapping=mapping)
                    written += 1
                pipe.execute()
        for lo in range(0, rows, batch_size):
            with client.pipeline(transaction=False) as pipe:
                for k in keys[lo : lo + batch_size]:
                    pipe.hget(k, tsf)
                now = pipe.execute()
            holding += sum(
                decode_timestamp_ns(b) >= ts_ns[lo + i] for i, b in enumerate(now) if b is not None
            )
    return RedisWrite(view, start, end, rows, written, holding)


def encode_column_blobs(col, dtype: str) -> list[bytes]:
    return D.encode_column(col, dtype)[0]


def record_materialization(client, project: str, windows: dict[str, tuple[str, str]]) -> int:
    """Note the windows just written and move the generation counter; returns the new generation."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(materialization_key(project), mapping={v: json.dumps(w) for v, w in windows.items()})
        pipe.incr(generation_key(project))
        return int(pipe.execute()[-1])
