"""Feast's Redis online store, written and read directly in Feast's own layout.

The layout (Feast 0.67, ``feast/infra/online_stores/redis.py``), one Redis hash per entity:

- key: the entity key serialized as Feast's v3 ``serialize_entity_key`` followed by the project
  name (UTF-8), so the views of one entity (``user_profile`` and ``user_stats_7d``) share a hash;
- one field per feature: the 4 little-endian bytes of ``murmur3_32("{view}:{feature}")``
  (unsigned), holding the serialized ``ValueProto`` (empty bytes for a missing value);
- one field ``_ts:{view}`` per view: the serialized ``google.protobuf.Timestamp`` of the row.

Feast's ``online_write_batch`` skips a row unless it is strictly newer than the stored
``_ts:{view}``; :func:`write_rows` does the same (so a re-run writes nothing and a backfill
never moves an entity back in time), in pipelined batches. Beside Feast's binary keys the
project keeps two plain string keys: the windows last written and a generation counter that
serving watches. Nothing here imports Feast.

Connections: ``features.redis_connection_string`` (host:port[,db=N][,ssl=true], Feast's format)
plus the password from the environment variable ``features.redis_password_env``; the password
is never stored in the configuration or written to a file, and errors are redacted.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from featurestore import encoding as E
from featurestore.errors import RedisStoreError
from featurestore.feast_version import check_feast
from featurestore.layout import TS_COLUMN, OnlineRows, batches, view_columns
from taml.core.config import Config
from taml.core.secrets import from_env, redact

_INT64 = struct.Struct("<q")
#: Decoded values by their ValueProto bytes (a few thousand distinct small ints and rates per store).
DECODE_CACHE_MAX = 200_000

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
    target(config)  # a clear error for an empty or malformed connection string
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
    return [k + suffix for k in E.entity_keys(join_key, values)]


def entity_key(project: str, join_key: str, value: int) -> bytes:
    return E.entity_key(join_key, value) + project.encode("utf-8")


def materialization_key(project: str) -> str:
    """A plain string key beside Feast's binary ones: per view, the last window written by this project."""
    return f"_taml:{project}:materialized"


def generation_key(project: str) -> str:
    """Incremented after each materialization: serving drops its item cache when it moves."""
    return f"_taml:{project}:generation"


# --- writing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisWrite:
    written: int  # rows strictly newer than what the store held (Feast's rule), written
    holding: int  # entities that hold their row or a newer one after the write (the check)


def _held_ns(client, keys: Sequence[bytes], field: bytes) -> list[int]:
    with client.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.hget(k, field)
        return [E.decode_timestamp_ns(b) for b in pipe.execute()]


def write_rows(client, project: str, rows: OnlineRows, batch_size: int) -> RedisWrite:
    """Write the rows strictly newer than the store's into Feast's hashes, then count what holds.

    Per batch: one pipeline reads every key's ``_ts:{view}``, one writes the newer rows (HSET of
    all the view's fields and its timestamp), one reads the timestamps back: a key must then hold
    its row or a newer one.
    """
    check_feast()
    n = len(rows)
    if not n:
        return RedisWrite(0, 0)
    keys = entity_keys(project, rows.join_key, rows.table.column(rows.join_key).to_numpy())
    ts_us = rows.table.column(TS_COLUMN).to_numpy().astype(np.int64)
    ts_blobs = [E.encode_timestamp(u) for u in ts_us.tolist()]
    ts_ns = (ts_us * 1000).tolist()
    fields = [feature_field(rows.view, feat) for feat in rows.features]
    values = [E.encode_column(rows.table.column(feat), dtype)[0] for feat, dtype in rows.dtypes.items()]
    tsf = ts_field(rows.view)
    written = holding = 0
    for lo, hi in batches(n, batch_size):
        held = _held_ns(client, keys[lo:hi], tsf)
        with client.pipeline(transaction=False) as pipe:
            for j, old in zip(range(lo, hi), held, strict=True):
                if old and ts_ns[j] <= old:
                    continue  # not newer than what the store holds: Feast skips it too
                mapping = {f: col[j] for f, col in zip(fields, values, strict=True)}
                mapping[tsf] = ts_blobs[j]
                pipe.hset(keys[j], mapping=mapping)
                written += 1
            pipe.execute()
        holding += sum(
            now >= ts_ns[j] for j, now in zip(range(lo, hi), _held_ns(client, keys[lo:hi], tsf), strict=True)
        )
    return RedisWrite(written, holding)


