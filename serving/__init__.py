"""The online prediction server (DESIGN.md "Serving"; docs/SERVING.md).

Public API:

- :func:`load_serving_model` (version_dir) -> :class:`ServingModel`: load + warm a version the way
  the server does; ``ServingModel.score_frame(table)``, ``.score_rows(rows)``.
- :class:`Runtime` (config, data_root, artifact_root): holder, alias follower, online features,
  prediction log, :class:`PredictionService`; :func:`create_app` (runtime) -> FastAPI;
  :func:`serve` (config, data_root, artifact_root, port).
- :class:`FeatureSource` (interface), :class:`FeastOnlineSource`, :class:`StaticSource`,
  :class:`OnlineFeatures` (item cache, refreshed when the store changes).
- :class:`PredictionLog`: the rotating JSON-lines log under ``{artifact_root}/serving_log/dt=D/``.

Imports are lazy: ``import serving`` does not import torch, Feast or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "serving.app",
    "FeastOnlineSource": "serving.features",
    "FeatureSource": "serving.features",
    "FeatureSourceUnavailable": "serving.features",
    "OnlineFeatures": "serving.features",
    "StaticSource": "serving.features",
    "feast_features": "serving.features",
    "AliasFollower": "serving.models",
    "ModelHolder": "serving.models",
    "ModelLoadError": "serving.models",
    "ServingModel": "serving.models",
    "load_serving_model": "serving.models",
    "PredictionLog": "serving.predlog",
    "log_root": "serving.predlog",
    "Runtime": "serving.runtime",
    "resolve_port": "serving.runtime",
    "serve": "serving.app",
    "Instance": "serving.schemas",
    "RankRequest": "serving.schemas",
    "RequestError": "serving.schemas",
    "NotReady": "serving.service",
    "PredictionService": "serving.service",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'serving' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = sorted(_EXPORTS)
