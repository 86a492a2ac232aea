"""Feast objects of the TAML pipeline (DESIGN.md "Features (Feast)").

Entities ``user`` and ``item``; feature views ``user_profile``, ``item_profile``,
``user_stats_7d``, ``item_stats_7d``; feature service ``taml_v1`` over all four.

:func:`build_objects` makes them for any data root; ``components.features`` calls it (it loads
this file by path) and applies the result with a programmatic RepoConfig. The module-level
objects below are what the plain ``feast`` CLI applies from this folder: their sources read
``$TAML_DATA_ROOT``, by default ``./demo/data``, the store ``make run`` leaves (the one
``feature_store.yaml`` here points at).

Feature names are flat and unique across views, so the training table needs no prefixes:
profile attributes keep their curated names; stats become ``{entity}_{stat}_7d`` (the names
the model's feature spec uses) through a field mapping of the stats parquet columns.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

ENV_DATA_ROOT = "TAML_DATA_ROOT"
#: The data root of `make run` (Makefile DEMO), which feature_store.yaml of this folder points at.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parent.parent / "demo" / "data"
USER_PROFILE = ("gender", "age_level", "city_level", "occupation")
ITEM_PROFILE = ("category_id", "shop_id", "brand_id", "price_level")
#: Columns of features/{user,item}_stats/dt=D/*.parquet (ingest's stats schema) and their types
#: (names of ``feast.types``; profile attributes are Int64). Plain strings, so reading the layout
#: (components.features' direct paths, serving) does not import Feast (~18 s with torch around).
STATS = (
    ("impressions", "Int64"),
    ("clicks", "Int64"),
    ("conversions", "Int64"),
    ("ctr", "Float64"),
    ("cvr", "Float64"),
)
#: Feature view name -> (entity, kind); kind "profile" or "stats".
VIEWS = {
    "user_profile": ("user", "profile"),
    "item_profile": ("item", "profile"),
    "user_stats_7d": ("user", "stats"),
    "item_stats_7d": ("item", "stats"),
}


def stats_feature(entity: str, stat: str) -> str:
    return f"{entity}_{stat}_7d"


def source_glob(data_root: str, entity: str, kind: str) -> str:
    """Parquet glob of a view's source. ``dt=*`` keeps staging folders (``_tmp.*``) out."""
    folder = f"curated/{entity}s" if kind == "profile" else f"features/{entity}_stats"
    return f"{str(data_root).rstrip('/')}/{folder}/dt=*/*.parquet"


def feature_columns(entity: str, kind: str) -> dict[str, str]:
    """Source column -> feature name of a view."""
    if kind == "profile":
        return {c: c for c in (USER_PROFILE if entity == "user" else ITEM_PROFILE)}
    return {stat: stats_feature(entity, stat) for stat, _ in STATS}


def feature_dtypes(entity: str, kind: str) -> dict[str, str]:
    """Feature name -> ``feast.types`` name of a view."""
    dtypes = dict(STATS) if kind == "stats" else {}
    return {feat: dtypes.get(src, "Int64") for src, feat in feature_columns(entity, kind).items()}


def build_objects(
    data_root: str,
    *,
    offline_store: str = "duckdb",
    bigquery_dataset: str = "",
    stats_ttl: timedelta = timedelta(hours=24),
    feature_service: str = "taml_v1",
) -> dict[str, object]:
    """Every Feast object, by name, with sources under ``data_root``.

    Profiles have no TTL: a profile row is valid until a newer row for the same key (a slowly
    changing dimension). Stats of day D-1 are stamped D 00:00 and describe "as of the end of
    D-1": ``stats_ttl`` (24 h) keeps older stats from being joined when a day's stats are missing.
    """
    from feast import Entity, FeatureService, FeatureView, Field, ValueType
    from feast import types as feast_types

    entities = {
        "user": Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64, description="A user."),
        "item": Entity(
            name="item", join_keys=["item_id"], value_type=ValueType.INT64, description="An ad item."
        ),
    }
    objects: dict[str, object] = dict(entities)
    views = []
    for name, (entity, kind) in VIEWS.items():
        columns = feature_columns(entity, kind)
        mapping = {src: feat for src, feat in columns.items() if src != feat}
        source = _source(name, data_root, entity, kind, mapping, offline_store, bigquery_dataset)
        dtypes = feature_dtypes(entity, kind)
        view = FeatureView(
            name=name,
            entities=[entities[entity]],
            ttl=stats_ttl if kind == "stats" else timedelta(0),
            schema=[Field(name=feat, dtype=getattr(feast_types, dtypes[feat])) for feat in columns.values()],
            source=source,
            online=True,
            description=f"{entity} {'profile (SCD rows)' if kind == 'profile' else 'trailing 7-day stats'}",
        )
        objects[name] = view
        views.append(view)
    objects[feature_service] = FeatureService(
        name=feature_service, features=views, description="TAML v1 inputs"
    )
    return objects


def _source(name, data_root, entity, kind, mapping, offline_store, bigquery_dataset):
    if offline_store == "bigquery":
        # External tables over the same parquet globs (docs/FEATURES.md has the DDL).
        from feast import BigQuerySource

        return BigQuerySource(
            name=f"{name}_source",
            table=f"{bigquery_dataset}.{name}",
            timestamp_field="event_timestamp",
            field_mapping=mapping,
        )
    from feast import FileSource

    return FileSource(
        name=f"{name}_source",
        path=source_glob(data_root, entity, kind),
        timestamp_field="event_timestamp",
        field_mapping=mapping,
    )


# --- what `feast apply` sees -------------------------------------------------------------------
# Built on first access (PEP 562), so loading this file for its layout does not import Feast; Feast's
# repo parser lists the names with dir() and reads them with getattr(), which builds them.

_NAMES = ("user", "item", "user_profile", "item_profile", "user_stats_7d", "item_stats_7d", "taml_v1")
_built: dict[str, dict[str, object]] = {}  # by data root: the environment may change within a process


def cli_data_root() -> str:
    """The data root the plain ``feast`` CLI reads: ``$TAML_DATA_ROOT``, else ``./demo/data`` (absolute)."""
    root = os.environ.get(ENV_DATA_ROOT)
    if not root:
        return str(DEFAULT_DATA_ROOT)
    return root if root.startswith("gs://") else str(Path(root).resolve())


def __getattr__(name: str) -> object:
    if name not in _NAMES:
        raise AttributeError(name)
    root = cli_data_root()
    if root not in _built:
        if not root.startswith("gs://") and not (Path(root) / "curated").is_dir():
            # One line instead of a traceback from deep inside Feast's repo parser.
            print(
                f"feature_repo: no TAML data under {root}: run `make run` (it writes ./demo/data), or set "
                f"{ENV_DATA_ROOT}=DIR and run feast with -f DIR/feature_store/feature_store.yaml",
                file=sys.stderr,
            )
            raise SystemExit(2)
        _built[root] = build_objects(root)
    return _built[root][name]


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
