"""Online features for serving: a small source interface, the Feast-backed source, an item cache.

A ranking request is one user and many items. Item rows change only when the store is
re-materialized (once a day), so :class:`OnlineFeatures` keeps them in memory and a request costs
one user lookup; a cheap change token (file stats of the registry and the SQLite online store)
tells when to drop the cache. Unknown entities come back as ``None`` rows: the caller scores them
with nulls (vocabulary index 0) and flags them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from featurestore import FeatureStoreError, entity_columns, online_db_path, online_reader, registry_path
from taml.core import storage

log = logging.getLogger(__name__)

# An id no entity has (ids are non-negative): the colleague's reader answers per item, so a
# user-only lookup asks for this item, and an item-only lookup for this user.
_NO_ENTITY = -1
_ABSENT = object()

Row = dict[str, Any]


class FeatureSource(Protocol):
    """Where feature rows come from. ``None``: the store has no row at all for that entity."""

    user_columns: tuple[str, ...]
    item_columns: tuple[str, ...]

    def user(self, user_id: int) -> Row | None: ...

    def items(self, item_ids: Sequence[int]) -> list[Row | None]: ...

    def version(self) -> str:
        """Changes whenever the store's content may have changed (re-materialization)."""
        ...


class FeatureSourceUnavailable(RuntimeError):
    """The online store cannot be read (not built yet, unreachable); the server is not ready."""


def _file_token(path: str) -> str:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}"


class FeastOnlineSource:
    """The Feast online store of a data root, read with the feature-store format's reader.

    SQLite (local profile) or Redis (redis and gcp profiles): the direct readers of
    ``featurestore.online_reader`` (Feast's own formats, no Feast import). The change token
    is the files' stats for SQLite and the materialization's generation counter for Redis.
    """

    def __init__(self, config, data_root: str):
        self.user_columns, self.item_columns = entity_columns()
        f = config.features
        self._watch: list[str] = []
        registry = registry_path(config, data_root)
        if not storage.is_gcs(registry):
            self._watch.append(registry)
        if f.online_store == "sqlite":
            db = online_db_path(data_root)
            # Feast may write through a WAL: the main file's mtime alone can lag a materialization.
            self._watch += [db, db + "-wal"]
        self._gcs_registry = registry if storage.is_gcs(registry) else None
        try:
            self._reader = online_reader(config, data_root)
        except FeatureStoreError as e:
            raise FeatureSourceUnavailable(str(e)) from e
        self._lock = threading.Lock()  # one SQLite connection: one query at a time

    def _lookup(self, user_id: int, item_ids: Sequence[int]) -> list[Row]:
        try:
            with self._lock:
                return self._reader.lookup(user_id, item_ids)
        except FeatureStoreError as e:
            raise FeatureSourceUnavailable(str(e)) from e

    def user(self, user_id: int) -> Row | None:
        row = self._lookup(user_id, [_NO_ENTITY])[0]
        got = {c: row.get(c) for c in self.user_columns}
        return got if any(v is not None for v in got.values()) else None

    def items(self, item_ids: Sequence[int]) -> list[Row | None]:
        if not item_ids:
            return []
        out: list[Row | None] = []
        for row in self._lookup(_NO_ENTITY, list(item_ids)):
            got = {c: row.get(c) for c in self.item_columns}
            out.append(got if any(v is not None for v in got.values()) else None)
        return out

    def version(self) -> str:
        token = "|".join(_file_token(p) for p in self._watch)
        reader_version = getattr(self._reader, "version", None)
        if reader_version is not None:
            try:
                token += "|" + reader_version()
            except FeatureStoreError as e:
                raise FeatureSourceUnavailable(str(e)) from e
        if self._gcs_registry:
            token += "|" + storage.read_versioned(self._gcs_registry).generation
        return token

    def close(self) -> None:
        close = getattr(self._reader, "close", None)
        if close:
            close()


