"""Online feature lookup through Feast's own read path (benchmarks, ``taml features online --via-feast``).

The direct readers (SQLite and Redis, Feast's formats, no Feast import) belong to the format
package: ``featurestore.online_reader``. :func:`feast_lookup` answers the same rows through
``FeatureStore.get_online_features`` (any online store); tests compare the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from components.features.store import feature_store
from taml.core.config import Config


def feast_lookup(store, config: Config, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The same rows through Feast's own online read path (works with any online store)."""
    service = store.get_feature_service(config.features.feature_service)
    got = store.get_online_features(
        features=service, entity_rows=[{"user_id": int(user_id), "item_id": int(i)} for i in item_ids]
    ).to_dict()
    return [{k: got[k][j] for k in got} for j in range(len(item_ids))]


class FeastReader:
    """``lookup`` through Feast's ``get_online_features`` (benchmarks and ``--via-feast``)."""

    def __init__(self, config: Config, data_root: str):
        self._config = config
        self._store = feature_store(config, data_root)

    def lookup(self, user_id: int, item_ids: Sequence[int]) -> list[dict[str, Any]]:
        return feast_lookup(self._store, self._config, user_id, item_ids)

    def close(self) -> None:
        pass
