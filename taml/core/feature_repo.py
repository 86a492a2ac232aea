"""The Feast repository's plain definitions (``feature_repo/definitions.py``), loaded by path.

Shared by the feature step, serving and the monitor: view names, feature names and source
layout are plain Python there, so reading them never imports Feast.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from taml.core.errors import TamlError

FEATURE_REPO = Path(__file__).resolve().parents[2] / "feature_repo"
_MODULE = "taml_feature_definitions"


class FeatureRepoError(TamlError):
    """The feature repository's definitions are missing."""


def definitions() -> ModuleType:
    """``feature_repo/definitions.py`` as a module (loaded once per process)."""
    if _MODULE in sys.modules:
        return sys.modules[_MODULE]
    path = FEATURE_REPO / "definitions.py"
    if not path.exists():
        raise FeatureRepoError(f"Feast definitions not found: {path}")
    spec = importlib.util.spec_from_file_location(_MODULE, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE] = module
    spec.loader.exec_module(module)
    return module


def stats_features() -> set[str]:
    """Names of the trailing-window stats features (``user_clicks_7d`` …)."""
    d = definitions()
    entities = sorted({entity for entity, kind in d.VIEWS.values() if kind == "stats"})
    return {d.stats_feature(entity, stat) for entity in entities for stat, _ in d.STATS}