def record_materialization(client, project: str, windows: dict[str, tuple[str, str]]) -> int:
    """Note the windows just written and move the generation counter; returns the new generation."""
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(materialization_key(project), mapping={v: json.dumps(w) for v, w in windows.items()})
        pipe.incr(generation_key(project))
        return int(pipe.execute()[-1])


# --- reading -------------------------------------------------------------------------------------


class RedisOnlineReader:
    """Direct reader of Feast's Redis online store (safe to share across threads: a connection pool).

    Per lookup one pipeline: HMGET of the user's hash (the fields of both user views) and one
    HMGET per distinct item (both item views); values decoded without protobuf for int64/double.
    Missing entities and features come back as None, as from Feast.
    """

    def __init__(self, config: Config, data_root: str | None = None):
        check_feast()
        self._config = config
        self._project = config.features.project
        self._suffix = self._project.encode("utf-8")
        self.views = view_columns()
        self.columns = [f for _, cols in self.views.values() for f in cols]
        self._fields: dict[str, tuple[list[bytes], list[str]]] = {}
        for entity in ("user", "item"):
            fields, names = [], []
            for view, (e, cols) in self.views.items():
                if e == entity:
                    for feat in cols:
                        fields.append(feature_field(view, feat))
                        names.append(feat)
            self._fields[entity] = (fields, names)
        self._user_prefix = E.entity_key_prefix("user_id")
        self._item_prefix = E.entity_key_prefix("item_id")
        self._decoded: dict[bytes, Any] = {}
        self._client = connect(config)
        try:
            self._client.ping()  # fail early on a wrong address or password
        except Exception as e:
            raise store_error(config, e, "connecting") from None

    def lookup(self, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
        """One dict per item (in order): user_id, item_id and every feature (None when missing)."""
        pack, sfx = _INT64.pack, self._suffix
        item_ids = [int(i) for i in item_ids]
        uid = int(user_id)
        unique = list(dict.fromkeys(item_ids))
        user_fields, user_names = self._fields["user"]
        item_fields, item_names = self._fields["item"]
        try:
            with self._client.pipeline(transaction=False) as pipe:
                pipe.hmget(self._user_prefix + pack(uid) + sfx, user_fields)
                for i in unique:
                    pipe.hmget(self._item_prefix + pack(i) + sfx, item_fields)
                replies = pipe.execute()
        except Exception as e:
            raise store_error(self._config, e, "reading features") from None
        cache = self._decoded
        if len(cache) > DECODE_CACHE_MAX:
            cache.clear()

        def decoded(blob):
            if blob is None:
                return None
            try:
                return cache[blob]
            except KeyError:
                v = cache[blob] = E.decode_value(blob)
                return v

        base: dict[str, Any] = dict.fromkeys(self.columns)
        for name, blob in zip(user_names, replies[0], strict=True):
            base[name] = decoded(blob)
        items = {
            i: {n: decoded(b) for n, b in zip(item_names, reply, strict=True)}
            for i, reply in zip(unique, replies[1:], strict=True)
        }
        return [{"user_id": uid, "item_id": i, **base, **items[i]} for i in item_ids]

    def version(self) -> str:
        """Moves whenever the project's materialization writes (the generation counter)."""
        try:
            got = self._client.get(generation_key(self._project))
        except Exception as e:
            raise store_error(self._config, e, "reading the generation") from None
        return "redis:" + (got.decode() if got else "0")

    def close(self) -> None:
        self._client.close()