@dataclass
class StaticSource:
    """Feature rows from dictionaries (tests, benchmarks without a store, local experiments)."""

    users: Mapping[int, Row]
    items_by_id: Mapping[int, Row]
    user_columns: tuple[str, ...] = ()
    item_columns: tuple[str, ...] = ()
    token: str = "0"
    calls: dict[str, int] = field(default_factory=lambda: {"user": 0, "items": 0})

    def user(self, user_id: int) -> Row | None:
        self.calls["user"] += 1
        return self.users.get(user_id)

    def items(self, item_ids: Sequence[int]) -> list[Row | None]:
        self.calls["items"] += 1
        return [self.items_by_id.get(i) for i in item_ids]

    def version(self) -> str:
        return self.token


@dataclass(frozen=True)
class _State:
    source: FeatureSource
    token: str
    cache: dict[int, Row | None]


class OnlineFeatures:
    """A feature source with an in-process item cache, dropped when the store changes.

    ``opener`` builds the source; it is called again when the store's change token moves, so a
    store that was deleted and rebuilt (new file) is read afresh. Requests take one snapshot of
    (source, cache) and finish with it even if a refresh swaps them meanwhile.
    """

    def __init__(self, opener: Callable[[], FeatureSource], item_cache_size: int):
        self._opener = opener
        self._max = item_cache_size
        self._state: _State | None = None
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.hits = 0
        self.misses = 0

    @property
    def ready(self) -> bool:
        return self._state is not None

    def refresh(self) -> bool:
        """Open the source, or reopen it with an empty cache if its token moved; True if it did."""
        state = self._state
        try:
            if state is not None:
                token = state.source.version()
                if token == state.token:
                    return False
            source = self._opener()
            new = _State(source, source.version(), {})
        except FeatureSourceUnavailable as e:
            if self.last_error != str(e):
                log.warning("online feature store unavailable: %s", e)
            self.last_error = str(e)
            return False
        self._state = new
        self.last_error = None
        log.info(
            "online features %s (token %s); item cache emptied", "reopened" if state else "opened", new.token
        )
        return True

    def _snapshot(self) -> _State:
        state = self._state
        if state is None:
            self.refresh()
            state = self._state
        if state is None:
            raise FeatureSourceUnavailable(self.last_error or "online feature store not opened")
        return state

    def columns(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        s = self._snapshot()
        return s.source.user_columns, s.source.item_columns

    def user(self, user_id: int) -> Row | None:
        return self._snapshot().source.user(user_id)

    def items(self, item_ids: Sequence[int]) -> list[Row | None]:
        s = self._snapshot()
        if self._max == 0:
            return s.source.items(item_ids)
        cache = s.cache
        found: dict[int, Row | None] = {}
        for i in item_ids:
            v = cache.get(i, _ABSENT)
            if v is not _ABSENT:
                found[i] = v
        missing = [i for i in dict.fromkeys(item_ids) if i not in found]
        self.hits += len(item_ids) - len(missing)
        self.misses += len(missing)
        if missing:
            fetched = s.source.items(missing)
            found.update(zip(missing, fetched, strict=True))
            with self._lock:
                overflow = len(cache) + len(missing) - self._max
                # Insertion order is age: evicting the oldest keeps today's hot items.
                for _ in range(max(0, overflow)):
                    cache.pop(next(iter(cache)), None)
                cache.update(zip(missing, fetched, strict=True))
        return [found[i] for i in item_ids]


def feast_features(config, data_root: str) -> OnlineFeatures:
    """The serving feature source of ``data_root``: Feast online store + item cache."""
    return OnlineFeatures(lambda: FeastOnlineSource(config, data_root), config.serving.item_cache_size)


__all__ = [
    "FeastOnlineSource",
    "FeatureSource",
    "FeatureSourceUnavailable",
    "OnlineFeatures",
    "StaticSource",
    "feast_features",
]
